//! Proves: reading a SOPS document (the YAML, its sops metadata, the age-sealed data key, the
//! ENC[…] values, the MAC) never panics, hangs or uses unbounded memory on any input, and
//! yields a string only from a document whose MAC holds under labctl's test key.
#![no_main]

use std::sync::LazyLock;

use labflash_core::secrets::{string_in_document, AgeIdentities};
use libfuzzer_sys::fuzz_target;

/// labctl's test key, the recipient of every seed (tests/fixtures/sops/README.md).
static KEYS: LazyLock<AgeIdentities> = LazyLock::new(|| {
    AgeIdentities::from_sources(
        Some("AGE-SECRET-KEY-1NK7RF4CDV8HQXZZYJKRR3T3K6Z3QXRYF6F5WZW3Q2FC5FZ8FKDQQVVTSEG"),
        None,
        None,
    )
    .expect("labctl's test key")
});

fuzz_target!(|data: &[u8]| {
    for pointer in ["/database/password", "/client_crt_pem", "/servers/0/name"] {
        let _ = string_in_document("fuzz.sops.yaml", data, pointer, &KEYS);
    }
});
