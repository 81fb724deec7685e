//! CloudFront signed URLs and signed cookies, verified at the origin (for a
//! move off CloudFront, or to refuse requests that bypass it).
//!
//! ```text
//! canned:  ?Expires=<t>&Signature=<s>&Key-Pair-Id=<id>[&Hash-Algorithm=SHA256]
//!          signs {"Statement":[{"Resource":"<url>","Condition":{"DateLessThan":{"AWS:EpochTime":<t>}}}]}
//! custom:  ?Policy=<b64 policy>&Signature=<s>&Key-Pair-Id=<id>[&Hash-Algorithm=SHA256]
//!          signs the policy's own bytes: Resource with * and ? wildcards,
//!          DateLessThan, DateGreaterThan, IpAddress
//! cookies: CloudFront-Expires | CloudFront-Policy, CloudFront-Signature,
//!          CloudFront-Key-Pair-Id, CloudFront-Hash-Algorithm
//! ```
//! Signatures are RSA or ECDSA P-256 (DER) over SHA-1, or SHA-256 with
//! `Hash-Algorithm=SHA256`; `Signature` and `Policy` use CloudFront's base64
//! (`+` → `-`, `=` → `_`, `/` → `~`). Keys are PEM public keys whose `kid`
//! is the key's CloudFront ID (the `Key-Pair-Id`).
//!
//! The URL a signature covers is `<origin><raw path>[?<query>]`: the origin
//! is one of the route's configured `origins` (see `cdn.rs`: never the
//! request's own scheme and `Host`), the query is the request's without the
//! credential parameters, byte for byte and in order. Verdicts are cached
//! (an RSA check costs tens of microseconds), keyed on every credential
//! field, the path and query, and the client address (an `IpAddress`
//! condition depends on it).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cdn::{self, Cidr, Origins};
use crate::auth::cache::Verified;
use crate::auth::cache::{CacheKey, Verdict};
use crate::auth::cookie;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Facts;
use crate::auth::grant::Grant;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::CookieName;
use crate::auth::kind::Kind;
use crate::auth::kind::Presented;
use crate::auth::kind::VerifyContext;
use crate::auth::section::{CarrierFile, CompileContext, Compiled, CompiledKey, Registered, parse_section};
use crate::auth::sign::{
    OPTION_COOKIES, OPTION_IP, OPTION_NOT_BEFORE, SignInput, SignOption, Signer, absolute, append_query,
};

/// The query parameters of a CloudFront signed URL.
pub const URL_PARAMS: [&str; 5] = ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];
/// The cookies of CloudFront signed cookies, in [`URL_PARAMS`] order.
pub const COOKIES: [&str; 5] = [
    "CloudFront-Expires",
    "CloudFront-Policy",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
    "CloudFront-Hash-Algorithm",
];

/// Longest policy accepted, in bytes of its base64 form.
const MAX_POLICY_LEN: usize = 8 * 1024;

/// CloudFront's base64: the standard alphabet after `-`/`_`/`~` are mapped
/// back to `+`/`=`/`/`; padding optional.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes CloudFront's URL-safe base64.
pub fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let mapped: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            '+' | '=' | '/' => '!', // not in CloudFront's alphabet: fails below
            c => c,
        })
        .collect();
    STANDARD_ANY_PAD.decode(mapped).ok()
}

/// Encodes in CloudFront's URL-safe base64.
pub fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

/// The digest a signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// `Hash-Algorithm`: absent means SHA-1.
    fn parse(raw: Option<&str>) -> Result<Hash, AuthError> {
        match raw {
            None | Some("SHA1") => Ok(Hash::Sha1),
            Some("SHA256") => Ok(Hash::Sha256),
            Some(_) => Err(AuthError::Malformed),
        }
    }
}

/// A CloudFront public key, parsed once for both digests.
pub struct CloudFrontKey {
    /// The key's CloudFront ID: what `Key-Pair-Id` names.
    pub id: String,
    sha1: ParsedPublicKey,
    sha256: ParsedPublicKey,
}

