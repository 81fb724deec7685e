//! Manifest rewriting (README: Video) in front of a real nginx: every URI a
//! player fetches from a rewritten playlist or MPD carries the request's
//! credential when it lies in the grant, key URIs get a short link of their
//! own, and nothing outside the grant, on another origin or of another
//! scheme changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Tollgate, sign, sign_path};

const HOST: &str = "files.example";

const MASTER: &str = "#EXTM3U\r\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"skd://fairplay-key\"\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000\r\n\
../720p/index.m3u8\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=400000\r\n\
/media/u1/480p/index.m3u8\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=200000\r\n\
http://files.example/media/u1/360p/index.m3u8\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=100000\r\n\
https://cdn.other.example/media/u1/160p/index.m3u8\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=90000\r\n\
https://files.example/media/u1/360p/index.m3u8\r\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"/media/u2/audio.m3u8\"\r\n";

const VARIANT: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/k1.bin\",IV=0x01\n\
#EXT-X-MAP:URI=\"/media/u1/480p/init.mp4\"\n\
#EXTINF:4.0,\nseg-1.ts\n#EXT-X-ENDLIST\n";

const MPD: &str = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
  <BaseURL>/media/u1/dash/</BaseURL>
  <Period><AdaptationSet><Representation id="0" bandwidth="1">
    <SegmentTemplate initialization="init-$RepresentationID$.m4s" media="chunk-$Number$.m4s" startNumber="1"/>
  </Representation></AdaptationSet></Period>
</MPD>
"#;

/// Relative URIs that resolve against a BaseURL on another origin.
const FOREIGN_MPD: &str = r#"<MPD><BaseURL>https://cdn.other.example/v/</BaseURL><Period><AdaptationSet><Representation id="a">
<SegmentTemplate initialization="init.m4s" media="chunk-$Number$.m4s"/></Representation></AdaptationSet></Period></MPD>
"#;

/// A same-origin BaseURL outside the grant before relative URIs.
const BASE_MPD: &str = r#"<MPD><BaseURL>/other/</BaseURL><Period><AdaptationSet><Representation id="a">
<SegmentList><SegmentURL media="x.m4s"/></SegmentList></Representation></AdaptationSet></Period></MPD>
"#;

/// A template whose first substitution could name another host.
const TEMPLATE_MPD: &str = r#"<MPD><Period><AdaptationSet><Representation id="//evil.example">
<SegmentTemplate initialization="$RepresentationID$/init.m4s" media="seg/$RepresentationID$/c.m4s"/>
<SegmentTemplate media="/$RepresentationID$/c.m4s"/></Representation></AdaptationSet></Period></MPD>
"#;

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    media: Vec<u8>,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &str) -> Setup {
    setup_with(extra, "", "").await
}

