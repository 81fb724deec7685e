//! The README's signing snippets (shell with openssl, Python, Node, PHP and
//! Go), run as written: with the shared test vectors' secret and expiry
//! they must print the vectors' URLs exactly, and the links they print
//! with a fresh key must pass tollgate in front of nginx. Each language
//! signs a one-file link, a prefix link and a path token.
//!
//! A driver appended to (or, for Go, placed beside) each snippet reads the
//! cases as JSON from `CASES` and prints one URL per case; the shell
//! snippet is called once per case.
//!
//! The one-time link and revocation examples (route config, `tollgate sign
//! --jti`, `tollgate revoke`) run as written against a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;

use common::{Http, Nginx, Tollgate};
use serde_json::{Value, json};

/// The body of the README code block whose info string ends with `tag`.
fn snippet(tag: &str) -> String {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| !(l.starts_with("```") && l.ends_with(tag)));
    assert!(lines.next().is_some(), "README has no block tagged {tag}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n"
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "snippet failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Shell,
    Python,
    Node,
    Php,
    Go,
}

const LANGS: [Lang; 5] = [Lang::Shell, Lang::Python, Lang::Node, Lang::Php, Lang::Go];

/// What to sign: a one-file link (`path`), a prefix link (`prefix`, opening
/// `path`) or a path token (`prefix`, then `rest`). Secrets are text, used
/// as raw bytes.
#[derive(Clone, Debug)]
struct Case {
    kind: &'static str,
    secret: String,
    exp: u64,
    path: String,
    prefix: String,
    rest: String,
}

impl Case {
    fn url(secret: &str, exp: u64, path: &str) -> Case {
        Case { kind: "url", secret: secret.into(), exp, path: path.into(), prefix: String::new(), rest: String::new() }
    }
    fn prefix(secret: &str, exp: u64, prefix: &str, path: &str) -> Case {
        Case { kind: "prefix", prefix: prefix.into(), ..Case::url(secret, exp, path) }
    }
    fn token(secret: &str, exp: u64, prefix: &str, rest: &str) -> Case {
        Case { kind: "token", prefix: prefix.into(), rest: rest.into(), ..Case::url(secret, exp, "") }
    }
    fn json(&self) -> Value {
        json!({"kind": self.kind, "secret": self.secret, "exp": self.exp,
               "path": self.path, "prefix": self.prefix, "rest": self.rest})
    }
}

const PYTHON_DRIVER: &str = r#"
import json, os
for c in json.loads(os.environ["CASES"]):
    s = c["secret"].encode()
    if c["kind"] == "url":
        print(sign_url(s, c["path"], c["exp"]))
    elif c["kind"] == "prefix":
        print(sign_prefix(s, c["prefix"], c["path"], c["exp"]))
    else:
        print(path_token(s, c["prefix"], c["rest"], c["exp"]))
"#;

const NODE_DRIVER: &str = r#"
for (const c of JSON.parse(process.env.CASES)) {
  const s = Buffer.from(c.secret);
  if (c.kind === 'url') console.log(signUrl(s, c.path, c.exp));
  else if (c.kind === 'prefix') console.log(signPrefix(s, c.prefix, c.path, c.exp));
  else console.log(pathToken(s, c.prefix, c.rest, c.exp));
}
"#;

const PHP_DRIVER: &str = r#"
foreach (json_decode(getenv('CASES'), true, 8, JSON_THROW_ON_ERROR) as $c) {
    echo match ($c['kind']) {
        'url' => tollgate_sign_url($c['secret'], $c['path'], $c['exp']),
        'prefix' => tollgate_sign_prefix($c['secret'], $c['prefix'], $c['path'], $c['exp']),
        'token' => tollgate_path_token($c['secret'], $c['prefix'], $c['rest'], $c['exp']),
    }, "\n";
}
"#;

const GO_DRIVER: &str = r#"package main

import (
	"encoding/json"
	"fmt"
	"os"

	"readme/tollgate"
)

