//! Proves: parsing an IncusOS index.json and picking an update never panics, hangs or uses
//! unbounded memory, and the image URL it picks never leaves the base URL.
#![no_main]

use labflash_core::sources::incus::{resolve_index, IncusRequest, DEFAULT_BASE, DEFAULT_INDEX};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let index_url = Url::parse(DEFAULT_INDEX).unwrap();
    let base = Url::parse(DEFAULT_BASE).unwrap();
    let requests = [
        ("testing", "x86_64", None),
        ("stable", "aarch64", None),
        ("stable", "x86_64", Some("202608050930")),
    ];
    for (channel, arch, version) in requests {
        let req = IncusRequest {
            index_url: DEFAULT_INDEX.into(),
            base_url: DEFAULT_BASE.into(),
            channel: channel.into(),
            arch: arch.into(),
            version: version.map(String::from),
            max_image_size: 4 << 30,
            seed: None,
            trust_root: None,
            unsigned: false,
        };
        if let Ok((_, url, _)) = resolve_index(&text, &index_url, &base, &req) {
            let inside = format!("{}/", DEFAULT_BASE);
            assert!(
                url.as_str().starts_with(&inside),
                "{url} is outside {inside}"
            );
        }
    }
});
