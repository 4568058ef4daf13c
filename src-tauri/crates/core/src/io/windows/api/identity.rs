//! Checking an open disk or file against the identity its plan recorded, on Windows: a disk's
//! number, device GUID, serial and size as it answers now; a file's volume serial number and
//! file index.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem as fs;

use super::win32;
use crate::error::Result;
use crate::io::identity::{check_file, drive_changed, Identity};
use crate::io::windows::{answers, checks};

/// The volume serial number and file index of an open file: what [`Identity::File`] records.
pub fn file_id(file: &File) -> io::Result<(u64, u64)> {
    // SAFETY: a plain struct of integers, filled in by the call.
    let mut info: fs::BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: an open handle and a struct of the size the call writes.
    if unsafe { fs::GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((u64::from(info.dwVolumeSerialNumber), index))
}

/// The same for the file or folder at `path`, if it exists.
pub fn file_id_at(path: &Path) -> Option<(u64, u64)> {
    let file = OpenOptions::new()
        .access_mode(0)
        .share_mode(win32::SHARE | fs::FILE_SHARE_DELETE)
        .custom_flags(fs::FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
        .ok()?;
    file_id(&file).ok()
}

/// Refuses the open `file` of `path` unless it is what `identity` recorded.
pub fn check(file: &File, path: &Path, identity: &Identity) -> Result<()> {
    let Identity::Drive(chosen) = identity else {
        return check_file(file, path, identity);
    };
    let asked = |e: io::Error| drive_changed(path, &format!("it does not answer as a disk: {e}"));
    let disk = win32::device_number(file).map_err(asked)?;
    let described = win32::device_descriptor(file)
        .and_then(|d| answers::device_descriptor(&d))
        .map_err(asked)?;
    let size = win32::length_info(file)
        .and_then(|l| answers::length(&l))
        .map_err(asked)?;
    let guid = win32::device_number_ex(file)
        .and_then(|a| answers::device_guid(&a))
        .unwrap_or(None);
    match checks::drive_differs(chosen, disk, guid, &described.serial, size) {
        Some(how) => Err(drive_changed(path, &how)),
        None => Ok(()),
    }
}
