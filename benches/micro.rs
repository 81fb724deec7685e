//! Microbenchmarks of the request hot path: signed-URL verification, JWT
//! verification uncached (HS256, RS256, ES256, EdDSA) against the raw
//! signature check of the crypto library, the cache-hit path, canonical
//! query, normal-form check, building the upstream head, and rewriting a
//! video manifest (HLS playlist, DASH MPD) of 10 to 10,000 segments.
//!
//! `cargo bench --bench micro` for numbers; `cargo bench --bench micro --
//! --test` runs every benchmark once (CI's smoke mode).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256};
use serde_json::json;
use tollgate::auth::cache::{CacheSettings, VerifyCache};
use tollgate::auth::keyfile::parse_public_pem;
use tollgate::auth::keys::{HmacKey, JwtKey, JwtKeySource, KeySet};
use tollgate::auth::kinds::jwt::{Carriers, ClaimRules, JwtPolicy};
use tollgate::auth::kinds::path_token;
use tollgate::auth::kinds::signed_url::{self, SignedUrlPolicy};
use tollgate::auth::query::{self, CredentialNames, Found};
use tollgate::auth::{AuthRequest, VerifyContext, authorize};
use tollgate::manifest::{self, Format, Rewrite, Use};
use tollgate::normalize::check_path;
use tollgate::proxy::forward::{self, Forward};

const SECRET: &[u8] = b"benchmark-secret-benchmark-secret-0123456789";

fn signed_target() -> String {
    let key = HmacKey::new("k", SECRET);
    signed_url::sign_target(&key, "GET", "/media/photos/2026/cat.jpg?w=200&format=webp", 4_000_000_000, None, None)
        .unwrap()
}

fn bench_signed_url(c: &mut Criterion) {
    let policy = SignedUrlPolicy { keys: vec![Arc::new(HmacKey::new("k", SECRET))].into(), max_ttl: None };
    let target = signed_target();
    let signed = CredentialNames::signed_url();
    c.bench_function("signed_url/verify_uncached", |b| {
        b.iter(|| {
            let (path, q) = black_box(&target).split_once('?').unwrap();
            let normal = check_path(path).unwrap();
            let found = query::scan(q, &signed).unwrap();
            signed_url::verify(&policy, "GET", &normal.decoded, q, &found, 1_900_000_000).unwrap();
        })
    });
}

/// A path token on a segment URL: what each of a player's segment requests
/// costs, uncached (the choice tollgate makes), next to `cache/hit_authorize`
/// (what a cached verdict would cost).
fn bench_path_token(c: &mut Criterion) {
    let policy = SignedUrlPolicy { keys: vec![Arc::new(HmacKey::new("k", SECRET))].into(), max_ttl: None };
    let key = HmacKey::new("k", SECRET);
    let target =
        path_token::sign_path(&key, "/media/video/720p/seg-0042.ts", 4_000_000_000, None, Some("/media/video/"), "tg")
            .unwrap();
    c.bench_function("path_token/verify_uncached", |b| {
        b.iter(|| {
            let path = black_box(target.as_str());
            check_path(path).unwrap();
            let token = path_token::find(path, "tg").unwrap().unwrap();
            path_token::verify(&policy, "GET", path, &token, "/media/", 1_900_000_000).unwrap();
        })
    });
}

fn policy_for(key: JwtKey) -> JwtPolicy {
    JwtPolicy::new(
        vec![JwtKeySource::Static(Arc::new(key))],
        Carriers { header: true, ..Carriers::default() },
        "token".into(),
        "c".into(),
        ClaimRules { leeway: 30, path_claim: Some("path".into()), ..ClaimRules::default() },
        vec![("sub".into(), HeaderName::from_static("x-auth-subject"))],
    )
}

fn claims() -> serde_json::Value {
    json!({"sub": "user-1234", "path": ["/media/*"], "aud": "media", "exp": 4_000_000_000u64, "iat": 1_700_000_000u64})
}

