//! The adversarial suite: the classes of bug that broke auth proxies before,
//! sent as real bytes. Every case asserts the answer *and* what the upstream
//! received — a recording upstream keeps the exact bytes; "nothing" means no
//! request reached it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/recorder.rs"]
mod recorder;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{Http, Tollgate, raw, raw_status, sign};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use recorder::Recorder;
use serde_json::{Value, json};

/// Log lines written while the suite runs (all levels down to debug); one
/// per process, whichever test installs the subscriber first.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

fn log_buffer() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let _ =
            tracing_subscriber::fmt().with_env_filter("debug").with_writer(logs.clone()).with_ansi(false).try_init();
        logs
    })
    .clone()
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Suite {
    tg: Tollgate,
    rec: Recorder,
    http: Http,
    dir: tempfile::TempDir,
    hs: Vec<u8>,
    ka: Vec<u8>,
    kb: Vec<u8>,
    logs: LogBuffer,
}

impl Suite {
    async fn start() -> Suite {
        let logs = log_buffer();
        let rec = Recorder::start();
        let dir = tempfile::tempdir().unwrap();
        let python = common::repo().join(".venv/bin/python");
        for sub in ["keys", "attacker"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            let status = std::process::Command::new(&python)
                .arg(common::repo().join("tests/py/mint.py"))
                .arg("keys")
                .arg(dir.path().join(sub))
                .status()
                .unwrap();
            assert!(status.success(), "key generation failed: run `make test`");
        }
        let (hs, ka, kb) = (common::random_secret(), common::random_secret(), common::random_secret());
        for (name, secret) in [("hs.key", &hs), ("ka.key", &ka), ("kb.key", &kb)] {
            common::write_file(dir.path(), name, secret);
        }
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  rsa: {{ public_key_file: keys/rsa.pub.pem }}
  hs: {{ hmac: {{ secret_file: hs.key }} }}
  ka: {{ hmac: {{ secret_file: ka.key }} }}
  kb: {{ hmac: {{ secret_file: kb.key }} }}
upstreams:
  rec: {{ url: "http://{rec}", response_timeout: 3s }}
routes:
  - {{ name: rsa, prefix: /rsa/, upstream: rec, auth: {{ jwt: {{ keys: [rsa] }} }} }}
  - name: hs
    prefix: /hs/
    upstream: rec
    auth:
      jwt:
        keys: [hs]
        from: [header, query]
        audience: media
        leeway: 30s
        path_claim: path
        forward_claims: {{ sub: X-Auth-Subject }}
  - {{ name: short, prefix: /short/, upstream: rec, auth: {{ jwt: {{ keys: [hs], leeway: 0s }} }} }}
  - {{ name: ra, prefix: /ra/, upstream: rec, auth: {{ jwt: {{ keys: [ka], issuer: A }} }} }}
  - {{ name: rb, prefix: /rb/, upstream: rec, auth: {{ jwt: {{ keys: [kb], issuer: B }} }} }}
  - name: b
    prefix: /b/
    upstream: rec
    methods: [GET, HEAD, PUT, DELETE, POST]
    auth: {{ signed_url: {{ keys: [hs] }}, jwt: {{ keys: [hs], from: [header, query], path_claim: path }} }}
  - {{ name: ck, prefix: /ck/, upstream: rec, auth: {{ jwt: {{ keys: [hs], from: [header, cookie] }} }} }}
  - {{ name: public, prefix: /public/, upstream: rec, auth: none }}
"#,
            rec = rec.addr
        );
        let tg = Tollgate::start(&yaml, dir.path()).await;
        Suite { tg, rec, http: Http::h1(), dir, hs, ka, kb, logs }
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    /// Asserts `status`, and that nothing reached the upstream.
    async fn refused(&self, status: u16, path: &str, headers: &[(&str, &str)]) {
        self.rec.clear();
        let r = self.http.get_with(&self.tg.url(path), headers).await;
        assert_eq!(r.status, status, "{path} {headers:?}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(self.rec.requests().is_empty(), "{path} reached the upstream: {:?}", self.rec.requests());
    }

    async fn bearer_refused(&self, status: u16, path: &str, token: &str) {
        self.refused(status, path, &[("authorization", &format!("Bearer {token}"))]).await;
    }

    /// A raw request; returns (status, what the upstream received).
    fn raw(&self, request: &str) -> (u16, Vec<String>) {
        self.rec.clear();
        let answer = raw(self.tg.handle.proxy_addr, request.as_bytes());
        std::thread::sleep(Duration::from_millis(100));
        (raw_status(&answer), self.rec.requests())
    }
}

fn now() -> u64 {
    tollgate::auth::unix_now()
}

/// A JWT from raw JSON parts and a raw signature segment.
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

fn hmac_sign(secret: &[u8], header: &Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(tag.as_ref()))
}

