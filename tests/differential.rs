//! Differential tests: tollgate's idea of a path against the real
//! upstreams' (SECURITY.md goal 2, "what is forwarded is exactly what was
//! verified").
//!
//! - nginx: about 2,000 generated request targets rich in `%XX` (valid and
//!   invalid, both cases), dot segments, `/`, `;`, `\`, `+`, `~`, UTF-8 and
//!   overlong forms are sent as raw bytes through tollgate (an `auth: none`
//!   catch-all route) to a real nginx that logs `$uri` next to
//!   `$request_uri` and a per-case marker. For every target nginx saw, its
//!   `$uri` must equal the decoded path tollgate checked and routed on
//!   (`check_path(..).decoded`) and its `$request_uri` the target as sent;
//!   every target tollgate refused must be absent from nginx's log.
//! - S3 (moto, SigV4-verifying): for odd keys, an object seeded with
//!   botocore under the key tollgate should derive (key prefix + decoded
//!   path below the route prefix) is the one a GET through tollgate returns,
//!   and a PUT through tollgate stores its body under exactly that key, as
//!   a botocore listing shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Moto, Nginx, Tollgate};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use tollgate::normalize::check_path;

/// Generated targets per run (CI), unless `PROPTEST_CASES` says otherwise.
const CASES: usize = 2000;

fn runner() -> TestRunner {
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xd1ff_0005);
    TestRunner::new(Config { failure_persistence: None, rng_seed: RngSeed::Fixed(seed), ..Config::default() })
}

