//! Credentials that must stay where they were presented: never in
//! tollgate's own log, never in the file server's, never in a URL on the
//! upstream's internal address or on another host. tollgate runs as the
//! real `tollgate serve` process (logging at debug, set up as in
//! production) in front of a real nginx that logs the request line, the
//! `Authorization` header and the cookies it received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::serve::Serve;
use common::{Http, Nginx, Resp, signers};

const NAVIGATE: [(&str, &str); 2] = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];

const FILES: &[(&str, &[u8])] = &[
    ("media/u1/video/index.m3u8", b"#EXTM3U\n"),
    ("media/u1/video/sub/index.html", b"sub"),
    ("media/u1/video/x.txt", b"x"),
    ("media/u1/page.txt", b"page"),
    ("media/u1/pub/p.txt", b"public"),
    ("pt/u1/x.txt", b"pt"),
    ("public/x.txt", b"public"),
    ("basic/x.txt", b"basic"),
    ("jwt/x.txt", b"jwt"),
    ("cf/x.txt", b"cf"),
    ("ea/x.txt", b"ea"),
    ("cdn/x.txt", b"cdn"),
    ("sl/x.txt", b"sl"),
];

/// nginx's own redirect to another host, under the granted prefix.
const AWAY: &str = "location = /media/u1/video/away { return 302 http://other.example/media/u1/video/x.txt; }";

struct Setup {
    nginx: Nginx,
    serve: Serve,
    dir: tempfile::TempDir,
    media: Vec<u8>,
    app: Vec<u8>,
    http: Http,
}

fn config(proxy: u16, admin: u16, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
listen: 127.0.0.1:{proxy}
admin: 127.0.0.1:{admin}
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  grant: {{ hmac: {{ secret_file: grant.key }} }}
  app: {{ hmac: {{ secret_file: app.key }} }}
  cf: {{ public_key_file: keys/rsa.pub.pem, kid: KTEST }}
  akamai: {{ edgeauth: {{ secret_file: akamai.hex }} }}
  gcdn: {{ cloud_cdn: {{ secret_file: gcdn.b64 }}, kid: test-key }}
  nsl: {{ secure_link: {{ secret_file: sl.txt }} }}
upstreams:
  n: {{ url: "http://{upstream}" }}
routes:
  - name: media
    prefix: /media/
    upstream: n
    auth:
      signed_url: {{ keys: [media], path_tokens: true }}
      cookie_exchange: {{ key: grant }}
  - {{ name: media-pub, prefix: /media/u1/pub/, upstream: n, auth: none }}
  - {{ name: pt, prefix: /pt/, upstream: n, auth: {{ signed_url: {{ keys: [media], path_tokens: true }} }} }}
  - {{ name: public, prefix: /public/, upstream: n, auth: none }}
  - {{ name: basic, prefix: /basic/, upstream: n, auth: none, forward_authorization: true }}
  - name: jwt
    prefix: /jwt/
    upstream: n
    auth: {{ jwt: {{ keys: [app], from: [header, query, cookie], path_claim: path }} }}
  - {{ name: cf, prefix: /cf/, upstream: n, auth: {{ cloudfront: {{ keys: [cf], origins: ["https://media.example.com"] }} }} }}
  - {{ name: ea, prefix: /ea/, upstream: n, auth: {{ edgeauth: {{ keys: [akamai] }} }} }}
  - {{ name: cdn, prefix: /cdn/, upstream: n, auth: {{ cloud_cdn: {{ keys: [gcdn], origins: ["https://media.example.com"] }} }} }}
  - name: sl
    prefix: /sl/
    upstream: n
    auth: {{ secure_link: {{ keys: [nsl], md5: "$secure_link_expires$uri $secret" }} }}
"#
    )
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn setup() -> Setup {
    let nginx = Nginx::start_with(FILES, AWAY);
    let dir = tempfile::tempdir().unwrap();
    let (media, app) = (common::random_secret(), common::random_secret());
    common::write_file(dir.path(), "media.key", &media);
    common::write_file(dir.path(), "grant.key", &common::random_secret());
    common::write_file(dir.path(), "app.key", &app);
    common::write_file(dir.path(), "akamai.hex", hex(&random(32)).as_bytes());
    let gcdn = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, random(16));
    common::write_file(dir.path(), "gcdn.b64", gcdn.as_bytes());
    common::write_file(dir.path(), "sl.txt", hex(&random(16)).as_bytes());
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    signers::write_keys(&dir.path().join("keys"));
    let path = dir.path().join("tollgate.yaml");
    let upstream = nginx.addr;
    let serve = (0..5)
        .find_map(|_| {
            let (p, a) = (common::free_port(), common::free_port());
            std::fs::write(&path, config(p, a, upstream)).unwrap();
            Serve::spawn_with(&path, p, a, Some("debug"))
        })
        .expect("tollgate serve would not start");
    Setup { nginx, serve, dir, media, app, http: Http::h1() }
}