func main() {
	var cases []struct {
		Kind, Secret, Path, Prefix, Rest string
		Exp                              int64
	}
	if err := json.Unmarshal([]byte(os.Getenv("CASES")), &cases); err != nil {
		panic(err)
	}
	for _, c := range cases {
		s := []byte(c.Secret)
		switch c.Kind {
		case "url":
			fmt.Println(tollgate.SignURL(s, "GET", c.Path, c.Exp))
		case "prefix":
			fmt.Println(tollgate.SignPrefix(s, c.Prefix, c.Path, c.Exp))
		default:
			fmt.Println(tollgate.PathToken(s, c.Prefix, c.Rest, c.Exp))
		}
	}
}
"#;

/// Runs `lang`'s README snippet on `cases`; one URL per case.
fn sign_with(lang: Lang, cases: &[Case]) -> Vec<String> {
    let all = serde_json::to_string(&cases.iter().map(Case::json).collect::<Vec<_>>()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let printed = match lang {
        Lang::Shell => {
            let code = snippet("sign-openssl");
            let mut out = String::new();
            for c in cases {
                let call = match c.kind {
                    "url" => r#"sign_url "$P""#,
                    "prefix" => r#"sign_prefix "$PFX" "$P""#,
                    _ => r#"path_token "$PFX" "$REST""#,
                };
                out += &output(
                    Command::new("bash")
                        .arg("-c")
                        .arg(format!("set -euo pipefail\n{code}{call}\n"))
                        .env("SECRET", &c.secret)
                        .env("EXP", c.exp.to_string())
                        .env("P", &c.path)
                        .env("PFX", &c.prefix)
                        .env("REST", &c.rest),
                );
            }
            out
        }
        Lang::Python => output(
            Command::new(common::repo().join(".venv/bin/python"))
                .arg("-c")
                .arg(snippet("sign-python") + PYTHON_DRIVER)
                .env("CASES", &all),
        ),
        Lang::Node => output(
            Command::new(common::require("node", &["/usr/bin/node"]))
                .arg("-e")
                .arg(snippet("sign-node") + NODE_DRIVER)
                .env("CASES", &all),
        ),
        Lang::Php => {
            let file = common::write_file(dir.path(), "sign.php", (snippet("sign-php") + PHP_DRIVER).as_bytes());
            output(Command::new(common::require("php", &["/usr/bin/php"])).arg(&file).env("CASES", &all))
        }
        Lang::Go => {
            // The snippet is package `tollgate` of a small module; the
            // driver is its main package.
            std::fs::create_dir(dir.path().join("tollgate")).unwrap();
            common::write_file(dir.path(), "go.mod", b"module readme\n\ngo 1.19\n");
            common::write_file(&dir.path().join("tollgate"), "sign.go", snippet("sign-go").as_bytes());
            common::write_file(dir.path(), "main.go", GO_DRIVER.as_bytes());
            output(
                Command::new(common::require("go", &["/usr/bin/go"]))
                    .args(["run", "."])
                    .current_dir(dir.path())
                    .env("CASES", &all)
                    .env("GOCACHE", go_cache())
                    .env("GOPATH", dir.path().join("gopath"))
                    .env("GOPROXY", "off")
                    .env("GOFLAGS", "-mod=mod")
                    .env("GO111MODULE", "on"),
            )
        }
    };
    let urls: Vec<String> = printed.lines().map(str::to_owned).collect();
    assert_eq!(urls.len(), cases.len(), "{lang:?} printed:\n{printed}");
    urls
}

/// Go's build cache, kept between runs (it holds compiled standard-library
/// packages, nothing of the test's).
fn go_cache() -> PathBuf {
    std::env::temp_dir().join("tollgate-readme-go-cache")
}

fn vectors(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::repo().join("tests/vectors").join(file)).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8().unwrap().into_owned()
}

