//! No privileged helper on Windows yet: writing a drive needs labflash run as administrator.

use std::fs::Metadata;

use crate::error::Result;
use crate::io::windows::checks::administrator_needed;

pub fn helper_available() -> Result<()> {
    Err(administrator_needed("the drives"))
}

/// No helper is ever run from a path on Windows.
pub fn root_alone_controls(_meta: &Metadata) -> bool {
    false
}
