//! Query parsing: scan/strip/canonical never panic; stripping keeps every
//! non-credential piece in order; the canonical query of what is forwarded
//! equals the canonical query that was signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::auth::query::{self, CredentialNames};

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    let signed = CredentialNames::signed_url();
    let both = CredentialNames::new(["exp", "sig", "kid", "prefix", "token"]).unwrap_or_default();
    if let Ok(found) = query::scan(q, &signed) {
        let forwarded = query::strip(q, &found).map(|c| c.into_owned()).unwrap_or_default();
        assert_eq!(query::canonical(q).ok(), query::canonical(&forwarded).ok(), "{q:?}");
        assert!(forwarded.len() <= q.len());
    }
    if let Ok(found) = query::scan(q, &both) {
        let forwarded = query::strip(q, &found).map(|c| c.into_owned()).unwrap_or_default();
        let again = query::scan(&forwarded, &both).unwrap_or_default();
        assert!(!again.any(), "a credential survived stripping: {q:?} -> {forwarded:?}");
    }
});
