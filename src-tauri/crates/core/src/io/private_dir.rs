//! A folder only this user can change, and everything under it opened relative to it: the cache
//! lives in one. See `linux/private_dir.rs` for the rule and `windows/api/private_dir.rs` for
//! what Windows gives of it.

use std::ffi::OsStr;
use std::path::{Component, Path};

use crate::error::{Error, Result};
pub use crate::io::sys::private_dir::PrivateDir;

/// The names `rel` steps through, refused unless each is a plain name (no root, `.` or `..`).
pub(crate) fn plain_names<'a>(rel: &'a Path, inside: &Path) -> Result<Vec<&'a OsStr>> {
    rel.components()
        .map(|part| match part {
            Component::Normal(name) => Ok(name),
            _ => Err(Error::BadInput(format!(
                "{} is not a plain path inside {}",
                rel.display(),
                inside.display()
            ))),
        })
        .collect()
}

/// Bytes the files in `folder` hold (each name's `tree_size`); 0 for a folder that is not
/// there or cannot be opened.
pub(crate) fn folder_size(folder: Result<Option<PrivateDir>>) -> u64 {
    match folder {
        Ok(Some(dir)) => dir
            .names()
            .unwrap_or_default()
            .iter()
            .map(|n| dir.tree_size(n))
            .sum(),
        _ => 0,
    }
}
