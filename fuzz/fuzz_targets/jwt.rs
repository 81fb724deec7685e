//! JWT header and segment parsing through the route policy: never panics,
//! never accepts a token the fuzzer could not have signed.
#![no_main]

use std::sync::{Arc, OnceLock};

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use tollgate::auth::kinds::jwt::{Carriers, ClaimRules, JwtPolicy};
use tollgate::auth::keys::{JwtKey, JwtKeySource};

fn policy() -> &'static JwtPolicy {
    static POLICY: OnceLock<JwtPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let key = JwtKey::hmac(Some("k".into()), b"fuzz-secret-fuzz-secret-fuzz-secret!!", vec![Algorithm::HS256])
            .unwrap_or_else(|e| panic!("{e}"));
        let rules = ClaimRules { leeway: 30, path_claim: Some("path".into()), ..ClaimRules::default() };
        JwtPolicy::new(
            vec![JwtKeySource::Static(Arc::new(key))],
            Carriers { header: true, query: true, cookie: true },
            "token".into(),
            "c".into(),
            rules,
            Vec::new(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    assert!(policy().verify(token, "/x", 1_800_000_000).is_err(), "{token:?}");
});