fn cases(default: usize) -> usize {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Sends one raw request and returns the status of the answer (0: none).
fn exchange(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Pieces of a path segment: the characters and encodings that matter.
fn piece() -> impl Strategy<Value = String> {
    let plain = prop_oneof!["[a-z0-9]{1,3}", "[A-Za-z0-9._~-]{1,4}"];
    let dots = prop::sample::select(vec![".", "..", "...", ".a", "a.", "..a", "a..b"]);
    let escapes = prop::sample::select(vec![
        // Encoded dots, separators, the escape itself.
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "%25",
        "%252e",
        "%252F",
        "%3b",
        "%3B",
        "%3f",
        "%3F",
        "%23",
        // Unreserved and sub-delims, encoded where they need not be.
        "%41",
        "%61",
        "%7e",
        "%7E",
        "%2b",
        "%2B",
        "%20",
        "%2d",
        "%5f",
        "%40",
        "%3a",
        "%3d",
        "%26",
        "%27",
        "%28",
        // Controls.
        "%00",
        "%09",
        "%0a",
        "%0D",
        "%7f",
        "%1f",
        // UTF-8, valid (both cases) and not: overlong '/' '.' '\', surrogates,
        // past U+10FFFF, lone continuation and lead bytes.
        "%C3%A9",
        "%c3%a9",
        "%E2%82%AC",
        "%e2%82%ac",
        "%F0%9F%98%80",
        "%ef%bb%bf",
        "%C0%AF",
        "%c0%ae",
        "%c1%9c",
        "%E0%80%AF",
        "%e0%80%ae",
        "%F0%80%80%AF",
        "%ED%A0%80",
        "%F4%90%80%80",
        "%80",
        "%ff",
        "%C3",
        "%c3%28",
        // Invalid percent-encoding.
        "%",
        "%z",
        "%4",
        "%g0",
        "%%",
        "%2",
        "%-1",
        "%+1",
    ]);
    let raw = prop::sample::select(vec![
        ";", "\\", "+", "~", "!", "$", "&", "'", "(", ")", "*", ",", "=", ":", "@", "[", "]", "{", "}", "|", "^", "`",
        "\"", "<", ">", " ", "#", "\u{e9}", "\u{7f}", "\t",
    ]);
    prop_oneof![
        12 => plain,
        3 => dots.prop_map(str::to_owned),
        5 => escapes.prop_map(str::to_owned),
        1 => raw.prop_map(str::to_owned)
    ]
}

fn target() -> impl Strategy<Value = String> {
    let segment = prop::collection::vec(piece(), 1..4).prop_map(|p| p.concat());
    let separator = prop_oneof![12 => Just("/"), 1 => Just("//"), 1 => Just("/%2f/")];
    let query =
        prop::option::weighted(0.1, prop::sample::select(vec!["?", "?a=1", "?x=%2e%2e/%2f", "?a=/../b", "??", "?#"]));
    (prop::collection::vec((separator, segment), 1..6), query).prop_map(|(parts, query)| {
        let mut t: String = parts.into_iter().map(|(sep, seg)| format!("{sep}{seg}")).collect();
        if let Some(q) = query {
            t.push_str(q);
        }
        t
    })
}

/// Targets worth naming, always sent besides the generated ones.
const PICKED: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/a/b.txt",
    "/a/..b/c..",
    "/a/.b/",
    "/a/...",
    "/a/./b",
    "/a/../b",
    "/a/%2e%2e/b",
    "/a/.%2E/b",
    "/a/%2e/b",
    "/%2e%2e",
    "/a%2fb",
    "/a%2F..%2Fb",
    "/a;b/..;/c",
    "/a;/b",
    "/a/b;x=1",
    "/a%3Bb",
    "/a%3fb",
    "/a%23b",
    "/a%25b",
    "/a%252e%252e/b",
    "/~user/x",
    "/%7Euser",
    "/a+b%2Bc",
    "/caf%C3%A9",
    "/caf%c3%a9/%E2%82%AC",
    "/%F0%9F%98%80",
    "/%C0%AF",
    "/%c0%ae%c0%ae/x",
    "/%e0%80%af",
    "/%ED%A0%80",
    "/%ff",
    "/a%5Cb",
    "/a\\b",
    "/a%00b",
    "/a%0Ab",
    "/a%20b",
    "/a b",
    "//a",
    "/a//b",
    "/a/",
    "/a%",
    "/a%4",
    "/a%zz",
    "/A%41a%61",
    "/a?b=/../c",
    "/a/b?",
    "*",
    "a/b",
    "http://example/a",
];

/// One case's record in nginx's log.
#[derive(Debug)]
struct Seen {
    uri: String,
    request_uri: String,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reads_the_path_tollgate_verified() {
    let nginx = Nginx::start_full(
        &[],
        // escape=json: `$uri` holds decoded bytes; JSON escaping keeps each
        // record on one line and every byte recoverable.
        r#"log_format diff escape=json '{"case":"$http_x_case","uri":"$uri","request_uri":"$request_uri","status":$status}';"#,
        "access_log diff.log diff;",
    );
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - {{ name: all, prefix: /, upstream: nginx, auth: none }}
log: {{ access_log: false }}
"#,
        addr = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;

    let mut targets: Vec<String> = PICKED.iter().map(|t| (*t).to_owned()).collect();
    let mut runner = runner();
    let strategy = target();
    for _ in 0..cases(CASES) {
        targets.push(strategy.new_tree(&mut runner).unwrap().current());
    }

    let mut statuses = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let request = format!("GET {t} HTTP/1.1\r\nHost: tollgate.test\r\nX-Case: c{i}\r\nConnection: close\r\n\r\n");
        statuses.push(exchange(tg.handle.proxy_addr, request.as_bytes()));
    }
    // nginx logs a request after answering it: wait for the last line.
    let end =
        exchange(tg.handle.proxy_addr, b"GET /end HTTP/1.1\r\nHost: t\r\nX-Case: end\r\nConnection: close\r\n\r\n");
    assert_eq!(end, 404, "the sentinel request goes through");
    let log_path = nginx.dir.path().join("diff.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read(&log_path).unwrap_or_default();
        if log.ends_with(b"\"case\":\"end\",\"uri\":\"/end\",\"request_uri\":\"/end\",\"status\":404}\n")
            || Instant::now() > deadline
        {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut problems = Vec::new();
    for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // Bytes past ASCII are written raw: decode as (possibly lossy) UTF-8
        // only after checking the line is valid JSON of valid UTF-8.
        let record: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                problems
                    .push(format!("nginx logged a record that is not UTF-8 JSON: {}", String::from_utf8_lossy(line)));
                continue;
            }
        };
        let case = record["case"].as_str().unwrap_or_default().to_owned();
        let s = Seen {
            uri: record["uri"].as_str().unwrap_or_default().to_owned(),
            request_uri: record["request_uri"].as_str().unwrap_or_default().to_owned(),
            status: record["status"].as_u64().unwrap_or_default() as u16,
        };
        if case == "end" {
            continue;
        }
        if seen.contains_key(&case) || !case.starts_with('c') {
            problems.push(format!("unexpected nginx record {case:?}: {s:?}"));
        }
        seen.insert(case, s);
    }

    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        // The path as tollgate's HTTP layer hands it over: before any `?`,
        // and before any `#` (a fragment in a request target is dropped by
        // the `http` crate, so it is neither checked nor forwarded).
        let raw_path = &target[..target.find(['?', '#']).unwrap_or(target.len())];
        let checked = check_path(raw_path);
        match (seen.get(&format!("c{i}")), &checked) {
            (Some(s), Ok(normal)) => {
                *tally.entry("forwarded").or_default() += 1;
                let forwarded_path = s.request_uri.split_once('?').map_or(s.request_uri.as_str(), |(p, _)| p);
                if s.uri != normal.decoded || forwarded_path != raw_path {
                    problems.push(format!(
                        "{target:?}: tollgate verified {:?}, nginx read $uri {:?} ($request_uri {:?}, status {})",
                        normal.decoded, s.uri, s.request_uri, s.status
                    ));
                }
            }
            (Some(s), Err(why)) => problems.push(format!(
                "{target:?} is not in normal form ({why:?}) yet reached nginx as $uri {:?} ($request_uri {:?})",
                s.uri, s.request_uri
            )),
            (None, _) if !(400..500).contains(&statuses[i]) => {
                problems.push(format!("{target:?}: tollgate answered {} without forwarding", statuses[i]))
            }
            (None, Ok(p)) if p.empty_segment || p.encoded_slash_at.is_some() => {
                *tally.entry("refused: `//` or `%2F` on a route without the opt-in").or_default() += 1
            }
            (None, Ok(_)) => {
                *tally.entry("refused by the HTTP parser (bytes no request line may hold)").or_default() += 1
            }
            (None, Err(_)) => *tally.entry("refused by the normal-form check").or_default() += 1,
        }
    }
    eprintln!("nginx differential over {} targets: {tally:?}", targets.len());
    problems.sort_by_key(String::len);
    assert!(problems.is_empty(), "{} discrepancies, shortest first:\n{}", problems.len(), problems.join("\n"));
    assert!(tally["forwarded"] >= targets.len() / 5, "too few targets forwarded to judge: {tally:?}");
    assert!(tally["refused by the normal-form check"] >= targets.len() / 5, "too few refused: {tally:?}");
}

