//! Google Cloud CDN signed URLs and cookies. No package signs them, so the
//! links come from `tests/py/cdn_sign.py`, which follows the algorithm of
//! Google's published Python sample (HMAC-SHA1, base64url with padding);
//! tollgate verifies them in front of a real nginx. Keys are generated per
//! test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::signers::{self, target};
use common::{Http, Nginx, Tollgate};

const ORIGIN: &str = "https://media.example.com";
const FILES: &[(&str, &[u8])] =
    &[("cdn/a.txt", b"a"), ("cdn/v/1.ts", b"v1"), ("cdn/v/deep/2.ts", b"v2"), ("cdn/v10/x.ts", b"v10")];

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    http: Http,
    /// The key as `gcloud` writes it: base64url with padding.
    key: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let nginx = Nginx::start(FILES);
    let dir = tempfile::tempdir().unwrap();
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let key = base64::engine::general_purpose::URL_SAFE.encode(raw);
    common::write_file(dir.path(), "cdn.key", format!("{key}\n").as_bytes());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  cdn-key: {{ cloud_cdn: {{ secret_file: cdn.key }}, kid: my-key }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - name: cdn
    prefix: /cdn/
    upstream: nginx
    auth:
      cloud_cdn: {{ keys: [cdn-key], origins: ["{ORIGIN}"] }}
log: {{ access_log: false }}
"#,
        addr = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, http: Http::h1(), key, _dir: dir }
}

impl Setup {
    fn exp(ttl: i64) -> String {
        (tollgate::auth::unix_now() as i64 + ttl).to_string()
    }

    fn url(&self, url: &str, ttl: i64, prefix: Option<&str>) -> String {
        let exp = Self::exp(ttl);
        let mut args = vec!["cloud_cdn", url, "my-key", &self.key, &exp];
        args.extend(prefix);
        signers::py(&args)
    }

    fn cookie(&self, prefix: &str, ttl: i64) -> String {
        let exp = Self::exp(ttl);
        signers::py(&["cloud_cdn_cookie", prefix, "my-key", &self.key, &exp])
    }

    async fn get(&self, url: &str) -> common::Resp {
        self.http.get(&self.tg.url(target(url))).await
    }