impl std::fmt::Debug for CloudFrontKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFrontKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl CloudFrontKey {
    /// An RSA (2048 bits and more) or ECDSA P-256 public key, as
    /// SubjectPublicKeyInfo DER (or PKCS#1 DER for RSA).
    pub fn new(id: impl Into<String>, der: &[u8], rsa: bool) -> Result<Self, String> {
        let (sha1, sha256): (
            &'static dyn signature::VerificationAlgorithm,
            &'static dyn signature::VerificationAlgorithm,
        ) = if rsa {
            (&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, &signature::RSA_PKCS1_2048_8192_SHA256)
        } else {
            (&signature::ECDSA_P256_SHA1_ASN1, &signature::ECDSA_P256_SHA256_ASN1)
        };
        let parse = |alg| ParsedPublicKey::new(alg, der).map_err(|e| format!("not a CloudFront key: {e}"));
        Ok(CloudFrontKey { id: id.into(), sha1: parse(sha1)?, sha256: parse(sha256)? })
    }

    fn verify(&self, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
        let key = if hash == Hash::Sha1 { &self.sha1 } else { &self.sha256 };
        key.verify_sig(message, sig).is_ok()
    }
}

/// The kind: a route's CloudFront keys and origins.
#[derive(Debug)]
pub struct CloudFront {
    pub keys: Vec<Arc<CloudFrontKey>>,
    pub origins: Origins,
    pub from_query: bool,
    pub from_cookie: bool,
}

/// The credential fields, from the query or the cookies.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub expires: Option<Cow<'a, str>>,
    pub policy: Option<Cow<'a, str>>,
    pub signature: Option<Cow<'a, str>>,
    pub key_pair_id: Option<Cow<'a, str>>,
    pub hash: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    fn from_query(req: &AuthRequest<'a>) -> Result<Self, AuthError> {
        let get = |name| req.found.get(name).map(cdn::decoded).transpose();
        Ok(Fields {
            expires: get(URL_PARAMS[0])?,
            policy: get(URL_PARAMS[1])?,
            signature: get(URL_PARAMS[2])?,
            key_pair_id: get(URL_PARAMS[3])?,
            hash: get(URL_PARAMS[4])?,
        })
    }

    fn from_cookies(req: &AuthRequest<'a>) -> Result<Self, AuthError> {
        let get = |name| -> Result<Option<Cow<'a, str>>, AuthError> {
            match cookie::find(req.headers, name)? {
                None => Ok(None),
                Some(v) => Ok(Some(Cow::Borrowed(std::str::from_utf8(v).map_err(|_| AuthError::Malformed)?))),
            }
        };
        Ok(Fields {
            expires: get(COOKIES[0])?,
            policy: get(COOKIES[1])?,
            signature: get(COOKIES[2])?,
            key_pair_id: get(COOKIES[3])?,
            hash: get(COOKIES[4])?,
        })
    }

    /// Every field, for the verdict cache key.
    fn all(&self) -> [&str; 5] {
        [&self.expires, &self.policy, &self.signature, &self.key_pair_id, &self.hash]
            .map(|f| f.as_deref().unwrap_or(""))
    }
}