/// The vectors a snippet can reproduce (GET, no kid, no other query
/// parameter), each with the URL it must print: the vector's request.
fn vector_cases() -> Vec<(String, Case, String)> {
    let mut out = Vec::new();
    for v in vectors("signed-url.json").into_iter().chain(vectors("path-token.json")) {
        let lines: Vec<&str> = v["string_to_sign"].as_str().unwrap().split('\n').collect();
        let [scheme, method, exp, kid, resource, query] = lines[..] else { panic!("{v}") };
        let target = v["request_target"].as_str().unwrap();
        if v["method"] != "GET" || method != "GET" || !kid.is_empty() || !query.is_empty() {
            continue;
        }
        let (secret, exp) = (v["secret"].as_str().unwrap(), exp.parse().unwrap());
        let path = decode(target.split('?').next().unwrap());
        let case = match scheme {
            "TOLLGATE-HMAC-SHA256" => Case::url(secret, exp, resource),
            "TOLLGATE-HMAC-SHA256-PREFIX" => Case::prefix(secret, exp, resource, &path),
            "TOLLGATE-HMAC-SHA256-PATH" if !target.contains('?') => {
                let forwarded = decode(v["forwarded_target"].as_str().unwrap());
                Case::token(secret, exp, resource, forwarded.strip_prefix(resource).unwrap())
            }
            _ => continue,
        };
        out.push((v["name"].as_str().unwrap().to_owned(), case, target.to_owned()));
    }
    out
}

/// Every language prints the shared vectors' URLs byte for byte: the same
/// string to sign (scheme line, decoded path or prefix), the same HMAC and
/// base64url, the same percent-encoding. This needs no tollgate.
#[test]
fn readme_snippets_reproduce_the_shared_vectors() {
    let cases = vector_cases();
    for kind in ["url", "prefix", "token"] {
        assert!(cases.iter().any(|c| c.1.kind == kind), "no {kind} vector");
    }
    assert!(cases.iter().any(|c| !c.2.is_ascii() || c.2.contains('%')), "no vector with an encoded path");
    for lang in LANGS {
        // The shell snippet does no percent-encoding: ASCII paths only.
        let usable: Vec<_> =
            cases.iter().filter(|c| lang != Lang::Shell || !c.2.split('?').next().unwrap().contains('%')).collect();
        let urls = sign_with(lang, &usable.iter().map(|c| c.1.clone()).collect::<Vec<_>>());
        for ((name, _, want), got) in usable.iter().zip(urls) {
            assert_eq!(&got, want, "{lang:?}: vector {name:?}");
        }
    }
}

