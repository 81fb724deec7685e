//! Tokens minted by the libraries backends really use — PyJWT and npm
//! `jsonwebtoken` — verified by tollgate in front of nginx. Keys are
//! generated at test time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Http, Nginx, Tollgate};

fn python() -> PathBuf {
    let venv = common::repo().join(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run `make test` (it creates the venv)", venv.display());
    venv
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run minter");
    assert!(out.status.success(), "minter failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn pyjwt(alg: &str, key: &Path, claims: &str) -> String {
    run(Command::new(python()).arg(common::repo().join("tests/py/mint.py")).args(["token", alg]).arg(key).arg(claims))
}

fn node_jwt(alg: &str, key: &Path, claims: &str, options: &str) -> String {
    let js = common::repo().join("tests/js");
    assert!(js.join("node_modules/jsonwebtoken").is_dir(), "npm jsonwebtoken is missing: run `make test`");
    let node = common::require("node", &["/usr/bin/node"]);
    run(Command::new(node).arg(js.join("mint.js")).args([alg]).arg(key).args([claims, options]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_pyjwt_and_node_jsonwebtoken() {
    let nginx =
        Nginx::start(&[("api/report.txt", b"report"), ("ec/x.txt", b"ec"), ("ed/x.txt", b"ed"), ("hs/x.txt", b"hs")]);
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(python()).arg(common::repo().join("tests/py/mint.py")).arg("keys").arg(dir.path()));
    let secret = common::random_secret();
    let secret_file = common::write_file(dir.path(), "hs.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  rsa: {{ public_key_file: rsa.pub.pem }}
  ec: {{ public_key_file: ec.pub.pem }}
  ed: {{ public_key_file: ed.pub.pem }}
  hs: {{ hmac: {{ secret_file: hs.key }} }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - name: api
    prefix: /api/
    upstream: nginx
    auth:
      jwt:
        keys: [rsa]
        audience: media
        issuer: https://backend.example
        require: {{ division: Honda }}
        max_lifetime: 1h
  - {{ name: ec, prefix: /ec/, upstream: nginx, auth: {{ jwt: {{ keys: [ec] }} }} }}
  - {{ name: ed, prefix: /ed/, upstream: nginx, auth: {{ jwt: {{ keys: [ed] }} }} }}
  - {{ name: hs, prefix: /hs/, upstream: nginx, auth: {{ jwt: {{ keys: [hs] }} }} }}
log: {{ access_log: false }}
"#,
        addr = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    let http = Http::h1();
    let get = |path: &'static str, token: String| {
        let http = &http;
        let url = tg.url(path);
        async move { http.get_with(&url, &[("authorization", &format!("Bearer {token}"))]).await }
    };
    let key = |name: &str| dir.path().join(name);

    // npm jsonwebtoken, RS256 with expiresIn '15m' and a custom claim.
    let options = r#"{"expiresIn":"15m","audience":"media","issuer":"https://backend.example"}"#;
    let honda = node_jwt("RS256", &key("rsa.pem"), r#"{"sub":"u1","division":"Honda"}"#, options);
    let r = get("/api/report.txt", honda).await;
    assert_eq!((r.status, r.text().as_str()), (200, "report"));
    let toyota = node_jwt("RS256", &key("rsa.pem"), r#"{"sub":"u1","division":"Toyota"}"#, options);
    let r = get("/api/report.txt", toyota).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"));
    let wrong_aud = node_jwt(
        "RS256",
        &key("rsa.pem"),
        r#"{"division":"Honda"}"#,
        r#"{"expiresIn":"15m","audience":"other","issuer":"https://backend.example"}"#,
    );
    assert_eq!(get("/api/report.txt", wrong_aud).await.code(), "claim_mismatch");
    let too_long = node_jwt(
        "RS256",
        &key("rsa.pem"),
        r#"{"division":"Honda"}"#,
        r#"{"expiresIn":"1d","audience":"media","issuer":"https://backend.example"}"#,
    );
    assert_eq!(get("/api/report.txt", too_long).await.code(), "claim_mismatch", "max_lifetime is 1h");
    let node_hs = node_jwt("HS256", &secret_file, r#"{"sub":"n"}"#, r#"{"expiresIn":"15m"}"#);
    assert_eq!(get("/hs/x.txt", node_hs).await.status, 200);

    // PyJWT with every key type.
    let py_claims = r#"{"sub":"u2","division":"Honda","aud":"media","iss":"https://backend.example"}"#;
    let r = get("/api/report.txt", pyjwt("RS256", &key("rsa.pem"), py_claims)).await;
    assert_eq!(r.status, 200, "PyJWT RS256: {}", r.text());
    assert_eq!(get("/ec/x.txt", pyjwt("ES256", &key("ec.pem"), "{}")).await.status, 200);
    assert_eq!(get("/ed/x.txt", pyjwt("EdDSA", &key("ed.pem"), "{}")).await.status, 200);
    assert_eq!(get("/hs/x.txt", pyjwt("HS256", &secret_file, "{}")).await.status, 200);

    // Keys are pinned to their type: an RS256 token on the EC route, an
    // RS512 token on the RS256 key, and HS256 keyed with the RSA public key.
    let r = get("/ec/x.txt", pyjwt("RS256", &key("rsa.pem"), "{}")).await;
    assert_eq!((r.status, r.code().as_str()), (401, "bad_signature"));
    let r = get("/api/report.txt", pyjwt("RS512", &key("rsa.pem"), py_claims)).await;
    assert_eq!(r.status, 401);
    let confused = node_jwt("HS256", &key("rsa.pub.pem"), py_claims, "{}");
    assert_eq!(get("/api/report.txt", confused).await.status, 401);
    assert_eq!(nginx.access_log().lines().count(), 6);
}
