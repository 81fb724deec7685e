//! tollgate's own JWT verifier held to the library's verdicts, and to
//! Project Wycheproof's signature vectors.
//!
//! tollgate verifies tokens with its own parser and aws-lc keys parsed once
//! (src/auth/jwt.rs) instead of `jsonwebtoken::decode`. Here both judge the
//! same generated and mutated tokens (HS*, RS*/PS*, ES256, EdDSA; valid,
//! re-signed with a wrong key or with the public key as an HMAC secret, with
//! claims of every JSON type) and must agree, except for the deliberate
//! differences named in `jwt_oracle` (and SECURITY.md). The same oracle
//! drives the cargo-fuzz target `jwt_differential`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod jwt_oracle;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonwebtoken::Algorithm;
use jwt_oracle::{Class, Fixture, Outcome, Signer, classify};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError};
use tollgate::auth::keys::JwtKey;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::generate)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Bounded for CI; `PROPTEST_CASES` / `PROPTEST_RNG_SEED` widen or vary a
/// local run.
fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x7011_6a7e);
    Config { cases, failure_persistence: None, rng_seed: RngSeed::Fixed(seed), ..Config::default() }
}

/// A NumericDate-ish claim value: relative to now, or a literal of any type.
#[derive(Debug, Clone)]
enum Time {
    /// `now + offset` written as a plain integer.
    Rel(i64),
    /// `now + offset` written in another form (`{n}.0`, `"{n}"`, …).
    RelForm(i64, &'static str),
    /// JSON text as is.
    Lit(&'static str),
}

const FORMS: &[&str] =
    &["{n}.0", "{n}.5", "{n}.9999", "{n}e0", "{n}E0", "\"{n}\"", "[{n}]", "{\"t\":{n}}", "-{n}", " {n} "];
const LITERALS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "-0.0",
    "0.0",
    "18446744073709551615",
    "18446744073709551616",
    "100000000000000000000",
    "1e300",
    "1.5e9",
    "2e9",
    "4e9",
    "1E10",
    "4000000000",
    "null",
    "true",
    "false",
    "\"\"",
    "\"4000000000\"",
    "[]",
    "{}",
];

impl Time {
    fn text(&self, now: u64) -> String {
        match self {
            Time::Rel(off) => (now as i64 + off).to_string(),
            Time::RelForm(off, form) => form.replace("{n}", &(now as i64 + off).to_string()),
            Time::Lit(t) => (*t).to_owned(),
        }
    }
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Around the leeway boundaries of the leeways used (0, 1, 60, 300).
        prop::sample::select(vec![-302, -301, -300, -299, -62, -61, -60, -59, -2, -1, 0, 1, 2, 59, 60, 61, 300, 301]),
        -100_000i64..100_000,
    ]
}

/// A time claim whose plain form is mostly `valid` (an offset range that
/// passes), sometimes at a boundary, sometimes of another type.
fn time(valid: std::ops::Range<i64>) -> impl Strategy<Value = Time> {
    prop_oneof![
        10 => valid.prop_map(Time::Rel),
        4 => offset().prop_map(Time::Rel),
        2 => (offset(), prop::sample::select(FORMS)).prop_map(|(o, f)| Time::RelForm(o, f)),
        2 => prop::sample::select(LITERALS).prop_map(Time::Lit),
    ]
}

