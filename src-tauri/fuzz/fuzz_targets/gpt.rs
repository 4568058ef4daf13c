//! Proves: reading a partition entry from an image's GPT never panics, hangs or uses unbounded
//! memory, whatever the header and entries say.
#![no_main]

use labflash_core::flash::gpt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for index in [0, 1, 2, 3, 127, 128, 4095, u32::MAX as usize, usize::MAX] {
        let _ = gpt::partition(data, index);
    }
});