/// [`setup`] with `server_extra` in nginx's server block and `keys_extra`
/// beside the key route's signed URLs.
async fn setup_with(extra: &str, server_extra: &str, keys_extra: &str) -> Setup {
    let nginx = Nginx::start_with(
        &[
            ("media/u1/video/master.m3u8", MASTER.as_bytes()),
            ("media/u1/720p/index.m3u8", VARIANT.as_bytes()),
            ("media/u1/480p/index.m3u8", VARIANT.as_bytes()),
            ("media/u1/480p/init.mp4", b"init"),
            ("media/u1/480p/seg-1.ts", b"segment"),
            ("media/u1/360p/index.m3u8", VARIANT.as_bytes()),
            ("media/u1/dash/stream.mpd", MPD.as_bytes()),
            ("media/u1/dash/init-0.m4s", b"dash-init"),
            ("media/u2/audio.m3u8", b"#EXTM3U\n"),
            ("keys/k1.bin", b"0123456789abcdef"),
            ("media/u1/gz/index.m3u8", VARIANT.as_bytes()),
            ("media/u1/dash/foreign.mpd", FOREIGN_MPD.as_bytes()),
            ("media/u1/dash/template.mpd", TEMPLATE_MPD.as_bytes()),
            ("media/u1/dash/base.mpd", BASE_MPD.as_bytes()),
        ],
        server_extra,
    );
    let dir = tempfile::tempdir().unwrap();
    let media = common::random_secret();
    common::write_file(dir.path(), "media.key", &media);
    common::write_file(dir.path(), "keys.key", &common::random_secret());
    let manifests =
        if extra.is_empty() { "key_routes: [keys]".to_owned() } else { format!("key_routes: [keys], {extra}") };
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  keys: {{ hmac: {{ secret_file: keys.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    auth: {{ signed_url: {{ keys: [media], path_tokens: true }} }}
    manifests: {{ {manifests} }}
  - name: keys
    prefix: /keys/
    upstream: nginx
    auth: {{ signed_url: {{ keys: [keys], max_ttl: 5m }} {keys_extra} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, media, http: Http::h1(), _dir: dir }
}

impl Setup {
    async fn get(&self, target: &str) -> common::Resp {
        let target = target.strip_prefix("http://files.example").unwrap_or(target);
        self.http.get_with(&self.tg.url(target), &[("host", HOST)]).await
    }
}

/// The URI lines of a playlist.
fn uris(playlist: &str) -> Vec<&str> {
    playlist.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

fn attribute<'a>(line: &'a str, tag: &str) -> &'a str {
    let line = line.lines().find(|l| l.starts_with(tag)).unwrap();
    line.split("URI=\"").nth(1).unwrap().split('"').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_token_reaches_every_variant_in_its_grant_and_no_further() {
    let s = setup("").await;
    let master = sign_path(&s.media, "/media/u1/video/master.m3u8", 300, Some("/media/u1/"));
    let token = master.split('/').find(|seg| seg.starts_with("tg~")).unwrap().to_owned();
    let r = s.get(&master).await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()));
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    assert_eq!(r.header("etag"), None, "the upstream's validator does not describe the rewritten bytes");
    let want = [
        "../720p/index.m3u8".to_owned(), // resolves under the token already
        format!("/media/u1/{token}/480p/index.m3u8"),
        format!("http://files.example/media/u1/{token}/360p/index.m3u8"),
        "https://cdn.other.example/media/u1/160p/index.m3u8".to_owned(),
        // Asked over plain HTTP: an https URL is another origin here.
        "https://files.example/media/u1/360p/index.m3u8".to_owned(),
    ];
    assert_eq!(uris(&body), want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(attribute(&body, "#EXT-X-MEDIA"), "/media/u2/audio.m3u8", "outside the grant: unchanged");
    assert_eq!(attribute(&body, "#EXT-X-SESSION-KEY"), "skd://fairplay-key", "another scheme: unchanged");
    assert!(body.contains("\r\n") && !body.contains("\r\r"), "line endings kept");

    // What a player fetches next, resolved against the manifest's URL.
    let base = master.rsplit_once('/').unwrap().0.to_owned();
    let sibling = format!("{}/720p/index.m3u8", base.rsplit_once('/').unwrap().0);
    for variant in [sibling, format!("/media/u1/{token}/480p/index.m3u8"), format!("/media/u1/{token}/360p/index.m3u8")]
    {
        let r = s.get(&variant).await;
        assert_eq!(r.status, 200, "{variant}");
    }
    assert_eq!(s.get("/media/u2/audio.m3u8").await.status, 401, "outside the grant stays refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_uris_get_a_short_link_for_the_key_route_and_init_sections_the_token() {
    let s = setup("key_link_ttl: 30s").await;
    let variant = sign_path(&s.media, "/media/u1/480p/index.m3u8", 300, Some("/media/u1/"));
    let body = s.get(&variant).await.text();
    let key = attribute(&body, "#EXT-X-KEY");
    assert!(key.starts_with("/keys/k1.bin?exp=") && key.contains("&sig="), "{key}");
    assert!(!key.contains("tg~") && !key.contains("prefix="), "never the content grant: {key}");
    let exp: u64 = key.split("exp=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let now = tollgate::auth::unix_now();
    assert!(exp > now && exp <= now + 31, "key link lives key_link_ttl: {exp} vs {now}");
    let r = s.get(key).await;
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789abcdef"));
    assert_eq!(s.get("/keys/k1.bin").await.status, 401, "the key route keeps its own rule");

    let map = attribute(&body, "#EXT-X-MAP");
    assert!(map.starts_with("/media/u1/tg~") && map.ends_with("/480p/init.mp4"), "{map}");
    assert_eq!(s.get(map).await.text(), "init");
    let segment = format!("{}/seg-1.ts", variant.rsplit_once('/').unwrap().0);
    assert_eq!(uris(&body), vec!["seg-1.ts"], "relative segment lines are already under the token");
    assert_eq!(s.get(&segment).await.text(), "segment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_prefix_query_is_appended_to_uris_in_its_grant() {
    let s = setup("").await;
    let master = sign(&s.media, "GET", "/media/u1/video/master.m3u8", 300, None, Some("/media/u1/"));
    let query = master.split_once('?').unwrap().1.to_owned();
    let body = s.get(&master).await.text();
    assert_eq!(
        uris(&body),
        vec![
            format!("../720p/index.m3u8?{query}"),
            format!("/media/u1/480p/index.m3u8?{query}"),
            format!("http://files.example/media/u1/360p/index.m3u8?{query}"),
            "https://cdn.other.example/media/u1/160p/index.m3u8".to_owned(),
            "https://files.example/media/u1/360p/index.m3u8".to_owned(),
        ]
    );
    for variant in [format!("/media/u1/720p/index.m3u8?{query}"), format!("/media/u1/480p/index.m3u8?{query}")] {
        assert_eq!(s.get(&variant).await.status, 200, "{variant}");
    }

    // A one-file link grants nothing else: only the key gets a link.
    let one = sign(&s.media, "GET", "/media/u1/480p/index.m3u8", 300, None, None);
    let body = s.get(&one).await.text();
    assert_eq!(uris(&body), vec!["seg-1.ts"]);
    assert_eq!(attribute(&body, "#EXT-X-MAP"), "/media/u1/480p/init.mp4");
    assert!(attribute(&body, "#EXT-X-KEY").starts_with("/keys/k1.bin?exp="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_base_urls_carry_the_token_and_the_upstream_never_sees_it() {
    let s = setup("").await;
    let mpd = sign_path(&s.media, "/media/u1/dash/stream.mpd", 300, Some("/media/u1/"));
    let token = mpd.split('/').find(|seg| seg.starts_with("tg~")).unwrap().to_owned();
    let body = s.get(&mpd).await.text();
    assert!(body.contains(&format!("<BaseURL>/media/u1/{token}/dash/</BaseURL>")), "{body}");
    assert!(body.contains(r#"initialization="init-$RepresentationID$.m4s""#), "relative templates unchanged");
    let r = s.get(&format!("/media/u1/{token}/dash/init-0.m4s")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "dash-init"));

    let log = s.nginx.settled_log();
    assert!(!log.contains("tg~") && !log.contains("sig="), "a credential reached nginx:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_the_size_bound_is_a_502_with_its_reason() {
    let s = setup("max_size: 100B").await;
    let master = sign_path(&s.media, "/media/u1/video/master.m3u8", 300, Some("/media/u1/"));
    let r = s.get(&master).await;
    assert_eq!((r.status, r.code().as_str()), (502, "manifest_too_large"));
    // Segments are not manifests: no bound applies to them.
    let init = sign_path(&s.media, "/media/u1/480p/init.mp4", 300, Some("/media/u1/"));
    assert_eq!(s.get(&init).await.status, 200);
}

/// On a key route with a use limit, each minted key link carries its own
/// id: it opens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_links_to_a_use_limited_route_open_once() {
    let s = setup_with("", "", ", use_limit: { uses: 1 }").await;
    let variant = sign_path(&s.media, "/media/u1/480p/index.m3u8", 300, Some("/media/u1/"));
    let key = attribute(&s.get(&variant).await.text(), "#EXT-X-KEY").to_owned();
    assert!(key.contains("jti="), "{key}");
    assert_eq!(s.get(&key).await.status, 200);
    let again = s.get(&key).await;
    assert_eq!((again.status, again.code().as_str()), (410, "replayed"));
    let fresh = attribute(&s.get(&variant).await.text(), "#EXT-X-KEY").to_owned();
    assert_ne!(fresh, key, "the next playlist load mints another link");
    assert_eq!(s.get(&fresh).await.status, 200);
}

/// A manifest the upstream compresses although tollgate asked for
/// `identity` is a 502 with its reason, never passed through unrewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_manifest_is_a_502_with_its_reason() {
    let s = setup_with("", "location /media/u1/gz/ { add_header Content-Encoding gzip; }", "").await;
    let playlist = sign_path(&s.media, "/media/u1/gz/index.m3u8", 300, Some("/media/u1/"));
    let r = s.get(&playlist).await;
    assert_eq!((r.status, r.code().as_str()), (502, "manifest_encoded"));
    let log = s.nginx.settled_log();
    assert!(!log.contains("tg~"), "{log}");
}

/// An MPD whose BaseURL names another origin is passed on unrewritten,
/// and a template that substitutes before its host is fixed is never given
/// the credential: the player would carry it off this origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_uris_that_could_resolve_off_this_origin_are_left_alone() {
    let s = setup("").await;
    for (mpd, original) in [("foreign", FOREIGN_MPD), ("template", TEMPLATE_MPD), ("base", BASE_MPD)] {
        let path = format!("/media/u1/dash/{mpd}.mpd");
        let query_form = sign(&s.media, "GET", &path, 300, None, Some("/media/u1/"));
        let body = s.get(&query_form).await.text();
        assert_eq!(body, original, "{mpd}: rewritten");
        assert!(!body.contains("sig="), "{mpd}");
    }
}

/// Key links are minted only for a verified request and only for the
/// routes `key_routes` names: a public manifest route, or one that does not
/// name the key route, leaves key URIs as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_links_need_a_verified_request_and_a_named_key_route() {
    let s = setup_with("", "", "").await;
    let yaml_routes = |manifests: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nkeys:\n  keys: {{ hmac: {{ secret_file: keys.key }} }}\n\
             upstreams:\n  nginx: {{ url: \"http://{}\" }}\nroutes:\n\
             \x20 - {{ name: open, prefix: /media/, upstream: nginx, auth: none, manifests: {manifests} }}\n\
             \x20 - {{ name: keys, prefix: /keys/, upstream: nginx, auth: {{ signed_url: {{ keys: [keys] }} }} }}\n",
            s.nginx.addr
        )
    };
    for manifests in ["{ key_routes: [keys] }", "{}"] {
        let dir = tempfile::tempdir().unwrap();
        common::write_file(dir.path(), "keys.key", &common::random_secret());
        let tg = Tollgate::start(&yaml_routes(manifests), dir.path()).await;
        let r = s.http.get_with(&tg.url("/media/u1/480p/index.m3u8"), &[("host", HOST)]).await;
        assert_eq!(attribute(&r.text(), "#EXT-X-KEY"), "/keys/k1.bin", "{manifests}: a key link was minted");
    }
}
