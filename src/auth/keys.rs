//! Key material: HMAC secrets, PEM public keys and JWK sets.
//!
//! Every JWT key is pinned, when it is loaded, to the algorithms of its own
//! type (an RSA key never verifies an HS256 token, an HMAC secret never an
//! RS256 one); the token's `alg` header only selects among those. Key sets
//! sit behind an `ArcSwap` so a JWKS refresh replaces them atomically while
//! requests keep reading the set they started with.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::{Notify, watch};

/// Smallest HMAC secret accepted, in bytes (SPEC §2).
pub const MIN_SECRET_LEN: usize = 32;

/// How stored secret text encodes the secret bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    Raw,
    Base64,
    Hex,
}

/// Reads secret text as read from a file or variable: drops one trailing
/// newline (as `echo` and editors write), then decodes it.
pub fn decode_secret(mut text: Vec<u8>, encoding: SecretEncoding) -> Option<Vec<u8>> {
    if text.ends_with(b"\n") {
        text.pop();
        if text.ends_with(b"\r") {
            text.pop();
        }
    }
    match encoding {
        SecretEncoding::Raw => Some(text),
        SecretEncoding::Base64 => {
            let compact: Vec<u8> = text.into_iter().filter(|b| !b.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact))
                .ok()
        }
        SecretEncoding::Hex => {
            let text = text.trim_ascii();
            if !text.len().is_multiple_of(2) {
                return None;
            }
            text.chunks(2)
                .map(|pair| {
                    Some(crate::proxy::normalize::hex(&pair[0])? << 4 | crate::proxy::normalize::hex(&pair[1])?)
                })
                .collect()
        }
    }
}

/// An HMAC-SHA256 secret for signed URLs. `Debug` never prints it.
pub struct HmacKey {
    /// Key id: the value of a signed URL's `kid` that selects this key.
    pub id: String,
    key: aws_lc_rs::hmac::Key,
}

impl HmacKey {
    /// Wraps raw secret bytes (length is checked by the config compiler).
    pub fn new(id: impl Into<String>, secret: &[u8]) -> Self {
        HmacKey { id: id.into(), key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret) }
    }

    /// The aws-lc HMAC key.
    pub fn key(&self) -> &aws_lc_rs::hmac::Key {
        &self.key
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// One key that can verify JWTs.
pub struct JwtKey {
    /// The `kid` a token names to select this key (`None`: the key has no id
    /// and is tried for tokens without a `kid`).
    pub kid: Option<String>,
    /// The algorithms this key may verify; never empty, one family only.
    pub algorithms: Vec<Algorithm>,
    /// The verification key.
    pub decoding: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey").field("kid", &self.kid).field("algorithms", &self.algorithms).finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Whether this key may verify a token with header `alg` and `kid`.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        let kid_matches = match (kid, self.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        kid_matches && self.algorithms.contains(&alg)
    }
}

/// A set of JWT keys that may change at runtime (JWKS file or URL).
///
/// For a JWKS URL, a background task owns the fetching; the request path
/// only asks for an early refetch when a token names an unknown `kid`, and
/// at most one such request per cooldown is honoured.
#[derive(Debug)]
pub struct KeySet {
    /// Config name of the set, for logs and metrics.
    pub name: String,
    keys: ArcSwap<Vec<Arc<JwtKey>>>,
    /// Wakes the fetch task early.
    pub refetch: Notify,
    /// Bumped after every fetch attempt, so waiters can tell it happened.
    pub attempts: watch::Sender<u64>,
    /// Minimum time between refetches asked for by unknown `kid`s.
    pub cooldown: Duration,
    /// Fetched from a URL by a background task (a JWKS file is not).
    pub remote: bool,
    last_refetch: Mutex<Option<Instant>>,
    loaded: AtomicBool,
    stopped: AtomicBool,
}

impl KeySet {
    /// A set with its first keys (a JWKS URL set starts empty).
    pub fn new(name: impl Into<String>, keys: Vec<Arc<JwtKey>>) -> Self {
        let loaded = !keys.is_empty();
        KeySet {
            name: name.into(),
            keys: ArcSwap::from_pointee(keys),
            refetch: Notify::new(),
            attempts: watch::Sender::new(0),
            cooldown: Duration::from_secs(30),
            remote: false,
            last_refetch: Mutex::new(None),
            loaded: AtomicBool::new(loaded),
            stopped: AtomicBool::new(false),
        }
    }

    /// A set fetched from a URL, refetched early at most once per `cooldown`.
    pub fn remote(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self.remote = true;
        self
    }

    /// The current keys.
    pub fn current(&self) -> Arc<Vec<Arc<JwtKey>>> {
        self.keys.load_full()
    }

    /// Replaces the keys atomically; `true` when the kids changed.
    pub fn replace(&self, keys: Vec<Arc<JwtKey>>) -> bool {
        let kids = |k: &[Arc<JwtKey>]| k.iter().map(|k| (k.kid.clone(), k.algorithms.clone())).collect::<Vec<_>>();
        let changed = kids(&self.current()) != kids(&keys) || !self.is_loaded();
        self.keys.store(Arc::new(keys));
        self.loaded.store(true, Ordering::Release);
        changed
    }

