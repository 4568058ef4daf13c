//! Proves: format detection and the bounded xz, gzip, zstd and raw decoders never panic, hang or
//! use unbounded memory on any input, and never yield more than their limit.
#![no_main]

use std::io::Read;
use std::path::Path;

use labflash_core::fetch::decompress::{decoder, Format};
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = Format::detect(data);
    for format in [Format::Xz, Format::Gzip, Format::Zstd, Format::Raw] {
        let Ok(mut reader) = decoder(data, format, Path::new("fuzz"), LIMIT) else {
            continue;
        };
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        assert!(
            total <= LIMIT,
            "{} decoded {total} bytes past the limit",
            format.name()
        );
        if format == Format::Raw && data.len() as u64 <= LIMIT {
            assert_eq!(total, data.len() as u64);
        }
    }
});
