//! What tollgate's own HMAC formats share (signed URLs, path tokens,
//! exchanged cookies): the string to sign and its signature, the syntax of
//! `exp`, `kid` and `sig`, and the keys a route verifies them with.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::auth::keys::{HmacKey, SecretEncoding};

/// A route's signed-URL rules (shared by its path tokens); the kind that
/// checks query-signed URLs (`signed_url.rs`).
#[derive(Debug, Clone)]
pub struct SignedUrlPolicy {
    /// Keys selected by `kid`; the first one also serves URLs without a `kid`.
    pub keys: KeyRing,
    /// Longest lifetime a link may have, counted from now, in seconds.
    pub max_ttl: Option<u64>,
}

/// A route's HMAC keys in their configured order, found by `kid` in
/// constant time however many there are (a rotation keeps two; a
/// multi-tenant route may hold a thousand).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<Arc<HmacKey>>,
    /// `kid` → position, for rings past a few keys (a scan is cheaper below).
    by_id: Option<Arc<HashMap<Box<str>, usize>>>,
}

impl KeyRing {
    /// Keys past which a ring is indexed.
    const SCAN: usize = 8;

    /// The first key: it signs and verifies links without a `kid`.
    pub fn first(&self) -> Option<&Arc<HmacKey>> {
        self.keys.first()
    }

    /// The key with `kid` (the first of them when several share it).
    pub fn get(&self, kid: &str) -> Option<&Arc<HmacKey>> {
        match &self.by_id {
            Some(index) => index.get(kid).and_then(|&i| self.keys.get(i)),
            None => self.keys.iter().find(|k| k.id == kid),
        }
    }
}

impl From<Vec<Arc<HmacKey>>> for KeyRing {
    fn from(keys: Vec<Arc<HmacKey>>) -> Self {
        let by_id = (keys.len() > Self::SCAN).then(|| {
            let mut index = HashMap::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                index.entry(key.id.as_str().into()).or_insert(i);
            }
            Arc::new(index)
        });
        KeyRing { keys, by_id }
    }
}

impl Deref for KeyRing {
    type Target = [Arc<HmacKey>];

    fn deref(&self) -> &[Arc<HmacKey>] {
        &self.keys
    }
}

/// The method as signed: HEAD shares GET's signature.
pub fn signing_method(method: &str) -> &str {
    if method == "HEAD" { "GET" } else { method }
}

/// The fields of a string to sign (docs/reference.md: Signed URLs, Path tokens), in order.
#[derive(Debug, Clone, Copy)]
pub struct ToSign<'a> {
    pub scheme: &'a str,
    pub method: &'a str,
    pub exp: &'a str,
    pub kid: &'a str,
    pub resource: &'a str,
    pub canonical_query: &'a str,
}

impl ToSign<'_> {
    fn parts(&self) -> [&str; 6] {
        [self.scheme, signing_method(self.method), self.exp, self.kid, self.resource, self.canonical_query]
    }

    /// The string to sign, for `explain`, tests and documentation;
    /// verification feeds the same pieces to the HMAC without building it.
    pub fn text(&self) -> String {
        self.parts().join("\n")
    }

    /// The HMAC of the string to sign.
    pub fn tag(&self, key: &HmacKey) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(key.key());
        for (i, part) in self.parts().iter().enumerate() {
            if i > 0 {
                ctx.update(b"\n");
            }
            ctx.update(part.as_bytes());
        }
        ctx.sign()
    }

    /// The signature as written in a URL (43 base64url characters).
    pub fn signature(&self, key: &HmacKey) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(key))
    }

    /// Whether `given` (32 decoded bytes) is this string's signature.
    pub fn verifies(&self, key: &HmacKey, given: &[u8]) -> bool {
        constant_time::verify_slices_are_equal(self.tag(key).as_ref(), given).is_ok()
    }
}

/// Decodes a 43-character base64url signature into its 32 bytes.
pub fn decode_signature(raw: &str) -> Option<[u8; 32]> {
    let mut given = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(raw, &mut given) {
        Ok(32) if raw.len() == 43 => Some(given),
        _ => None,
    }
}

/// `exp` must be a plain decimal: `^[1-9][0-9]{0,10}$`.
pub fn parse_exp(raw: &str) -> Option<u64> {
    let b = raw.as_bytes();
    let plain = (1..=11).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit);
    if plain { raw.parse().ok() } else { None }
}

/// `kid` must match `[A-Za-z0-9._-]{1,64}`.
pub fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A string to sign with its line breaks made visible, one line each.
pub struct Visible<'a>(pub &'a str);

/// What `explain` adds to a signature mismatch: the signer's key bytes
/// must be the config's, and how the config reads them.
pub struct KeyHint<'a>(pub &'a HmacKey);

impl std::fmt::Display for KeyHint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.0.id.is_empty() { "the key".to_owned() } else { format!("key {:?}", self.0.id) };
        let read = match self.0.encoding {
            SecretEncoding::Raw => "uses its text as the key bytes (one trailing newline dropped)",
            SecretEncoding::Hex => "decodes it from hex (`encoding: hex`)",
            SecretEncoding::Base64 => "decodes it from base64 (`encoding: base64`)",
        };
        write!(f, "\n      (is the signer's key the same bytes? the config {read} for {key}; ")?;
        match self.0.encoding {
            SecretEncoding::Raw => write!(f, "a signer that decodes the text signs with other bytes")?,
            e => write!(f, "`tollgate sign --key-file` needs `--key-encoding {}` too", encoding_name(e))?,
        }
        write!(f, ". `tollgate sign --config FILE --key NAME` signs as the proxy verifies)")
    }
}

fn encoding_name(e: SecretEncoding) -> &'static str {
    match e {
        SecretEncoding::Raw => "raw",
        SecretEncoding::Hex => "hex",
        SecretEncoding::Base64 => "base64",
    }
}

impl std::fmt::Display for Visible<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<&str> = self.0.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let end = if i + 1 < lines.len() { "\\n" } else { "" };
            write!(f, "\n      | {line}{end}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_ring_finds_a_kid_as_a_scan_would() {
        let keys: Vec<_> = (0..100u8).map(|i| Arc::new(HmacKey::new(format!("k{i}"), &[i; 32]))).collect();
        let mut with_twin = keys.clone();
        with_twin.push(Arc::new(HmacKey::new("k5", &[0xee; 32])));
        let ring = KeyRing::from(with_twin.clone());
        assert!(ring.by_id.is_some(), "a hundred keys are indexed");
        for kid in ["k0", "k5", "k99", "k100", ""] {
            let scanned = with_twin.iter().find(|k| k.id == kid).map(Arc::as_ptr);
            assert_eq!(ring.get(kid).map(Arc::as_ptr), scanned, "kid {kid:?}");
        }
        assert_eq!(ring.len(), 101, "the ring keeps every key in order");
        assert!(KeyRing::from(keys[..3].to_vec()).by_id.is_none(), "a rotation's few keys are scanned");
    }
}
