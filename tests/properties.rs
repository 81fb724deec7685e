//! Property tests over the parsers an attacker reaches first. The central
//! one: for any request target, if tollgate forwards it, the bytes
//! forwarded are exactly the bytes verified minus the credential params.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use tollgate::auth::keys::HmacKey;
use tollgate::auth::kinds::signed_url::{self, SignedUrlPolicy};
use tollgate::auth::query::{self, CredentialNames};
use tollgate::normalize::check_path;

fn signed() -> CredentialNames {
    CredentialNames::signed_url()
}

fn both() -> CredentialNames {
    CredentialNames::new(["exp", "sig", "kid", "prefix", "token"]).unwrap()
}

/// Path segments built from the characters that matter: dots, encoded
/// dots and slashes, backslashes, controls, non-ASCII, plus, percent.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9]{1,4}",
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2e".to_owned()),
            Just("%2E".to_owned()),
            Just("%2f".to_owned()),
            Just("%5C".to_owned()),
            Just("\\".to_owned()),
            Just("%00".to_owned()),
            Just("%c0%af".to_owned()),
            Just("%C3%A9".to_owned()),
            Just("%25".to_owned()),
            Just("+".to_owned()),
            Just("%".to_owned()),
            Just("%zz".to_owned()),
            Just("~".to_owned()),
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|segs| format!("/{}", segs.join("/")))
}

/// Query pieces: credential names in several spellings, ordinary params,
/// empty pieces and `;`.
fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("exp".to_owned()),
        Just("sig".to_owned()),
        Just("kid".to_owned()),
        Just("prefix".to_owned()),
        Just("token".to_owned()),
        Just("%73ig".to_owned()),
        Just("%65xp".to_owned()),
        Just("Sig".to_owned()),
        "[a-z]{1,3}",
        Just("w".to_owned()),
    ];
    let value = prop_oneof![
        "[a-z0-9]{0,4}",
        Just("%2F".to_owned()),
        Just("a+b".to_owned()),
        Just("%zz".to_owned()),
        Just(";x=1".to_owned())
    ];
    prop::collection::vec(
        prop_oneof![(name, value).prop_map(|(n, v)| format!("{n}={v}")), Just(String::new()), "[a-z]{1,3}"],
        0..6,
    )
    .prop_map(|pieces| pieces.join("&"))
}

fn percent_decode(raw: &str) -> Vec<u8> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Whatever is forwarded is the raw path, and the query pieces that are
    /// not credentials, byte for byte and in order; and the upstream's own
    /// single percent-decoding of that path gives exactly the path verified.
    #[test]
    fn forwarded_bytes_are_verified_bytes_minus_credentials(path in path(), q in query()) {
        let Ok(normal) = check_path(&path) else { return Ok(()) };
        let names = both();
        let Ok(found) = query::scan(&q, &names) else { return Ok(()) };
        let forwarded = query::strip(&q, &found).map(|c| c.into_owned()).unwrap_or_default();
        let kept: Vec<&str> = q.split('&').filter(|piece| {
            let name = piece.split_once('=').map_or(*piece, |(n, _)| n);
            let decoded = query::decode_component(name).map(|c| c.into_owned()).unwrap_or_default();
            !matches!(decoded.as_slice(), b"exp" | b"sig" | b"kid" | b"prefix" | b"token")
        }).collect();
        prop_assert_eq!(forwarded, kept.join("&"));
        prop_assert_eq!(percent_decode(&path), normal.decoded.as_bytes().to_vec());
        for seg in normal.decoded.split('/') {
            prop_assert!(seg != "." && seg != "..");
        }
        prop_assert!(!normal.decoded.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\'));
    }

    /// The signature covers exactly the parameters forwarded: stripping the
    /// credential params does not change the canonical query.
    #[test]
    fn the_signature_binds_what_is_forwarded(q in query()) {
        let names = signed();
        let Ok(found) = query::scan(&q, &names) else { return Ok(()) };
        let forwarded = query::strip(&q, &found).map(|c| c.into_owned()).unwrap_or_default();
        prop_assert_eq!(query::canonical(&q).ok(), query::canonical(&forwarded).ok());
    }

    /// Signing then verifying succeeds; any change to the path, an added
    /// parameter or another method fails.
    #[test]
    fn signatures_round_trip_and_bind(path in path(), extra in "[a-z]{1,3}=[a-z0-9]{0,3}", flip in any::<prop::sample::Index>()) {
        let Ok(normal) = check_path(&path) else { return Ok(()) };
        let key = HmacKey::new("k", b"property-test-secret-0123456789abcdef");
        let exp = 4_000_000_000u64;
        let Ok(signed) = signed_url::sign_target(&key, "GET", &path, exp, None, None) else { return Ok(()) };
        let policy = SignedUrlPolicy { keys: vec![Arc::new(key)].into(), max_ttl: None };
        let check = |target: &str, method: &str| {
            let (p, q) = target.split_once('?').unwrap_or((target, ""));
            let Ok(n) = check_path(p) else { return false };
            let names = CredentialNames::signed_url();
            let Ok(found) = query::scan(q, &names) else { return false };
            signed_url::verify(&policy, method, &n.decoded, q, &found, exp - 10).is_ok()
        };
        prop_assert!(check(&signed, "GET"));
        prop_assert!(check(&signed, "HEAD"));
        prop_assert!(!check(&signed, "PUT"));
        let with_extra = format!("{signed}&{extra}");
        let accepted = check(&with_extra, "GET");
        prop_assert!(!accepted, "an added parameter was accepted");
        // Change one character of the decoded path.
        let bytes = normal.decoded.as_bytes();
        let i = flip.index(bytes.len());
        if bytes[i].is_ascii_alphanumeric() {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(changed).unwrap();
            let target = signed.replacen(&*path, &changed, 1);
            if changed != normal.decoded && !target.contains("%") {
                prop_assert!(!check(&target, "GET"));
            }
        }
    }

    /// Nothing an attacker sends makes a parser panic.
    #[test]
    fn parsers_never_panic(input in ".{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = check_path(&input);
        let _ = query::scan(&input, &both());
        let _ = query::canonical(&input);
        let _ = jsonwebtoken::decode_header(&input);
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = check_path(&lossy);
        let _ = query::canonical(&lossy);
        let _ = tollgate::auth::keyfile::parse_jwks(&bytes);
        let _ = tollgate::auth::keyfile::parse_public_pem(&bytes);
    }

    /// The config loader reports errors for garbage instead of panicking.
    #[test]
    fn config_loader_never_panics(yaml in "[a-z:{}\\[\\], \\n0-9./_\"-]{0,300}") {
        let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
        let _ = tollgate::config::compile_str(&yaml, std::path::Path::new("/nonexistent"), &metrics);
    }
}

