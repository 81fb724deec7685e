//! Path tokens (docs/reference.md: Path tokens) in front of a real nginx: everything below the
//! token segment inherits the grant, nothing else does, the upstream never
//! sees the token, and nginx's directory redirect keeps it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Tollgate, sign_path};

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    secret: Vec<u8>,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let nginx = Nginx::start(&[
        ("media/u1/video/index.m3u8", b"#EXTM3U\n720p/seg-1.ts\n"),
        ("media/u1/video/720p/seg-1.ts", b"segment-one"),
        ("media/u10/x.ts", b"sibling"),
        ("media/u2/x.ts", b"other user"),
        ("plain/u1/x.ts", b"plain"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - {{ name: media, prefix: /media/, upstream: nginx, auth: {{ signed_url: {{ keys: [media], path_tokens: true }} }} }}
  - {{ name: plain, prefix: /plain/, upstream: nginx, auth: {{ signed_url: {{ keys: [media] }} }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, secret, http: Http::h1(), _dir: dir }
}

/// The manifest and a segment resolved relative to it both load with one
/// token; the upstream sees neither the token nor a changed query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_below_the_token_inherit_the_grant() {
    let s = setup().await;
    let manifest = sign_path(&s.secret, "/media/u1/video/index.m3u8", 300, Some("/media/u1/"));
    let r = s.http.get(&s.tg.url(&manifest)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "#EXTM3U\n720p/seg-1.ts\n"), "{manifest}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("private"));

    // What a player does: resolve the relative segment against the manifest.
    let segment = format!("{}/720p/seg-1.ts?_HLS_msn=3&_HLS_part=1", manifest.rsplit_once('/').unwrap().0);
    let r = s.http.get(&s.tg.url(&segment)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "segment-one"), "{segment}");
    let r = s.http.send("HEAD", &s.tg.url(&segment), &[], bytes::Bytes::new()).await;
    assert_eq!(r.status, 200);

    let log = s.nginx.access_log();
    assert!(log.contains("GET /media/u1/video/720p/seg-1.ts?_HLS_msn=3&_HLS_part=1 HTTP/1.1"), "{log}");
    assert!(log.contains("GET /media/u1/video/index.m3u8 HTTP/1.1"), "{log}");
    assert!(!log.contains("tg~"), "the token reached nginx:\n{log}");
}

/// The token grants its prefix only: not a sibling, not another user, not
/// one level up, not on a route that does not take path tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grant_stops_at_its_prefix() {
    let s = setup().await;
    let url = sign_path(&s.secret, "/media/u1/video/index.m3u8", 300, Some("/media/u1/"));
    let token = url.split('/').find(|seg| seg.starts_with("tg~")).unwrap().to_owned();
    let before = s.nginx.line_count();
    for (target, status, code) in [
        (format!("/media/u10/{token}/x.ts"), 403, "bad_signature"),
        (format!("/media/u2/{token}/x.ts"), 403, "bad_signature"),
        (format!("/media/{token}/u1/video/index.m3u8"), 403, "bad_signature"),
        (format!("/media/u1/video/{token}/index.m3u8"), 403, "bad_signature"),
        (format!("/media/u1/{token}/{token}/video/index.m3u8"), 400, "malformed"),
        (format!("/plain/u1/{token}/x.ts"), 401, "missing_credential"),
        (url.replace("tg~", "tg%7E"), 400, "malformed"),
    ] {
        let r = s.http.get(&s.tg.url(&target)).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{target}");
    }
    let expired = sign_path(&s.secret, "/media/u1/video/index.m3u8", -10, Some("/media/u1/"));
    let r = s.http.get(&s.tg.url(&expired)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    // A query credential next to a path token is two credentials.
    let both = format!("{url}?exp=1893456000&sig={}", "A".repeat(43));
    let r = s.http.get(&s.tg.url(&both)).await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed"));
    let r = s.http.send("PUT", &s.tg.url(&url), &[], bytes::Bytes::from_static(b"x")).await;
    assert_eq!(r.status, 405);
    assert_eq!(s.nginx.line_count(), before, "a refused request reached nginx");
}

/// nginx answers a directory without its slash with a redirect; the
/// `Location` under the granted prefix gets the token back, and following
/// it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_redirects_keep_the_token() {
    let s = setup().await;
    let url = sign_path(&s.secret, "/media/u1/video", 300, Some("/media/u1/"));
    let r = s.http.get(&s.tg.url(&url)).await;
    assert_eq!(r.status, 301, "{url}");
    let location = r.header("location").unwrap().to_owned();
    let token = url.split('/').find(|seg| seg.starts_with("tg~")).unwrap();
    assert!(location.ends_with(&format!("/media/u1/{token}/video/")), "{location}");
    let path = &location[location.find("/media/").unwrap()..];
    let r = s.http.get(&s.tg.url(&format!("{path}index.m3u8"))).await;
    assert_eq!(r.status, 200);
}
