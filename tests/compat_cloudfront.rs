//! CloudFront signed URLs and cookies made by the real signers — PyPI
//! `botocore` (`CloudFrontSigner`, canned and custom policies) and npm
//! `@aws-sdk/cloudfront-signer` (`getSignedUrl`, `getSignedCookies`) —
//! verified by tollgate in front of a real nginx, whose own access log shows
//! what arrived. Keys are generated at test time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::signers::{self, target};
use common::{Http, Nginx, Tollgate};
use serde_json::json;

const ORIGIN: &str = "https://media.example.com";
const RSA_ID: &str = "K2JCJMDEHXQW5F";
const EC_ID: &str = "KECDSAP256TEST";

const FILES: &[(&str, &[u8])] = &[
    ("media/a.txt", b"file a"),
    ("media/v/1.txt", b"v1"),
    ("media/v/12.txt", b"v12"),
    ("media/v/deep/2.txt", b"deep"),
];

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    http: Http,
    dir: tempfile::TempDir,
}

fn yaml(nginx: &Nginx, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  cf-rsa: {{ public_key_file: rsa.pub.pem, kid: {RSA_ID} }}
  cf-ec: {{ public_key_file: ec.pub.pem, kid: {EC_ID} }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    auth:
      cloudfront:
        keys: [cf-rsa, cf-ec]
        origins: ["https://d111111abcdef8.cloudfront.net", "{ORIGIN}"]
log: {{ access_log: false }}
{extra}
"#,
        addr = nginx.addr
    )
}

async fn setup_with(extra: &str) -> Setup {
    let nginx = Nginx::start(FILES);
    let dir = tempfile::tempdir().unwrap();
    signers::write_keys(dir.path());
    let tg = Tollgate::start(&yaml(&nginx, extra), dir.path()).await;
    Setup { nginx, tg, http: Http::h1(), dir }
}

async fn setup() -> Setup {
    setup_with("").await
}

