//! The reference for tollgate's own JWT verifier: `jsonwebtoken::decode`
//! with the same key, algorithm list, leeway, `validate_nbf = true`, a
//! required `exp` and no `aud`/`iss` checks. Shared by the proptest
//! (`tests/jwt_differential.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/jwt_differential.rs`), so both judge a token the same
//! way.
//!
//! Every token falls in one of three classes:
//! - compared: tollgate's accept/refuse verdict must equal the library's;
//! - a *stricter* deliberate difference ([`STRICTER`]): tollgate must refuse,
//!   whatever the library says;
//! - a *lenient* deliberate difference ([`LENIENT`]): the library refuses for
//!   a reason that is its own parser's artefact and tollgate has no rule
//!   about; not compared.
//!
//! Each class is named, and the same names are listed in SECURITY.md.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Validation};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use tollgate::auth::keys::{JwtKey, JwtKeySource};
use tollgate::auth::kinds::jwt::{Carriers, ClaimRules, JwtPolicy, MAX_TOKEN_LEN};

/// The `kid` of the route's key. A token naming another `kid` selects no
/// key: the reference is then "refused" (jsonwebtoken has no key selection;
/// it is given the one key the `kid` would select).
pub const KID: &str = "k1";

/// Differences where tollgate refuses and jsonwebtoken may accept.
pub const STRICTER: &[(&str, &str)] = &[
    ("oversized_token", "a token over 16 KiB is refused before parsing"),
    ("crit_header", "a `crit` header member (not null) is refused: RFC 7515 §4.1.11, no extension is understood"),
    (
        "iat_not_numeric_date",
        "an `iat` that is not a JSON integer in 0..=u64::MAX is refused; jsonwebtoken ignores `iat`",
    ),
    (
        "fractional_time_claim",
        "an `exp`/`nbf` written as a JSON float (`1.5e9`, `2e9`, `2000000000.0`) is refused; jsonwebtoken rounds it",
    ),
];

/// Differences where jsonwebtoken refuses for a reason of its own parser.
pub const LENIENT: &[(&str, &str)] = &[
    (
        "unread_header_member",
        "a JOSE header member tollgate never reads (anything but alg, kid, crit) has a type or string content \
         jsonwebtoken's typed `Header` rejects (`\"typ\": 5`, a malformed `jwk`, a lone surrogate, duplicates)",
    ),
    (
        "sub_array_or_object",
        "`sub` is an array or object: jsonwebtoken's claim pre-parser stops inside the value and fails; tollgate \
         has no rule about `sub`",
    ),
    (
        "duplicate_registered_claim",
        "`exp`, `nbf`, `sub`, `iss` or `aud` appears twice: jsonwebtoken refuses; tollgate reads the last one, as \
         RFC 7519 §4 allows",
    ),
];

