//! The syscalls flashing makes on an open drive or image file: its size and logical block size,
//! positional reads and writes, dropping its cached pages, re-reading its partition table. A leaf:
//! opening targets ([`super::device`]) and checking them ([`super::identity`]) both stand on it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

// Linux block ioctls (linux/fs.h), not exported by the libc crate.
const BLKRRPART: libc::c_ulong = 0x125f;
const BLKSSZGET: libc::c_ulong = 0x1268;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

/// Asks the kernel to forget cached pages of the whole file (best effort).
pub fn drop_cache(file: &File) {
    // SAFETY: plain syscall on an owned, open descriptor.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

pub fn logical_block_size(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKSSZGET, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size as u32)
}

/// The size of a block device, or of a regular file.
pub fn size_of(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Ok(meta.len());
    }
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Asks the kernel to re-read the partition table; devices without partition scanning (some
/// loop devices) refuse, which is harmless.
pub fn reread_partitions(file: &File) {
    // SAFETY: BLKRRPART takes no argument.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART) } != 0 {
        tracing::debug!("BLKRRPART: {}", io::Error::last_os_error());
    }
}

/// Makes a rename or a new name in `dir` durable (fsync of the folder).
pub fn sync_folder(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One positional write; how much it wrote.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    FileExt::write_at(file, buf, offset)
}

/// One positional read; 0 at the end of the file or device.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    FileExt::read_at(file, buf, offset)
}