impl Kind for CloudFront {
    fn name(&self) -> &'static str {
        "cloudfront"
    }

    fn query_params(&self) -> Vec<&str> {
        if self.from_query { URL_PARAMS.to_vec() } else { Vec::new() }
    }

    fn cookies(&self) -> Vec<CookieName> {
        if self.from_cookie { COOKIES.iter().map(|&c| CookieName::Exact(c.into())).collect() } else { Vec::new() }
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if self.from_query && req.found.any_of(&URL_PARAMS) {
            let sig = req.found.get("Signature").unwrap_or_default();
            found(Presented { carrier: Carrier::SignedUrl, credential: Cow::Borrowed(sig) });
        }
        if self.from_cookie {
            let mut any = false;
            for name in COOKIES {
                // Each lookup also refuses a cookie given twice.
                any |= cookie::find(req.headers, name)?.is_some();
            }
            if any {
                let sig = cookie::find(req.headers, COOKIES[2])?.unwrap_or_default();
                let sig = std::str::from_utf8(sig).map_err(|_| AuthError::Malformed)?;
                found(Presented { carrier: Carrier::Cookie, credential: Cow::Borrowed(sig) });
            }
        }
        Ok(())
    }

    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let fields = match cred.carrier {
            Carrier::Cookie => Fields::from_cookies(req)?,
            _ => Fields::from_query(req)?,
        };
        let target = cdn::path_and_query(req);
        let credential = {
            let mut all = fields.all().join("\n");
            all.push('\n');
            all.push_str(&req.client_ip.to_string());
            all
        };
        let key = CacheKey::new(req.route_id, req.method, cred.carrier, &target, &credential);
        let verdict = match ctx.cache.get(&key, ctx.now) {
            Some(verdict) => {
                ctx.counters.hit.inc();
                verdict
            }
            None => {
                ctx.counters.miss.inc();
                let verdict = match self.check(&fields, &target, req.client_ip, ctx.now) {
                    Ok(exp) => Verdict::Allow(Verified {
                        exp,
                        headers: Arc::from(Vec::new()),
                        scope: None,
                        facts: Facts { expires_at: Some(exp), ..Facts::default() },
                        key: None,
                    }),
                    Err(e) => Verdict::Deny(e),
                };
                ctx.cache.insert(key, verdict.clone(), ctx.now);
                verdict
            }
        };
        let verdict = match verdict {
            Verdict::Allow(_) => Ok(()),
            Verdict::Deny(error) => Err(error),
        };
        cdn::trace_verdict(&mut ctx.tracer(), "CloudFront", &verdict);
        verdict.map(|()| Grant::plain(cred.carrier))
    }
}

/// The canned policy CloudFront (and every signer) builds for `url`.
pub fn canned_policy(url: &str, expires: u64) -> String {
    let resource = serde_json::to_string(url).unwrap_or_default();
    format!(
        r#"{{"Statement":[{{"Resource":{resource},"Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

/// The conditions of a custom policy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub resource: Option<String>,
    pub date_less_than: u64,
    pub date_greater_than: Option<u64>,
    pub source_ip: Option<Cidr>,
}

impl Policy {
    /// Reads a policy document. One statement; any key or condition
    /// tollgate does not know is refused (it could not be enforced).
    pub fn parse(bytes: &[u8]) -> Result<Policy, AuthError> {
        let doc: Map<String, Value> = serde_json::from_slice(bytes).map_err(|_| AuthError::Malformed)?;
        let statement = match (doc.len(), doc.get("Statement")) {
            (1, Some(Value::Array(list))) if list.len() == 1 => list[0].as_object().ok_or(AuthError::Malformed)?,
            _ => return Err(AuthError::ClaimMismatch),
        };
        let mut policy = Policy::default();
        let mut less_than = None;
        for (name, value) in statement {
            match (name.as_str(), value) {
                ("Resource", Value::String(r)) => policy.resource = Some(r.clone()),
                ("Condition", Value::Object(conditions)) => {
                    for (cond, v) in conditions {
                        match cond.as_str() {
                            "DateLessThan" => less_than = Some(epoch_condition(v)?),
                            "DateGreaterThan" => policy.date_greater_than = Some(epoch_condition(v)?),
                            "IpAddress" => {
                                let ip = one_field(v, "AWS:SourceIp")?.as_str().ok_or(AuthError::ClaimMismatch)?;
                                policy.source_ip = Some(Cidr::parse(ip).ok_or(AuthError::ClaimMismatch)?);
                            }
                            _ => return Err(AuthError::ClaimMismatch),
                        }
                    }
                }
                _ => return Err(AuthError::ClaimMismatch),
            }
        }
        policy.date_less_than = less_than.ok_or(AuthError::ClaimMismatch)?;
        Ok(policy)
    }
}

fn one_field<'v>(v: &'v Value, name: &str) -> Result<&'v Value, AuthError> {
    match v.as_object() {
        Some(map) if map.len() == 1 => map.get(name).ok_or(AuthError::ClaimMismatch),
        _ => Err(AuthError::ClaimMismatch),
    }
}

fn epoch_condition(v: &Value) -> Result<u64, AuthError> {
    one_field(v, "AWS:EpochTime")?.as_u64().ok_or(AuthError::ClaimMismatch)
}

impl CloudFront {
    fn key(&self, id: &str) -> Result<&CloudFrontKey, AuthError> {
        self.keys.iter().find(|k| k.id == id).map(|k| &**k).ok_or(AuthError::UnknownKey)
    }