/// How a token is classified before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Compared,
    Stricter(&'static str),
    Lenient(&'static str),
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both verdicts equal (`true`: accepted).
    Agreed(bool),
    /// A stricter named difference; tollgate refused, as it must.
    Stricter(&'static str),
    /// A lenient named difference; not compared.
    Lenient(&'static str),
}

/// One key family: the route's key, the reference's key, and keys an
/// attacker may sign with.
pub struct FamilyKeys {
    pub name: &'static str,
    pub family: AlgorithmFamily,
    signing: EncodingKey,
    wrong: EncodingKey,
    decoding: DecodingKey,
    /// What tollgate's key is made of: the secret, or the SPKI DER.
    material: Vec<u8>,
    /// The public key as PEM text: what an algorithm-confusion attacker
    /// uses as an HMAC secret (the secret itself for HMAC).
    public_text: Vec<u8>,
    /// Algorithm lists a route may pin the key to.
    pub alg_lists: Vec<Vec<Algorithm>>,
    /// Every algorithm the signing key can sign with.
    pub sign_algs: Vec<Algorithm>,
}

/// Keys of the four families, generated at test time.
pub struct Fixture {
    pub families: Vec<FamilyKeys>,
}

/// Who signs a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The route's key.
    Correct,
    /// Another key of the same family.
    Wrong,
    /// HMAC with the public key text (or the secret) as the HMAC secret.
    PublicAsSecret,
    /// A signature segment chosen by the test.
    Raw(String),
}

fn pair(alg: &'static rcgen::SignatureAlgorithm) -> (EncodingKey, DecodingKey, Vec<u8>, Vec<u8>) {
    let pair = rcgen::KeyPair::generate_for(alg).expect("generate key pair");
    let private = pair.serialize_pem();
    let public = pair.public_key_pem();
    let (enc, dec) = if alg == &rcgen::PKCS_RSA_SHA256 {
        (EncodingKey::from_rsa_pem(private.as_bytes()), DecodingKey::from_rsa_pem(public.as_bytes()))
    } else if alg == &rcgen::PKCS_ED25519 {
        (EncodingKey::from_ed_pem(private.as_bytes()), DecodingKey::from_ed_pem(public.as_bytes()))
    } else {
        (EncodingKey::from_ec_pem(private.as_bytes()), DecodingKey::from_ec_pem(public.as_bytes()))
    };
    let der = tollgate::auth::keyfile::parse_public_pem(public.as_bytes()).expect("tollgate reads the PEM").der;
    (enc.expect("encoding key"), dec.expect("decoding key"), der, public.into_bytes())
}

fn random_secret() -> Vec<u8> {
    let mut s = vec![0u8; 48];
    aws_lc_rs::rand::fill(&mut s).expect("random");
    s
}

impl Fixture {
    /// Generates fresh keys (test-only, never stored).
    pub fn generate() -> Fixture {
        use Algorithm::*;
        let secret = random_secret();
        let hmac = FamilyKeys {
            name: "HMAC",
            family: AlgorithmFamily::Hmac,
            signing: EncodingKey::from_secret(&secret),
            wrong: EncodingKey::from_secret(&random_secret()),
            decoding: DecodingKey::from_secret(&secret),
            material: secret.clone(),
            public_text: secret,
            alg_lists: vec![vec![HS256], vec![HS256, HS384, HS512], vec![HS512]],
            sign_algs: vec![HS256, HS384, HS512],
        };
        let mut families = vec![hmac];
        for (name, family, alg, lists, sign_algs) in [
            (
                "RSA",
                AlgorithmFamily::Rsa,
                &rcgen::PKCS_RSA_SHA256,
                vec![vec![RS256], vec![RS256, RS384, RS512, PS256, PS384, PS512], vec![PS256]],
                vec![RS256, RS384, RS512, PS256, PS384, PS512],
            ),
            ("EC", AlgorithmFamily::Ec, &rcgen::PKCS_ECDSA_P256_SHA256, vec![vec![ES256]], vec![ES256]),
            ("Ed25519", AlgorithmFamily::Ed, &rcgen::PKCS_ED25519, vec![vec![EdDSA]], vec![EdDSA]),
        ] {
            let (signing, decoding, material, public_text) = pair(alg);
            let (wrong, ..) = pair(alg);
            families.push(FamilyKeys {
                name,
                family,
                signing,
                wrong,
                decoding,
                material,
                public_text,
                alg_lists: lists,
                sign_algs,
            });
        }
        Fixture { families }
    }

    /// Builds `header.payload.signature` over the given JSON bytes.
    pub fn token(&self, family: usize, header: &[u8], payload: &[u8], alg: Algorithm, signer: &Signer) -> String {
        let keys = &self.families[family];
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = match signer {
            Signer::Correct => jsonwebtoken::crypto::sign(input.as_bytes(), &keys.signing, alg),
            Signer::Wrong => jsonwebtoken::crypto::sign(input.as_bytes(), &keys.wrong, alg),
            Signer::PublicAsSecret => {
                let hs = if alg.family() == AlgorithmFamily::Hmac { alg } else { Algorithm::HS256 };
                jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(&keys.public_text), hs)
            }
            Signer::Raw(s) => Ok(s.clone()),
        };
        format!("{input}.{}", signature.unwrap_or_default())
    }

    /// tollgate's route policy for this key, algorithm list and leeway.
    pub fn policy(&self, family: usize, algs: &[Algorithm], leeway: u64) -> JwtPolicy {
        let keys = &self.families[family];
        let key = match keys.family {
            AlgorithmFamily::Hmac => JwtKey::hmac(Some(KID.into()), &keys.material, algs.to_vec()),
            _ => JwtKey::public(Some(KID.into()), &keys.material, algs.to_vec()),
        }
        .expect("tollgate key");
        JwtPolicy::new(
            vec![JwtKeySource::Static(Arc::new(key))],
            Carriers { header: true, ..Carriers::default() },
            "token".into(),
            "token".into(),
            ClaimRules { leeway, ..ClaimRules::default() },
            Vec::new(),
        )
    }

    /// jsonwebtoken's verdict, with the route's key selection applied.
    fn reference(&self, family: usize, algs: &[Algorithm], leeway: u64, token: &str) -> bool {
        let keys = &self.families[family];
        let mut validation = Validation::new(algs[0]);
        validation.algorithms = algs.to_vec();
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(token, &keys.decoding, &validation);
        decoded.is_ok_and(|data| data.header.kid.as_deref().is_none_or(|kid| kid == KID))
    }

    /// Compares tollgate's verdict on `token` with the reference's.
    pub fn check(&self, family: usize, algs: &[Algorithm], leeway: u64, token: &str) -> Result<Outcome, String> {
        let policy = self.policy(family, algs, leeway);
        let class = classify(token);
        for _ in 0..10 {
            // Both sides must judge at the same second: jsonwebtoken reads
            // the clock itself, so retry when the second turned meanwhile.
            let before = jsonwebtoken::get_current_timestamp();
            let reference = self.reference(family, algs, leeway, token);
            if jsonwebtoken::get_current_timestamp() != before {
                continue;
            }
            let ours = policy.verify(token, "/x", before);
            return match class {
                Class::Stricter(name) => match ours {
                    Err(_) => Ok(Outcome::Stricter(name)),
                    Ok(_) => Err(format!("[{name}] tollgate accepted; it must refuse: {}", Shown(token))),
                },
                Class::Lenient(name) => Ok(Outcome::Lenient(name)),
                Class::Compared if ours.is_ok() == reference => Ok(Outcome::Agreed(reference)),
                Class::Compared => Err(format!(
                    "tollgate {} ({:?}), jsonwebtoken {} [{} {:?} leeway {leeway}]: {}",
                    if ours.is_ok() { "accepted" } else { "refused" },
                    ours.err(),
                    if reference { "accepted" } else { "refused" },
                    self.families[family].name,
                    algs,
                    Shown(token)
                )),
            };
        }
        Err("the clock kept turning".to_owned())
    }
}

/// A token with its decoded segments, for failure messages.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for segment in self.0.split('.').take(2) {
            if let Ok(bytes) = B64.decode(segment) {
                write!(f, "\n  {}", String::from_utf8_lossy(&bytes).escape_debug())?;
            }
        }
        Ok(())
    }
}

