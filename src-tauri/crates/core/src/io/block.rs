//! The calls flashing makes on an open drive or image file: its size and logical block size,
//! positional reads and writes, dropping its cached pages, re-reading its partition table. A leaf:
//! opening targets ([`super::device`]) and checking them ([`super::identity`]) both stand on it.

pub use crate::io::sys::block::{
    drop_cache, logical_block_size, read_full_at, reread_partitions, size_of, sync_folder,
    write_all_at,
};
