//! Key material: HMAC secrets, JWT verification keys and replaceable key
//! sets (reading PEM files and JWK documents is in `keyfile.rs`).
//!
//! Every JWT key is pinned, when it is loaded, to the algorithms of its own
//! type (an RSA key never verifies an HS256 token, an HMAC secret never an
//! RS256 one); the token's `alg` header only selects among those. Key sets
//! sit behind an `ArcSwap` so a JWKS refresh replaces them atomically while
//! requests keep reading the set they started with.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use tokio::sync::{Notify, watch};

/// Smallest HMAC secret accepted, in bytes (docs/reference.md: Signed URLs).
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
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact))
                .ok()
        }
        SecretEncoding::Hex => crate::normalize::decode_hex(text.trim_ascii()),
    }
}

/// An HMAC-SHA256 secret for signed URLs. `Debug` never prints it.
pub struct HmacKey {
    /// Key id: the value of a signed URL's `kid` that selects this key.
    pub id: String,
    key: aws_lc_rs::hmac::Key,
    /// How the config decoded the secret: `explain` names it when a
    /// signature does not match (a signer may have read the text as is).
    pub encoding: SecretEncoding,
}

impl HmacKey {
    /// Wraps raw secret bytes (length is checked by the config compiler).
    pub fn new(id: impl Into<String>, secret: &[u8]) -> Self {
        HmacKey {
            id: id.into(),
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            encoding: SecretEncoding::Raw,
        }
    }

    /// Notes how the config decoded the secret (see `encoding`).
    pub fn read_as(mut self, encoding: SecretEncoding) -> Self {
        self.encoding = encoding;
        self
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

/// One key that can verify JWTs, parsed once when it is loaded: the request
/// path never decodes key material.
pub struct JwtKey {
    /// The `kid` a token names to select this key (`None`: the key has no id
    /// and is tried for tokens without a `kid`).
    pub kid: Option<String>,
    /// The algorithms this key may verify; never empty, one family only.
    pub algorithms: Vec<Algorithm>,
    verifiers: Vec<(Algorithm, Verifier)>,
    /// SHA-256 of the key material: tells a rotated key from a kept one
    /// even when an identity provider reuses the `kid`.
    fingerprint: [u8; 32],
}

/// A pre-parsed verification key for one algorithm.
enum Verifier {
    Hmac(Box<aws_lc_rs::hmac::Key>),
    Public(ParsedPublicKey),
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey").field("kid", &self.kid).field("algorithms", &self.algorithms).finish_non_exhaustive()
    }
}

/// The aws-lc algorithm behind a JWS public-key algorithm.
fn public_algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    use aws_lc_rs::signature as sig;
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

impl JwtKey {
    /// An HMAC secret pinned to `algorithms` (all HS*).
    pub fn hmac(kid: Option<String>, secret: &[u8], algorithms: Vec<Algorithm>) -> Result<Self, String> {
        use aws_lc_rs::hmac;
        let mut verifiers = Vec::with_capacity(algorithms.len());
        for &alg in &algorithms {
            let a = match alg {
                Algorithm::HS256 => hmac::HMAC_SHA256,
                Algorithm::HS384 => hmac::HMAC_SHA384,
                Algorithm::HS512 => hmac::HMAC_SHA512,
                other => return Err(format!("{other:?} cannot be verified with an HMAC secret")),
            };
            verifiers.push((alg, Verifier::Hmac(Box::new(hmac::Key::new(a, secret)))));
        }
        JwtKey::checked(kid, algorithms, verifiers, secret)
    }

    /// A public key (SubjectPublicKeyInfo DER, PKCS#1 DER for RSA, a raw EC
    /// point or a raw Ed25519 key) pinned to `algorithms`. A key that does
    /// not fit an algorithm (an RSA key for ES256, a P-384 key for ES256) is
    /// refused here.
    pub fn public(kid: Option<String>, key: &[u8], algorithms: Vec<Algorithm>) -> Result<Self, String> {
        let mut verifiers = Vec::with_capacity(algorithms.len());
        for &alg in &algorithms {
            let algorithm =
                public_algorithm(alg).ok_or_else(|| format!("{alg:?} needs an HMAC secret, not a public key"))?;
            let parsed =
                ParsedPublicKey::new(algorithm, key).map_err(|e| format!("the key does not fit {alg:?}: {e}"))?;
            verifiers.push((alg, Verifier::Public(parsed)));
        }
        JwtKey::checked(kid, algorithms, verifiers, key)
    }

    fn checked(
        kid: Option<String>,
        algorithms: Vec<Algorithm>,
        verifiers: Vec<(Algorithm, Verifier)>,
        material: &[u8],
    ) -> Result<Self, String> {
        if algorithms.is_empty() {
            return Err("a key needs at least one algorithm".to_owned());
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, material).as_ref());
        Ok(JwtKey { kid, algorithms, verifiers, fingerprint })
    }