/// Which class a token falls in, judged from the token alone.
pub fn classify(token: &str) -> Class {
    if token.len() > MAX_TOKEN_LEN {
        return Class::Stricter("oversized_token");
    }
    let mut parts = token.split('.');
    let header = parts.next().and_then(|s| B64.decode(s).ok()).unwrap_or_default();
    let payload = parts.next().and_then(|s| B64.decode(s).ok()).unwrap_or_default();

    let header_object = serde_json::from_slice::<BTreeMap<String, IgnoredAny>>(&header).is_ok();
    let read: Option<ReadMembers> = if header_object { serde_json::from_slice(&header).ok() } else { None };
    if read.as_ref().is_some_and(|r| r.crit.as_ref().is_some_and(|c| !c.is_null())) {
        return Class::Stricter("crit_header");
    }
    let claims: Option<Map<String, Value>> = serde_json::from_slice(&payload).ok();
    if let Some(claims) = &claims {
        if claims.get("iat").is_some_and(|v| v.as_u64().is_none()) {
            return Class::Stricter("iat_not_numeric_date");
        }
        if ["exp", "nbf"].iter().any(|c| claims.get(*c).is_some_and(Value::is_f64)) {
            return Class::Stricter("fractional_time_claim");
        }
    }

    if let Some(read) = read
        && serde_json::from_slice::<jsonwebtoken::Header>(&header).is_err()
        && serde_json::from_value::<jsonwebtoken::Header>(read.minimal()).is_ok()
    {
        return Class::Lenient("unread_header_member");
    }
    if let Some(claims) = &claims {
        if claims.get("sub").is_some_and(|v| v.is_array() || v.is_object()) {
            return Class::Lenient("sub_array_or_object");
        }
        if serde_json::from_slice::<TopLevel>(&payload).is_ok_and(|t| t.duplicate_registered) {
            return Class::Lenient("duplicate_registered_claim");
        }
    }
    Class::Compared
}

/// The header members tollgate reads; every other member is skipped
/// unvalidated, as tollgate's own header struct skips it.
#[derive(serde::Deserialize)]
struct ReadMembers {
    alg: Value,
    #[serde(default)]
    kid: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
}

impl ReadMembers {
    /// A header of only the members tollgate reads.
    fn minimal(&self) -> Value {
        let mut m = Map::new();
        m.insert("alg".into(), self.alg.clone());
        if let Some(kid) = &self.kid {
            m.insert("kid".into(), kid.clone());
        }
        if let Some(crit) = &self.crit {
            m.insert("crit".into(), crit.clone());
        }
        Value::Object(m)
    }
}

/// Whether a claims object names a registered claim twice (a `Map` keeps
/// only the last, so it cannot tell).
struct TopLevel {
    duplicate_registered: bool,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut seen = HashSet::new();
                let mut duplicate_registered = false;
                while let Some(key) = map.next_key::<String>()? {
                    let registered = ["exp", "nbf", "sub", "iss", "aud"].contains(&key.as_str());
                    duplicate_registered |= registered && !seen.insert(key);
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(TopLevel { duplicate_registered })
            }
        }
        d.deserialize_map(V)
    }
}