    /// Whether keys have been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Claims the right to an early refetch: `false` within the cooldown of
    /// the last one, however many callers ask.
    pub fn claim_refetch(&self) -> bool {
        let Ok(mut last) = self.last_refetch.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.cooldown) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Tells the fetch task to stop (its configuration was replaced).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.refetch.notify_one();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// A source of JWT keys a route lists.
#[derive(Debug, Clone)]
pub enum JwtKeySource {
    /// A fixed key (HMAC secret or PEM public key).
    Static(Arc<JwtKey>),
    /// A JWK set that can be replaced at runtime.
    Set(Arc<KeySet>),
}

/// The default algorithm of a family, used when a key does not say.
pub fn default_algorithm(family: AlgorithmFamily) -> Algorithm {
    match family {
        AlgorithmFamily::Hmac => Algorithm::HS256,
        AlgorithmFamily::Rsa => Algorithm::RS256,
        AlgorithmFamily::Ec => Algorithm::ES256,
        AlgorithmFamily::Ed => Algorithm::EdDSA,
    }
}

/// A public key read from PEM, with the algorithm its type pins it to.
pub struct PemKey {
    pub decoding: DecodingKey,
    pub family: AlgorithmFamily,
    pub default_alg: Algorithm,
}

const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Reads a PEM public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn parse_public_pem(pem: &[u8]) -> Result<PemKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    let label = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| "not a PEM file (no -----BEGIN line)".to_owned())?;
    match label {
        "RSA PUBLIC KEY" => {
            let decoding = DecodingKey::from_rsa_pem(pem).map_err(|e| format!("invalid RSA key: {e}"))?;
            return Ok(PemKey { decoding, family: AlgorithmFamily::Rsa, default_alg: Algorithm::RS256 });
        }
        "PUBLIC KEY" => {}
        l if l.contains("PRIVATE KEY") => {
            return Err("this is a private key: give tollgate the public key only".to_owned());
        }
        l => return Err(format!("unsupported PEM block {l:?}: expected PUBLIC KEY")),
    }
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| "PEM body is not valid base64".to_owned())?;
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let (family, default_alg, decoding) = if has(OID_RSA) {
        (AlgorithmFamily::Rsa, Algorithm::RS256, DecodingKey::from_rsa_pem(pem))
    } else if has(OID_P256) {
        (AlgorithmFamily::Ec, Algorithm::ES256, DecodingKey::from_ec_pem(pem))
    } else if has(OID_P384) {
        (AlgorithmFamily::Ec, Algorithm::ES384, DecodingKey::from_ec_pem(pem))
    } else if has(OID_ED25519) {
        (AlgorithmFamily::Ed, Algorithm::EdDSA, DecodingKey::from_ed_pem(pem))
    } else {
        return Err("unsupported key type: expected RSA, EC P-256/P-384 or Ed25519".to_owned());
    };
    let decoding = decoding.map_err(|e| format!("invalid public key: {e}"))?;
    Ok(PemKey { decoding, family, default_alg })
}

/// Parses a JWK set document. Keys that cannot verify signatures (encryption
/// keys, unknown types, private parts missing) are skipped and reported in
/// the second list; an empty usable set is an error.
pub fn parse_jwks(json: &[u8]) -> Result<(Vec<Arc<JwtKey>>, Vec<String>), String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(json).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in doc.keys.into_iter().enumerate() {
        match jwk_to_key(value) {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("no usable signing key in the JWK set ({} skipped)", skipped.len()));
    }
    Ok((keys, skipped))
}

fn jwk_to_key(value: serde_json::Value) -> Result<JwtKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("invalid JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("encryption key (use: enc)".to_owned());
    }
    let alg = match jwk.common.key_algorithm {
        // KeyAlgorithm's names are JOSE names; encryption ones do not parse.
        Some(alg) => format!("{alg:?}").parse::<Algorithm>().map_err(|_| format!("unsupported alg {alg:?}"))?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                ref other => return Err(format!("unsupported curve {other:?}")),
            },
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
            _ => return Err("unsupported key type".to_owned()),
        },
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("invalid key: {e}"))?;
    if decoding.family() != alg.family() {
        return Err(format!("alg {alg:?} does not fit the key type"));
    }
    Ok(JwtKey { kid: jwk.common.key_id, algorithms: vec![alg], decoding })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_encodings() {
        assert_eq!(decode_secret(b"abc\n".to_vec(), SecretEncoding::Raw), Some(b"abc".to_vec()));
        assert_eq!(decode_secret(b"abc\r\n".to_vec(), SecretEncoding::Raw), Some(b"abc".to_vec()));
        assert_eq!(decode_secret(b"00ff\n".to_vec(), SecretEncoding::Hex), Some(vec![0, 255]));
        assert_eq!(decode_secret(b"0".to_vec(), SecretEncoding::Hex), None);
        assert_eq!(decode_secret(b"zz".to_vec(), SecretEncoding::Hex), None);
        assert_eq!(decode_secret(b"AAEC\n".to_vec(), SecretEncoding::Base64), Some(vec![0, 1, 2]));
    }

    #[test]
    fn private_keys_and_garbage_are_refused() {
        let private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(parse_public_pem(private).is_err_and(|e| e.contains("private key")));
        assert!(parse_public_pem(b"hello").is_err());
    }

    #[test]
    fn jwks_skips_encryption_keys_and_reads_alg() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h1","alg":"HS512"},
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"e1"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let (keys, skipped) = parse_jwks(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("h1"));
        assert_eq!(keys[0].algorithms, vec![Algorithm::HS512]);
        assert_eq!(skipped.len(), 2);
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn kid_and_alg_select_keys() {
        let key = JwtKey {
            kid: Some("a".into()),
            algorithms: vec![Algorithm::RS256],
            decoding: DecodingKey::from_secret(b"x"),
        };
        assert!(key.accepts(Algorithm::RS256, Some("a")));
        assert!(key.accepts(Algorithm::RS256, None));
        assert!(!key.accepts(Algorithm::RS512, Some("a")));
        assert!(!key.accepts(Algorithm::RS256, Some("b")));
    }
}
