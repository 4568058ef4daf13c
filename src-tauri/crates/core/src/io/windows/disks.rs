//! The drive list on Windows, decided from what the machine answers: the physical disks
//! (`\\.\PhysicalDriveN`) with their IOCTL answers, and the volumes with the disks they lie on.
//! A disk is a system disk when a volume on it holds the Windows folder, is the EFI system
//! partition Windows booted from, or holds a page file. When any of these cannot be placed on a
//! disk (see [`doubt`]), or Windows runs from a virtual disk (a VHD, Storage Spaces) whose
//! physical disks are not known, every disk counts as one, removable media too: a doubt never
//! makes a disk writable.

use std::collections::BTreeSet;
use std::io;

use super::answers;
use crate::io::drives::{Bus, Drive, Partition};
use crate::io::identity::DriveIdentity;

/// What the machine answers about its disks and volumes (Win32 in `api/`, recordings in tests).
pub trait Machine {
    /// The disk numbers N for which `\\.\PhysicalDriveN` opens.
    fn disk_numbers(&self) -> Vec<u32>;
    /// `IOCTL_STORAGE_QUERY_PROPERTY` (`StorageDeviceProperty`) of the disk.
    fn device_descriptor(&self, disk: u32) -> io::Result<Vec<u8>>;
    /// `IOCTL_STORAGE_QUERY_PROPERTY` (`StorageAccessAlignmentProperty`) of the disk.
    fn alignment_descriptor(&self, disk: u32) -> io::Result<Vec<u8>>;
    /// `IOCTL_DISK_GET_LENGTH_INFO` of the disk.
    fn length_info(&self, disk: u32) -> io::Result<Vec<u8>>;
    /// `IOCTL_STORAGE_GET_DEVICE_NUMBER_EX` of the disk (its device GUID).
    fn device_number_ex(&self, disk: u32) -> io::Result<Vec<u8>>;
    /// Whether `IOCTL_DISK_IS_WRITABLE` fails with `ERROR_WRITE_PROTECT` (a card's lock switch).
    fn write_protected(&self, disk: u32) -> bool;
    /// Every volume Windows knows.
    fn volumes(&self) -> Vec<Volume>;
    /// Where Windows itself lives.
    fn system_places(&self) -> SystemPlaces;
}

/// A volume: `\\?\Volume{…}\`, its NT device (`\Device\HarddiskVolume3`), where it is mounted
/// (`E:\`), and its `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS` answer.
#[derive(Clone, Debug, Default)]
pub struct Volume {
    pub guid_path: String,
    pub device: String,
    pub mount_paths: Vec<String>,
    pub extents: Vec<u8>,
}

impl Volume {
    /// The disks it lies on (none when Windows did not say: a CD, a network share).
    pub fn disks(&self) -> Vec<u32> {
        answers::disk_extents(&self.extents).unwrap_or_default()
    }
}

/// The volumes Windows cannot run without, each as Windows names it.
#[derive(Clone, Debug, Default)]
pub struct SystemPlaces {
    /// The volume (`\\?\Volume{…}\`) holding the Windows folder; `None` if it could not be found.
    pub windows_volume: Option<String>,
    /// The NT device of the partition Windows booted from (`HKLM\SYSTEM\Setup\SystemPartition`).
    pub boot_device: Option<String>,
    /// Each page file and the volume holding it.
    pub page_files: Vec<(String, String)>,
    /// What Windows needs that could not be placed on a volume (a page file whose volume was not
    /// found), named for the refusal.
    pub unplaced: Vec<String>,
}

/// `\\.\PhysicalDriveN`.
pub fn disk_path(disk: u32) -> String {
    format!(r"\\.\PhysicalDrive{disk}")
}

/// The disk number of a `\\.\PhysicalDriveN` path (any case), or `None`.
pub fn disk_number(path: &str) -> Option<u32> {
    let prefix = r"\\.\physicaldrive";
    let head = path.get(..prefix.len())?;
    let digits = &path[prefix.len()..];
    let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    (head.eq_ignore_ascii_case(prefix) && plain && digits.len() <= 3)
        .then(|| digits.parse().ok())
        .flatten()
}

/// Every physical disk that answers, in disk order; one that does not is left out, not fatal.
pub fn list(machine: &dyn Machine) -> Vec<Drive> {
    let volumes = machine.volumes();
    let places = machine.system_places();
    let doubt = doubt(machine, &volumes, &places);
    let mut drives = Vec::new();
    for disk in machine.disk_numbers() {
        match drive(machine, disk, &volumes, &places, doubt.is_some()) {
            Ok(d) => drives.push(d),
            Err(e) => tracing::debug!("{} left out: {e}", disk_path(disk)),
        }
    }
    drives
}