fn bench_jwt(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt/verify_uncached");
    let hs = JwtKey::hmac(None, SECRET, vec![Algorithm::HS256]).unwrap();
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    let policy = policy_for(hs);
    group.bench_function("HS256", |b| {
        b.iter(|| policy.verify(black_box(&token), "/media/a.jpg", 1_900_000_000).unwrap())
    });

    let mut raw_rs256 = None;
    for (name, alg, rcgen_alg) in [
        ("RS256", Algorithm::RS256, &PKCS_RSA_SHA256),
        ("ES256", Algorithm::ES256, &PKCS_ECDSA_P256_SHA256),
        ("EdDSA", Algorithm::EdDSA, &PKCS_ED25519),
    ] {
        let pair = KeyPair::generate_for(rcgen_alg).unwrap();
        let private = pair.serialize_pem();
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()),
            _ => EncodingKey::from_ed_pem(private.as_bytes()),
        }
        .unwrap();
        let token = jsonwebtoken::encode(&Header::new(alg), &claims(), &encoding).unwrap();
        let public = parse_public_pem(pair.public_key_pem().as_bytes()).unwrap();
        let policy = policy_for(JwtKey::public(None, &public.der, vec![alg]).unwrap());
        group.bench_function(name, |b| {
            b.iter(|| policy.verify(black_box(&token), "/media/a.jpg", 1_900_000_000).unwrap())
        });
        if alg == Algorithm::RS256 {
            raw_rs256 = Some((pair.public_key_raw().to_vec(), token));
        }
    }
    group.finish();

    // The floor: aws-lc's RSA verification of the same signature, nothing else.
    let (spki, token) = raw_rs256.unwrap();
    let (message, sig) = token.rsplit_once('.').unwrap();
    let sig = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    let key =
        aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, spki).unwrap();
    c.bench_function("jwt/raw_aws_lc_rs256_verify", |b| {
        b.iter(|| key.verify_sig(black_box(message.as_bytes()), black_box(&sig)).unwrap())
    });
}

/// A multi-tenant route: the same link verified by a route holding one key
/// and by one holding 1,000 (the link names the last). A JWT likewise with a
/// JWK set of one and of 1,000 keys. The pairs should cost the same.
fn bench_many_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    for n in [1usize, 1000] {
        let keys: Vec<_> = (0..n).map(|i| Arc::new(HmacKey::new(format!("tenant-{i}"), SECRET))).collect();
        let last = keys[n - 1].clone();
        let policy = SignedUrlPolicy { keys: keys.into(), max_ttl: None };
        let target =
            signed_url::sign_target(&last, "GET", "/media/a.jpg", 4_000_000_000, Some(&last.id), None).unwrap();
        let signed = CredentialNames::signed_url();
        group.bench_function(format!("signed_url_{n}"), |b| {
            b.iter(|| {
                let (path, q) = black_box(&target).split_once('?').unwrap();
                let found = query::scan(q, &signed).unwrap();
                signed_url::verify(&policy, "GET", path, q, &found, 1_900_000_000).unwrap();
            })
        });

        let jwks: Vec<_> = (0..n)
            .map(|i| Arc::new(JwtKey::hmac(Some(format!("tenant-{i}")), SECRET, vec![Algorithm::HS256]).unwrap()))
            .collect();
        let set = Arc::new(KeySet::new("tenants", jwks));
        let mut policy = policy_for(JwtKey::hmac(Some("unused".into()), b"unused", vec![Algorithm::HS256]).unwrap());
        policy.keys = vec![JwtKeySource::Set(set)];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(format!("tenant-{}", n - 1));
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        group.bench_function(format!("jwt_set_{n}"), |b| {
            b.iter(|| policy.verify(black_box(&token), "/media/a.jpg", 1_900_000_000).unwrap())
        });
    }
    group.finish();
}