/// Any JSON value, as text, including escapes and odd numbers.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec!["1.5", "-0", "1e400", "-1e-400", "0.1e1"]).prop_map(str::to_owned),
        prop::sample::select(vec![
            r#""alice""#,
            r#""""#,
            r#""caf\u00e9""#,
            r#""\ud83d\ude00""#,
            r#""\ud800""#,
            r#""a\"b""#,
            r#""\/media\/*""#,
            "\"\u{e9}\"",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..3).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// The claims set (or whatever the payload segment holds).
#[derive(Debug, Clone)]
struct Payload {
    exp: Option<Time>,
    nbf: Option<Time>,
    iat: Option<Time>,
    others: Vec<(&'static str, String)>,
    /// A registered claim written twice.
    duplicate: Option<(&'static str, Time)>,
    /// 0: object; 1: not an object; 2: trailing bytes; 3: oversized.
    shape: u8,
    odd: &'static str,
}

impl Payload {
    fn bytes(&self, now: u64) -> Vec<u8> {
        if self.shape == 1 {
            return self.odd.as_bytes().to_vec();
        }
        let mut members = Vec::new();
        for (name, t) in [("exp", &self.exp), ("nbf", &self.nbf), ("iat", &self.iat)] {
            if let Some(t) = t {
                members.push(format!("\"{name}\":{}", t.text(now)));
            }
        }
        for (name, v) in &self.others {
            members.push(format!("\"{name}\":{v}"));
        }
        if let Some((name, t)) = &self.duplicate {
            members.push(format!("\"{name}\":{}", t.text(now)));
        }
        if self.shape == 3 {
            members.push(format!("\"pad\":\"{}\"", "p".repeat(13_000)));
        }
        let mut text = format!("{{{}}}", members.join(","));
        if self.shape == 2 {
            text.push_str(self.odd);
        }
        text.into_bytes()
    }
}

fn payload() -> impl Strategy<Value = Payload> {
    let other = (prop::sample::select(vec!["sub", "aud", "iss", "jti", "path", "x"]), json_value());
    (
        prop::option::weighted(0.95, time(1..100_000)),
        prop::option::weighted(0.35, time(-100_000..0)),
        prop::option::weighted(0.35, time(-100_000..0)),
        prop::collection::vec(other, 0..3),
        prop::option::weighted(0.04, (prop::sample::select(vec!["exp", "nbf", "sub", "jti"]), time(-10..10))),
        prop_oneof![90 => Just(0u8), 4 => Just(1), 4 => Just(2), 2 => Just(3)],
        prop::sample::select(vec!["[]", "[1]", "7", "\"x\"", "null", "", "{", "}", " x", "\u{0}"]),
    )
        .prop_map(|(exp, nbf, iat, others, duplicate, shape, odd)| Payload {
            exp,
            nbf,
            iat,
            others,
            duplicate,
            shape,
            odd,
        })
}

/// The JOSE header.
#[derive(Debug, Clone)]
struct Header {
    /// `None`: the signing algorithm's name.
    alg: Option<&'static str>,
    kid: Option<&'static str>,
    typ: Option<&'static str>,
    crit: Option<&'static str>,
    extra: Option<&'static str>,
    duplicate: bool,
    /// 0: object; 1: array `[alg, kid, crit]`; 2: trailing bytes.
    shape: u8,
}

impl Header {
    fn bytes(&self, sign_alg: Algorithm) -> Vec<u8> {
        let alg = self.alg.map_or_else(|| format!("\"{sign_alg:?}\""), str::to_owned);
        if self.shape == 1 {
            return format!("[{alg},{},{}]", self.kid.unwrap_or("null"), self.crit.unwrap_or("null")).into_bytes();
        }
        let mut members = vec![format!("\"alg\":{alg}")];
        for (name, v) in [("kid", self.kid), ("typ", self.typ), ("crit", self.crit)] {
            if let Some(v) = v {
                members.push(format!("\"{name}\":{v}"));
            }
        }
        if let Some(extra) = self.extra {
            members.push(extra.to_owned());
        }
        if self.duplicate {
            let again = members.last().cloned().unwrap_or_default();
            members.push(again);
        }
        let mut bytes = format!("{{{}}}", members.join(",")).into_bytes();
        if self.shape == 2 {
            bytes.extend_from_slice(b" x");
        }
        bytes
    }
}

fn header() -> impl Strategy<Value = Header> {
    let alg = prop::option::weighted(
        0.08,
        prop::sample::select(vec![
            "\"HS256\"",
            "\"HS384\"",
            "\"HS512\"",
            "\"RS256\"",
            "\"RS512\"",
            "\"PS256\"",
            "\"ES256\"",
            "\"ES384\"",
            "\"EdDSA\"",
            "\"none\"",
            "\"None\"",
            "\"hs256\"",
            "\"HS256 \"",
            "\"ED25519\"",
            "null",
            "5",
            "[\"HS256\"]",
        ]),
    );
    let kid = prop::option::weighted(
        0.5,
        prop::sample::select(vec![
            "\"k1\"",
            "\"k1\"",
            "\"k1\"",
            "\"k1\"",
            "\"k1\"",
            "null",
            "\"other\"",
            "\"\"",
            "5",
            "[\"k1\"]",
            "\"K1\"",
        ]),
    );
    let typ = prop::option::weighted(
        0.4,
        prop::sample::select(vec!["\"JWT\"", "\"JWT\"", "\"JWT\"", "\"at+jwt\"", "5", "null", "{}"]),
    );
    let crit =
        prop::option::weighted(0.04, prop::sample::select(vec!["[\"exp\"]", "[]", "null", "5", "[\"b64\"]", "\"x\""]));
    let extra = prop::option::weighted(
        0.15,
        prop::sample::select(vec![
            "\"b64\":false",
            "\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}",
            "\"jwk\":5",
            "\"jku\":\"http://127.0.0.1:9/keys\"",
            "\"x5c\":[\"AAAA\"]",
            "\"x5c\":\"AAAA\"",
            "\"x5t#S256\":7",
            "\"zip\":\"DEF\"",
            "\"enc\":5",
            "\"cty\":null",
            "\"foo\":\"\\ud800\"",
            "\"foo\":\"\u{e9}\"",
            "\"foo\":{\"a\":[1,2,{}]}",
            "\"nonce\":[]",
        ]),
    );
    (alg, kid, typ, crit, extra, prop::bool::weighted(0.05), prop_oneof![94 => Just(0u8), 3 => Just(1), 3 => Just(2)])
        .prop_map(|(alg, kid, typ, crit, extra, duplicate, shape)| Header {
            alg,
            kid,
            typ,
            crit,
            extra,
            duplicate,
            shape,
        })
}

/// A change to the finished token text.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Replace(prop::sample::Index, char),
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, char),
    Truncate(prop::sample::Index),
    Append(&'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let c = prop::sample::select(vec!['A', 'Q', 'g', 'w', '_', '-', '0', '.', '=', '+', '/', ' ', '~']);
    prop_oneof![
        16 => Just(Mutation::None),
        2 => (any::<prop::sample::Index>(), c.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Delete),
        1 => (any::<prop::sample::Index>(), c).prop_map(|(i, c)| Mutation::Insert(i, c)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => prop::sample::select(vec![".", ".x", "=", "==", "A", ".e30"]).prop_map(Mutation::Append),
    ]
}

impl Mutation {
    fn apply(&self, token: String) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        match self {
            Mutation::None => return token,
            Mutation::Replace(i, c) if !chars.is_empty() => {
                let i = i.index(chars.len());
                chars[i] = *c;
            }
            Mutation::Delete(i) if !chars.is_empty() => {
                chars.remove(i.index(chars.len()));
            }
            Mutation::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
            Mutation::Truncate(i) => chars.truncate(i.index(chars.len() + 1)),
            Mutation::Append(s) => chars.extend(s.chars()),
            _ => {}
        }
        chars.into_iter().collect()
    }
}

/// One generated case: which key and route, then the token.
#[derive(Debug, Clone)]
struct Case {
    family: usize,
    algs: prop::sample::Index,
    /// `None`: one of the route's algorithms; else any the key can sign.
    sign_alg: Option<prop::sample::Index>,
    leeway: u64,
    header: Header,
    payload: Payload,
    signer: Signer,
    mutation: Mutation,
    /// Most tokens are odd in several ways at once and refused for the
    /// first; a clean case keeps only the claims' values random, so that
    /// plenty of tokens are accepted and the time checks are reached.
    clean: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let signer = prop_oneof![
        14 => Just(Signer::Correct),
        2 => Just(Signer::Wrong),
        1 => Just(Signer::PublicAsSecret),
        1 => prop::sample::select(vec!["", "AAAA", "e30", "_-_-"]).prop_map(|s| Signer::Raw(s.to_owned())),
    ];
    (
        0usize..4,
        any::<prop::sample::Index>(),
        prop::option::weighted(0.15, any::<prop::sample::Index>()),
        prop::sample::select(vec![0u64, 1, 60, 300]),
        header(),
        payload(),
        signer,
        mutation(),
        prop::bool::weighted(0.4),
    )
        .prop_map(|(family, algs, sign_alg, leeway, header, payload, signer, mutation, clean)| Case {
            family,
            algs,
            sign_alg,
            leeway,
            header,
            payload,
            signer,
            mutation,
            clean,
        })
}

impl Case {
    fn run(&self, fx: &Fixture) -> Result<Outcome, String> {
        if self.clean {
            let kid = self.header.kid.filter(|k| *k == "\"k1\"");
            let header = Header { alg: None, kid, typ: None, crit: None, extra: None, duplicate: false, shape: 0 };
            let payload = Payload { duplicate: None, shape: 0, ..self.payload.clone() };
            let case = Case {
                header,
                payload,
                signer: Signer::Correct,
                mutation: Mutation::None,
                sign_alg: None,
                clean: false,
                ..self.clone()
            };
            return case.run(fx);
        }
        let keys = &fx.families[self.family];
        let algs = &keys.alg_lists[self.algs.index(keys.alg_lists.len())];
        let sign_alg = match &self.sign_alg {
            None => algs[self.algs.index(algs.len())],
            Some(i) => keys.sign_algs[i.index(keys.sign_algs.len())],
        };
        let token =
            fx.token(self.family, &self.header.bytes(sign_alg), &self.payload.bytes(now()), sign_alg, &self.signer);
        fx.check(self.family, algs, self.leeway, &self.mutation.apply(token))
    }
}

/// The differential: 2,400 generated tokens, each judged by both.
#[test]
fn verdicts_match_jsonwebtoken() {
    let fx = fixture();
    let tally: std::cell::RefCell<BTreeMap<String, u32>> = Default::default();
    let mut runner = proptest::test_runner::TestRunner::new(config(2400));
    let result = runner.run(&case(), |case| {
        let outcome = case.run(fx).map_err(TestCaseError::fail)?;
        let label = match outcome {
            Outcome::Agreed(true) => "agreed: accepted".to_owned(),
            Outcome::Agreed(false) => "agreed: refused".to_owned(),
            Outcome::Stricter(name) => format!("stricter: {name}"),
            Outcome::Lenient(name) => format!("lenient: {name}"),
        };
        *tally.borrow_mut().entry(label).or_default() += 1;
        Ok(())
    });
    let tally = tally.into_inner();
    eprintln!("jwt differential outcomes: {tally:#?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must reach both verdicts in volume, or the comparison
    // says little.
    let count = |k: &str| tally.get(k).copied().unwrap_or(0);
    assert!(count("agreed: accepted") >= 300, "too few accepted tokens: {tally:?}");
    assert!(count("agreed: refused") >= 300, "too few refused tokens: {tally:?}");
}

/// Hand-picked tokens: every claim type for exp/nbf/iat against both, and
/// each named difference classified as named.
#[test]
fn every_claim_type_and_each_named_difference() {
    let fx = fixture();
    let n = now();
    let hs = |header: &str, payload: &str| {
        fx.token(0, header.as_bytes(), payload.as_bytes(), Algorithm::HS256, &Signer::Correct)
    };
    let h = r#"{"alg":"HS256","typ":"JWT"}"#;
    let later = n + 600;

    // Values both must judge alike (compared), with the verdict both give.
    let compared: &[(String, bool)] = &[
        (format!(r#"{{"exp":{later}}}"#), true),
        (format!(r#"{{"exp":{}}}"#, n - 10), false),
        (format!(r#"{{"exp":{}}}"#, u64::MAX), true),
        (r#"{"exp":18446744073709551616}"#.to_owned(), false),
        (r#"{"exp":1e300}"#.to_owned(), false),
        (r#"{"exp":-1}"#.to_owned(), false),
        (format!(r#"{{"exp":"{later}"}}"#), false),
        (r#"{"exp":null}"#.to_owned(), false),
        (r#"{"exp":true}"#.to_owned(), false),
        (format!(r#"{{"exp":[{later}]}}"#), false),
        (r#"{"exp":{}}"#.to_owned(), false),
        (r#"{"sub":"a"}"#.to_owned(), false),
        (format!(r#"{{"exp":{later},"nbf":{n}}}"#), true),
        (format!(r#"{{"exp":{later},"nbf":{}}}"#, n + 300), false),
        (format!(r#"{{"exp":{later},"nbf":-1}}"#), false),
        (format!(r#"{{"exp":{later},"nbf":null}}"#), false),
        (format!(r#"{{"exp":{later},"nbf":"{n}"}}"#), false),
        (format!(r#"{{"exp":{later},"nbf":false}}"#), false),
        (format!(r#"{{"exp":{later},"nbf":[]}}"#), false),
        (format!(r#"{{"exp":{later},"iat":{n}}}"#), true),
        (format!(r#"{{"exp":{later},"aud":"someone","iss":7,"x":[null,{{}}]}}"#), true),
        ("[]".to_owned(), false),
        ("7".to_owned(), false),
    ];
    for (payload, verdict) in compared {
        let token = hs(h, payload);
        let class = classify(&token);
        if class != Class::Compared {
            assert!(matches!(class, Class::Stricter(_)), "{payload}: {class:?}");
            assert!(!verdict, "{payload}");
        }
        let outcome = fx.check(0, &[Algorithm::HS256], 0, &token).unwrap_or_else(|e| panic!("{e}"));
        let accepted = matches!(outcome, Outcome::Agreed(true));
        assert_eq!(accepted, *verdict, "{payload}: {outcome:?}");
    }

    // Each named difference, by a token that shows it.
    let named: &[(&str, String, String)] = &[
        ("crit_header", r#"{"alg":"HS256","crit":["exp"]}"#.to_owned(), format!(r#"{{"exp":{later}}}"#)),
        ("iat_not_numeric_date", h.to_owned(), format!(r#"{{"exp":{later},"iat":"yesterday"}}"#)),
        ("iat_not_numeric_date", h.to_owned(), format!(r#"{{"exp":{later},"iat":1.5}}"#)),
        ("fractional_time_claim", h.to_owned(), format!(r#"{{"exp":{later}.0}}"#)),
        ("fractional_time_claim", h.to_owned(), r#"{"exp":4e9}"#.to_owned()),
        ("fractional_time_claim", h.to_owned(), format!(r#"{{"exp":{later},"nbf":1.5e9}}"#)),
        ("fractional_time_claim", h.to_owned(), format!(r#"{{"exp":{later},"nbf":-0}}"#)),
        ("unread_header_member", r#"{"alg":"HS256","typ":5}"#.to_owned(), format!(r#"{{"exp":{later}}}"#)),
        ("unread_header_member", r#"{"alg":"HS256","x":"\ud800"}"#.to_owned(), format!(r#"{{"exp":{later}}}"#)),
        ("unread_header_member", r#"{"alg":"HS256","jwk":5}"#.to_owned(), format!(r#"{{"exp":{later}}}"#)),
        ("sub_array_or_object", h.to_owned(), format!(r#"{{"exp":{later},"sub":["a"]}}"#)),
        ("duplicate_registered_claim", h.to_owned(), format!(r#"{{"exp":1,"exp":{later}}}"#)),
    ];
    for (name, header, payload) in named {
        let token = hs(header, payload);
        let class = classify(&token);
        assert!(
            class == Class::Stricter(name) || class == Class::Lenient(name),
            "{header} {payload}: {class:?}, expected {name}"
        );
        let outcome = fx.check(0, &[Algorithm::HS256], 0, &token).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(outcome, Outcome::Stricter(_) | Outcome::Lenient(_)), "{outcome:?}");
    }
    let long = hs(h, &format!(r#"{{"exp":{later},"pad":"{}"}}"#, "p".repeat(13_000)));
    assert_eq!(classify(&long), Class::Stricter("oversized_token"));
    assert_eq!(fx.check(0, &[Algorithm::HS256], 0, &long), Ok(Outcome::Stricter("oversized_token")));
}

/// RFC 7515 §4: the JOSE header is a JSON object. A header written as the
/// array `["HS256",null,null]` must be refused, as the library refuses it
/// (serde's derived structs also accept a sequence of the fields in order,
/// which is how such a header could pass a struct-based parser).
#[test]
fn a_header_that_is_not_an_object_is_refused() {
    let fx = fixture();
    let payload = format!(r#"{{"exp":{}}}"#, now() + 600);
    for header in [r#"["HS256",null,null]"#, r#"["HS256","k1",null]"#, r#"["HS256"]"#, r#""HS256""#, "null"] {
        let token = fx.token(0, header.as_bytes(), payload.as_bytes(), Algorithm::HS256, &Signer::Correct);
        assert_eq!(classify(&token), Class::Compared);
        assert_eq!(fx.check(0, &[Algorithm::HS256], 0, &token), Ok(Outcome::Agreed(false)), "header {header}");
    }
}

/// How many Wycheproof vectors each family ran, printed for SECURITY.md.
fn report(family: &str, counts: &BTreeMap<&str, usize>) {
    eprintln!("wycheproof {family}: {counts:?}");
}

/// Runs a family's vectors through `JwtKey::verify`, the check tollgate's
/// verifier makes with a pre-parsed key (a JWT's signing input cannot be
/// made to equal a vector's message, so the layer below the token parser is
/// driven directly). `key` builds a group's key in each form tollgate loads
/// (`None`: tollgate refuses the key, so every vector of the group must be
/// invalid). Valid vectors must verify, invalid ones must not, none may
/// panic.
fn wycheproof<G, T>(
    family: &str,
    alg: Algorithm,
    groups: &[G],
    tests: impl Fn(&G) -> &[T],
    key: impl Fn(&G) -> Vec<Option<JwtKey>>,
    vector: impl Fn(&T) -> (usize, &[u8], &[u8], wycheproof::TestResult),
) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for group in groups {
        let keys = key(group);
        for test in tests(group) {
            let (id, msg, sig, result) = vector(test);
            let mut labels = Vec::new();
            for k in &keys {
                let accepted = k.as_ref().is_some_and(|k| k.verify(alg, msg, sig));
                let label = match (result, accepted) {
                    (wycheproof::TestResult::Valid, true) => "valid, accepted",
                    (wycheproof::TestResult::Invalid, false) => "invalid, refused",
                    // Vectors Wycheproof lets an implementation accept or
                    // refuse (RSA tcId 8: a DigestInfo without its NULL
                    // parameter) are refused: the stricter reading, pinned.
                    (wycheproof::TestResult::Acceptable, false) => "acceptable, refused",
                    (expected, got) => panic!("{family} tcId {id}: expected {expected:?}, tollgate accepted={got}"),
                };
                labels.push(label);
            }
            // Counted once per vector (every key form gave the same verdict).
            *counts.entry(labels[0]).or_default() += 1;
        }
    }
    report(family, &counts);
    counts
}

#[test]
fn wycheproof_ecdsa_p256_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let counts = wycheproof(
        "ECDSA P-256 SHA-256 P1363",
        Algorithm::ES256,
        &set.test_groups,
        |g| &g.tests,
        // The key as SPKI DER and as a raw uncompressed point: both forms
        // tollgate loads.
        |g| [&g.der[..], &g.key.key[..]].iter().map(|k| JwtKey::public(None, k, vec![Algorithm::ES256]).ok()).collect(),
        |t| (t.tc_id, &t.msg[..], &t.sig[..], t.result),
    );
    assert_eq!(counts.values().sum::<usize>(), set.number_of_tests, "{counts:?}");
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let counts = wycheproof(
        "Ed25519",
        Algorithm::EdDSA,
        &set.test_groups,
        |g| &g.tests,
        |g| [&g.der[..], &g.key.pk[..]].iter().map(|k| JwtKey::public(None, k, vec![Algorithm::EdDSA]).ok()).collect(),
        |t| (t.tc_id, &t.msg[..], &t.sig[..], t.result),
    );
    assert_eq!(counts.values().sum::<usize>(), set.number_of_tests, "{counts:?}");
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let set = TestSet::load(TestName::Rsa2048Sha256).unwrap();
    let counts = wycheproof(
        "RSA PKCS#1 v1.5 2048 SHA-256",
        Algorithm::RS256,
        &set.test_groups,
        |g| &g.tests,
        |g| [&g.der[..], &g.asn_key[..]].iter().map(|k| JwtKey::public(None, k, vec![Algorithm::RS256]).ok()).collect(),
        |t| (t.tc_id, &t.msg[..], &t.sig[..], t.result),
    );
    assert_eq!(counts.values().sum::<usize>(), set.number_of_tests, "{counts:?}");
}

/// HS256 tags are the full 32 bytes (RFC 7518 §3.2): a group whose tag is
/// truncated is one tollgate must refuse whatever Wycheproof says of the
/// MAC itself.
#[test]
fn wycheproof_hmac_sha256() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for group in &set.test_groups {
        for t in &group.tests {
            let key = JwtKey::hmac(None, &t.key, vec![Algorithm::HS256]).unwrap();
            let accepted = key.verify(Algorithm::HS256, &t.msg, &t.tag);
            let full = group.tag_size == 256;
            let label = match (t.result, full, accepted) {
                (wycheproof::TestResult::Valid, true, true) => "valid, accepted",
                (wycheproof::TestResult::Valid, false, false) => "valid truncated tag, refused",
                (wycheproof::TestResult::Invalid, _, false) => "invalid, refused",
                (wycheproof::TestResult::Acceptable, _, false) => "acceptable, refused",
                (expected, _, got) => panic!(
                    "HMAC-SHA256 tcId {} (tag {} bits): expected {expected:?}, tollgate accepted={got}",
                    t.tc_id, group.tag_size
                ),
            };
            *counts.entry(label).or_default() += 1;
        }
    }
    report("HMAC-SHA256", &counts);
    assert_eq!(counts.values().sum::<usize>(), set.number_of_tests, "{counts:?}");
}