/// Why labflash cannot tell the disks Windows needs from the others, if it cannot: then no
/// disk is written.
pub fn doubt(machine: &dyn Machine, volumes: &[Volume], places: &SystemPlaces) -> Option<String> {
    let windows_disks = places
        .windows_volume
        .as_deref()
        .map(|w| disks_of_volume(w, volumes))
        .unwrap_or_default();
    let virtual_disk = windows_disks.iter().any(|d| {
        machine
            .device_descriptor(*d)
            .and_then(|a| answers::device_descriptor(&a))
            .is_ok_and(|described| described.bus == Bus::Virtual)
    });
    let boot_placed = places.boot_device.as_deref().is_some_and(|b| {
        volumes
            .iter()
            .any(|v| v.device.eq_ignore_ascii_case(b) && !v.disks().is_empty())
    });
    let why = if windows_disks.is_empty() {
        "the volume holding the Windows folder could not be placed on a disk".to_string()
    } else if virtual_disk {
        "Windows runs from a virtual disk (a VHD or Storage Spaces) whose physical disks are not known".to_string()
    } else if !boot_placed {
        "the partition Windows booted from could not be placed on a disk".to_string()
    } else if let Some(what) = places.unplaced.first() {
        format!("{what} could not be placed on a disk")
    } else {
        return None;
    };
    Some(why)
}

fn drive(
    machine: &dyn Machine,
    disk: u32,
    volumes: &[Volume],
    places: &SystemPlaces,
    in_doubt: bool,
) -> io::Result<Drive> {
    let described = answers::device_descriptor(&machine.device_descriptor(disk)?)?;
    let size = answers::length(&machine.length_info(disk)?)?;
    let (logical, physical) = machine
        .alignment_descriptor(disk)
        .and_then(|a| answers::sector_sizes(&a))
        .unwrap_or((512, 512));
    let on_disk: Vec<&Volume> = volumes
        .iter()
        .filter(|v| v.disks().contains(&disk))
        .collect();
    let mountpoints: Vec<String> = on_disk
        .iter()
        .flat_map(|v| v.mount_paths.iter().cloned())
        .collect();
    let partitions = on_disk
        .iter()
        .map(|v| Partition {
            path: v.guid_path.clone(),
            mountpoints: v.mount_paths.clone(),
            holders: Vec::new(),
        })
        .collect();
    let system = in_doubt || !system_uses(disk, volumes, places).is_empty();
    let identity = DriveIdentity {
        devnum: disk.to_string(),
        diskseq: machine
            .device_number_ex(disk)
            .and_then(|a| answers::device_guid(&a))
            .unwrap_or(None),
        serial: described.serial.clone(),
        size,
    };
    Ok(Drive {
        path: disk_path(disk),
        model: described.product,
        vendor: described.vendor,
        serial: described.serial,
        size,
        logical_block_size: logical,
        physical_block_size: physical,
        removable: described.removable,
        bus: described.bus,
        read_only: machine.write_protected(disk),
        system,
        mountpoints,
        partitions,
        holders: Vec::new(),
        backing_file: None,
        identity,
        name: format!("PhysicalDrive{disk}"),
        devnums: vec![disk.to_string()],
    })
}

/// What on `disk` Windows needs: "the Windows folder (C:\)", "the EFI system partition Windows
/// booted from", "the page file C:\pagefile.sys". Empty for a disk Windows does not need.
pub fn system_uses(disk: u32, volumes: &[Volume], places: &SystemPlaces) -> Vec<String> {
    let mut uses = BTreeSet::new();
    for v in volumes.iter().filter(|v| v.disks().contains(&disk)) {
        let same = |name: &Option<String>, as_named: &str| {
            name.as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(as_named))
        };
        if same(&places.windows_volume, &v.guid_path) {
            let at = v.mount_paths.first().map_or(v.guid_path.as_str(), |m| m);
            uses.insert(format!("the Windows folder ({at})"));
        }
        if same(&places.boot_device, &v.device) {
            uses.insert("the EFI system partition Windows booted from".to_string());
        }
        for (file, volume) in &places.page_files {
            if volume.eq_ignore_ascii_case(&v.guid_path) {
                uses.insert(format!("the page file {file}"));
            }
        }
    }
    uses.into_iter().collect()
}

/// The disks the volume `guid_path` lies on: where a file on that volume is.
pub fn disks_of_volume(guid_path: &str, volumes: &[Volume]) -> Vec<u32> {
    volumes
        .iter()
        .find(|v| v.guid_path.eq_ignore_ascii_case(guid_path))
        .map(Volume::disks)
        .unwrap_or_default()
}

/// The volumes on `disk`, by GUID path: what is locked and dismounted before it is written.
pub fn volumes_on(disk: u32, volumes: &[Volume]) -> Vec<String> {
    volumes
        .iter()
        .filter(|v| v.disks().contains(&disk))
        .map(|v| v.guid_path.clone())
        .collect()
}

/// A page file as `ExistingPageFiles` names it (`\??\C:\pagefile.sys`), as a plain path.
pub fn page_file_path(name: &str) -> String {
    name.strip_prefix(r"\??\").unwrap_or(name).to_string()
}

#[cfg(test)]
#[path = "disks_tests.rs"]
mod tests;
