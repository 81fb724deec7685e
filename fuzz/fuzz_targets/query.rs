//! Query parsing: scan/strip/canonical never panic; stripping keeps every
//! non-credential piece in order; the canonical query of what is forwarded
//! equals the canonical query that was signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::auth::query::{self, CredentialNames};

const SIGNED: CredentialNames<'static> = CredentialNames { signed_url: true, token: None };
const BOTH: CredentialNames<'static> = CredentialNames { signed_url: true, token: Some("token") };

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    if let Ok(found) = query::scan(q, SIGNED) {
        let forwarded = query::strip(q, SIGNED, &found).map(|c| c.into_owned()).unwrap_or_default();
        assert_eq!(query::canonical(q).ok(), query::canonical(&forwarded).ok(), "{q:?}");
        assert!(forwarded.len() <= q.len());
    }
    if let Ok(found) = query::scan(q, BOTH) {
        let forwarded = query::strip(q, BOTH, &found).map(|c| c.into_owned()).unwrap_or_default();
        let again = query::scan(&forwarded, BOTH).unwrap_or_default();
        assert!(!again.any(), "a credential survived stripping: {q:?} -> {forwarded:?}");
    }
});