async fn start(nginx: &Nginx, secret: &str, signed_url: &str) -> (Tollgate, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "media.key", secret.as_bytes());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - {{ name: media, prefix: /media/, upstream: nginx, auth: {{ signed_url: {signed_url} }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    (Tollgate::start(&yaml, dir.path()).await, dir)
}

fn fresh_exp() -> u64 {
    tollgate::auth::unix_now() + 900
}

/// One-file links from every language open the file through tollgate; the
/// same link with its path changed does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_snippets_sign_one_file_links_tollgate_accepts() {
    let nginx = Nginx::start(&[("media/report.txt", b"report"), ("media/caf\u{e9} noir.jpg", b"coffee")]);
    let secret = String::from_utf8(common::random_secret()).unwrap();
    let (tg, _dir) = start(&nginx, &secret, "{ keys: [media] }").await;
    let http = Http::h1();
    for lang in LANGS {
        let exp = fresh_exp();
        let mut cases = vec![(Case::url(&secret, exp, "/media/report.txt"), "report")];
        if lang != Lang::Shell {
            cases.push((Case::url(&secret, exp, "/media/café noir.jpg"), "coffee"));
        }
        let urls = sign_with(lang, &cases.iter().map(|c| c.0.clone()).collect::<Vec<_>>());
        for ((_, body), url) in cases.iter().zip(&urls) {
            let r = http.get(&tg.url(url)).await;
            assert_eq!((r.status, r.text().as_str()), (200, *body), "{lang:?}: {url}");
        }
        let moved = urls[0].replace("/media/report.txt", "/media/other.txt");
        assert_eq!(http.get(&tg.url(&moved)).await.status, 403, "{lang:?}: {moved}");
    }
}

/// Prefix links and path tokens from every language open every file under
/// their prefix through tollgate (docs/reference.md: Signed URLs prefix scheme line, §2b path
/// tokens), and nothing outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_snippets_sign_prefix_links_and_path_tokens_tollgate_accepts() {
    let nginx = Nginx::start(&[
        ("media/u1/index.m3u8", b"manifest"),
        ("media/u1/720p/seg-1.ts", b"segment"),
        ("media/u10/index.m3u8", b"other user"),
        ("media/caf\u{e9}/a b.ts", b"coffee segment"),
    ]);
    let secret = String::from_utf8(common::random_secret()).unwrap();
    let (tg, _dir) = start(&nginx, &secret, "{ keys: [media], path_tokens: true }").await;
    let http = Http::h1();
    for lang in LANGS {
        let exp = fresh_exp();
        let mut cases = vec![
            Case::prefix(&secret, exp, "/media/u1/", "/media/u1/index.m3u8"),
            Case::token(&secret, exp, "/media/u1/", "index.m3u8"),
        ];
        if lang != Lang::Shell {
            cases.push(Case::token(&secret, exp, "/media/café/", "a b.ts"));
        }
        let urls = sign_with(lang, &cases);
        let get = |url: String| {
            let http = &http;
            let url = tg.url(&url);
            async move {
                let r = http.get(&url).await;
                (r.status, r.text())
            }
        };

        // The prefix link opens its file and, with the same grant, the
        // segment below it; not the neighbour that shares a string prefix.
        let link = &urls[0];
        assert_eq!(get(link.clone()).await, (200, "manifest".into()), "{lang:?}: {link}");
        let segment = link.replace("/media/u1/index.m3u8", "/media/u1/720p/seg-1.ts");
        assert_eq!(get(segment.clone()).await, (200, "segment".into()), "{lang:?}: {segment}");
        let neighbour = link.replace("/media/u1/index.m3u8", "/media/u10/index.m3u8");
        assert_eq!(get(neighbour.clone()).await.0, 403, "{lang:?}: {neighbour}");

        // The path token: the manifest, and what a player resolves next to it.
        let token = &urls[1];
        assert!(token.starts_with("/media/u1/tg~"), "{lang:?}: {token}");
        assert_eq!(get(token.clone()).await, (200, "manifest".into()), "{lang:?}: {token}");
        let resolved = token.replace("/index.m3u8", "/720p/seg-1.ts");
        assert_eq!(get(resolved.clone()).await, (200, "segment".into()), "{lang:?}: {resolved}");
        let outside = token.replace("/media/u1/", "/media/u10/");
        assert_eq!(get(outside.clone()).await.0, 403, "{lang:?}: {outside}");
        if let Some(encoded) = urls.get(2) {
            assert_eq!(get(encoded.clone()).await, (200, "coffee segment".into()), "{lang:?}: {encoded}");
        }
    }
}

