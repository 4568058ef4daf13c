//! Proves: laying out one stick (a cidata partition added to a boot image's GPT) never panics,
//! hangs or wraps an offset, whatever the image's GPT says, and never places the cidata
//! partition inside the head it rewrites.
#![no_main]

use labflash_core::flash::gpt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cidata = gpt::Cidata {
        len: 4096,
        sha256: "5a".repeat(32).parse().expect("a digest"),
    };
    for (target, sector) in [(64u64 << 20, 512u64), (1 << 40, 4096), (u64::MAX, 512)] {
        if let Ok(stick) = gpt::plan(data, data.len() as u64, &cidata, target, sector) {
            assert!(stick.cidata_offset >= stick.head.len() as u64);
        }
    }
});