    fn no_credential(&self) {
        let log = self.nginx.settled_log();
        for part in ["Expires=", "KeyName=", "Signature=", "URLPrefix=", "Cloud-CDN-Cookie"] {
            assert!(!log.contains(part), "{part} reached nginx:\n{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_are_verified_and_stripped() {
    let s = setup().await;
    let url = s.url(&format!("{ORIGIN}/cdn/a.txt?w=1&x=%7e+y"), 300, None);
    assert!(url.contains("&Expires=") && url.ends_with('='), "Google's sample pads the signature: {url}");
    let r = s.get(&url).await;
    assert_eq!((r.status, r.text().as_str()), (200, "a"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    s.nginx.wait_for_line("GET /cdn/a.txt?w=1&x=%7e+y HTTP/1.1|");
    let bare = s.url(&format!("{ORIGIN}/cdn/a.txt"), 300, None);
    assert_eq!(s.get(&bare).await.text(), "a");
    s.nginx.wait_for_line("GET /cdn/a.txt HTTP/1.1|");

    let cases = [
        (s.url(&format!("{ORIGIN}/cdn/a.txt"), -5, None), 403, "expired"),
        (bare.replace("/cdn/a.txt", "/cdn/v/1.ts"), 403, "bad_signature"),
        (format!("{bare}&response-content-type=text/html"), 403, "bad_signature"),
        (url.replace("w=1", "w=2"), 403, "bad_signature"),
        (bare.replace("KeyName=my-key", "KeyName=other"), 403, "unknown_key"),
        (s.url("https://other.example.com/cdn/a.txt", 300, None), 403, "bad_signature"),
        (bare.replace("Expires=", "Expires=0"), 400, "malformed"),
        (format!("{bare}&KeyName=my-key"), 400, "malformed"),
    ];
    for (link, status, code) in cases {
        let r = s.get(&link).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{link}");
    }
    s.no_credential();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_prefix_signatures_grant_the_prefix() {
    let s = setup().await;
    let url = s.url(&format!("{ORIGIN}/cdn/v/1.ts?seg=1"), 300, Some(&format!("{ORIGIN}/cdn/v/")));
    assert!(url.contains("URLPrefix="), "{url}");
    assert_eq!(s.get(&url).await.text(), "v1");
    s.nginx.wait_for_line("GET /cdn/v/1.ts?seg=1 HTTP/1.1|");
    assert_eq!(s.get(&url.replace("/cdn/v/1.ts", "/cdn/v/deep/2.ts")).await.text(), "v2");
    let r = s.get(&url.replace("/cdn/v/1.ts", "/cdn/a.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
    // A prefix is text, as for Cloud CDN: without its slash it also grants /v10/.
    let loose = s.url(&format!("{ORIGIN}/cdn/v/1.ts"), 300, Some(&format!("{ORIGIN}/cdn/v")));
    assert_eq!(s.get(&loose.replace("/cdn/v/1.ts", "/cdn/v10/x.ts")).await.text(), "v10");
    let foreign = s.url(&format!("{ORIGIN}/cdn/v/1.ts"), 300, Some("https://other.example.com/cdn/"));
    assert_eq!(s.get(&foreign).await.code(), "wrong_resource");
    s.no_credential();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_cookies_grant_the_prefix_and_are_stripped() {
    let s = setup().await;
    let value = s.cookie(&format!("{ORIGIN}/cdn/v/"), 300);
    let cookie = format!("a=1; Cloud-CDN-Cookie={value}; b=2");
    let get = |path: &str| {
        let url = s.tg.url(path);
        let http = &s.http;
        let cookie = cookie.clone();
        async move { http.get_with(&url, &[("cookie", &cookie)]).await }
    };
    assert_eq!(get("/cdn/v/deep/2.ts").await.text(), "v2");
    s.nginx.wait_for_line("|cookie=a=1; b=2|");
    let r = get("/cdn/a.txt").await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
    let expired = format!("Cloud-CDN-Cookie={}", s.cookie(&format!("{ORIGIN}/cdn/v/"), -5));
    let r = s.http.get_with(&s.tg.url("/cdn/v/1.ts"), &[("cookie", &expired)]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    s.no_credential();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tollgate_sign_cloud_cdn_urls_and_cookies() {
    let s = setup().await;
    let key = base64::engine::general_purpose::URL_SAFE.decode(&s.key).unwrap();
    let exp = tollgate::auth::unix_now() + 60;
    let sign = |url: &str, url_prefix: Option<&str>, cookie: bool| {
        let req = tollgate::auth::kinds::cloud_cdn::CloudCdnSign {
            url,
            key_name: "my-key",
            expires: exp,
            url_prefix,
            cookie,
        };
        tollgate::auth::kinds::cloud_cdn::sign_cloud_cdn(&key, &req).unwrap()
    };
    // The same bytes as the test helper's (Google's) algorithm.
    let ours = sign(&format!("{ORIGIN}/cdn/a.txt?q=1"), None, false);
    let theirs = signers::py(&["cloud_cdn", &format!("{ORIGIN}/cdn/a.txt?q=1"), "my-key", &s.key, &exp.to_string()]);
    assert_eq!(ours, theirs);
    assert_eq!(s.get(&ours).await.text(), "a");
    let prefix = format!("{ORIGIN}/cdn/v/");
    assert_eq!(s.get(&sign(&format!("{ORIGIN}/cdn/v/1.ts"), Some(&prefix), false)).await.text(), "v1");
    let cookie = sign(&format!("{ORIGIN}/cdn/v/1.ts"), Some(&prefix), true);
    let r = s.http.get_with(&s.tg.url("/cdn/v/1.ts"), &[("cookie", &cookie)]).await;
    assert_eq!(r.text(), "v1");
}
