//! Proves: the privileged helper's request parser never panics, hangs or uses unbounded memory
//! on any first line, and a request it accepts survives the front end's serialization unchanged.
#![no_main]

use labflash_core::flash::helper::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_request(data) {
        let line = serde_json::to_string(&request).expect("a parsed request serializes");
        let again =
            parse_request(line.as_bytes()).expect("the helper reads what the front end writes");
        assert_eq!(serde_json::to_string(&again).unwrap(), line);
    }
});
