//! Proves: parsing and checking a labctl ImageBuild YAML document (and the warnings and URL of
//! one that passes) never panics, hangs or uses unbounded memory (aliases, nesting included).
#![no_main]

use labflash_core::sources::talos_build;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(build) = talos_build::parse(&text) {
        let _ = build.warnings();
        let _ = build.source_url();
    }
});