    /// Whether this key may verify a token with header `alg` and `kid`.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        let kid_matches = match (kid, self.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        kid_matches && self.algorithms.contains(&alg)
    }

    /// Checks `signature` over `message` with this key under `alg`
    /// (constant time for HMAC).
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers.iter().any(|(a, v)| {
            *a == alg
                && match v {
                    Verifier::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
                    Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
                }
        })
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
    keys: ArcSwap<KeyList>,
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
            keys: ArcSwap::from_pointee(KeyList::from(keys)),
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
    pub fn current(&self) -> Arc<KeyList> {
        self.keys.load_full()
    }

    /// Replaces the keys atomically; `true` when the kids changed.
    pub fn replace(&self, keys: Vec<Arc<JwtKey>>) -> bool {
        let ids = |k: &[Arc<JwtKey>]| {
            k.iter().map(|k| (k.kid.clone(), k.algorithms.clone(), k.fingerprint)).collect::<Vec<_>>()
        };
        let changed = ids(&self.current()) != ids(&keys) || !self.is_loaded();
        self.keys.store(Arc::new(KeyList::from(keys)));
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

/// The keys of a set, in order, found by `kid` without a scan when the set
/// is large (a multi-tenant JWKS may hold a thousand).
#[derive(Debug, Default)]
pub struct KeyList {
    keys: Vec<Arc<JwtKey>>,
    /// `kid` → positions, for lists past a few keys (a scan is cheaper below).
    by_kid: Option<HashMap<Box<str>, Vec<usize>>>,
}

impl KeyList {
    /// Keys past which a list is indexed.
    const SCAN: usize = 8;

    /// The keys that may verify a token naming `kid` (every key when it
    /// names none), in the set's order.
    pub fn for_kid<'a>(&'a self, kid: Option<&str>) -> impl Iterator<Item = &'a Arc<JwtKey>> + 'a {
        let (indexed, all): (&[usize], &[Arc<JwtKey>]) = match (kid, &self.by_kid) {
            (Some(kid), Some(index)) => (index.get(kid).map(Vec::as_slice).unwrap_or_default(), &[]),
            _ => (&[], &self.keys),
        };
        indexed.iter().filter_map(|&i| self.keys.get(i)).chain(all)
    }
}

impl From<Vec<Arc<JwtKey>>> for KeyList {
    fn from(keys: Vec<Arc<JwtKey>>) -> Self {
        let by_kid = (keys.len() > Self::SCAN).then(|| {
            let mut index: HashMap<Box<str>, Vec<usize>> = HashMap::new();
            for (i, key) in keys.iter().enumerate() {
                if let Some(kid) = &key.kid {
                    index.entry(kid.as_str().into()).or_default().push(i);
                }
            }
            index
        });
        KeyList { keys, by_kid }
    }
}

impl std::ops::Deref for KeyList {
    type Target = [Arc<JwtKey>];

    fn deref(&self) -> &[Arc<JwtKey>] {
        &self.keys
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

/// Secret bytes of the kinds' own formats (CDN HMAC keys, salts,
/// `secure_link` secrets). `Debug` never prints them.
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: &[u8]) -> Self {
        Secret(bytes.into())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A named secret of `keys:` (its name, or `kid`, is how a credential
/// selects it: Cloud CDN's `KeyName`).
#[derive(Debug)]
pub struct NamedSecret {
    pub id: String,
    pub secret: Secret,
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
    fn a_key_set_change_is_seen_even_under_the_same_kid() {
        let key = |secret: &[u8]| {
            Arc::new(
                JwtKey::hmac(Some("main".into()), secret, vec![Algorithm::HS256]).unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let set = KeySet::new("idp", vec![key(b"first")]);
        assert!(!set.replace(vec![key(b"first")]), "the same key is no change");
        assert!(set.replace(vec![key(b"second")]), "new material under the same kid is a change");
    }

    #[test]
    fn a_large_set_finds_a_kid_as_a_scan_would() {
        let key = |kid: Option<&str>, secret: &[u8]| {
            Arc::new(
                JwtKey::hmac(kid.map(Into::into), secret, vec![Algorithm::HS256]).unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let mut keys: Vec<_> = (0..1000).map(|i| key(Some(&format!("t{i}")), format!("s{i}").as_bytes())).collect();
        keys.push(key(Some("t7"), b"second t7"));
        keys.push(key(None, b"no kid"));
        let list = KeyList::from(keys.clone());
        assert!(list.by_kid.is_some(), "a thousand keys are indexed");
        for kid in [Some("t7"), Some("t999"), Some("nobody"), None] {
            let indexed: Vec<_> = list.for_kid(kid).map(Arc::as_ptr).collect();
            let scanned: Vec<_> =
                keys.iter().filter(|k| kid.is_none() || k.kid.as_deref() == kid).map(Arc::as_ptr).collect();
            assert_eq!(indexed, scanned, "kid {kid:?}");
        }
        assert_eq!(list.for_kid(Some("t7")).count(), 2, "both keys under one kid are tried, in order");
    }

    #[test]
    fn kid_and_alg_select_keys() {
        let key = JwtKey::hmac(Some("a".into()), b"x", vec![Algorithm::HS256]).unwrap_or_else(|e| panic!("{e}"));
        assert!(key.accepts(Algorithm::HS256, Some("a")));
        assert!(key.accepts(Algorithm::HS256, None));
        assert!(!key.accepts(Algorithm::HS512, Some("a")));
        assert!(!key.accepts(Algorithm::HS256, Some("b")));
        assert!(JwtKey::hmac(None, b"x", vec![Algorithm::RS256]).is_err(), "HMAC secrets verify HS* only");
        assert!(JwtKey::public(None, b"not a key", vec![Algorithm::HS256]).is_err(), "public keys never verify HS*");
    }
}