impl Setup {
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.http.get_with(&self.serve.url(target), headers).await
    }
}

fn exp(ttl: i64) -> u64 {
    (tollgate::auth::unix_now() as i64 + ttl) as u64
}

/// The signature of a signed URL or the token segment's last field.
fn sig_of(url: &str) -> String {
    match url.split_once("sig=") {
        Some((_, sig)) => sig.split('&').next().unwrap().to_owned(),
        None => url.split("/tg~").nth(1).unwrap().split('/').next().unwrap().rsplit('~').next().unwrap().to_owned(),
    }
}

/// Row 3: a path token is a replayable prefix grant; tollgate's own access
/// log line held it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_token_never_reaches_tollgates_own_log() {
    let s = setup();
    let url = common::sign_path(&s.media, "/media/u1/video/index.m3u8", 600, None);
    let r = s.get(&url, &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "#EXTM3U\n"));
    let sig = sig_of(&url);
    let token = url.split('/').find(|seg| seg.starts_with("tg~")).unwrap().to_owned();
    let logs = s.serve.wait_for_log("/media/u1/video/");
    assert!(!logs.contains(&sig) && !logs.contains(&token), "the path token reached tollgate's log:\n{logs}");
    assert!(logs.contains("/media/u1/video/tg~REDACTED/index.m3u8"), "the access line names the file:\n{logs}");
}

/// Row 4: the `/media/u1/` grant cookie, sent by the browser to a nested
/// public route, reached nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_cookies_never_reach_the_upstream_of_a_public_route() {
    let s = setup();
    let url = common::sign(&s.media, "GET", "/media/u1/page.txt", 600, None, Some("/media/u1/"));
    let r = s.get(&url, &NAVIGATE).await;
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let r = s.get("/media/u1/pub/p.txt", &[("cookie", &format!("{cookie}; theme=dark"))]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "public"));
    let line = s.nginx.wait_for_line("GET /media/u1/pub/p.txt");
    assert!(line.contains("cookie=theme=dark|"), "other cookies pass, the grant does not: {line}");
    assert!(!s.nginx.settled_log().contains(cookie.split_once('=').unwrap().1), "{}", s.nginx.access_log());
}

/// Row 5: nginx's directory redirect names its own address; tollgate put
/// the token back into it, a live grant in a URL on the internal address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_redirect_keeps_the_token_on_the_requests_origin_only() {
    let s = setup();
    let url = common::sign_path(&s.media, "/media/u1/video/sub", 600, Some("/media/u1/video/"));
    let r = s.get(&url, &[]).await;
    assert_eq!(r.status, 301, "{}", r.text());
    let location = r.header("location").unwrap();
    assert_eq!(location, format!("{url}/"), "a relative redirect on the request's origin, token kept");
    assert!(!location.contains(&s.nginx.addr.to_string()));
    let followed = s.get(location, &[]).await;
    assert_eq!((followed.status, followed.text().as_str()), (200, "sub"));

    // An upstream redirect to another host never gets the token.
    let away = common::sign_path(&s.media, "/media/u1/video/away", 600, Some("/media/u1/video/"));
    let r = s.get(&away, &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://other.example/media/u1/video/x.txt"));
}