/// A route table: (host, prefix) in file order, from a few segments so
/// prefixes nest, repeat and share lengths.
fn table() -> impl Strategy<Value = Vec<(Option<&'static str>, String)>> {
    let prefix = prop::collection::vec(prop_oneof![Just("a"), Just("ab"), Just("b"), Just("c")], 0..4).prop_flat_map(
        |segments| {
            let base = format!("/{}", segments.join("/"));
            prop_oneof![Just(base.clone()), Just(if base.ends_with('/') { base.clone() } else { format!("{base}/") })]
        },
    );
    prop::collection::vec((prop_oneof![Just(None), Just(Some("x.example")), Just(Some("y.example"))], prefix), 1..24)
}

/// The lookup as it was before the index: every route in match order
/// (host-specific first, then longer prefixes; ties in file order), the
/// first that matches.
fn linear(table: &[(Option<&'static str>, String)], host: Option<&str>, path: &str) -> Option<usize> {
    let mut order: Vec<usize> = (0..table.len()).collect();
    order.sort_by_key(|&i| (table[i].0.is_none(), std::cmp::Reverse(table[i].1.len())));
    order.into_iter().find(|&i| {
        let (want, prefix) = &table[i];
        want.is_none_or(|w| host == Some(w)) && tollgate::normalize::prefix_matches(prefix, path)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The indexed lookup picks exactly the route the linear scan picked
    /// (README: Configuration), on random tables, hosts and paths.
    #[test]
    fn indexed_route_lookup_agrees_with_the_linear_scan(
        table in table(),
        host in prop_oneof![Just(None), Just(Some("x.example")), Just(Some("z.example"))],
        segments in prop::collection::vec(
            prop_oneof![Just("a"), Just("ab"), Just("b"), Just("c"), Just("é"), Just("cé"), Just("")],
            0..5
        ),
    ) {
        let mut yaml = String::from("upstreams: { u: { url: \"http://127.0.0.1:9\" } }\nroutes:\n");
        for (i, (h, prefix)) in table.iter().enumerate() {
            let host = h.map(|h| format!(", host: {h}")).unwrap_or_default();
            yaml.push_str(&format!("  - {{ name: r{i}, prefix: \"{prefix}\", upstream: u, auth: none{host} }}\n"));
        }
        let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
        let config = tollgate::config::compile_str(&yaml, std::path::Path::new("."), &metrics).unwrap();
        let path = format!("/{}", segments.join("/"));
        let want = linear(&table, host, &path).map(|i| format!("r{i}"));
        let got = config.routes.lookup(host, &path).map(|r| r.name.clone());
        prop_assert_eq!(got, want, "{} on {:?}", path, host);
    }
}