/// Object keys of the shapes that broke S3 proxies: spaces, `+`, `&`, `=`,
/// `;`, `%`, unicode, reserved and sub-delimiter characters, `//`, dots.
const ODD_KEYS: &[&str] = &[
    "odd dir/a b+c&d=caf\u{e9};x~(1)!.txt",
    "plain.txt",
    "a+b.txt",
    "a%20b.txt",
    "100%.txt",
    "q?x=1#frag",
    "semi;colon/and,comma",
    "star*/paren(s)/bang!/quote'",
    "dollar$/at@/colon:/eq=/amp&",
    "brackets[]{}|^`\"<>",
    "tilde~/under_score/dash-",
    "caf\u{e9}/\u{20ac}/\u{1f600}/\u{4e2d}\u{6587}",
    "nfd-cafe\u{301}",
    "dir//double",
    "trailing/",
    "a..b/..c/d..",
    ".hidden/x",
    "...",
    "space at end ",
    " lead",
    "tab\u{b}vt",
];

/// How a key is spelled in the request target.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    /// Everything but unreserved characters and `/` encoded, upper-case hex.
    Strict,
    /// Lower-case hex.
    Lower,
    /// Only what a request target cannot hold raw is encoded.
    Minimal,
    /// Like `Strict`, with slashes inside the key as `%2F`.
    EncodedSlashes,
}