    /// Verifies the fields for a request on `target` (raw path and stripped
    /// query) from `client`; returns the credential's expiry.
    pub fn check(&self, f: &Fields<'_>, target: &str, client: IpAddr, now: u64) -> Result<u64, AuthError> {
        let (Some(sig), Some(id)) = (f.signature.as_deref(), f.key_pair_id.as_deref()) else {
            return Err(AuthError::Malformed);
        };
        let hash = Hash::parse(f.hash.as_deref())?;
        let urls = || self.origins.iter().map(|origin| format!("{origin}{target}"));
        match (f.expires.as_deref(), f.policy.as_deref()) {
            (Some(expires), None) => {
                let exp = cdn::parse_epoch(expires)?;
                let key = self.key(id)?;
                let sig = decode_b64(sig).ok_or(AuthError::BadSignature)?;
                // Cheap before costly: an expired link costs no RSA check.
                if now >= exp {
                    return Err(AuthError::Expired);
                }
                if urls().any(|url| key.verify(hash, canned_policy(&url, exp).as_bytes(), &sig)) {
                    Ok(exp)
                } else {
                    Err(AuthError::BadSignature)
                }
            }
            (None, Some(policy)) => {
                if policy.len() > MAX_POLICY_LEN {
                    return Err(AuthError::Malformed);
                }
                let document = decode_b64(policy).ok_or(AuthError::Malformed)?;
                let key = self.key(id)?;
                let sig = decode_b64(sig).ok_or(AuthError::BadSignature)?;
                if !key.verify(hash, &document, &sig) {
                    return Err(AuthError::BadSignature);
                }
                let policy = Policy::parse(&document)?;
                if now >= policy.date_less_than {
                    return Err(AuthError::Expired);
                }
                if policy.date_greater_than.is_some_and(|start| now < start) {
                    return Err(AuthError::NotYetValid);
                }
                if policy.source_ip.is_some_and(|range| !range.contains(client)) {
                    return Err(AuthError::ClaimMismatch);
                }
                // No Resource: every URL of the distribution (as CloudFront).
                if let Some(pattern) = &policy.resource
                    && !urls().any(|url| cdn::wildcard_match(pattern.as_bytes(), url.as_bytes(), true))
                {
                    return Err(AuthError::WrongResource);
                }
                Ok(policy.date_less_than)
            }
            _ => Err(AuthError::Malformed),
        }
    }
}

/// A private key to sign CloudFront links with (`tollgate sign`, tests).
pub enum PrivateKey {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA
    /// PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, P-256).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING as P256, EcdsaKeyPair};
        let (label, der) = crate::auth::keyfile::pem_block(pem)?;
        let bad = |e: aws_lc_rs::error::KeyRejected| format!("unusable private key: {e}");
        match label {
            "PRIVATE KEY" => match aws_lc_rs::rsa::KeyPair::from_pkcs8(&der) {
                Ok(k) => Ok(PrivateKey::Rsa(k)),
                Err(_) => EcdsaKeyPair::from_pkcs8(&P256, &der).map(PrivateKey::Ec).map_err(bad),
            },
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der).map(PrivateKey::Rsa).map_err(bad),
            "EC PRIVATE KEY" => EcdsaKeyPair::from_private_key_der(&P256, &der).map(PrivateKey::Ec).map_err(bad),
            other => Err(format!("unsupported PEM block {other:?}: expected a private key")),
        }
    }

    /// Signs with SHA-256 (aws-lc signs no SHA-1): links carry
    /// `Hash-Algorithm=SHA256`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(|e| e.to_string())?;
                Ok(sig)
            }
            PrivateKey::Ec(k) => k.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|e| e.to_string()),
        }
    }
}

/// What to sign.
#[derive(Debug, Clone, Default)]
pub struct SignRequest<'a> {
    /// The full URL (`https://host/path?query`).
    pub url: &'a str,
    pub key_pair_id: &'a str,
    pub expires: u64,
    /// A Resource pattern other than the URL (wildcards).
    pub resource: Option<&'a str>,
    /// `IpAddress` (a CIDR or one address).
    pub ip: Option<&'a str>,
    /// `DateGreaterThan`.
    pub not_before: Option<u64>,
}

