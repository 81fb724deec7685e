//! Links bound to a client address or range (the signed `ip` parameter,
//! docs/reference.md: Client binding): the vectors verify from an address
//! inside the range and are refused from one outside, `tollgate sign --ip`
//! writes exactly the vector's link, the parameter cannot be changed
//! without breaking the signature, and the upstream never sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Http, Nginx, Tollgate};
use serde_json::Value;

async fn setup(secret: &[u8], trust_forwarded: bool) -> (Nginx, Tollgate, tempfile::TempDir) {
    let nginx = Nginx::start(&[("media/cat.jpg", b"cat")]);
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "media.key", secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  files: {{ url: "http://{}" }}
trust_forwarded_headers: {trust_forwarded}
routes:
  - {{ name: media, prefix: /media/, upstream: files, auth: {{ signed_url: {{ keys: [media] }} }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    (nginx, tg, dir)
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(common::repo().join("tests/vectors/signed-url-ip.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_verify_inside_their_range_and_are_refused_outside() {
    let http = Http::h1();
    for v in vectors() {
        let secret = v["secret"].as_str().unwrap().as_bytes().to_vec();
        let (nginx, tg, _dir) = setup(&secret, true).await;
        let target = v["request_target"].as_str().unwrap();
        let from = |addr: &str| [("x-forwarded-for", addr.to_owned())];
        let allowed = from(v["client_allowed"].as_str().unwrap());
        let h: Vec<(&str, &str)> = allowed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http.get_with(&tg.url(target), &h).await;
        assert_eq!(r.status, 200, "{}: {}", v["name"], r.text());
        let refused = from(v["client_refused"].as_str().unwrap());
        let h: Vec<(&str, &str)> = refused.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http.get_with(&tg.url(target), &h).await;
        assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"), "{}", v["name"]);
        // The binding cannot be widened: another range breaks the signature.
        let widened = target.replace(
            &format!("ip={}", target.split("ip=").nth(1).unwrap().split('&').next().unwrap()),
            "ip=0.0.0.0%2F0",
        );
        let r = http.get_with(&tg.url(&widened), &h).await;
        assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "{}: {widened}", v["name"]);
        let log = nginx.settled_log();
        assert!(log.contains(&format!("GET {} HTTP/1.1", v["forwarded_target"].as_str().unwrap())), "{log}");
        assert!(!log.contains("ip=") && !log.contains("sig="), "{log}");
    }
}

#[test]
fn sign_with_ip_writes_the_vectors_links() {
    for v in vectors() {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["sign", "--key-env", "VECTOR_KEY", "--exp", "1893456000", "--ip", v["ip"].as_str().unwrap()])
            .arg("/media/cat.jpg")
            .env("VECTOR_KEY", v["secret"].as_str().unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            v["request_target"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["sign", "--key-env", "VECTOR_KEY", "--ip", "203.0.113.9/24", "/media/cat.jpg"])
        .env("VECTOR_KEY", "tollgate-test-vector-secret-0123456789abcdef")
        .output()
        .unwrap();
    assert!(!out.status.success(), "host bits set: refused");
}

/// Without a trusted proxy, the binding is to the connection's address:
/// clients on other loopback networks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_address_is_checked_without_a_trusted_proxy() {
    let secret = common::random_secret();
    let (_nginx, tg, _dir) = setup(&secret, false).await;
    let target = tollgate::auth::kinds::signed_url::with_ip("/media/cat.jpg", "127.0.7.0/24").unwrap();
    let link = common::sign(&secret, "GET", &target, 300, None, None);
    let from = |addr: &str| Http::h1_from(addr.parse().unwrap());
    assert_eq!(from("127.0.7.2").get(&tg.url(&link)).await.status, 200);
    let r = from("127.0.8.2").get(&tg.url(&link)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"));
    // A forged X-Forwarded-For is not read without trust_forwarded_headers.
    let r = from("127.0.8.2").get_with(&tg.url(&link), &[("x-forwarded-for", "127.0.7.9")]).await;
    assert_eq!(r.status, 403);
}