fn encode(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn der_of(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_crypto_attacks() {
    let s = Suite::start().await;
    let claims = json!({"sub": "mallory", "exp": now() + 300});
    let rsa_private = EncodingKey::from_rsa_pem(&s.pem("keys/rsa.pem")).unwrap();
    let good = encode(Algorithm::RS256, None, &rsa_private, &claims);
    s.rec.clear();
    assert_eq!(s.http.get_with(&s.tg.url("/rsa/x"), &[("authorization", &format!("Bearer {good}"))]).await.status, 200);

    // alg: none, every casing, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        s.bearer_refused(401, "/rsa/x", &forge(&header, &claims, "")).await;
        s.bearer_refused(401, "/rsa/x", &forge(&header, &claims, "c2lnbmF0dXJl")).await;
    }

    // HS256 keyed with the route's RSA public key, in every encoding.
    let public_pem = s.pem("keys/rsa.pub.pem");
    let trimmed = String::from_utf8(public_pem.clone()).unwrap().trim_end().as_bytes().to_vec();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa_private, Algorithm::RS256).unwrap();
    let jwk_json = serde_json::to_vec(&jwk).unwrap();
    for secret in [public_pem.clone(), trimmed, der_of(&public_pem), jwk_json] {
        let token = hmac_sign(&secret, &json!({"alg": "HS256", "typ": "JWT"}), &claims);
        s.bearer_refused(401, "/rsa/x", &token).await;
    }

    // Other algorithms than the one the key is pinned to.
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        s.bearer_refused(401, "/rsa/x", &encode(alg, None, &rsa_private, &claims)).await;
    }
    let ec = EncodingKey::from_ec_pem(&s.pem("keys/ec.pem")).unwrap();
    s.bearer_refused(401, "/rsa/x", &encode(Algorithm::ES256, Some("rsa"), &ec, &claims)).await;

    // The attacker's own key, embedded (jwk, x5c) or pointed at (jku, x5u).
    let attacker = EncodingKey::from_rsa_pem(&s.pem("attacker/rsa.pem")).unwrap();
    let attacker_jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, Algorithm::RS256).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.jwk = Some(attacker_jwk);
    s.bearer_refused(401, "/rsa/x", &jsonwebtoken::encode(&header, &claims, &attacker).unwrap()).await;
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![B64.encode(der_of(&s.pem("attacker/rsa.pub.pem")))]);
    s.bearer_refused(401, "/rsa/x", &jsonwebtoken::encode(&header, &claims, &attacker).unwrap()).await;
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://{}/jwks.json", trap.local_addr().unwrap());
    for field in ["jku", "x5u"] {
        let header = json!({"alg": "RS256", "typ": "JWT", field: trap_url});
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &attacker, Algorithm::RS256).unwrap();
        s.bearer_refused(401, "/rsa/x", &format!("{signing_input}.{sig}")).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(trap.accept().is_err(), "tollgate fetched a key URL named by a token");

    // Hostile kid values: refused, and never written to the logs.
    let hostile = ["../../../etc/passwd", "\"quoted\" 'kid'", "a\r\nX-Injected: 1", &"k".repeat(10 * 1024)];
    for kid in hostile {
        s.bearer_refused(401, "/rsa/x", &encode(Algorithm::RS256, Some(kid), &rsa_private, &claims)).await;
    }
    let logs = String::from_utf8_lossy(&s.logs.0.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the log capture saw nothing");
    for kid in ["etc/passwd", "X-Injected", "kkkkkkkkkkkkkkkk", "quoted"] {
        assert!(!logs.contains(kid), "a raw kid reached the logs: {kid}");
    }

    // Shapes that are not a JWS compact token.
    let parts: Vec<&str> = good.split('.').collect();
    for shape in [
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{}.{}.{}.{}.{}", parts[0], parts[1], "a", "b", parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}. {}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}\t.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{} {}", parts[0], parts[1], parts[2], parts[2]),
    ] {
        s.bearer_refused(401, "/rsa/x", &shape).await;
    }

    // A 16-byte HMAC secret is refused when the configuration is compiled.
    std::fs::write(s.dir.path().join("tiny.key"), b"0123456789abcdef").unwrap();
    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    let tiny = "keys: { t: { hmac: { secret_file: tiny.key } } }\nroutes: []\n";
    let errors = tollgate::config::compile_str(tiny, s.dir.path(), &metrics).err().unwrap().to_string();
    assert!(errors.contains("keys.t.hmac: the secret is 16 bytes"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_time() {
    let s = Suite::start().await;
    let hs = EncodingKey::from_secret(&s.hs);
    let base = |exp: i64| json!({"aud": "media", "path": "/hs/x", "exp": now() as i64 + exp});
    let ok = encode(Algorithm::HS256, None, &hs, &base(-29));
    assert_eq!(
        s.http.get_with(&s.tg.url("/hs/x"), &[("authorization", &format!("Bearer {ok}"))]).await.status,
        200,
        "inside the leeway"
    );
    s.bearer_refused(401, "/hs/x", &encode(Algorithm::HS256, None, &hs, &base(-31))).await;
    // Registered claims that are absent or not NumericDates make the token
    // invalid (RFC 6750 `invalid_token`), never a scope mismatch.
    s.bearer_refused(401, "/hs/x", &encode(Algorithm::HS256, None, &hs, &json!({"aud": "media", "path": "/hs/x"})))
        .await;
    for bad in [json!("never"), json!(-1), json!("2000000000"), json!(null), json!(1.5e9), json!(1e300)] {
        let token = encode(Algorithm::HS256, None, &hs, &json!({"aud": "media", "path": "/hs/x", "exp": bad}));
        let r = s.http.get_with(&s.tg.url("/hs/x"), &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!((r.status, r.code().as_str()), (401, "bad_signature"), "exp {bad}");
        assert_eq!(r.headers["www-authenticate"], r#"Bearer error="invalid_token""#, "exp {bad}");
        let r = s.http.get(&s.tg.url(&format!("/hs/x?token={token}"))).await;
        assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "exp {bad} in the URL");
    }
    for (claim, bad) in [("nbf", json!("soon")), ("iat", json!(-5)), ("nbf", json!(null)), ("iat", json!(1.5))] {
        let mut claims = base(600);
        claims[claim] = bad.clone();
        let r = s
            .http
            .get_with(
                &s.tg.url("/hs/x"),
                &[("authorization", &format!("Bearer {}", encode(Algorithm::HS256, None, &hs, &claims)))],
            )
            .await;
        assert_eq!((r.status, r.code().as_str()), (401, "bad_signature"), "{claim} {bad}");
    }
    let mut future = base(600);
    future["nbf"] = json!(now() + 300);
    s.bearer_refused(401, "/hs/x", &encode(Algorithm::HS256, None, &hs, &future)).await;
    let mut wrong_aud = base(600);
    wrong_aud["aud"] = json!("other");
    s.bearer_refused(403, "/hs/x", &encode(Algorithm::HS256, None, &hs, &wrong_aud)).await;

    // Issuer A's claim signed with issuer B's key: A's route does not hold
    // B's key, and B's route does not accept issuer A.
    let claims = json!({"iss": "A", "exp": now() + 300});
    let via_b = encode(Algorithm::HS256, None, &EncodingKey::from_secret(&s.kb), &claims);
    s.bearer_refused(401, "/ra/x", &via_b).await;
    s.bearer_refused(403, "/rb/x", &via_b).await;
    let genuine = encode(Algorithm::HS256, None, &EncodingKey::from_secret(&s.ka), &claims);
    assert_eq!(
        s.http.get_with(&s.tg.url("/ra/x"), &[("authorization", &format!("Bearer {genuine}"))]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_url_binding() {
    let s = Suite::start().await;
    let good = sign(&s.hs, "GET", "/b/a.txt", 300, None, None);
    let exp = good.split("exp=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    for bad in
        [format!("%2B{exp}"), format!("%20{exp}"), format!("0{exp}"), format!("{exp}.0"), "1e10".into(), "1".repeat(21)]
    {
        s.refused(400, &good.replace(&format!("exp={exp}"), &format!("exp={bad}")), &[]).await;
    }
    s.refused(403, &good.replace("/b/a.txt", "/b/b.txt"), &[]).await;
    let prefixed = sign(&s.hs, "GET", "/b/u1/x", 300, None, Some("/b/u1/"));
    s.refused(403, &prefixed.replace("/b/u1/x", "/b/u10/x"), &[]).await;
    // A one-path link to a directory index replayed as a grant over
    // everything below it, and a prefix grant used as a one-path link.
    let index = sign(&s.hs, "GET", "/b/u1/", 300, None, None);
    let (path, q) = index.split_once('?').unwrap();
    assert_eq!(path, "/b/u1/");
    let r = s.http.get(&s.tg.url(&format!("/b/u1/anything.ts?{q}&prefix=%2Fb%2Fu1%2F"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    let r = s
        .http
        .get(&s.tg.url(&format!("/b/u1/?{}", prefixed.split_once('?').unwrap().1.replace("&prefix=%2Fb%2Fu1%2F", ""))))
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    for method in ["PUT", "DELETE", "POST"] {
        s.rec.clear();
        let r = s.http.send(method, &s.tg.url(&good), &[], bytes::Bytes::new()).await;
        assert_eq!((r.status, r.code().as_str()), (403, "wrong_method"), "{method}");
        assert!(s.rec.requests().is_empty());
    }
    s.refused(403, &format!("{good}&response-content-type=text/html"), &[]).await;
    s.refused(403, &format!("{good}&versionId=1"), &[]).await;
    s.refused(403, &format!("/b/a.txt?versionId=1&{}", good.split_once('?').unwrap().1), &[]).await;

    // Query parsing: a credential parameter twice, in any order or spelling.
    let sig = good.split("sig=").nth(1).unwrap();
    s.refused(400, &format!("{good}&sig={sig}"), &[]).await;
    s.refused(400, &format!("/b/a.txt?sig={sig}&{}", good.split_once('?').unwrap().1), &[]).await;
    s.refused(400, &format!("{good}&exp={exp}"), &[]).await;
    s.refused(400, &format!("{good}&%73ig={sig}"), &[]).await;
    let token = hmac_sign(&s.hs, &json!({"alg": "HS256"}), &json!({"path": "/b/a.txt", "exp": now() + 60}));
    s.refused(400, &format!("/b/a.txt?token={token}&token={token}"), &[]).await;
    s.refused(400, &format!("/b/a.txt?token={token}"), &[("authorization", &format!("Bearer {token}"))]).await;
    s.refused(400, &format!("{good}&token={token}"), &[]).await;
    // `;` is not a separator: this `sig` is part of `exp`'s value.
    s.refused(400, &good.replace("&sig=", ";sig="), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_normal_form() {
    let s = Suite::start().await;
    for target in [
        "/public/../b/a.txt",
        "/public/%2e%2e/b/a.txt",
        "/public/%2E./b/a.txt",
        "/public/.%2e/b/a.txt",
        "/public/./a.txt",
        "/public/a%2Fb",
        "/public/a%5Cb",
        "/public/a\\b",
        "/public/a%00b",
        "/public/%c0%af",
        "/public/%e0%80%af",
        "/public/%zz",
        "/public//a.txt",
        "http://upstream.internal/public/a.txt",
    ] {
        let (status, seen) = s.raw(&format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert_eq!(status, 400, "{target}");
        assert!(seen.is_empty(), "{target} reached the upstream: {seen:?}");
    }
    // What is forwarded is the raw path, byte for byte.
    let (status, seen) =
        s.raw("GET /public/caf%C3%A9%20x%2b?q=%2F&r=a+b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(seen[0].starts_with("GET /public/caf%C3%A9%20x%2b?q=%2F&r=a+b HTTP/1.1\r\n"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_and_headers() {
    let s = Suite::start().await;
    let smuggle = "GET /public/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let attempts = [
        format!(
            "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggle}",
            5 + smuggle.len()
        ),
        format!(
            "POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{smuggle}",
            5 + smuggle.len()
        ),
        format!("POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggle}"),
        format!(
            "POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{smuggle}"
        ),
        format!("POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n{smuggle}"),
    ];
    for attempt in &attempts {
        let (_, seen) = s.raw(attempt);
        let all = seen.join("\n--\n");
        assert!(!all.contains("/public/smuggled"), "smuggled request reached the upstream:\n{all}");
        assert!(seen.iter().all(|r| r.matches("HTTP/1.1\r\n").count() <= 1), "{all}");
    }

    // A claim header tollgate sets on one route cannot be forged on another.
    let (status, seen) =
        s.raw("GET /public/x HTTP/1.1\r\nHost: x\r\nX-Auth-Subject: admin\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(!seen[0].to_ascii_lowercase().contains("x-auth-subject"), "{}", seen[0]);

    // Bytes beyond ASCII in a Cookie header neither hide a credential cookie
    // from the verifier nor from the stripping stage.
    let hs = EncodingKey::from_secret(&s.hs);
    let valid = encode(Algorithm::HS256, None, &hs, &json!({"sub": "alice", "exp": now() + 60}));
    let cookie_case = |auth: &str, cookies: &[&[u8]]| {
        let mut req = format!("GET /ck/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}").into_bytes();
        for c in cookies {
            req.extend_from_slice(b"Cookie: ");
            req.extend_from_slice(c);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        s.rec.clear();
        let answer = raw(s.tg.handle.proxy_addr, &req);
        std::thread::sleep(Duration::from_millis(100));
        (raw_status(&answer), s.rec.requests())
    };
    let (status, seen) =
        cookie_case(&format!("Authorization: Bearer {valid}\r\n"), &[b"tollgate_token=FORGED.ADMIN.TOKEN; z=\xff"]);
    assert_eq!(status, 200);
    assert!(!seen[0].contains("tollgate_token") && !seen[0].contains("FORGED"), "{}", seen[0]);
    let first = format!("tollgate_token={valid}");
    let (status, seen) = cookie_case("", &[first.as_bytes(), b"tollgate_token=FORGED; z=\xff"]);
    assert_eq!(status, 400, "a second credential cookie is ambiguous, whatever surrounds it");
    assert!(seen.is_empty());

    // Connection may not unset what tollgate sets; hop-by-hop never pass.
    let token = encode(
        Algorithm::HS256,
        None,
        &hs,
        &json!({"sub": "alice", "aud": "media", "path": "/hs/x", "exp": now() + 60}),
    );
    let (status, seen) = s.raw(&format!(
        "GET /hs/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close, X-Forwarded-For, X-Auth-Subject\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Auth-Subject: mallory\r\nProxy-Authorization: Basic c2VjcmV0\r\nTE: trailers\r\n\
         Upgrade: websocket\r\nKeep-Alive: timeout=5\r\n\r\n"
    ));
    assert_eq!(status, 200);
    let req = seen[0].to_ascii_lowercase();
    assert!(req.contains("x-forwarded-for: 127.0.0.1\r\n"), "{req}");
    assert!(req.contains("x-auth-subject: alice\r\n"), "{req}");
    for gone in
        ["6.6.6.6", "mallory", "proxy-authorization", "\r\nte:", "upgrade", "keep-alive", "authorization: bearer"]
    {
        assert!(!req.contains(gone), "{gone:?} was forwarded:\n{req}");
    }
}

/// A verified GET on one path cannot be re-pointed or re-verbed behind
/// tollgate by the headers frameworks treat as the real URL or method, on
/// any route, whether or not `Connection` names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_method_override_headers_never_reach_the_upstream() {
    let s = Suite::start().await;
    let overrides = [
        "X-Original-URL: /admin/delete-all",
        "X-Rewrite-URL: /admin/delete-all",
        "X-Original-URI: /admin/delete-all",
        "X-Forwarded-Uri: /admin/delete-all",
        "X-Forwarded-Prefix: /admin",
        "X-HTTP-Method-Override: DELETE",
        "X-HTTP-Method: DELETE",
        "X-Method-Override: DELETE",
    ]
    .join("\r\n");
    let signed = sign(&s.hs, "GET", "/b/file.txt", 300, None, None);
    for (target, connection) in [
        ("/public/x", "close"),
        (signed.as_str(), "close"),
        (signed.as_str(), "close, X-Original-URL, X-HTTP-Method-Override"),
    ] {
        let (status, seen) =
            s.raw(&format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n{overrides}\r\n\r\n"));
        assert_eq!(status, 200, "{target}");
        let req = seen[0].to_ascii_lowercase();
        assert!(req.starts_with("get "), "{req}");
        for gone in ["/admin", "delete", "x-original", "x-rewrite", "x-forwarded-uri", "x-forwarded-prefix", "override"]
        {
            assert!(!req.contains(gone), "{gone:?} was forwarded:\n{req}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_binding_and_expiry() {
    let s = Suite::start().await;
    let hs = EncodingKey::from_secret(&s.hs);
    let token = encode(Algorithm::HS256, None, &hs, &json!({"path": "/b/a", "exp": now() + 60}));
    let bearer = format!("Bearer {token}");
    for _ in 0..2 {
        assert_eq!(s.http.get_with(&s.tg.url("/b/a"), &[("authorization", &bearer)]).await.status, 200);
    }
    s.refused(403, "/b/x", &[("authorization", &bearer)]).await;

    let short = encode(Algorithm::HS256, None, &hs, &json!({"exp": now() + 2}));
    let bearer = format!("Bearer {short}");
    assert_eq!(s.http.get_with(&s.tg.url("/short/x"), &[("authorization", &bearer)]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    s.refused(401, "/short/x", &[("authorization", &bearer)]).await;
}

/// 10⁶ distinct invalid tokens through the verifier: the cache stays within
/// its bound, memory does not grow with the flood, valid requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_invalid_tokens_keep_memory_bounded() {
    let s = Suite::start().await;
    let runtime = s.tg.handle.shared.runtime.load_full();
    let route = runtime.config.routes.lookup(None, "/hs/x").unwrap().clone();
    let policy = route.auth.as_ref().unwrap();
    let headers = http::HeaderMap::new();
    let found = tollgate::auth::query::Found::default();
    let counters = &s.tg.metrics.cache;
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .parse::<u64>()
            .unwrap()
    };
    let flood = |from: usize, to: usize| {
        let mut h = headers.clone();
        for i in from..to {
            let token = format!("eyJhbGciOiJIUzI1NiJ9.eyJpIjo{i}fQ.c2lnbmF0dXJlLW5vdC12YWxpZA");
            h.insert("authorization", format!("Bearer {token}").parse().unwrap());
            let req = tollgate::auth::AuthRequest {
                method: "GET",
                path: "/hs/x",
                query: "",
                found: &found,
                headers: &h,
                raw_path: "/hs/x",
                route_prefix: "/hs/",
                route_id: route.id,
                client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            };
            let v = tollgate::auth::VerifyContext { cache: &runtime.cache, counters, now: now(), trace: None };
            assert!(tollgate::auth::authorize(policy, &req, &v).is_err());
        }
    };
    flood(0, 200_000);
    let warm = rss();
    flood(200_000, 600_000);
    let mid = rss();
    flood(600_000, 1_000_000);
    let after = rss();
    let entries = runtime.cache.len();
    eprintln!("1e6 invalid tokens: cache {entries} entries (bound 100000), RSS {warm} -> {mid} -> {after} kB");
    assert!(entries <= 110_000, "cache holds {entries} entries");
    assert!(after < mid + 16 * 1024, "RSS keeps growing with the flood: {warm} -> {mid} -> {after} kB");
    let token = encode(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&s.hs),
        &json!({"aud": "media", "path": "/hs/x", "exp": now() + 60}),
    );
    let r = s.http.get_with(&s.tg.url("/hs/x"), &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(r.status, 200);
}