/// Signs a request; returns the credential fields, named as in the query
/// ([`URL_PARAMS`]): a canned policy unless a resource, IP or start is given.
pub fn sign(key: &PrivateKey, req: &SignRequest<'_>) -> Result<Vec<(&'static str, String)>, String> {
    let custom = req.resource.is_some() || req.ip.is_some() || req.not_before.is_some();
    let policy = if custom {
        let resource = serde_json::to_string(req.resource.unwrap_or(req.url)).map_err(|e| e.to_string())?;
        let mut condition = format!(r#""DateLessThan":{{"AWS:EpochTime":{}}}"#, req.expires);
        if let Some(ip) = req.ip {
            let cidr = if ip.contains('/') { ip.to_owned() } else { format!("{ip}/32") };
            Cidr::parse(&cidr).ok_or_else(|| format!("{ip:?} is not an IP address or CIDR range"))?;
            condition.push_str(&format!(r#","IpAddress":{{"AWS:SourceIp":"{cidr}"}}"#));
        }
        if let Some(start) = req.not_before {
            condition.push_str(&format!(r#","DateGreaterThan":{{"AWS:EpochTime":{start}}}"#));
        }
        format!(r#"{{"Statement":[{{"Resource":{resource},"Condition":{{{condition}}}}}]}}"#)
    } else {
        canned_policy(req.url, req.expires)
    };
    let signature = encode_b64(&key.sign(policy.as_bytes())?);
    let mut fields = Vec::with_capacity(4);
    if custom {
        fields.push(("Policy", encode_b64(policy.as_bytes())));
    } else {
        fields.push(("Expires", req.expires.to_string()));
    }
    fields.push(("Signature", signature));
    fields.push(("Key-Pair-Id", req.key_pair_id.to_owned()));
    fields.push(("Hash-Algorithm", "SHA256".to_owned()));
    Ok(fields)
}

// ---- Its section of `routes[].auth` and its signer ----

/// `auth.cloudfront`: links and cookies minted for CloudFront.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontFile {
    /// `public_key_file` keys (RSA or ECDSA P-256); each key's `kid` is its
    /// CloudFront ID, the `Key-Pair-Id` links carry.
    pub keys: Vec<String>,
    /// The scheme and host links are signed for, e.g.
    /// `https://d111111abcdef8.cloudfront.net` (the request's own Host is
    /// never used).
    pub origins: Vec<String>,
    /// Where credentials are read: `query`, `cookie` (default both).
    pub from: Option<Vec<CarrierFile>>,
}

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "cloudfront"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<CloudFrontFile>()
    }

    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: serde_yaml_ng::Value) -> Compiled {
        let Some(raw) = parse_section::<CloudFrontFile>(cx, path, section) else { return Vec::new() };
        if raw.keys.is_empty() {
            cx.error(&format!("{path}.keys"), "list at least one public_key_file key".to_owned());
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            match cx.key(&kpath, name) {
                Some(CompiledKey::Public(jwt, pem)) => {
                    let rsa = pem.family == jsonwebtoken::AlgorithmFamily::Rsa;
                    if !rsa && pem.default_alg != jsonwebtoken::Algorithm::ES256 {
                        cx.error(&kpath, "CloudFront keys are RSA or ECDSA P-256".to_owned());
                        continue;
                    }
                    let id = jwt.kid.clone().unwrap_or_else(|| name.clone());
                    match CloudFrontKey::new(id, &pem.der, rsa) {
                        Ok(key) => keys.push(Arc::new(key)),
                        Err(why) => cx.error(&kpath, why),
                    }
                }
                Some(_) => cx.error(&kpath, format!("key {name:?} is not a public_key_file key")),
                None => {}
            }
        }
        let origins = cdn::origins(cx, path, &raw.origins);
        let (from_query, from_cookie) = cdn::query_or_cookie(cx, path, raw.from);
        match origins {
            Some(origins) => vec![Box::new(CloudFront { keys, origins, from_query, from_cookie })],
            None => Vec::new(),
        }
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "cloudfront"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            SignOption {
                name: "private-key",
                value: Some("PEM"),
                help: "cloudfront: the private key PEM (RSA or ECDSA P-256)",
                default: None,
            },
            SignOption {
                name: "policy-resource",
                value: Some("PATTERN"),
                help: "cloudfront: a Resource pattern (with * and ?) instead of the URL",
                default: None,
            },
            OPTION_IP,
            OPTION_NOT_BEFORE,
            OPTION_COOKIES,
        ];
        OPTIONS
    }

    /// Signs with `--private-key` and `--kid` (the Key-Pair-Id), SHA-256.
    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let path = input.option("private-key").ok_or("cloudfront needs --private-key")?;
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let not_before = match input.option("not-before") {
            Some(s) => Some(s.parse::<u64>().map_err(|_| format!("--not-before {s:?} is not unix seconds"))?),
            None => None,
        };
        let request = SignRequest {
            url: input.target,
            key_pair_id: input.kid.ok_or("cloudfront needs --kid (the Key-Pair-Id)")?,
            expires: input.exp,
            resource: input.option("policy-resource"),
            ip: input.option("ip"),
            not_before,
        };
        sign_cloudfront(&CloudFrontSign { private_key_pem: &pem, request, cookies: input.flag("cookies") })
    }
}

