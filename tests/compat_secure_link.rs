//! nginx `secure_link`, differential: a real nginx with
//! `ngx_http_secure_link_module` and tollgate are given the same links —
//! valid, expired, tampered, for another path, with and without padding,
//! `expires=0`, malformed — and must agree on allowed or refused. The links'
//! hashes are computed here with the `md5` crate, independently of
//! tollgate's expression code; the secret is generated per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use common::{Http, Nginx, Tollgate};
use md5::{Digest, Md5};

const FILES: &[(&str, &[u8])] =
    &[("s/a.txt", b"a"), ("s/dir/b.txt", b"b"), ("s/caf\u{e9}.txt", b"cafe"), ("s/x y.txt", b"space")];

/// Where a request was refused or let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused,
}

struct Setup {
    /// nginx checking the links itself (`secure_link` on `/s/`).
    reference: Nginx,
    /// nginx behind tollgate, serving the same files without a check.
    plain: Nginx,
    tg: Tollgate,
    http: Http,
    secret: String,
    _dir: tempfile::TempDir,
}

const EXPRESSION: &str = "$secure_link_expires$uri$remote_addr";

async fn setup_with(extra: &str) -> Setup {
    let secret = String::from_utf8(common::random_secret()).unwrap();
    let check = format!(
        r#"location /s/ {{
      secure_link $arg_md5,$arg_expires;
      secure_link_md5 "{EXPRESSION} {secret}";
      if ($secure_link = "") {{ return 403; }}
      if ($secure_link = "0") {{ return 410; }}
    }}"#
    );
    let reference = Nginx::start_with(FILES, &check);
    let plain = Nginx::start(FILES);
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "sl.key", secret.as_bytes());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  sl: {{ secure_link: {{ secret_file: sl.key }} }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - name: s
    prefix: /s/
    upstream: nginx
    auth:
      secure_link:
        keys: [sl]
        md5: "{EXPRESSION} $secret"
log: {{ access_log: false }}
{extra}
"#,
        addr = plain.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { reference, plain, tg, http: Http::h1(), secret, _dir: dir }
}

impl Setup {
    /// The raw 16-byte hash nginx expects for a decoded `uri`.
    fn digest(&self, expires: &str, uri: &str, addr: &str) -> [u8; 16] {
        Md5::digest(format!("{expires}{uri}{addr} {}", self.secret).as_bytes()).into()
    }

    async fn verdicts(&self, target: &str) -> (Verdict, Verdict, u16, u16) {
        let n = self.http.get(&format!("http://{}{target}", self.reference.addr)).await.status;
        let t = self.http.get(&self.tg.url(target)).await.status;
        let verdict = |status: u16, refused: &[u16]| {
            if refused.contains(&status) { Verdict::Refused } else { Verdict::Allowed }
        };
        (verdict(n, &[403, 410]), verdict(t, &[400, 401, 403]), n, t)
    }
}