/// Compiles a README config example (its `routes:` block) with the keys and
/// upstream it names, and starts tollgate with it in front of `nginx`.
async fn start_example(tag: &str, nginx: &Nginx, dir: &std::path::Path) -> Tollgate {
    for name in ["media", "cookies", "app"] {
        common::write_file(dir, &format!("{name}.key"), &common::random_secret());
    }
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nkeys:\n  media: {{ hmac: {{ secret_file: media.key }} }}\n  cookies: {{ hmac: {{ secret_file: cookies.key }} }}\n  app: {{ hmac: {{ secret_file: app.key }} }}\nupstreams:\n  files: {{ url: \"http://{}\" }}\nlog: {{ access_log: false }}\n{}",
        nginx.addr,
        snippet(tag)
    );
    Tollgate::start(&yaml, dir).await
}

/// The "Cookies" example: a navigation with a prefix link is exchanged for a
/// cookie scoped to the prefix, through which the page's files load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_cookie_exchange_example_works() {
    let nginx = Nginx::start(&[("docs/u1/report.html", b"<img src=chart.svg>"), ("docs/u1/chart.svg", b"<svg/>")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = start_example("cookies-example", &nginx, dir.path()).await;
    let secret = std::fs::read(dir.path().join("media.key")).unwrap();
    let url = common::sign(&secret, "GET", "/docs/u1/report.html", 3600, None, Some("/docs/u1/"));
    let http = Http::h1();
    let nav = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];
    let r = http.get_with(&tg.url(&url), &nav).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/docs/u1/report.html")));
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("; Path=/docs/u1/;") && set.contains("HttpOnly; Secure; SameSite=Lax"), "{set}");
    let cookie = set.split(';').next().unwrap();
    let r = http.get_with(&tg.url("/docs/u1/chart.svg"), &[("cookie", cookie)]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "<svg/>"));
}

/// The "CORS and service workers" example: the preflight from the listed
/// origin is answered, and a bearer fetch is readable from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_cors_example_works() {
    let nginx = Nginx::start(&[("files/a.txt", b"private")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = start_example("cors-example", &nginx, dir.path()).await;
    let secret = std::fs::read(dir.path().join("app.key")).unwrap();
    let http = Http::h1();
    let origin = ("origin", "https://app.example");
    let pre = [origin, ("access-control-request-method", "GET"), ("access-control-request-headers", "authorization")];
    let r = http.send("OPTIONS", &tg.url("/files/a.txt"), &pre, bytes::Bytes::new()).await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (204, Some("https://app.example")));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    let bearer = format!("Bearer {}", common::hs256(&secret, serde_json::json!({"sub": "alice"})));
    let r = http.get_with(&tg.url("/files/a.txt"), &[origin, ("authorization", &bearer)]).await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("https://app.example")));
    assert_eq!(r.header("access-control-expose-headers"), Some("content-length, content-range"));
}

