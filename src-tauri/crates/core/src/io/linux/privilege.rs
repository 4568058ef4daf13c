//! The privileged helper on Linux: run through pkexec, from a path only root may change.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use crate::error::Result;

/// pkexec and the helper exist on Linux: whether they are installed safely is
/// `flash::helper::installed`'s question.
pub fn helper_available() -> Result<()> {
    Ok(())
}

/// Whether only root may change the file or folder `meta` describes: root's, and neither group
/// nor others may write it.
pub fn root_alone_controls(meta: &Metadata) -> bool {
    meta.uid() == 0 && meta.mode() & 0o022 == 0
}

/// Whether this process runs as root (a WebKitGTK window must not).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