fn bench_cache_hit(c: &mut Criterion) {
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    let hs = JwtKey::hmac(None, SECRET, vec![Algorithm::HS256]).unwrap();
    let auth = tollgate::auth::RouteAuth::new(vec![Box::new(policy_for(hs))]).unwrap();
    let cache = VerifyCache::new(CacheSettings::default());
    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let found = Found::default();
    let now = tollgate::auth::unix_now();
    let req = AuthRequest {
        method: "GET",
        path: "/media/a.jpg",
        query: "",
        found: &found,
        headers: &headers,
        raw_path: "/media/a.jpg",
        route_prefix: "/media/",
        route_id: 1,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let verifier = VerifyContext { cache: &cache, counters: &metrics.cache, now, trace: None };
    authorize(&auth, &req, &verifier).unwrap();
    c.bench_function("cache/hit_authorize", |b| b.iter(|| authorize(&auth, black_box(&req), &verifier).unwrap()));
}

fn bench_parsing(c: &mut Criterion) {
    let q = "w=200&format=web+p&a=%7e&lang=en&exp=1893456000&sig=9Cx0CpyAgO2USUP3-Vn4ePJW-WbbtyNsmiTiu_kLqac";
    c.bench_function("query/canonical", |b| b.iter(|| query::canonical(black_box(q)).unwrap()));
    c.bench_function("normalize/plain", |b| b.iter(|| check_path(black_box("/media/photos/2026/cat.jpg")).unwrap()));
    c.bench_function("normalize/encoded", |b| {
        b.iter(|| check_path(black_box("/media/photos/caf%C3%A9%20noir/cat%201.jpg")).unwrap())
    });

    let signed = CredentialNames::signed_url();
    let found = query::scan(q, &signed).unwrap();
    let host = HeaderValue::from_static("127.0.0.1:8081");
    let scheme = http::uri::Scheme::HTTP;
    let authority: http::uri::Authority = "127.0.0.1:8081".parse().unwrap();
    let template = Request::builder()
        .uri(format!("/media/cat.jpg?{q}"))
        .header("host", "files.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) benchmark")
        .header("accept", "image/avif,image/webp,*/*")
        .header("accept-encoding", "gzip, deflate, br")
        .header("connection", "keep-alive")
        .header("cookie", "session=abc; theme=dark")
        .body(())
        .unwrap();
    let peer = "10.1.2.3:40000".parse().unwrap();
    c.bench_function("strip/upstream_head", |b| {
        b.iter_batched(
            || template.clone().into_parts().0,
            |mut parts| {
                let stripped = query::strip(q, &found).unwrap();
                let pq = format!("/media/cat.jpg?{stripped}").try_into().unwrap();
                let forward = Forward {
                    scheme: &scheme,
                    authority: &authority,
                    host: Some(&host),
                    path_and_query: pq,
                    grant: None,
                    cookies: &[],
                    credential_headers: &[],
                    keep_authorization: false,
                    claim_headers: &[],
                    peer,
                    tls: false,
                    trust_forwarded: false,
                };
                forward::upstream_head(&mut parts, forward).unwrap();
                parts
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// Inserts a path token after the granted prefix, as `proxy::manifests`
/// does for a path-token grant: a prefix check and a `format!` per URI.
struct InsertToken;
impl Rewrite for InsertToken {
    fn uri(&mut self, uri: &str, _: Use) -> Option<String> {
        let rest = uri.strip_prefix("/media/u1/")?;
        Some(format!("/media/u1/tg~AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjK/{rest}"))
    }
}

fn hls_media_playlist(segments: usize) -> String {
    let mut m = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-MAP:URI=\"/media/u1/720p/init.mp4\"\n",
    );
    for i in 0..segments {
        m.push_str(&format!("#EXTINF:4.000,\n/media/u1/720p/seg-{i:05}.m4s\n"));
    }
    m.push_str("#EXT-X-ENDLIST\n");
    m
}

fn dash_segment_list(segments: usize) -> String {
    let mut m = String::from(
        "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\">\n\
         <Period><AdaptationSet mimeType=\"video/mp4\"><Representation id=\"720p\" bandwidth=\"2500000\">\n\
         <SegmentList timescale=\"1000\" duration=\"4000\">\n\
         <Initialization sourceURL=\"/media/u1/dash/init.mp4\"/>\n",
    );
    for i in 0..segments {
        m.push_str(&format!("<SegmentURL media=\"/media/u1/dash/seg-{i:05}.m4s\"/>\n"));
    }
    m.push_str("</SegmentList></Representation></AdaptationSet></Period>\n</MPD>\n");
    m
}

/// A whole manifest rewritten (every URI given a path token), HLS media
/// playlists and DASH SegmentLists of 10, 1,000 and 10,000 segments; the
/// throughput is of the input bytes.
fn bench_manifest(c: &mut Criterion) {
    let mut group = c.benchmark_group("manifest_rewrite");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (name, format, build) in
        [("hls", Format::Hls, hls_media_playlist as fn(usize) -> String), ("dash", Format::Dash, dash_segment_list)]
    {
        for n in [10usize, 1_000, 10_000] {
            let input = build(n);
            let out = manifest::rewrite(format, input.as_bytes(), &mut InsertToken);
            assert_eq!(out.windows(3).filter(|w| *w == b"tg~").count(), n + 1, "every URI rewritten");
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_function(format!("{name}_{n}"), |b| {
                b.iter(|| manifest::rewrite(format, black_box(input.as_bytes()), &mut InsertToken))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_signed_url,
    bench_path_token,
    bench_jwt,
    bench_many_keys,
    bench_cache_hit,
    bench_parsing,
    bench_manifest
);
criterion_main!(benches);
