//! tollgate in front of a private bucket on a real S3-compatible server that
//! verifies SigV4 (moto_server with authentication on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Http, Moto, Tollgate, sign};

const ODD_KEY: &str = "odd dir/a b+c&d=caf\u{e9};x~(1)!.txt";

struct Setup {
    moto: Moto,
    tg: Tollgate,
    secret: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let moto = Moto::start(
        "media",
        &[
            ("public-site/cats/a.jpg", "0123456789abcdef"),
            ("public-site/docs/readme.txt", "read me"),
            (&format!("public-site/{ODD_KEY}"), "odd content"),
            ("private/secret.txt", "not under the prefix"),
            ("public-site/u1/index.m3u8", "#EXTM3U\n#EXTINF:4.0,\n/video/u1/seg-1.ts\n#EXT-X-ENDLIST\n"),
            ("public-site/u1/seg-1.ts", "segment from the bucket"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "s3-access", format!("{}\n", moto.access_key).as_bytes());
    common::write_file(dir.path(), "s3-secret", format!("{}\n", moto.secret_key).as_bytes());
    common::write_file(dir.path(), "wrong-secret", b"definitely-not-the-secret-key");
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  bucket:
    url: "http://{addr}"
    s3: {{ bucket: media, region: us-east-1, key_prefix: public-site/, access_key_file: s3-access, secret_key_file: s3-secret }}
  wrong:
    url: "http://{addr}"
    s3: {{ bucket: media, region: us-east-1, key_prefix: public-site/, access_key_file: s3-access, secret_key_file: wrong-secret }}
routes:
  - name: media
    prefix: /media/
    upstream: bucket
    auth: {{ signed_url: {{ keys: [media], max_ttl: 30d }} }}
  - name: uploads
    prefix: /uploads/
    upstream: bucket
    methods: [PUT]
    max_body: 1KiB
    require_content_type: image/
    auth: {{ signed_url: {{ keys: [media] }} }}
  - name: wrong
    prefix: /wrong/
    upstream: wrong
    auth: none
  - name: video
    prefix: /video/
    upstream: bucket
    auth: {{ signed_url: {{ keys: [media], path_tokens: true }} }}
    manifests: {{}}
log: {{ access_log: false }}
"#,
        addr = moto.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { moto, tg, secret, _dir: dir }
}

fn assert_no_leak(body: &str) {
    for leak in ["media<", "public-site", "<Error>", "<?xml", "RequestId", "BucketName"] {
        assert!(!body.contains(leak), "S3 internals leaked: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_a_private_bucket() {
    let s = setup().await;
    let http = Http::h1();
    let url = |t: &str| s.tg.url(t);
    let signed = sign(&s.secret, "GET", "/media/cats/a.jpg", 300, None, None);

    // The bucket is really private: an unsigned request straight to it fails.
    let direct = http.get(&format!("http://{}/media/public-site/cats/a.jpg", s.moto.addr)).await;
    assert_eq!(direct.status, 403, "moto must enforce authentication: {}", direct.text());

    let r = http.get(&url(&signed)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789abcdef"));
    let etag = r.header("etag").expect("ETag relayed").to_owned();
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.headers.keys().all(|k| !k.as_str().starts_with("x-amz-")), "{:?}", r.headers);

    let r = http.send("HEAD", &url(&signed), &[], Bytes::new()).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("16")));

    let r = http.get_with(&url(&signed), &[("range", "bytes=2-5")]).await;
    assert_eq!((r.status, r.text().as_str(), r.header("content-range")), (206, "2345", Some("bytes 2-5/16")));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    let r = http.get_with(&url(&signed), &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    let r = http.get_with(&url(&signed), &[("if-match", "\"0000\"")]).await;
    assert_eq!((r.status, r.code().as_str()), (412, "precondition_failed"));
    assert_no_leak(&r.text());
    let r = http.get_with(&url(&signed), &[("range", "bytes=100-200")]).await;
    assert_eq!((r.status, r.code().as_str()), (416, "range_not_satisfiable"));
    assert_no_leak(&r.text());

    let missing = sign(&s.secret, "GET", "/media/cats/none.jpg", 300, None, None);
    let r = http.get(&url(&missing)).await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_no_leak(&r.text());

    // A response override the signer bound is honoured; one added is not.
    let typed = sign(&s.secret, "GET", "/media/cats/a.jpg?response-content-type=image/jpeg", 300, None, None);
    let r = http.get(&url(&typed)).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/jpeg")));
    let added = format!("{signed}&response-content-type=text/html");
    assert_eq!(http.get(&url(&added)).await.status, 403);

    // Keys with spaces, +, &, =, ;, unicode and reserved characters.
    let mut encoded = String::from("/media/");
    for seg in ODD_KEY.split('/') {
        let mut e = String::new();
        tollgate::auth::query::encode_strict(seg.as_bytes(), &mut e);
        encoded.push_str(&e);
        encoded.push('/');
    }
    encoded.pop();
    let odd = sign(&s.secret, "GET", &encoded, 300, None, None);
    let r = http.get(&url(&odd)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "odd content"), "{encoded}");

    // Objects outside the key prefix cannot be reached by path games.
    let inside = sign(&s.secret, "GET", "/media/docs/readme.txt", 300, None, None);
    let outside = inside.replacen("/media/docs/readme.txt", "/media/%2E%2E/private/secret.txt", 1);
    assert_eq!(http.get(&url(&outside)).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_credential_faults() {
    let s = setup().await;
    let http = Http::h1();
    let url = |t: &str| s.tg.url(t);
    let body = Bytes::from_static(b"\x89PNG fake image bytes");

    let put = sign(&s.secret, "PUT", "/uploads/new/pic%201.png", 300, None, None);
    let r = http.send("PUT", &url(&put), &[("content-type", "image/png")], body.clone()).await;
    assert_eq!(r.status, 200, "upload: {}", r.text());
    let read = sign(&s.secret, "GET", "/media/new/pic%201.png", 300, None, None);
    let r = http.get(&url(&read)).await;
    assert_eq!((r.status, &r.body[..]), (200, &body[..]), "the upload is readable");
    assert_eq!(r.header("content-type"), Some("image/png"));

    let r = http.send("PUT", &url(&put), &[("content-type", "text/html")], body.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (415, "unsupported_media_type"));
    let big = Bytes::from(vec![b'x'; 4096]);
    let r = http.send("PUT", &url(&put), &[("content-type", "image/png")], big).await;
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
    let get_sig = sign(&s.secret, "GET", "/uploads/new/pic%201.png", 300, None, None);
    let r = http.send("PUT", &url(&get_sig), &[("content-type", "image/png")], body.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_method"));

    // tollgate's own credentials wrong: a deployment fault, not the client's.
    let r = http.get(&url("/wrong/cats/a.jpg")).await;
    assert_eq!((r.status, r.code().as_str()), (502, "upstream_unavailable"));
    assert_no_leak(&r.text());
    let m = common::metrics(&http.get(&s.tg.admin_url("/metrics")).await.text());
    assert_eq!(m[r#"tollgate_upstream_errors_total{kind="credentials",route="wrong"}"#], 1.0);
}

/// A playlist stored in the bucket is rewritten like one from nginx: its
/// absolute segment path gets the token, and the segment loads with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_from_the_bucket_are_rewritten() {
    let s = setup().await;
    let http = Http::h1();
    let playlist = common::sign_path(&s.secret, "/video/u1/index.m3u8", 300, Some("/video/u1/"));
    let token = playlist.split('/').find(|p| p.starts_with("tg~")).unwrap().to_owned();
    let r = http.get(&s.tg.url(&playlist)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let segment = format!("/video/u1/{token}/seg-1.ts");
    assert!(r.text().contains(&format!("\n{segment}\n")), "{}", r.text());
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    let seg = http.get(&s.tg.url(&segment)).await;
    assert_eq!((seg.status, seg.text().as_str()), (200, "segment from the bucket"));
}
