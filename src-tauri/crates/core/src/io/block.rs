//! The calls flashing makes on an open drive or image file: its size and logical block size,
//! positional reads and writes, dropping its cached pages, re-reading its partition table. A leaf:
//! opening targets ([`super::device`]) and checking them ([`super::identity`]) both stand on it.

use std::fs::File;
use std::io;

pub use crate::io::sys::block::{
    drop_cache, logical_block_size, reread_partitions, size_of, sync_folder,
};
use crate::io::sys::block::{read_at, write_at};

/// Writes all of `buf` at `offset`.
pub fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match write_at(file, buf, offset) {
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

/// Reads up to `buf.len()` bytes at `offset`, stopping early only at the end of the device.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_io_goes_to_the_offset_and_stops_at_the_end() {
        let file = tempfile::tempfile().unwrap();
        write_all_at(&file, b"world", 6).unwrap();
        write_all_at(&file, b"hello ", 0).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(read_full_at(&file, &mut buf, 0).unwrap(), 11);
        assert_eq!(&buf[..11], b"hello world");
        assert_eq!(read_full_at(&file, &mut buf, 6).unwrap(), 5);
        assert_eq!(read_full_at(&file, &mut buf, 100).unwrap(), 0);
    }
}