/// What `tollgate sign --format cloudfront` needs.
pub struct CloudFrontSign<'a> {
    pub private_key_pem: &'a [u8],
    pub request: SignRequest<'a>,
    /// Print a `Cookie` header value instead of a URL.
    pub cookies: bool,
}

/// A CloudFront signed URL, or the signed cookies as one `Cookie` value.
pub fn sign_cloudfront(req: &CloudFrontSign<'_>) -> Result<String, String> {
    absolute(req.request.url)?;
    let key = PrivateKey::from_pem(req.private_key_pem)?;
    let fields = sign(&key, &req.request)?;
    if !req.cookies {
        return Ok(append_query(req.request.url, &fields));
    }
    let cookie = |name: &str| {
        let i = URL_PARAMS.iter().position(|p| *p == name).unwrap_or(0);
        COOKIES[i]
    };
    Ok(fields.iter().map(|(n, v)| format!("{}={v}", cookie(n))).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode_b64(&bytes);
        assert!(!text.contains(['+', '=', '/']));
        assert_eq!(decode_b64(&text), Some(bytes));
        assert_eq!(decode_b64("ab+c"), None, "+ is not CloudFront's alphabet");
    }

    #[test]
    fn canned_policy_text() {
        // The canned policy as AWS documents it, with the example URL.
        assert_eq!(
            canned_policy("https://d111111abcdef8.cloudfront.net/horizon.jpg?size=large&license=yes", 1357034400),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/horizon.jpg?size=large&license=yes","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
    }

    #[test]
    fn policies_parse_strictly() {
        let p = Policy::parse(
            br#"{"Statement":[{"Resource":"https://a/*","Condition":{"DateLessThan":{"AWS:EpochTime":20},"IpAddress":{"AWS:SourceIp":"192.0.2.0/24"},"DateGreaterThan":{"AWS:EpochTime":10}}}]}"#,
        );
        assert_eq!(
            p,
            Ok(Policy {
                resource: Some("https://a/*".into()),
                date_less_than: 20,
                date_greater_than: Some(10),
                source_ip: Cidr::parse("192.0.2.0/24"),
            })
        );
        let whitespace = b"{ \"Statement\": [ { \"Condition\": { \"DateLessThan\": { \"AWS:EpochTime\": 5 } } } ] }";
        assert_eq!(Policy::parse(whitespace).map(|p| p.date_less_than), Ok(5));
        for bad in [
            &br#"{"Statement":[{"Condition":{}}]}"#[..],
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"5"}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"StringEquals":{"x":"y"}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5}}},{"Condition":{}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"IpAddress":{"AWS:SourceIp":"x"}}}]}"#,
            br#"{"Statement":[{"Effect":"Allow","Condition":{"DateLessThan":{"AWS:EpochTime":5}}}]}"#,
        ] {
            assert_eq!(Policy::parse(bad), Err(AuthError::ClaimMismatch), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Policy::parse(b"not json"), Err(AuthError::Malformed));
    }
}
