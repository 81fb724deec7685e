//! Signed-URL and path-token extraction and verification on arbitrary
//! targets: never panics, and never accepts a target it did not sign.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tollgate::auth::keys::HmacKey;
use tollgate::auth::kinds::path_token;
use tollgate::auth::query::{self, CredentialNames};
use tollgate::auth::kinds::signed_url::{SignedUrlPolicy, verify};
use tollgate::normalize::check_path;

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else { return };
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let Ok(normal) = check_path(path) else { return };
    let policy = SignedUrlPolicy {
        keys: vec![Arc::new(HmacKey::new("k", b"fuzz-secret-fuzz-secret-fuzz-secret!!"))].into(),
        max_ttl: Some(86_400),
    };
    if let Ok(Some(token)) = path_token::find(path, "tg") {
        assert!(token.strip(path).len() < path.len());
        for method in ["GET", "HEAD", "PUT"] {
            assert!(path_token::verify(&policy, method, path, &token, "/", 1_800_000_000).is_err(), "{target:?}");
        }
    }
    let names = CredentialNames::signed_url();
    let Ok(found) = query::scan(q, &names) else { return };
    for method in ["GET", "HEAD", "PUT"] {
        assert!(verify(&policy, method, &normal.decoded, q, &found, 1_800_000_000).is_err(), "{target:?}");
    }
});
