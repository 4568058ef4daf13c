//! Proves: reading IncusOS's signed index (the S/MIME message, its DER signature and the
//! certificates in it) never panics, hangs or uses unbounded memory on any input, and accepts
//! nothing the test root did not sign.
#![no_main]

use labflash_core::sources::incus_signed::verify;
use libfuzzer_sys::fuzz_target;

const ROOT: &[u8] = include_bytes!("../../../tests/fixtures/incus/signed/root-E1.crt");

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = verify(data, ROOT, std::time::SystemTime::now()) {
        assert!(signed.signer.contains("TestOS"), "{}", signed.signer);
    }
});