/// Row 6: the README's service-worker pattern adds the app's bearer token
/// to every image request; routes that do not verify it forwarded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_bearer_token_never_reaches_the_file_server() {
    let s = setup();
    let bearer = format!("Bearer {}", common::hs256(&s.app, serde_json::json!({"sub": "alice"})));
    let token_url = common::sign_path(&s.media, "/pt/u1/x.txt", 600, None);
    for (target, body) in [(token_url.as_str(), "pt"), ("/public/x.txt", "public")] {
        let r = s.get(target, &[("authorization", &bearer)]).await;
        assert_eq!((r.status, r.text().as_str()), (200, body), "{target}");
    }
    let log = s.nginx.settled_log();
    assert!(!log.contains(&bearer[7..]), "a bearer token reached nginx:\n{log}");
    // A route whose upstream checks `Authorization` itself opts in.
    let r = s.get("/basic/x.txt", &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(r.status, 200);
    assert!(s.nginx.wait_for_line("GET /basic/x.txt").contains("auth=Basic dXNlcjpwYXNz|"));
}

/// One request per credential kind and carrier, accepted and refused: no
/// byte string of any credential appears in tollgate's output (debug
/// level) or in nginx's access log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_of_any_kind_reaches_a_log() {
    let s = setup();
    let origin = "https://media.example.com";
    let mut secrets: Vec<String> = Vec::new();
    let mut sent = 0;
    let mut check = async |target: &str, headers: &[(&str, &str)], status: u16, secret: &str| {
        let r = s.get(target, headers).await;
        assert_eq!(r.status, status, "{target} {headers:?}: {}", r.text());
        assert!(secret.len() >= 16, "{secret:?} is too short to search for");
        secrets.push(secret.to_owned());
        sent += 1;
    };

    let one = common::sign(&s.media, "GET", "/media/u1/page.txt", 600, None, None);
    check(&one, &[], 200, &sig_of(&one)).await;
    let prefix = common::sign(&s.media, "GET", "/media/u1/page.txt", 600, None, Some("/media/u1/"));
    check(&prefix, &[], 200, &sig_of(&prefix)).await;
    let token = common::sign_path(&s.media, "/media/u1/video/index.m3u8", 600, None);
    check(&token, &[], 200, &sig_of(&token)).await;
    let expired = common::sign_path(&s.media, "/media/u1/video/index.m3u8", -60, None);
    check(&expired, &[], 403, &sig_of(&expired)).await;
    let forged = token.replace(&sig_of(&token), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    check(&forged, &[], 403, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;

    let r = s.get(&prefix, &NAVIGATE).await;
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let value = cookie.split_once('=').unwrap().1.to_owned();
    check("/media/u1/page.txt", &[("cookie", &cookie)], 200, value.rsplit('.').next().unwrap()).await;

    let jwt = common::hs256(&s.app, serde_json::json!({"path": "/jwt/x.txt"}));
    let jwt_sig = jwt.rsplit('.').next().unwrap().to_owned();
    check("/jwt/x.txt", &[("authorization", &format!("Bearer {jwt}"))], 200, &jwt_sig).await;
    check(&format!("/jwt/x.txt?token={jwt}"), &[], 200, &jwt_sig).await;
    check("/jwt/x.txt", &[("cookie", &format!("tollgate_token={jwt}"))], 200, &jwt_sig).await;
    let bad = common::hs256(b"not-the-key-not-the-key-not-the-key!", serde_json::json!({"path": "/jwt/x.txt"}));
    check("/jwt/x.txt", &[("authorization", &format!("Bearer {bad}"))], 401, bad.rsplit('.').next().unwrap()).await;
    let bearer = format!("Bearer {}", common::hs256(&s.app, serde_json::json!({"sub": "bob"})));
    check("/public/x.txt", &[("authorization", &bearer)], 200, bearer.rsplit('.').next().unwrap()).await;

    let pem = s.read("keys/rsa.pem");
    let cf = |cookies: bool| {
        let request = tollgate::auth::kinds::cloudfront::SignRequest {
            url: "https://media.example.com/cf/x.txt",
            key_pair_id: "KTEST",
            expires: exp(600),
            resource: None,
            ip: None,
            not_before: None,
        };
        tollgate::auth::kinds::cloudfront::sign_cloudfront(&tollgate::auth::kinds::cloudfront::CloudFrontSign {
            private_key_pem: &pem,
            request,
            cookies,
        })
        .unwrap()
    };
    let cf_url = cf(false);
    let cf_sig = cf_url.split("Signature=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    check(signers::target(&cf_url), &[], 200, &cf_sig).await;
    let cf_cookies = cf(true);
    let cf_cookie_sig = cf_cookies.split("CloudFront-Signature=").nth(1).unwrap().split(';').next().unwrap().to_owned();
    check("/cf/x.txt", &[("cookie", &cf_cookies)], 200, &cf_cookie_sig).await;

    let akamai =
        tollgate::auth::keys::decode_secret(s.read("akamai.hex"), tollgate::auth::keys::SecretEncoding::Hex).unwrap();
    let ea = tollgate::auth::kinds::edgeauth::sign_edgeauth(
        &akamai,
        &tollgate::auth::kinds::edgeauth::EdgeAuthSign {
            target: "/ea/x.txt",
            algorithm: tollgate::auth::kinds::edgeauth::Algorithm::Sha256,
            salt: None,
            token_name: "__token__",
            ip: None,
            start: None,
            exp: exp(600),
            acl: Some("/ea/*"),
        },
    )
    .unwrap();
    let ea_token = ea.split("__token__=").nth(1).unwrap().to_owned();
    let ea_hmac = ea_token.split("hmac=").nth(1).unwrap().to_owned();
    check(&ea, &[], 200, &ea_hmac).await;
    let ea_raw = percent_encoding::percent_decode_str(&ea_token).decode_utf8().unwrap().into_owned();
    check("/ea/x.txt", &[("cookie", &format!("__token__={ea_raw}"))], 200, &ea_hmac).await;
    check("/ea/x.txt", &[("__token__", &ea_raw)], 200, &ea_hmac).await;

    let gcdn =
        tollgate::auth::keys::decode_secret(s.read("gcdn.b64"), tollgate::auth::keys::SecretEncoding::Base64).unwrap();
    let cdn = |cookie: bool| {
        let req = tollgate::auth::kinds::cloud_cdn::CloudCdnSign {
            url: &format!("{origin}/cdn/x.txt"),
            key_name: "test-key",
            expires: exp(600),
            url_prefix: cookie.then_some("https://media.example.com/cdn/"),
            cookie,
        };
        tollgate::auth::kinds::cloud_cdn::sign_cloud_cdn(&gcdn, &req).unwrap()
    };
    let cdn_url = cdn(false);
    check(signers::target(&cdn_url), &[], 200, cdn_url.split("Signature=").nth(1).unwrap()).await;
    let cdn_cookie = cdn(true);
    check("/cdn/x.txt", &[("cookie", &cdn_cookie)], 200, cdn_cookie.split("Signature=").nth(1).unwrap()).await;

    let sl = tollgate::auth::kinds::secure_link::sign_secure_link(
        &s.read("sl.txt"),
        &tollgate::auth::kinds::secure_link::SecureLinkSign {
            target: "/sl/x.txt",
            md5: "$secure_link_expires$uri $secret",
            expires: exp(600),
            remote_addr: None,
            hash_param: "md5",
            expires_param: "expires",
        },
    )
    .unwrap();
    check(&sl, &[], 200, sl.split("md5=").nth(1).unwrap().split('&').next().unwrap()).await;

    let nginx_log = s.nginx.settled_log();
    let ours = s.serve.wait_for_log_lines(sent);
    assert!(ours.contains("level") || ours.contains("INFO"), "tollgate logged nothing:\n{ours}");
    for secret in &secrets {
        assert!(!ours.contains(secret.as_str()), "{secret} reached tollgate's log:\n{ours}");
        assert!(!nginx_log.contains(secret.as_str()), "{secret} reached nginx's log:\n{nginx_log}");
    }
}
