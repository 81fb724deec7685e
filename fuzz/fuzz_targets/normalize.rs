//! The normal-form check: never panics; an accepted path decodes (as an
//! upstream would, once) to exactly the path verified, with no dot segment,
//! control byte or backslash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::normalize::{check_path, hex};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(normal) = check_path(raw) else { return };
    let b = raw.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) else {
                panic!("accepted invalid percent-encoding: {raw:?}");
            };
            decoded.push(h << 4 | l);
            i += 3;
        } else {
            decoded.push(b[i]);
            i += 1;
        }
    }
    assert_eq!(decoded, normal.decoded.as_bytes(), "{raw:?}");
    assert!(normal.decoded.split('/').all(|s| s != "." && s != ".."), "{raw:?}");
    assert!(!normal.decoded.bytes().any(|c| c < 0x20 || c == 0x7f || c == b'\\'), "{raw:?}");
});
