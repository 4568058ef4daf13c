//! The calls flashing makes on an open disk or image file, on Windows.

use std::fs::File;
use std::io;
use std::os::windows::fs::FileExt;
use std::path::Path;

use windows_sys::Win32::Foundation::ERROR_HANDLE_EOF;
use windows_sys::Win32::System::Ioctl as ctl;

use super::win32;
use crate::io::windows::answers;

/// Nothing to drop: disks and read-backs are opened unbuffered (`FILE_FLAG_NO_BUFFERING`), so
/// their reads come from the medium; Windows cannot drop one file's cached pages on demand.
pub fn drop_cache(_file: &File) {}

/// The disk's logical sector size: from its alignment descriptor, else its geometry (a 4Kn disk
/// taken for 512-byte sectors would fail its last unbuffered write).
pub fn logical_block_size(file: &File) -> io::Result<u32> {
    win32::alignment_descriptor(file)
        .and_then(|a| answers::sector_sizes(&a))
        .map(|(logical, _)| logical)
        .or_else(|_| answers::geometry_sector(&win32::geometry(file)?))
}

/// The size of a disk (`IOCTL_DISK_GET_LENGTH_INFO`), or of a regular file.
pub fn size_of(file: &File) -> io::Result<u64> {
    match win32::ioctl(file, ctl::IOCTL_DISK_GET_LENGTH_INFO, &[], 8) {
        Ok(answer) => answers::length(&answer),
        Err(_) => Ok(file.metadata()?.len()),
    }
}

/// Asks Windows to read the disk's new partition table (`IOCTL_DISK_UPDATE_PROPERTIES`).
pub fn reread_partitions(file: &File) {
    if let Err(e) = win32::ioctl(file, ctl::IOCTL_DISK_UPDATE_PROPERTIES, &[], 0) {
        tracing::debug!("IOCTL_DISK_UPDATE_PROPERTIES: {e}");
    }
}

/// Nothing to do: Windows has no fsync of a folder, and NTFS journals its names itself.
pub fn sync_folder(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// One positional write; how much it wrote.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.seek_write(buf, offset)
}

/// One positional read; 0 at the end of the file or disk (where a disk answers
/// `ERROR_HANDLE_EOF`).
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    match file.seek_read(buf, offset) {
        Err(e) if e.raw_os_error() == Some(ERROR_HANDLE_EOF as i32) => Ok(0),
        other => other,
    }
}