/// The README's one-time link and revocation examples, as written: its
/// route config passes `tollgate check`; the link minted by its `sign`
/// line downloads once (and again inside its grace window), the same
/// route with `grace: 0s` answers the second download 410; its `revoke`
/// lines refuse the link and everything `alice` was issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_one_time_link_and_revocation_examples_work() {
    let redis = redis_server::Redis::start();
    let nginx = Nginx::start(&[("dl/report.pdf", b"%PDF-report")]);
    let dir = tempfile::tempdir().unwrap();
    let (media, app) = (common::random_secret(), common::random_secret());
    common::write_file(dir.path(), "media.key", &media);
    common::write_file(dir.path(), "app.key", &app);
    common::write_file(dir.path(), "redis.url", redis.url().as_bytes());
    let head = format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nlog: {{ access_log: false }}\nkeys:\n  \
         media: {{ hmac: {{ secret_file: media.key }} }}\n  app: {{ hmac: {{ secret_file: app.key }} }}\n\
         upstreams:\n  files: {{ url: \"http://{}\" }}\n",
        nginx.addr
    );
    let route = snippet("one-time-route");
    let as_written = common::write_file(dir.path(), "readme.yaml", format!("{head}{route}").as_bytes());
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env("TOLLGATE_CONFIG", &as_written)
            .env("TOLLGATE_REDIS_URL", redis.url())
            .env("TOLLGATE_MEDIA_KEY", String::from_utf8(media.clone()).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["check"]);

    // In-process replicas read the URL from a file instead of the environment.
    let in_process = format!("{head}{route}").replace("url_env: TOLLGATE_REDIS_URL", "url_file: redis.url");
    assert_ne!(in_process, format!("{head}{route}"), "the README's store line changed");
    let tg = Tollgate::start(&in_process, dir.path()).await;
    let no_grace = in_process
        .replace("grace: 30s", "grace: 0s")
        .replace("url_file: redis.url", "url_file: redis.url, key_prefix: \"v0:\"");
    assert!(no_grace.contains("grace: 0s"), "the README's grace changed");
    let strict = Tollgate::start(&no_grace, dir.path()).await;
    let http = Http::h1();

    let sign = snippet("one-time-sign");
    let words: Vec<&str> = sign.split_whitespace().collect();
    assert_eq!(words[..2], ["tollgate", "sign"], "{sign}");
    let url = cli(&words[1..]).trim().to_owned();
    let link = url.strip_prefix("https://files.example.com").unwrap_or_else(|| panic!("{url}"));
    assert!(link.contains("jti=order-1234"), "{link}");
    let first = http.get(&tg.url(link)).await;
    assert_eq!((first.status, first.body.as_ref()), (200, &b"%PDF-report"[..]));
    let resume = http.get_with(&tg.url(link), &[("range", "bytes=5-")]).await;
    assert_eq!(resume.status, 206, "inside the 30s grace window: the same use");
    assert_eq!(http.get(&strict.url(link)).await.status, 200);
    let again = http.get(&strict.url(link)).await;
    assert_eq!((again.status, again.code().as_str()), (410, "replayed"));

    let alice = common::hs256(&app, json!({"jti": "a-1", "sub": "alice", "iat": tollgate::auth::unix_now() - 10}));
    let bearer = format!("Bearer {alice}");
    assert_eq!(http.get_with(&tg.url("/dl/report.pdf"), &[("authorization", &bearer)]).await.status, 200);
    for line in snippet("revoke-example").lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..2], ["tollgate", "revoke"], "{line}");
        cli(&words[1..]);
    }
    let revoked = http.get_with(&tg.url(link), &[("range", "bytes=5-")]).await;
    assert_eq!((revoked.status, revoked.code().as_str()), (403, "revoked"), "revocation wins over the grace window");
    let r = http.get_with(&tg.url("/dl/report.pdf"), &[("authorization", &bearer)]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "revoked"));
}

