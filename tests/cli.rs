//! The `tollgate` binary: `check` on the reference config and on a broken
//! one, `sign` and `token` round trips, and `demo` as the README runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Http;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("TOLLGATE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Generates, at test time, every file the reference config names.
fn reference_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo().join("config/tollgate.yaml"), dir.path().join("tollgate.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let hex: String = common::random_secret().iter().map(|b| format!("{b:02x}")).take(64).collect();
    std::fs::write(dir.path().join("keys/media-2025.key"), hex).unwrap();
    let python = common::repo().join(".venv/bin/python");
    let out = Command::new(python)
        .arg(common::repo().join("tests/py/mint.py"))
        .arg("keys")
        .arg(dir.path().join("keys"))
        .output()
        .expect("run the venv's python: run `make test`");
    assert!(out.status.success());
    std::fs::rename(dir.path().join("keys/rsa.pub.pem"), dir.path().join("keys/app.pub.pem")).unwrap();
    std::fs::write(
        dir.path().join("keys/partners.jwks.json"),
        r#"{"keys":[{"kty":"oct","kid":"p1","alg":"HS256","k":"dGVzdC1vbmx5LXBhcnRuZXItc2VjcmV0LTAxMjM0NTY3ODk"}]}"#,
    )
    .unwrap();
    // A CA bundle: any certificate parses as a trust anchor for `check`.
    let cert = self_signed(dir.path());
    std::fs::write(dir.path().join("keys/internal-ca.pem"), cert).unwrap();
    dir
}

/// A self-signed certificate made with openssl (test-time only).
fn self_signed(dir: &Path) -> Vec<u8> {
    let key = dir.join("ca.key");
    let cert = dir.join("ca.pem");
    let openssl = common::require("openssl", &["/usr/bin/openssl"]);
    let status = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=test-ca", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(cert).unwrap()
}

#[test]
fn reference_config_passes_check() {
    let dir = reference_config_dir();
    let path = dir.path().join("tollgate.yaml");
    let key = String::from_utf8(common::random_secret()).unwrap();
    let env =
        [("TOLLGATE_MEDIA_KEY", key.as_str()), ("S3_ACCESS_KEY", "test-access"), ("S3_SECRET_KEY", "test-secret")];
    let (code, out, err) = tollgate(&["check", "--config", path.to_str().unwrap()], &env);
    assert_eq!(code, 0, "reference config rejected:\n{err}");
    assert!(out.contains("ok (5 routes)"), "{out}");

    // Without the secret's environment variable, check names the YAML path.
    let (code, _, err) = tollgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("keys.media.hmac.secret_env: environment variable TOLLGATE_MEDIA_KEY is not set"), "{err}");
}

/// A fresh clone has none of the examples' secrets: `check --offline`
/// passes every example, naming each absent secret instead of failing.
#[test]
fn every_example_config_passes_check_offline_without_its_secrets() {
    let mut checked = 0;
    for entry in std::fs::read_dir(common::repo().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("tollgate.yaml");
        std::fs::copy(&path, &copy).unwrap();
        let (code, out, err) = tollgate(&["check", "--offline", "--config", copy.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{}: offline check failed:\n{err}", path.display());
        assert!(out.contains("ok offline ("), "{}: {out}", path.display());
        assert!(err.contains("not checked (offline): keys."), "{}: no absent key listed:\n{err}", path.display());
        checked += 1;
    }
    assert!(checked >= 3, "config/ examples: {checked}");
}

/// Offline still checks everything but the absent secrets.
#[test]
fn check_offline_still_reports_every_other_error() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
keys:
  k: { hmac: { secret_file: keys/absent.key } }
upstreams:
  u: { url: "http://127.0.0.1:1" }
routes:
  - { name: a, prefix: /a/, upstream: u, auth: { signed_url: { keys: [medai], max_ttl: 1d } } }
  - { name: b, prefix: /b/, upstream: u, auth: { signed_url: { keys: [k], max_ttl: 1d } } }
"#;
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, _, err) = tollgate(&["check", "--offline", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("routes[0].auth.signed_url.keys[0]: unknown key \"medai\""), "{err}");
    assert!(err.contains("1 error(s)"), "the absent key file is not an error offline:\n{err}");
}

#[test]
fn check_prints_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.key"), "too-short-secret").unwrap();
    let yaml = r#"
keys:
  k: { hmac: { secret_file: short.key } }
upstreams:
  u: { url: "http://127.0.0.1:1" }
routes:
  - { name: a, prefix: /a/, upstream: nope, auth: none }
  - { name: b, prefix: /b/, upstream: u, auth: { signed_url: { keys: [k], max_ttl: 1y } } }
"#;
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, _, err) = tollgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    for want in [
        "keys.k.hmac: the secret is 16 bytes; at least 32 are required",
        "routes[0].upstream: unknown upstream \"nope\"",
        "routes[1].auth.signed_url.max_ttl: invalid duration \"1y\"",
        "3 error(s)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("too-short-secret"), "check printed the secret");
}

