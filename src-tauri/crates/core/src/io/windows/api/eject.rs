//! Ejecting a flashed disk on Windows: if it is still the disk flashed, its volumes (Windows
//! mounts the new partitions once the flash closes the disk) are locked and dismounted, then its
//! media ejected (`IOCTL_STORAGE_EJECT_MEDIA`).

use std::fs::OpenOptions;
use std::os::windows::fs::OpenOptionsExt;
use std::path::Path;

use windows_sys::Win32::System::Ioctl as ctl;

use super::win32::{self, Volumes, Win32};
use crate::error::Error;
use crate::io::eject::Ejected;
use crate::io::identity::{DriveIdentity, Identity};
use crate::io::windows::disks::{self, Machine};
use crate::io::windows::locking;

pub fn eject(path: &Path, flashed: &DriveIdentity) -> Result<Ejected, Error> {
    let disk = path.to_str().and_then(disks::disk_number).ok_or_else(|| {
        Error::BadInput(format!(
            "{} is not a disk (\\\\.\\PhysicalDriveN), so it is not ejected",
            path.display()
        ))
    })?;
    let file = OpenOptions::new()
        .read(true)
        .share_mode(win32::SHARE)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    super::identity::check(&file, path, &Identity::Drive(flashed.clone())).map_err(|e| {
        Error::BadInput(format!(
            "{} is not the drive that was flashed ({e}): it was unplugged or re-attached since, so it is not ejected",
            path.display()
        ))
    })?;
    let held = locking::take(&Volumes, &disks::volumes_on(disk, &Win32.volumes()));
    if let Err(e) = &held {
        tracing::info!("before ejecting {}: {e}", path.display());
    }
    Ok(
        match win32::ioctl(&file, ctl::IOCTL_STORAGE_EJECT_MEDIA, &[], 0) {
            Ok(_) => Ejected::PoweredOff,
            Err(e) => Ejected::Kept(format!(
                "Windows would not eject {} ({e}); it is safe to remove once the flash has finished",
                path.display()
            )),
        },
    )
}
