//! Positional I/O on a target, as the writer and the read-back use it: a drive or an image file
//! (`std::fs::File`, O_DIRECT where opened so), or memory in the writer's unit tests, which so
//! run every phase of a flash without root or a device.

use std::fs::File;
use std::io;

use crate::io::block;

pub trait Medium: Send + Sync {
    /// Writes all of `buf` at `offset` (aligned and padded by the caller when O_DIRECT is on).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Reads until `buf` is full or the medium ends; returns how much was read.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes what was written durable (fsync).
    fn sync(&self) -> io::Result<()>;
    /// Forgets cached pages, so the next read comes from the medium itself.
    fn drop_cache(&self);
    /// Lets the kernel see a drive's new partition table.
    fn reread_partitions(&self) {}
}

impl Medium for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        block::write_all_at(self, buf, offset)
    }

    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        block::read_full_at(self, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }

    fn drop_cache(&self) {
        block::drop_cache(self)
    }

    fn reread_partitions(&self) {
        block::reread_partitions(self)
    }
}
