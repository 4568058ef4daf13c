//! Unmounting on Windows happens when the disk is opened for writing: each of its volumes is
//! locked and dismounted then (`device::open_for_write`), and stays so until the disk is closed.

use std::path::Path;

use crate::error::Result;
use crate::io::drives::{Drive, SystemRoots};

/// Nothing to do before the open; see above.
pub fn unmount_drive(
    _drive: &Drive,
    _mountpoints: &[String],
    _target: &Path,
    _roots: &SystemRoots,
) -> Result<()> {
    Ok(())
}
