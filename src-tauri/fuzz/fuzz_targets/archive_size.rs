//! Proves: reading an image's size from an archive's own records (xz index walk, gzip ISIZE,
//! zstd frame walk) never panics, hangs or uses unbounded memory, and the xz walk gives the same
//! answer from a short tail window (asking for more bytes) as from the whole file.
#![no_main]

use labflash_core::fetch::image_size::{gzip_size, xz_walk, zstd_walk, XzWalk};
use libfuzzer_sys::fuzz_target;

/// Walks like `image_size::of_file`: a tail of `tail` bytes first, then whatever it asks for.
fn walk_from_tail(data: &[u8], tail: usize) -> Result<u64, String> {
    let mut start = data.len().saturating_sub(tail) as u64;
    loop {
        match xz_walk(&data[start as usize..], start)? {
            XzWalk::Size(size) => return Ok(size),
            XzWalk::Need(from) => {
                assert!(
                    from < start,
                    "asked for {from}.. with the window at {start}.."
                );
                start = from;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = walk_from_tail(data, data.len());
    for tail in [64, 24, 12] {
        assert_eq!(walk_from_tail(data, tail), whole, "a {tail}-byte tail");
    }

    let _ = gzip_size(data, data.len() as u64);

    let mut read_at = |offset: u64, buf: &mut [u8]| -> std::io::Result<()> {
        let from = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let part = from
            .checked_add(buf.len())
            .and_then(|to| data.get(from..to))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(part);
        Ok(())
    };
    let _ = zstd_walk(&mut read_at, data.len() as u64);
});