#[test]
fn sign_and_token_commands() {
    let secret = String::from_utf8(common::random_secret()).unwrap();
    let env = [("SIGN_KEY", secret.as_str())];
    let (code, out, err) =
        tollgate(&["sign", "--key-env", "SIGN_KEY", "--ttl", "10m", "https://f.example/media/a b.jpg?w=1"], &env);
    assert_eq!(code, 1, "a raw space is not a normal path: {out}");
    assert!(err.contains("normal form"), "{err}");
    let (code, out, _) =
        tollgate(&["sign", "--key-env", "SIGN_KEY", "--exp", "1893456000", "/media/cat.jpg?w=1"], &env);
    assert_eq!(code, 0);
    let url = out.trim();
    assert!(url.starts_with("/media/cat.jpg?w=1&exp=1893456000&sig="), "{url}");
    let key = tollgate::auth::keys::HmacKey::new("", secret.as_bytes());
    let expected = tollgate::auth::kinds::signed_url::ToSign {
        scheme: tollgate::auth::kinds::signed_url::SCHEME,
        method: "GET",
        exp: "1893456000",
        kid: "",
        resource: "/media/cat.jpg",
        canonical_query: "w=1",
    }
    .signature(&key);
    assert!(url.ends_with(&expected));

    let (code, out, _) = tollgate(
        &["token", "--key-env", "SIGN_KEY", "--sub", "alice", "--path", "/media/*", "--claim", "division=Honda"],
        &env,
    );
    assert_eq!(code, 0);
    let token = out.trim();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["division"], "Honda");
    assert_eq!(data.claims["path"], serde_json::json!(["/media/*"]));
    let (code, _, err) = tollgate(&["sign", "/x"], &[("TOLLGATE_KEY", "short")]);
    assert_eq!(code, 1);
    assert!(err.contains("at least 32"), "{err}");
}

/// `tollgate demo`, as the README runs it: every printed URL answers as the
/// text says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_urls_that_work() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("Press Ctrl-C");
            text.push_str(&line);
            text.push('\n');
            if done {
                let _ = tx.send(text.clone());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Ok(t) = rx.try_recv() {
            break t;
        }
        assert!(Instant::now() < deadline, "demo printed nothing");
        std::thread::sleep(Duration::from_millis(20));
    };
    let curls: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("curl ")).collect();
    assert_eq!(curls.len(), 6, "{text}");
    let http = Http::h1();
    let mut statuses = Vec::new();
    for line in &curls {
        let words: Vec<&str> = line.split_whitespace().collect();
        let url = words.last().unwrap().trim_matches('\'');
        let headers: Vec<(&str, &str)> = match line.split_once("-H '") {
            Some((_, rest)) => {
                let h = rest.split('\'').next().unwrap();
                vec![h.split_once(": ").unwrap()]
            }
            None => vec![],
        };
        statuses.push(http.get_with(url, &headers).await.status);
    }
    assert_eq!(statuses, vec![200, 200, 403, 401, 200, 200], "{text}");

    // The demo page: its signed image loads, its refused one does not, and
    // the clip's manifest and every segment load through one path token.
    let page_url = text.lines().map(str::trim).find(|l| l.ends_with("/demo/")).expect("the demo page URL");
    let page = http.get(page_url).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let base = page_url.trim_end_matches("/demo/");
    let attr = |id: &str| {
        let at = html.find(&format!("id=\"{id}\" src=\"")).unwrap() + id.len() + 11;
        html[at..].split('"').next().unwrap().replace("&amp;", "&")
    };
    assert_eq!(http.get(&format!("{base}{}", attr("signed"))).await.status, 200);
    assert_eq!(http.get(&format!("{base}{}", attr("refused"))).await.status, 403);
    let clip = html.split("src='").find(|s| s.starts_with("/files/")).unwrap().split('\'').next().unwrap();
    assert!(clip.contains("/tg~"), "{clip}");
    let manifest = http.get(&format!("{base}{clip}")).await;
    assert_eq!(manifest.status, 200);
    let dir = clip.rsplit_once('/').unwrap().0;
    let segments: Vec<String> = manifest.text().lines().filter(|l| l.ends_with(".ts")).map(str::to_owned).collect();
    assert_eq!(segments.len(), 3);
    for seg in segments {
        assert_eq!(http.get(&format!("{base}{dir}/{seg}")).await.status, 200, "{seg}");
    }
    interrupt(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "demo should exit cleanly on Ctrl-C: {status}");
}

fn interrupt(child: &std::process::Child) {
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
}

