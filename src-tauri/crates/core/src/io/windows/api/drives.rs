//! The drive list on Windows: the physical disks as `io/windows/disks.rs` decides from Win32's
//! answers. `SystemRoots` (Linux's /sys and /proc) means nothing here.

use std::path::{Path, PathBuf};

use super::win32::{self, Win32};
use crate::error::{Error, Result};
use crate::io::drives::{Drive, SystemRoots};
use crate::io::windows::disks::{self, Machine};

pub fn list(_roots: &SystemRoots) -> Result<Vec<Drive>> {
    Ok(disks::list(&Win32))
}

/// The disk `target` names (`\\.\PhysicalDriveN`), and every drive listed.
pub fn chosen_drive(target: &Path, roots: &SystemRoots) -> Result<(PathBuf, Drive, Vec<Drive>)> {
    let refused = |reason: &str| Error::Refused {
        target: target.display().to_string(),
        reason: reason.into(),
    };
    let disk = target
        .to_str()
        .and_then(disks::disk_number)
        .ok_or_else(|| {
            refused("it is not a whole drive that can be flashed; name it \\\\.\\PhysicalDriveN")
        })?;
    let all = list(roots)?;
    let drive = all
        .iter()
        .find(|d| d.path == disks::disk_path(disk))
        .cloned()
        .ok_or_else(|| refused("no such disk is attached"))?;
    Ok((PathBuf::from(&drive.path), drive, all))
}

/// What on `drive` Windows needs, for a refusal.
pub fn system_use(drive: &Drive) -> String {
    let machine = Win32;
    let disk = drive.identity.devnum.parse().unwrap_or(u32::MAX);
    let (volumes, places) = (machine.volumes(), machine.system_places());
    let uses = disks::system_uses(disk, &volumes, &places);
    match disks::doubt(&machine, &volumes, &places) {
        _ if !uses.is_empty() => uses.join(", "),
        Some(why) => {
            format!("{why}, so labflash cannot tell which disks Windows needs and writes none")
        }
        None => "a volume Windows needs".into(),
    }
}

/// The drive a file lives on, by the disks under the file's volume.
pub fn drive_holding(path: &Path, drives: &[Drive], _roots: &SystemRoots) -> Option<String> {
    let volume = win32::volume_of(path)?;
    let under = disks::disks_of_volume(&volume, &Win32.volumes());
    drives
        .iter()
        .find(|d| under.iter().any(|n| d.devnums.contains(&n.to_string())))
        .map(|d| d.path.clone())
}