fn spell(key: &str, how: Spelling) -> String {
    let mut out = String::new();
    for &b in key.as_bytes() {
        let keep = match how {
            Spelling::Strict | Spelling::Lower => b.is_ascii_alphanumeric() || b"-._~/".contains(&b),
            Spelling::EncodedSlashes => b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            Spelling::Minimal => b.is_ascii_graphic() && !b"%?#\\\"<>[]^`{|}".contains(&b),
        };
        if keep {
            out.push(b as char);
        } else if matches!(how, Spelling::Lower) {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keys built from the characters that matter, for the generated part.
fn odd_key() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-z0-9]{1,4}",
        4 => prop::sample::select(vec![
            " ", "+", "&", "=", ";", ",", "%", "~", "!", "*", "'", "(", ")", "$", "@", ":", "/", "//", ".", "..",
            "\u{e9}", "\u{1f600}", "\u{4e2d}", "[", "]", "#", "?", "\"", "^", "|", "`", "{", "}",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

fn list(moto: &Moto, prefix: &str) -> Vec<(String, String)> {
    let out = Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("tests/py/s3_list.py"))
        .args([&format!("http://{}", moto.addr), "diff", prefix, &moto.access_key, &moto.secret_key])
        .output()
        .unwrap();
    assert!(out.status.success(), "listing failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter().map(|o| (o["key"].as_str().unwrap().to_owned(), o["body"].as_str().unwrap().to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_reads_the_key_tollgate_derived() {
    // Keys: the named ones in every spelling, then generated ones.
    let mut keys: Vec<(String, Spelling)> = Vec::new();
    for key in ODD_KEYS {
        for how in [Spelling::Strict, Spelling::Lower, Spelling::Minimal, Spelling::EncodedSlashes] {
            keys.push(((*key).to_owned(), how));
        }
    }
    let mut runner = runner();
    let strategy = (odd_key(), prop::sample::select(vec![Spelling::Strict, Spelling::Minimal, Spelling::Lower]));
    for _ in 0..cases(150) {
        keys.push(strategy.new_tree(&mut runner).unwrap().current());
    }

    // Each case's target, and the key tollgate derives from it (key prefix
    // + decoded path below the route prefix), or None when it must refuse.
    struct Case {
        target_path: String,
        derived: Option<String>,
    }
    let cases: Vec<Case> = keys
        .iter()
        .map(|(key, how)| {
            let target_path = spell(key, *how);
            let derived = check_path(&format!("/g/{target_path}"))
                .ok()
                .and_then(|p| p.decoded.strip_prefix("/g/").map(str::to_owned))
                .filter(|rest| !rest.is_empty());
            if let Some(rest) = &derived {
                assert_eq!(rest, key, "the test's own spelling of {key:?} as {how:?}");
            }
            Case { target_path, derived }
        })
        .collect();
    // Seed, with botocore, every key tollgate should read; body = case id.
    let seed: Vec<(String, String)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.derived.as_ref().map(|k| (format!("seed/{k}"), format!("case-{i}"))))
        .collect();
    let mut unique_seed: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &seed {
        unique_seed.entry(k).or_insert(v);
    }
    let seed_refs: Vec<(&str, &str)> = unique_seed.iter().map(|(k, v)| (*k, *v)).collect();
    let moto = Moto::start("diff", &seed_refs);

    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "s3-access", moto.access_key.as_bytes());
    common::write_file(dir.path(), "s3-secret", moto.secret_key.as_bytes());
    let s3 = |prefix: &str| {
        format!(
            "{{ url: \"http://{}\", s3: {{ bucket: diff, region: us-east-1, key_prefix: {prefix}, access_key_file: s3-access, secret_key_file: s3-secret }} }}",
            moto.addr
        )
    };
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  seed: {seed}
  put: {put}
routes:
  - {{ name: get, prefix: /g/, upstream: seed, auth: none, allow_empty_segments: true, allow_encoded_slashes: true }}
  - {{ name: put, prefix: /p/, upstream: put, methods: [PUT], auth: none, allow_empty_segments: true, allow_encoded_slashes: true }}
log: {{ access_log: false }}
"#,
        seed = s3("seed/"),
        put = s3("put/"),
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    let mut problems = Vec::new();
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();

    // Lookup: GET /g/<target> returns the object seeded under the derived key.
    for c in &cases {
        let request = format!("GET /g/{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", c.target_path);
        let mut stream = TcpStream::connect(tg.handle.proxy_addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        let status: u16 = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        match &c.derived {
            Some(key) => {
                let want = unique_seed[format!("seed/{key}").as_str()];
                if status != 200 || body != want {
                    problems
                        .push(format!("GET /g/{}: key {key:?} seeded as {want}, got {status} {body:?}", c.target_path));
                } else {
                    *tally.entry("GET read the derived key").or_default() += 1;
                }
            }
            None if status == 200 => {
                problems.push(format!("GET /g/{}: not in normal form, yet answered 200 {body:?}", c.target_path))
            }
            None => *tally.entry("GET refused").or_default() += 1,
        }
    }

    // Storage: PUT /p/<target> stores the body under the derived key.
    for (i, c) in cases.iter().enumerate() {
        let body = format!("case-{i}");
        let request = format!(
            "PUT /p/{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            c.target_path,
            body.len()
        );
        let status = exchange(tg.handle.proxy_addr, request.as_bytes());
        match (&c.derived, status) {
            (Some(_), 200) => *tally.entry("PUT stored").or_default() += 1,
            (Some(key), other) => problems.push(format!("PUT /p/{} (key {key:?}) answered {other}", c.target_path)),
            (None, 200) => problems.push(format!("PUT /p/{}: not in normal form, yet stored", c.target_path)),
            (None, _) => *tally.entry("PUT refused").or_default() += 1,
        }
    }
    let stored = list(&moto, "put/");
    // The last PUT of a key wins: the object under each derived key must
    // hold the body of the last case deriving that key.
    let mut expected: HashMap<String, String> = HashMap::new();
    for (i, c) in cases.iter().enumerate() {
        if let Some(key) = &c.derived {
            expected.insert(format!("put/{key}"), format!("case-{i}"));
        }
    }
    let stored_map: HashMap<String, String> = stored.into_iter().collect();
    for (key, body) in &expected {
        match stored_map.get(key) {
            Some(b) if b == body => {}
            other => problems.push(format!("key {key:?}: expected {body}, the bucket holds {other:?}")),
        }
    }
    for key in stored_map.keys() {
        if !expected.contains_key(key) {
            problems.push(format!("the bucket holds {key:?}, a key tollgate never derived"));
        }
    }
    eprintln!("object-store differential over {} targets: {tally:?}", cases.len());
    problems.sort_by_key(String::len);
    assert!(problems.is_empty(), "{} discrepancies, shortest first:\n{}", problems.len(), problems.join("\n"));
    assert!(tally.get("GET read the derived key").copied().unwrap_or(0) >= 100, "{tally:?}");
}
