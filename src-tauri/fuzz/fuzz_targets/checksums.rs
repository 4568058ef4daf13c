//! Proves: the `.sha256` sidecar and SHA256SUMS parsers never panic, hang or use unbounded memory
//! on any text, and a digest they return is one the text spells out.
#![no_main]

use labflash_core::fetch::digest::{parse_sha256sums, parse_sidecar, Sha256Digest};
use libfuzzer_sys::fuzz_target;

fn written_in(text: &str, digest: &Sha256Digest) {
    assert!(
        text.to_ascii_lowercase().contains(&digest.hex()),
        "{digest:?} is not in the text"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(digest) = parse_sidecar(&text, "https://example.com/nocloud-amd64.raw.xz.sha256") {
        written_in(&text, &digest);
    }
    for name in ["nocloud-amd64.raw.xz", "metal-arm64.raw.zst", ""] {
        if let Some(digest) = parse_sha256sums(&text, name) {
            written_in(&text, &digest);
        }
    }
    // A file name chosen by the input: whatever precedes its first NUL.
    if let Some((name, sums)) = text.split_once('\0') {
        if let Some(digest) = parse_sha256sums(sums, name) {
            written_in(sums, &digest);
        }
    }
});