impl Setup {
    fn key(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// botocore's signed URL (canned, or custom with `options`).
    fn boto(&self, key: &str, id: &str, url: &str, ttl: i64, options: serde_json::Value) -> String {
        let expires = (tollgate::auth::unix_now() as i64 + ttl).to_string();
        let key_path = self.key(key);
        let options_text = options.to_string();
        let mut args = vec!["cloudfront", key_path.as_str(), id, url, expires.as_str()];
        if !options.as_object().is_some_and(|o| o.is_empty()) {
            args.push(&options_text);
        }
        signers::py(&args)
    }

    async fn get(&self, url: &str) -> common::Resp {
        self.http.get(&self.tg.url(target(url))).await
    }

    async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> common::Resp {
        self.http.get_with(&self.tg.url(target(url)), headers).await
    }

    /// The line nginx logged for a request (waiting for nginx to write it).
    fn logged(&self, request_line: &str) -> String {
        self.nginx.wait_for_line(&format!("{request_line} HTTP/1.1|"))
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(&self.tg.admin_url("/metrics")).await.text();
        common::metrics(&text).get(name).copied().unwrap_or(0.0)
    }
}

fn no_credential(line: &str) {
    for part in ["Expires", "Signature", "Key-Pair-Id", "Policy", "Hash-Algorithm", "CloudFront-"] {
        assert!(!line.contains(part), "{part} reached nginx: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_canned_url_is_verified_and_stripped() {
    let s = setup().await;
    let url = s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt?w=200&format=web+p&a=%7e"), 300, json!({}));
    assert!(url.contains("&Expires=") && url.contains("&Key-Pair-Id="), "{url}");
    let r = s.get(&url).await;
    assert_eq!((r.status, r.text().as_str()), (200, "file a"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    no_credential(&s.logged("GET /media/a.txt?w=200&format=web+p&a=%7e"));

    // The distribution's own domain is a configured origin too.
    let url = s.boto("rsa.pem", RSA_ID, "https://d111111abcdef8.cloudfront.net/media/a.txt", 300, json!({}));
    assert_eq!(s.get(&url).await.status, 200);
    s.logged("GET /media/a.txt");
    no_credential(&s.nginx.settled_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_canned_refusals_name_the_check() {
    let s = setup().await;
    let before = s.nginx.line_count();
    let url = |ttl| s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt?w=1"), ttl, json!({}));
    let r = s.get(&url(-10)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    let good = url(300);
    let r = s.get(&good.replace("/media/a.txt", "/media/v/1.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "another path");
    let r = s.get(&good.replace("w=1", "w=2")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "another query");
    let r = s.get(&format!("{good}&response-content-type=text/html")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "an added parameter");
    let unknown = s.boto("rsa.pem", "KUNKNOWN", &format!("{ORIGIN}/media/a.txt"), 300, json!({}));
    let r = s.get(&unknown).await;
    assert_eq!((r.status, r.code().as_str()), (403, "unknown_key"));
    let r = s.get(&format!("{good}&Hash-Algorithm=MD5")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed"));
    let r = s.get(&format!("{good}&Signature=x")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed"), "a credential parameter twice");
    let r = s.get(&format!("{ORIGIN}/media/a.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (401, "missing_credential"));
    // SHA-1 signature declared as SHA-256: the digest is bound.
    let r = s.get(&format!("{good}&Hash-Algorithm=SHA256")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    assert_eq!(s.nginx.line_count(), before, "nothing refused reached nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_custom_policy_wildcards_ip_and_start() {
    let s = setup().await;
    let now = tollgate::auth::unix_now();
    let star = json!({"resource": format!("{ORIGIN}/media/v/*"), "ip": "127.0.0.1"});
    let url = s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/v/1.txt"), 300, star);
    assert!(url.contains("Policy="), "{url}");
    assert_eq!(s.get(&url).await.text(), "v1");
    let deeper = url.replace("/media/v/1.txt", "/media/v/deep/2.txt");
    assert_eq!(s.get(&deeper).await.text(), "deep", "* crosses slashes, as CloudFront's does");
    let r = s.get(&url.replace("/media/v/1.txt", "/media/a.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));

    let one_char = json!({"resource": format!("{ORIGIN}/media/v/?.txt")});
    let url = s.boto("ec.pem", EC_ID, &format!("{ORIGIN}/media/v/1.txt"), 300, one_char);
    assert_eq!(s.get(&url).await.text(), "v1");
    let r = s.get(&url.replace("/media/v/1.txt", "/media/v/12.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"), "? is one character");

    let elsewhere = json!({"ip": "10.0.0.0/8"});
    let r = s.get(&s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, elsewhere)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"), "IpAddress names the check that failed");
    let later = json!({"not_before": now + 3600});
    let r = s.get(&s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 7200, later)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "not_yet_valid"));
    let started = json!({"not_before": now - 60, "ip": "127.0.0.0/8"});
    assert_eq!(s.get(&s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, started)).await.status, 200);
    let expired = json!({"resource": format!("{ORIGIN}/media/*")});
    let r = s.get(&s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), -5, expired)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    no_credential(&s.nginx.settled_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_with_an_ecdsa_p256_key() {
    let s = setup().await;
    let url = s.boto("ec.pem", EC_ID, &format!("{ORIGIN}/media/a.txt"), 300, json!({}));
    assert_eq!(s.get(&url).await.text(), "file a");
    // The EC key's ID with the RSA key's signature, and the reverse.
    let rsa = s.boto("rsa.pem", EC_ID, &format!("{ORIGIN}/media/a.txt"), 300, json!({}));
    assert_eq!(s.get(&rsa).await.code(), "bad_signature");
    let ec = s.boto("ec.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, json!({}));
    assert_eq!(s.get(&ec).await.code(), "bad_signature");
}

fn in_secs(secs: i64) -> String {
    let t = tollgate::auth::unix_now() as i64 + secs;
    // Node's Date takes milliseconds as a number; as a string, an ISO date.
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_js_get_signed_url() {
    let s = setup().await;
    let sign = |extra: serde_json::Value| {
        let mut input = json!({
            "url": format!("{ORIGIN}/media/a.txt?x=%7E1"),
            "keyPairId": RSA_ID,
            "privateKey": s.key("rsa.pem"),
            "dateLessThan": in_secs(300),
        });
        input.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        signers::node("cloudfront-url", &input)
    };
    let canned = sign(json!({}));
    assert!(canned.contains("Expires=") && !canned.contains("Hash-Algorithm"), "{canned}");
    assert_eq!(s.get(&canned).await.text(), "file a");
    no_credential(&s.logged("GET /media/a.txt?x=%7E1"));

    let sha256 = sign(json!({"algorithm": "SHA256"}));
    assert!(sha256.contains("Hash-Algorithm=SHA256"), "{sha256}");
    assert_eq!(s.get(&sha256).await.status, 200);

    let custom = sign(json!({"ipAddress": "127.0.0.1", "dateGreaterThan": in_secs(-60)}));
    assert!(custom.contains("Policy="), "{custom}");
    assert_eq!(s.get(&custom).await.status, 200);
    let other_ip = sign(json!({"ipAddress": "192.0.2.1/32"}));
    assert_eq!(s.get(&other_ip).await.code(), "claim_mismatch");

    let ec = signers::node(
        "cloudfront-url",
        &json!({"url": format!("{ORIGIN}/media/a.txt"), "keyPairId": EC_ID, "privateKey": s.key("ec.pem"),
                "dateLessThan": in_secs(300), "algorithm": "SHA256"}),
    );
    assert_eq!(s.get(&ec).await.status, 200, "Node signs with the EC key's ECDSA when given one");
    let expired = sign(json!({"dateLessThan": in_secs(-30)}));
    assert_eq!(s.get(&expired).await.code(), "expired");
    no_credential(&s.nginx.settled_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_js_get_signed_cookies() {
    let s = setup().await;
    let cookies = |input: serde_json::Value| -> String {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&signers::node("cloudfront-cookies", &input)).unwrap();
        let mut pairs: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        pairs.push("theme=dark".into());
        pairs.join("; ")
    };
    let base = |extra: serde_json::Value| {
        let mut input = json!({"keyPairId": RSA_ID, "privateKey": s.key("rsa.pem")});
        input.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        input
    };
    let canned = cookies(base(json!({"url": format!("{ORIGIN}/media/a.txt"), "dateLessThan": in_secs(300)})));
    assert!(canned.contains("CloudFront-Expires="), "{canned}");
    let r = s.get_with(&format!("{ORIGIN}/media/a.txt"), &[("cookie", &canned)]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "file a"));
    no_credential(&s.nginx.wait_for_line("|cookie=theme=dark|"));
    let r = s.get_with(&format!("{ORIGIN}/media/v/1.txt"), &[("cookie", &canned)]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "a canned cookie grants its URL only");

    let exp = tollgate::auth::unix_now() + 300;
    let policy = format!(
        r#"{{"Statement":[{{"Resource":"{ORIGIN}/media/v/*","Condition":{{"DateLessThan":{{"AWS:EpochTime":{exp}}}}}}}]}}"#
    );
    let custom = cookies(base(json!({"policy": policy, "algorithm": "SHA256"})));
    assert!(custom.contains("CloudFront-Policy=") && custom.contains("CloudFront-Hash-Algorithm=SHA256"), "{custom}");
    for path in ["/media/v/1.txt", "/media/v/deep/2.txt"] {
        let r = s.get_with(&format!("{ORIGIN}{path}"), &[("cookie", &custom)]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = s.get_with(&format!("{ORIGIN}/media/a.txt"), &[("cookie", &custom)]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
    let log = s.nginx.settled_log();
    no_credential(&log);
    assert_eq!(log.matches("|cookie=theme=dark|").count(), 3, "other cookies are kept:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_origin_is_the_configured_one_not_the_host_header() {
    let s = setup().await;
    // Behind a Service the request names tollgate's own host; the link
    // names the public origin.
    let url = s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, json!({}));
    let r = s.get_with(&url, &[("host", "tollgate.media.svc.cluster.local:8080")]).await;
    assert_eq!(r.status, 200);
    // A link for an origin the route does not name fails, whatever Host says.
    let foreign = s.boto("rsa.pem", RSA_ID, "https://other.example.net/media/a.txt", 300, json!({}));
    for host in ["other.example.net", "media.example.com"] {
        let r = s.get_with(&foreign, &[("host", host)]).await;
        assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "Host: {host}");
    }
    let wildcard = json!({"resource": "https://other.example.net/*"});
    let r = s.get(&s.boto("rsa.pem", RSA_ID, "https://other.example.net/media/a.txt", 300, wildcard)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
    // The scheme is part of the origin.
    let http = s.boto("rsa.pem", RSA_ID, "http://media.example.com/media/a.txt", 300, json!({}));
    assert_eq!(s.get(&http).await.code(), "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_cache_keys_on_the_whole_credential() {
    let s = setup().await;
    let hits = r#"tollgate_verify_cache_total{result="hit"}"#;
    let misses = r#"tollgate_verify_cache_total{result="miss"}"#;
    let star = json!({"resource": format!("{ORIGIN}/media/v/*")});
    let url = s.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/v/1.txt"), 300, star);
    assert_eq!(s.get(&url).await.status, 200);
    let (h0, m0) = (s.metric(hits).await, s.metric(misses).await);
    assert_eq!(s.get(&url).await.status, 200);
    assert_eq!((s.metric(hits).await, s.metric(misses).await), (h0 + 1.0, m0), "the same request is a hit");
    // Every field and the resource are in the key: none of these can ride
    // on the cached verdict.
    let policy_at = url.find("Policy=").unwrap() + 7;
    let mut tampered_policy = url.clone();
    tampered_policy.replace_range(policy_at..policy_at + 1, "f");
    let variants = [
        (url.replace("Key-Pair-Id=", "Key-Pair-Id=X"), "unknown_key"),
        (format!("{url}&Hash-Algorithm=SHA256"), "bad_signature"),
        (tampered_policy, "bad_signature"),
        (url.replace("Signature=", "Signature=AA"), "bad_signature"),
    ];
    for (variant, code) in variants {
        let r = s.get(&variant).await;
        assert_eq!((r.status, r.code().as_str()), (403, code), "{variant}");
    }
    assert_eq!(s.metric(hits).await, h0 + 1.0, "no tampered credential was answered from the cache");
    let other_path = url.replace("/media/v/1.txt", "/media/v/12.txt");
    assert_eq!(s.get(&other_path).await.text(), "v12", "another path is its own entry");
    assert_eq!(s.metric(misses).await, m0 + 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_bound_policy_uses_the_trusted_forwarded_address() {
    let direct = setup().await;
    let proxied = setup_with("trust_forwarded_headers: true").await;
    let bound = json!({"ip": "203.0.113.7"});
    let url = direct.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, bound.clone());
    // Without trust, the address is the connection's (127.0.0.1): a client
    // cannot claim another with a header.
    let r = direct.get_with(&url, &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"));
    let url = proxied.boto("rsa.pem", RSA_ID, &format!("{ORIGIN}/media/a.txt"), 300, bound);
    let r = proxied.get_with(&url, &[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]).await;
    assert_eq!(r.status, 200, "the address the trusted proxy appended: {}", r.text());
    let r = proxied.get_with(&url, &[("x-forwarded-for", "203.0.113.7, 198.51.100.1")]).await;
    assert_eq!(r.code(), "claim_mismatch", "a client-prepended address is not the client's");
    assert_eq!(proxied.get(&url).await.code(), "claim_mismatch", "no header: the peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tollgate_sign_makes_cloudfront_links_and_cookies() {
    let s = setup().await;
    let exp = tollgate::auth::unix_now() + 300;
    for (key, id) in [("rsa.pem", RSA_ID), ("ec.pem", EC_ID)] {
        let pem = std::fs::read(s.dir.path().join(key)).unwrap();
        let sign = |resource: Option<&'static str>, cookies: bool| {
            let request = tollgate::auth::kinds::cloudfront::SignRequest {
                url: "https://media.example.com/media/v/1.txt?q=1",
                key_pair_id: id,
                expires: exp,
                resource,
                ..Default::default()
            };
            tollgate::auth::kinds::cloudfront::sign_cloudfront(&tollgate::auth::kinds::cloudfront::CloudFrontSign {
                private_key_pem: &pem,
                request,
                cookies,
            })
            .unwrap()
        };
        let url = sign(None, false);
        assert!(url.contains("Hash-Algorithm=SHA256"), "{url}");
        assert_eq!(s.get(&url).await.text(), "v1", "{key}");
        s.logged("GET /media/v/1.txt?q=1");
        let cookie = sign(Some("https://media.example.com/media/v/*"), true);
        let r = s.get_with(&format!("{ORIGIN}/media/v/12.txt"), &[("cookie", &cookie)]).await;
        assert_eq!(r.text(), "v12", "{key}");
    }
}