/// Links of every kind the issue names, for one path.
fn cases(s: &Setup, raw_path: &str, uri: &str, now: u64) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let valid = (now + 600).to_string();
    let expired = (now - 100).to_string();
    let sign = |expires: &str, uri: &str| s.digest(expires, uri, "127.0.0.1");
    let link = |hash: &str, expires: &str| format!("{raw_path}?md5={hash}&expires={expires}");
    let h = sign(&valid, uri);
    let plain = URL_SAFE_NO_PAD.encode(h);
    out.push((link(&plain, &valid), "valid, no padding"));
    out.push((link(&URL_SAFE.encode(h), &valid), "valid, padded"));
    out.push((link(&format!("{plain}="), &valid), "one ="));
    out.push((link(&format!("{plain}=x"), &valid), "= then anything"));
    out.push((link(&format!("{plain}==="), &valid), "25 characters"));
    out.push((link(&STANDARD.encode(h), &valid), "standard alphabet"));
    out.push((link(&plain[..21], &valid), "21 characters"));
    out.push((link(&format!("{plain}A"), &valid), "23 significant characters"));
    out.push((format!("{raw_path}?expires={valid}&md5={plain}&w=1"), "other order, another parameter"));
    out.push((format!("{raw_path}?md5={plain}"), "no expires"));
    out.push((format!("{raw_path}?expires={valid}"), "no md5"));
    out.push((format!("{raw_path}?md5={plain}&expires="), "empty expires"));
    // The last character carries 2 significant bits: every variant of its
    // low 4 bits is the same hash to nginx.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for &c in alphabet {
        let mut variant = plain.clone().into_bytes();
        variant[21] = c;
        out.push((link(std::str::from_utf8(&variant).unwrap(), &valid), "last character"));
    }
    for at in [0, 5, 10, 20] {
        let mut tampered = plain.clone().into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        out.push((link(std::str::from_utf8(&tampered).unwrap(), &valid), "tampered"));
    }
    out.push((link(&URL_SAFE_NO_PAD.encode(sign(&expired, uri)), &expired), "expired"));
    out.push((link(&URL_SAFE_NO_PAD.encode(sign("0", uri)), "0"), "expires=0"));
    let zero_padded = format!("0{valid}");
    out.push((link(&URL_SAFE_NO_PAD.encode(sign(&zero_padded, uri)), &zero_padded), "leading zero, signed so"));
    out.push((link(&plain, &zero_padded), "leading zero added"));
    out.push((link(&plain, &(now + 601).to_string()), "expiry moved"));
    out.push((link(&URL_SAFE_NO_PAD.encode(sign(&valid, "/s/dir/b.txt")), &valid), "for another path"));
    let other_addr = URL_SAFE_NO_PAD.encode(s.digest(&valid, uri, "127.0.0.2"));
    out.push((link(&other_addr, &valid), "for another address"));
    let big = "99999999999999999999";
    out.push((link(&URL_SAFE_NO_PAD.encode(sign(big, uri)), big), "expires overflows"));
    out.push((link(&URL_SAFE_NO_PAD.encode(sign("1e10", uri)), "1e10"), "expires not digits"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tollgate_and_nginx_agree_on_every_link() {
    let s = setup_with("").await;
    let now = tollgate::auth::unix_now();
    let paths = [
        ("/s/a.txt", "/s/a.txt"),
        ("/s/dir/b.txt", "/s/dir/b.txt"),
        ("/s/caf%C3%A9.txt", "/s/caf\u{e9}.txt"),
        ("/s/x%20y.txt", "/s/x y.txt"),
        ("/s/missing.txt", "/s/missing.txt"),
    ];
    let (mut total, mut allowed) = (0, 0);
    for (raw, uri) in paths {
        for (target, what) in cases(&s, raw, uri, now) {
            let (nginx, tollgate, n, t) = s.verdicts(&target).await;
            assert_eq!(tollgate, nginx, "{what}: {target} (nginx {n}, tollgate {t})");
            total += 1;
            allowed += usize::from(nginx == Verdict::Allowed);
        }
    }
    assert!(total >= 400, "{total} links");
    assert!(allowed >= 100 && total - allowed >= 100, "both verdicts are exercised: {allowed} of {total} allowed");
    let log = s.plain.settled_log();
    assert!(log.lines().count() >= 100, "{log}");
    assert!(!log.contains("md5=") && !log.contains("expires="), "a credential reached nginx:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_check_and_other_parameters_arrive_byte_exact() {
    let s = setup_with("").await;
    let exp = (tollgate::auth::unix_now() + 300).to_string();
    let hash = URL_SAFE_NO_PAD.encode(s.digest(&exp, "/s/a.txt", "127.0.0.1"));
    let r = s.http.get(&s.tg.url(&format!("/s/a.txt?w=1&md5={hash}&x=%7e+&expires={exp}&&z"))).await;
    assert_eq!((r.status, r.text().as_str()), (200, "a"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    s.plain.wait_for_line("GET /s/a.txt?w=1&x=%7e+&&z HTTP/1.1|");
    let cases = [
        (format!("/s/dir/b.txt?md5={hash}&expires={exp}"), 403, "bad_signature"),
        (format!("/s/a.txt?md5={hash}&expires=0{exp}"), 403, "bad_signature"),
        (format!("/s/a.txt?md5={hash}&expires=x"), 400, "malformed"),
        (format!("/s/a.txt?md5={hash}"), 400, "malformed"),
        (format!("/s/a.txt?md5={hash}&md5={hash}&expires={exp}"), 400, "malformed"),
        ("/s/a.txt".to_owned(), 401, "missing_credential"),
    ];
    for (target, status, code) in cases {
        let r = s.http.get(&s.tg.url(&target)).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{target}");
    }
    let old = (tollgate::auth::unix_now() - 5).to_string();
    let hash = URL_SAFE_NO_PAD.encode(s.digest(&old, "/s/a.txt", "127.0.0.1"));
    let r = s.http.get(&s.tg.url(&format!("/s/a.txt?md5={hash}&expires={old}"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    let zero = URL_SAFE_NO_PAD.encode(s.digest("0", "/s/a.txt", "127.0.0.1"));
    let r = s.http.get(&s.tg.url(&format!("/s/a.txt?md5={zero}&expires=0"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tollgate_sign_links_open_nginx_itself() {
    let s = setup_with("").await;
    let link = tollgate::auth::kinds::secure_link::sign_secure_link(
        s.secret.as_bytes(),
        &tollgate::auth::kinds::secure_link::SecureLinkSign {
            target: "/s/caf%C3%A9.txt?v=2",
            md5: &format!("{EXPRESSION} $secret"),
            expires: tollgate::auth::unix_now() + 60,
            remote_addr: Some("127.0.0.1".parse().unwrap()),
            hash_param: "md5",
            expires_param: "expires",
        },
    )
    .unwrap();
    let r = s.http.get(&format!("http://{}{link}", s.reference.addr)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "cafe"), "nginx accepts {link}");
    assert_eq!(s.http.get(&s.tg.url(&link)).await.text(), "cafe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_addr_is_the_trusted_forwarded_address_only_when_trusted() {
    let direct = setup_with("").await;
    let proxied = setup_with("trust_forwarded_headers: true").await;
    for (s, trusted) in [(&direct, false), (&proxied, true)] {
        let exp = (tollgate::auth::unix_now() + 300).to_string();
        let hash = URL_SAFE_NO_PAD.encode(s.digest(&exp, "/s/a.txt", "203.0.113.9"));
        let url = s.tg.url(&format!("/s/a.txt?md5={hash}&expires={exp}"));
        let r = s.http.get_with(&url, &[("x-forwarded-for", "10.9.9.9, 203.0.113.9")]).await;
        assert_eq!(r.status == 200, trusted, "trusted: {trusted}: {}", r.text());
        let r = s.http.get_with(&url, &[("x-forwarded-for", "203.0.113.9, 10.9.9.9")]).await;
        assert_eq!(r.status, 403, "the last address counts, not a client-written one");
    }
}