/// `tollgate sign` writes the shared vectors' prefix grant and path tokens
/// byte for byte.
#[test]
fn sign_matches_the_shared_vectors() {
    let text = std::fs::read_to_string(common::repo().join("tests/vectors/path-token.json")).unwrap();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for v in &vectors {
        let env = [("SIGN_KEY", v["secret"].as_str().unwrap())];
        let target = v["forwarded_target"].as_str().unwrap();
        let kid = v["request_target"].as_str().unwrap().contains("~k2026~");
        let mut args = vec!["sign", "--key-env", "SIGN_KEY", "--exp", "1893456000", "--path-token"];
        args.extend(["--prefix", v["granted_prefix"].as_str().unwrap()]);
        if kid {
            args.extend(["--kid", "k2026"]);
        }
        args.push(target);
        let (code, out, err) = tollgate(&args, &env);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), v["request_target"], "{}", v["name"]);
    }
    let text = std::fs::read_to_string(common::repo().join("tests/vectors/signed-url.json")).unwrap();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let prefix = vectors.iter().find(|v| v["request_target"].as_str().unwrap().contains("prefix=")).unwrap();
    let env = [("SIGN_KEY", prefix["secret"].as_str().unwrap())];
    let (code, out, err) = tollgate(
        &[
            "sign",
            "--key-env",
            "SIGN_KEY",
            "--exp",
            "1893456000",
            "--prefix",
            "/media/video/",
            "/media/video/seg-001.ts",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let sig = prefix["sig"].as_str().unwrap();
    assert_eq!(out.trim(), format!("/media/video/seg-001.ts?exp=1893456000&prefix=%2Fmedia%2Fvideo%2F&sig={sig}"));
    let (code, _, err) = tollgate(
        &["sign", "--key-env", "SIGN_KEY", "--path-token", "--method", "PUT", "/media/video/seg-001.ts"],
        &env,
    );
    assert_eq!(code, 1);
    assert!(err.contains("GET and HEAD"), "{err}");
}

/// `check` says how to fix the mistakes newcomers make: a route without
/// `auth`, a misspelt key or upstream, a short secret.
#[test]
fn check_errors_carry_their_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.key"), "too-short-secret").unwrap();
    std::fs::write(dir.path().join("media.key"), "m".repeat(64)).unwrap();
    let yaml = r#"
keys:
  media: { hmac: { secret_file: media.key } }
  short: { hmac: { secret_file: short.key } }
upstreams:
  files: { url: "http://127.0.0.1:1" }
routes:
  - { name: open, prefix: /open/, upstream: files }
  - { name: m, prefix: /m/, upstream: filse, auth: { signed_url: { keys: [medai] } } }
"#;
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, _, err) = tollgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    for want in [
        "routes[0]: missing field `auth` (a route without a credential says so: `auth: none`)",
        "routes[1].upstream: unknown upstream \"filse\"; did you mean \"files\"?",
        "routes[1].auth.signed_url.keys[0]: unknown key \"medai\"; did you mean \"media\"?",
        "keys.short.hmac: the secret is 16 bytes; at least 32 are required (make one with `tollgate keygen --out FILE`)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// A listen address in use is named in the error.
#[test]
fn serve_names_the_address_it_cannot_listen_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: {addr}\nadmin: 127.0.0.1:0\nupstreams: {{ u: {{ url: \"http://127.0.0.1:1\" }} }}\n\
         routes: [ {{ name: a, prefix: /, upstream: u, auth: none }} ]\n"
    );
    let path = dir.path().join("taken.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, _, err) = tollgate(&["serve", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("cannot listen: `listen` address {addr}:")), "{err}");
}

/// `keygen` makes a 32-byte secret as 64 hex characters, a file only its
/// owner reads, never replacing one.
#[test]
fn keygen_writes_a_new_private_secret_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.key");
    let (code, _, err) = tollgate(&["keygen", "--out", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.trim_end().len(), 64);
    assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) = tollgate(&["keygen", "--out", file.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "an existing key was replaced");
    assert!(err.contains("cannot create"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let (_, a, _) = tollgate(&["keygen"], &[]);
    let (_, b, _) = tollgate(&["keygen"], &[]);
    assert_ne!(a, b);
}

/// `auth.report_only` serves unverified requests: never beside the rules
/// that count a credential, never on a route that writes.
#[test]
fn report_only_refuses_state_rules_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "k", &common::random_secret());
    let yaml = r#"
keys: { k: { hmac: { secret_file: k } } }
upstreams: { u: { url: "http://127.0.0.1:1" } }
routes:
  - { name: a, prefix: /a/, upstream: u, auth: { signed_url: { keys: [k] }, report_only: true, use_limit: { uses: 1 } } }
  - { name: b, prefix: /b/, upstream: u, methods: [PUT], auth: { signed_url: { keys: [k] }, report_only: true } }
  - { name: c, prefix: /c/, upstream: u, auth: { signed_url: { keys: [k] }, report_only: true }, manifests: { key_routes: [c] } }
"#;
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, _, err) = tollgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    for want in [
        "routes[0].auth.report_only: cannot be combined with use_limit",
        "routes[1].auth.report_only: serves unverified requests: GET and HEAD routes only",
        "routes[2].manifests.key_routes: cannot name the route itself",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
}
