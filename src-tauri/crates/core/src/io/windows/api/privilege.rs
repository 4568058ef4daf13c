//! No privileged helper on Windows yet: writing a drive needs labflash run as administrator.

use std::fs::Metadata;

use crate::error::Result;
use crate::io::windows::checks::administrator_needed;

pub fn helper_available() -> Result<()> {
    Err(administrator_needed("the drives", false))
}

/// No helper is ever run from a path on Windows.
pub fn root_alone_controls(_meta: &Metadata) -> bool {
    false
}

/// Windows has no root: an administrator's window is how the app writes drives there until
/// labflash has an elevated helper.
pub fn is_root() -> bool {
    false
}
