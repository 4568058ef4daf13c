//! Proves: the reader of an Image Factory's `<asset>.sigstore.json` never panics, hangs or uses
//! unbounded memory on any text, and a key-signed bundle it accepts has a 32-byte digest and
//! a signature, as `SignBlob` writes them.
#![no_main]

use labflash_core::fetch::sigstore_bundle::{parse, Bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(Bundle::Key(signed)) = parse(&text) {
        assert!(!signed.signature.is_empty());
        assert_eq!(signed.digest.as_bytes().len(), 32);
    }
});