/// Runs the README's `first-config` block as written (its `--ttl 1h` as
/// `ttl`), in a copy of `config/`, with the built binary first on PATH.
fn first_config(ttl: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::copy(common::repo().join("config/sidecar-nginx.yaml"), dir.path().join("config/sidecar-nginx.yaml"))
        .unwrap();
    let script = snippet("first-config").replace("--ttl 1h", &format!("--ttl {ttl}"));
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let key = std::fs::metadata(dir.path().join("config/keys/media.key")).map(|m| m.len());
    assert_eq!(key.ok(), Some(65), "keygen wrote 64 hex characters and a newline");
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn readme_first_config_block_runs_as_written() {
    let (ok, stdout, stderr) = first_config("1h");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("ok (1 route)"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("/media/cat.jpg?exp=") && l.contains("&sig=")), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn sign_with_config_warns_when_the_route_would_refuse_the_link() {
    // Two days on a route whose max_ttl is one day.
    let (ok, _, stderr) = first_config("2d");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("would refuse this link"), "{stderr}");
    assert!(stderr.contains("longer than the route's max_ttl 1d"), "{stderr}");
    assert!(stderr.contains("403 claim_mismatch"), "{stderr}");
}

/// The README's quick start, as written: a refused and an allowed `curl`
/// and an `explain`. The ports move to free ones; `cargo install` is
/// replaced by the built binary first on PATH.
#[test]
fn readme_quick_start_runs_as_written() {
    let block = snippet("quick-start");
    let install = "cargo install --path . --locked";
    assert!(block.starts_with(install), "the quick start begins by installing the binary:\n{block}");
    let mut script = block.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n";
    for port in ["8080", "8081", "9090"] {
        assert!(script.contains(&format!("127.0.0.1:{port}")) || script.contains(&format!("{port} ")), "{port}");
        script = script.replace(port, &common::free_port().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id();
    let out = std::thread::spawn(move || {
        let mut stdout = String::new();
        let mut stderr = String::new();
        use std::io::Read as _;
        child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (child.wait().unwrap().success(), stdout, stderr)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !out.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Whatever happened, nothing the block started outlives the test.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
    let (ok, stdout, stderr) = out.join().unwrap();
    assert!(ok, "quick start failed:\n{stdout}\n{stderr}");
    let refused = stdout.lines().find(|l| l.contains("\"error\"")).unwrap_or_default();
    assert!(refused.contains("missing_credential"), "the unsigned curl is refused:\n{stdout}");
    assert!(stdout.contains("hello, tollgate"), "the signed curl is served:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("result") && l.contains("allowed: forwarded")),
        "explain agrees:\n{stdout}"
    );
}

/// The README's manifest-rewriting routes are a valid config, with the
/// rewriting on the media route and none on the key route.
#[test]
fn readme_video_manifests_block_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "media.key", &common::random_secret());
    common::write_file(dir.path(), "keys.key", &common::random_secret());
    let yaml = format!(
        "keys:\n  media: {{ hmac: {{ secret_file: media.key }} }}\n  keys: {{ hmac: {{ secret_file: keys.key }} }}\n\
         upstreams:\n  files: {{ url: \"http://127.0.0.1:9\" }}\nroutes:\n{}",
        snippet("video-manifests")
    );
    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    let config = tollgate::config::compile_str(&yaml, dir.path(), &metrics).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let media = config.routes.lookup(None, "/media/x.m3u8").unwrap();
    let settings = media.manifests.as_ref().expect("manifests on the media route");
    assert_eq!(settings.key_link_ttl, std::time::Duration::from_secs(60));
    assert_eq!(settings.max_size, 8 << 20);
    assert_eq!(settings.key_routes, vec!["keys".to_owned()]);
    assert!(config.routes.lookup(None, "/keys/k").unwrap().manifests.is_none());
}

/// The README's leaked-links config compiles as written: share detection
/// and download records on the route, with the defaults it states.
#[test]
fn readme_leaked_links_block_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "media.key", &common::random_secret());
    let yaml = format!(
        "keys:\n  media: {{ hmac: {{ secret_file: media.key }} }}\nupstreams:\n  files: {{ url: \"http://127.0.0.1:9\" }}\n{}",
        snippet("leaked-links")
    );
    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    let config = temp_env_redis(|| tollgate::config::compile_str(&yaml, dir.path(), &metrics))
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let route = config.routes.lookup(None, "/v/x").unwrap();
    assert!(route.download_records);
    let share = route.state.as_ref().and_then(|s| s.share).expect("share_limit");
    assert_eq!((share.max_networks, share.ipv4_prefix, share.ipv6_prefix, share.report_only), (3, 24, 64, false));
    let streams = route.state.as_ref().and_then(|s| s.streams).expect("stream_limit");
    assert_eq!((streams.max_streams, streams.lease), (2, std::time::Duration::from_secs(600)));
    let quota = route.state.as_ref().and_then(|s| s.quota).expect("byte_quota");
    assert_eq!(quota.bytes, 20 << 30);
    assert_eq!(route.response_rate, Some((2 << 20, 8 << 20)));
}

/// Runs `f` with `TOLLGATE_REDIS_URL` set when it is not (the block names it).
fn temp_env_redis<T>(f: impl FnOnce() -> T) -> T {
    if std::env::var_os("TOLLGATE_REDIS_URL").is_none() {
        // SAFETY: nextest runs each test in its own process, and nothing
        // else in this one reads the environment meanwhile.
        unsafe { std::env::set_var("TOLLGATE_REDIS_URL", "redis://127.0.0.1:9/") };
    }
    f()
}
