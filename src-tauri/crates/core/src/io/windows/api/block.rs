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

pub fn logical_block_size(file: &File) -> io::Result<u32> {
    answers::sector_sizes(&win32::alignment_descriptor(file)?).map(|(logical, _)| logical)
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

/// Writes all of `buf` at `offset`.
pub fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset`, stopping early only at the end of the medium.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.seek_read(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // Reading at or past a disk's end.
            Err(e) if e.raw_os_error() == Some(ERROR_HANDLE_EOF as i32) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
