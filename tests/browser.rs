//! The browser patterns of the README (path tokens, manifests, cookies, CORS), proven in a real browser:
//! Debian's chromium, driven by Playwright (`tests/browser/driver.py`).
//!
//! Every test starts a real nginx behind tollgate and a second nginx as the
//! app origin, `http://127.0.0.1:<port>`, whose page embeds files from
//! tollgate on another site, `http://localhost:<port>` — the two-origin
//! setup of the seed scenario. The driver does what a user's browser would
//! and reports what it observed; the assertions live here, next to nginx's
//! access log, which must never hold a credential (checked at the end of
//! every scenario). A missing chromium, ffmpeg or Playwright fails the
//! test: `make test` installs them (tests/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Nginx, Tollgate};
use serde_json::{Value, json};

/// MIME types both nginx instances serve (the common test nginx knows only
/// a few): a page, a service worker script and a stream need theirs.
const TYPES: &str = "types { text/html html; application/javascript js; image/svg+xml svg; \
    application/vnd.apple.mpegurl m3u8; video/mp2t ts; application/dash+xml mpd; video/mp4 mp4; \
    video/iso.segment m4s; text/plain txt; }";

/// The private image every scenario loads (120 px wide).
const CAT: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90" viewBox="0 0 120 90"><rect width="120" height="90" fill="#2a6f97"/><circle cx="60" cy="45" r="30" fill="#f4a340"/></svg>"##;

/// The running setup of one test.
struct Browser {
    /// The file server behind tollgate; its access log is checked.
    upstream: Nginx,
    /// The app origin: static pages, the players, the service worker.
    app: Nginx,
    tg: Tollgate,
    /// HMAC secret for signed URLs and path tokens (key `media`).
    media: Vec<u8>,
    /// HMAC secret for bearer JWTs (key `api`).
    api: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts nginx over `files`, the app origin, and tollgate with
    /// `routes` (YAML list entries; `{app}` stands for the app origin).
    async fn start(files: &[(&str, &[u8])], routes: &str) -> Browser {
        let upstream = Nginx::start_with(files, TYPES);
        let app = Nginx::start_with(&app_files(), TYPES);
        let dir = tempfile::tempdir().unwrap();
        let (media, api, cookie) = (common::random_secret(), common::random_secret(), common::random_secret());
        common::write_file(dir.path(), "media.key", &media);
        common::write_file(dir.path(), "api.key", &api);
        common::write_file(dir.path(), "cookie.key", &cookie);
        let routes = routes.replace("{app}", &format!("http://127.0.0.1:{}", app.addr.port()));
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  api: {{ hmac: {{ secret_file: api.key }} }}
  cookie: {{ hmac: {{ secret_file: cookie.key }} }}
upstreams:
  files: {{ url: "http://{}" }}
routes:
{routes}
log: {{ access_log: false }}
"#,
            upstream.addr
        );
        let tg = Tollgate::start(&yaml, dir.path()).await;
        Browser { upstream, app, tg, media, api, _dir: dir }
    }

    /// The app's origin.
    fn app_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.app.addr.port())
    }

    /// tollgate's origin as the app's pages name it: another site.
    fn files_origin(&self) -> String {
        format!("http://localhost:{}", self.tg.handle.proxy_addr.port())
    }

    /// nginx's web root, to add files after start (a generated stream).
    fn www(&self) -> PathBuf {
        self.upstream.dir.path().join("www")
    }

    /// The page's requests to tollgate: (method, path+query, status), the
    /// status `None` when the browser dropped the answer.
    fn responses(&self, facts: &Value) -> Vec<(String, String, Option<u64>)> {
        let origin = self.files_origin();
        facts["responses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                let path = r["url"].as_str()?.strip_prefix(&origin)?;
                Some((r["method"].as_str()?.to_owned(), path.to_owned(), r["status"].as_u64()))
            })
            .collect()
    }

    /// tollgate's count of refusals on `route` for `reason`.
    async fn denied(&self, route: &str, reason: &str) -> f64 {
        let text = common::Http::h1().get(&self.tg.admin_url("/metrics")).await.text();
        let name = format!(r#"tollgate_auth_denied_total{{reason="{reason}",route="{route}"}}"#);
        common::metrics(&text).get(&name).copied().unwrap_or(0.0)
    }

    /// nginx's access log holds no credential: no signed-URL parameter, no
    /// path token, no bearer token, no exchanged cookie — neither the
    /// markers nor any of the given credential strings — and no request
    /// reached it with an `Authorization` or `Cookie` header. Something
    /// must have reached it, so the check cannot pass on an empty log.
    fn assert_upstream_saw_no_credential(&self, credentials: &[&str]) {
        let log = self.upstream.access_log();
        assert!(!log.is_empty(), "nothing reached nginx");
        for marker in ["sig=", "exp=", "prefix=", "tg~", "tg%7E", "Bearer"] {
            assert!(!log.contains(marker), "nginx's access log holds {marker:?}:\n{log}");
        }
        for credential in credentials {
            assert!(!credential.is_empty());
            assert!(!log.contains(credential), "nginx's access log holds the credential {credential:?}:\n{log}");
        }
        for line in log.lines() {
            assert!(line.contains("|auth=-|cookie=-|"), "a credential header reached nginx: {line}");
        }
    }
}

/// The app origin's files: its page and scripts, and the players from npm
/// (hls.js, dash.js, Shaka Player).
fn app_files() -> Vec<(&'static str, &'static [u8])> {
    let dir = common::repo().join("tests/browser/app");
    let read = |p: &Path| -> &'static [u8] { std::fs::read(p).unwrap().leak() };
    let npm = |path: &str| -> &'static [u8] {
        let file = common::repo().join("tests/js/node_modules").join(path);
        assert!(file.is_file(), "npm's {path} is missing: run `make test` (it runs npm ci in tests/js)");
        read(&file)
    };
    vec![
        ("index.html", read(&dir.join("index.html"))),
        ("app.js", read(&dir.join("app.js"))),
        ("sw.js", read(&dir.join("sw.js"))),
        ("hls.min.js", npm("hls.js/dist/hls.min.js")),
        ("dash.all.min.js", npm("dashjs/dist/modern/umd/dash.all.min.js")),
        ("shaka-player.compiled.js", npm("shaka-player/dist/shaka-player.compiled.js")),
    ]
}

/// Runs one driver scenario in a fresh headless chromium and returns the
/// facts it printed. The driver's stderr (the page's console) is shown
/// when it fails.
async fn drive(scenario: &str, plan: Value) -> Value {
    common::require("chromium", &["/usr/bin/chromium"]);
    let python = common::repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make test` (its pip step puts the Playwright Python package into .venv; the browser is Debian's chromium)",
        python.display()
    );
    let driver = common::repo().join("tests/browser/driver.py");
    let scenario = scenario.to_owned();
    let out = tokio::task::spawn_blocking({
        let scenario = scenario.clone();
        move || Command::new(python).arg(driver).arg(scenario).arg(plan.to_string()).output()
    })
    .await
    .unwrap()
    .expect("run the browser driver");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser scenario {scenario} failed ({}):\n{stderr}", out.status);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{scenario}: bad driver output ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The body of the README code block whose info string ends with `tag`.
fn readme_block(tag: &str) -> String {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| !(l.starts_with("```") && l.ends_with(tag)));
    assert!(lines.next().is_some(), "README has no block tagged {tag}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n"
}

/// The `sig` value of a signed URL.
fn sig_of(url: &str) -> &str {
    url.split("sig=").nth(1).unwrap().split('&').next().unwrap()
}

/// The `tg~…` segment of a path-token URL.
fn token_of(url: &str) -> &str {
    url.split('/').find(|s| s.starts_with("tg~")).unwrap()
}

const MEDIA_ROUTE: &str = "  - { name: media, prefix: /media/, upstream: files, \
    auth: { signed_url: { keys: [media], path_tokens: true } } }";

/// `<img>` on the app origin with a signed URL from the files origin loads;
/// the same URL with one signature character changed does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_with_signed_url_loads_and_tampered_one_does_not() {
    let b = Browser::start(&[("media/u1/cat.svg", CAT)], MEDIA_ROUTE).await;
    let signed = common::sign(&b.media, "GET", "/media/u1/cat.svg", 300, None, None);
    let sig = sig_of(&signed).to_owned();
    // A middle character: the last one of 43 also carries padding bits.
    let flipped = if sig.as_bytes()[20] == b'A' { "B" } else { "A" };
    let tampered = signed.replace(&sig, &format!("{}{flipped}{}", &sig[..20], &sig[21..]));
    let plan = json!({
        "app": b.app_origin(),
        "signed": format!("{}{signed}", b.files_origin()),
        "tampered": format!("{}{tampered}", b.files_origin()),
    });
    let facts = drive("image_loads_with_signed_url", plan).await;
    assert_eq!(facts["signed"], json!({"event": "load", "naturalWidth": 120}), "{facts}");
    assert_eq!(facts["tampered"], json!({"event": "error", "naturalWidth": 0}), "{facts}");
    // The refusal is tollgate's 403; chromium's opaque-response blocking
    // then hides a cross-origin <img>'s JSON error body from the page.
    let statuses: Vec<Option<u64>> = b.responses(&facts).iter().map(|r| r.2).collect();
    assert_eq!(statuses, vec![Some(200), None], "{facts}");
    assert_eq!(b.denied("media", "bad_signature").await, 1.0);
    assert_eq!(b.upstream.line_count(), 1, "only the signed request reaches nginx");
    b.assert_upstream_saw_no_credential(&[&sig]);
}

/// hls.js, as the README shows it, plays a stream ffmpeg generated, through
/// a path token signed with the README's `tollgate sign --path-token`: every
/// segment request is 200 and the video plays. A second manifest under the
/// granted prefix that names a segment outside it (carrying the same token)
/// gets that segment refused, and the player reports the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_plays_through_a_path_token_and_stops_at_its_prefix() {
    let route = readme_block("video-route").replace("https://app.example", "{app}");
    let b = Browser::start(&[], &route).await;
    let video = b.www().join("media/u1/video");
    std::fs::create_dir_all(&video).unwrap();
    let ffmpeg = common::require("ffmpeg", &["/usr/bin/ffmpeg"]);
    // Three one-second segments: a 1 s keyframe interval lets the muxer cut
    // at every second.
    let out = Command::new(ffmpeg)
        .current_dir(&video)
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=3:size=160x120:rate=10"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10", "-sc_threshold", "0"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_filename", "seg-%d.ts"])
        .arg("index.m3u8")
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let index = std::fs::read_to_string(video.join("index.m3u8")).unwrap();
    let segments: Vec<&str> = index.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 3, "{index}");

    // The README's signing line, run as written.
    let bin = Path::new(env!("CARGO_BIN_EXE_tollgate")).parent().unwrap().to_owned();
    let out = Command::new("bash")
        .arg("-c")
        .arg(readme_block("video-sign"))
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("TOLLGATE_MEDIA_KEY", String::from_utf8(b.media.clone()).unwrap())
        .env("FILES", b.files_origin())
        .output()
        .unwrap();
    assert!(out.status.success(), "README's tollgate sign: {}", String::from_utf8_lossy(&out.stderr));
    let manifest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let token = token_of(&manifest).to_owned();
    assert!(manifest.ends_with(&format!("/media/u1/video/{token}/index.m3u8")), "{manifest}");

    // The same token carried to a sibling folder the grant does not cover;
    // nginx has the file, so only tollgate can refuse it.
    let other = b.www().join("media/u1/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(video.join(segments[1]), other.join(segments[1])).unwrap();
    let outside_segment = format!("/media/u1/other/{token}/{}", segments[1]);
    let outside = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXTINF:1.0,\n{}\n#EXTINF:1.0,\n{outside_segment}\n#EXT-X-ENDLIST\n",
        segments[0]
    );
    std::fs::write(video.join("outside.m3u8"), outside).unwrap();

    let plan = json!({
        "app": b.app_origin(),
        "player": readme_block("video-hlsjs"),
        "manifest": manifest,
        "outside": manifest.replace("/index.m3u8", "/outside.m3u8"),
    });
    let facts = drive("hls_plays_through_path_token", plan).await;
    assert!(facts["good"]["currentTime"].as_f64().unwrap() > 1.5, "{facts}");
    assert_eq!(facts["good"]["errors"], json!([]), "{facts}");

    let responses = b.responses(&facts);
    let prefix = format!("/media/u1/video/{token}/");
    let loaded: Vec<&str> = responses
        .iter()
        .filter(|(m, path, _)| m == "GET" && path.starts_with(&prefix) && path.ends_with(".ts"))
        .map(|(_, path, status)| {
            assert_eq!(*status, Some(200), "{path}: {facts}");
            &path[prefix.len()..]
        })
        .collect();
    for segment in &segments[..2] {
        assert!(loaded.contains(segment), "{segment} was not loaded: {facts}");
    }
    let refused: Vec<Option<u64>> = responses.iter().filter(|r| r.1 == outside_segment).map(|r| r.2).collect();
    assert_eq!(refused, vec![Some(403)], "the segment outside the prefix: {facts}");
    let reported = facts["outside"]["errors"].as_array().unwrap();
    assert!(
        reported.iter().any(|e| e["details"] == "fragLoadError" && e["code"] == 403),
        "the player did not report the refused segment: {facts}"
    );
    // ... and the README's error handler tells the page's console.
    let console = facts["console"].as_array().unwrap();
    assert!(console.iter().any(|l| l.as_str().unwrap().contains("hls.js: fragLoadError 403")), "{facts}");

    let log = b.upstream.access_log();
    assert!(log.contains("GET /media/u1/video/index.m3u8 HTTP/1.1"), "{log}");
    assert!(log.contains(&format!("GET /media/u1/video/{} HTTP/1.1", segments[0])), "{log}");
    assert!(!log.contains("/media/u1/other/"), "a refused segment reached nginx:\n{log}");
    b.assert_upstream_saw_no_credential(&[token.as_str()]);
}

/// The bearer-token route read cross-origin (README: Cookies, CORS CORS).
const API_ROUTE: &str = r#"  - name: api
    prefix: /api/
    upstream: files
    auth: { jwt: { keys: [api], from: [header] } }
    cors: { origins: ["{app}"], headers: [authorization], max_age: 10m, credentials: false }"#;

/// `fetch()` with `Authorization: Bearer` from the app origin: chromium's
/// preflight is answered 204 by tollgate (never forwarded), and the body is
/// readable — shown as an image through a data URI. A refusal's JSON body
/// is readable too (CORS headers on refusals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_with_bearer_header_passes_preflight_and_reads_the_body() {
    let b = Browser::start(&[("api/u1/cat.svg", CAT)], API_ROUTE).await;
    let token = common::hs256(&b.api, json!({"sub": "u1"}));
    let bad_token = common::hs256(&common::random_secret(), json!({"sub": "u1"}));
    let url = format!("{}/api/u1/cat.svg", b.files_origin());
    let plan = json!({"app": b.app_origin(), "url": url, "token": token, "bad_token": bad_token});
    let facts = drive("fetch_with_bearer_across_origins", plan).await;

    let good = &facts["good"];
    assert_eq!((good["status"].as_u64(), good["type"].as_str()), (Some(200), Some("cors")), "{facts}");
    assert_eq!(good["text"].as_str().unwrap().as_bytes(), CAT, "{facts}");
    assert_eq!(good["naturalWidth"], 120, "{facts}");
    let bad = &facts["bad"];
    assert_eq!(bad["status"], 401, "{facts}");
    assert_eq!(bad["text"].as_str().unwrap().trim_end(), r#"{"error":"bad_signature"}"#, "{facts}");
    // One preflight per URL (chromium caches them per URL), each 204.
    let preflights: Vec<(&str, &str, u64)> = facts["preflights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["url"].as_str().unwrap(), p["type"].as_str().unwrap(), p["status"].as_u64().unwrap_or(0)))
        .collect();
    let again = format!("{url}?again");
    assert_eq!(preflights, vec![(url.as_str(), "Preflight", 204), (again.as_str(), "Preflight", 204)], "{facts}");

    let log = b.upstream.access_log();
    assert_eq!(log.lines().count(), 1, "only the accepted GET reaches nginx:\n{log}");
    assert!(log.starts_with("GET /api/u1/cat.svg HTTP/1.1|"), "{log}");
    b.assert_upstream_saw_no_credential(&[&token, &bad_token]);
}

/// The service-worker pattern: the app's worker adds the bearer header to
/// the page's image requests to the files origin, so a plain `<img src>`
/// with no credential in its URL loads; without the worker it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_worker_adds_the_bearer_header_to_image_requests() {
    let b = Browser::start(&[("api/u1/cat.svg", CAT)], API_ROUTE).await;
    let token = common::hs256(&b.api, json!({"sub": "u1"}));
    let url = format!("{}/api/u1/cat.svg", b.files_origin());
    let plan = json!({"app": b.app_origin(), "files": b.files_origin(), "url": url, "token": token});
    let facts = drive("service_worker_adds_bearer_to_images", plan).await;
    assert_eq!(facts["before"], json!({"event": "error", "naturalWidth": 0}), "{facts}");
    assert_eq!(facts["after"], json!({"event": "load", "naturalWidth": 120}), "{facts}");
    let log = b.upstream.access_log();
    assert_eq!(log.lines().count(), 1, "only the worker's request reaches nginx:\n{log}");
    assert!(log.starts_with("GET /api/u1/cat.svg HTTP/1.1|"), "{log}");
    b.assert_upstream_saw_no_credential(&[&token]);
}

/// Opening a prefix-signed page (a top-level navigation) is answered 303 to
/// the clean URL with a cookie holding the grant: the browser lands there
/// with no credential in `location.href`, the page's relative `<img>` loads
/// through the cookie, and the cookie is `HttpOnly` (invisible to scripts),
/// `Secure`, `SameSite=Lax` and scoped to the prefix. It grants neither a
/// path outside the prefix (even replayed there) nor another method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_with_signed_url_lands_on_clean_url_with_a_prefix_cookie() {
    let page =
        br#"<!doctype html><title>u1's page</title><p>Signed once, then a cookie.</p><img id="pic" src="cat.svg">"#;
    let files: &[(&str, &[u8])] =
        &[("docs/u1/page.html", page), ("docs/u1/cat.svg", CAT), ("docs/u2/secret.txt", b"u2's secret")];
    let route = "  - name: docs
    prefix: /docs/
    upstream: files
    methods: [GET, HEAD, PUT]
    auth:
      signed_url: { keys: [media] }
      cookie_exchange: { key: cookie }";
    let b = Browser::start(files, route).await;
    let signed = common::sign(&b.media, "GET", "/docs/u1/page.html", 300, None, Some("/docs/u1/"));
    let signed_url = format!("{}{signed}", b.files_origin());
    let clean = format!("{}/docs/u1/page.html", b.files_origin());
    let signed_cat = common::sign(&b.media, "GET", "/docs/u1/cat.svg", 300, None, None);
    let plan = json!({
        "signed_page": signed_url,
        "page": "/docs/u1/page.html",
        "signed_subresource": signed_cat,
        "inside": "/docs/u1/cat.svg",
        "outside": "/docs/u2/secret.txt",
    });
    let facts = drive("cookie_exchange_on_navigation", plan).await;

    assert_eq!(facts["redirects"], json!([{"url": signed_url, "status": 303}]), "{facts}");
    assert_eq!(facts["status"], 200, "{facts}");
    assert_eq!(facts["href"], clean, "{facts}");
    assert_eq!(facts["pic_width"], 120, "the relative image did not load through the cookie: {facts}");
    assert_eq!(facts["document_cookie"], "", "the cookie is visible to scripts: {facts}");
    let cookies = facts["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 1, "{facts}");
    let cookie = &cookies[0];
    assert_eq!(cookie["domain"], "localhost", "{facts}");
    assert_eq!(cookie["path"], "/docs/u1/", "{facts}");
    assert_eq!(cookie["httpOnly"], true, "{facts}");
    assert_eq!(cookie["secure"], true, "{facts}");
    assert_eq!(cookie["sameSite"], "Lax", "{facts}");
    let exp: f64 = signed.split("exp=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let expires = cookie["expires"].as_f64().unwrap();
    // `Max-Age` counts whole seconds from when chromium received it, so
    // its expiry may pass `exp` by a fraction of a second (the cookie's
    // own `exp` is what tollgate checks).
    assert!(expires > 0.0 && expires < exp + 1.0, "the cookie outlives the signed URL ({exp}): {facts}");
    assert_eq!(facts["again"]["status"], 200, "the clean URL does not load through the cookie: {facts}");
    // A fetch() is no navigation: a signed sub-resource is served as is.
    let sub = &facts["signed_subresource"];
    assert_eq!((sub["status"].as_u64(), sub["redirected"].as_bool()), (Some(200), Some(false)), "{facts}");

    // Refusals come from tollgate (its JSON error body), not from nginx.
    let refused = |name: &str| {
        let r = &facts[name];
        let status = r["status"].as_u64().unwrap();
        assert!(status == 401 || status == 403, "{name} was not refused: {facts}");
        assert!(r["text"].as_str().unwrap().starts_with(r#"{"error":""#), "{name}: {facts}");
    };
    refused("put_same_path");
    refused("outside");
    refused("outside_with_copy");

    let log = b.upstream.access_log();
    assert!(!log.contains("PUT "), "a PUT reached nginx:\n{log}");
    assert!(!log.contains("/docs/u2/"), "a path outside the prefix reached nginx:\n{log}");
    assert!(log.contains("GET /docs/u1/cat.svg HTTP/1.1"), "{log}");
    let value = cookie["value"].as_str().unwrap();
    b.assert_upstream_saw_no_credential(&[sig_of(&signed), sig_of(&signed_cat), value]);
}

/// `tollgate demo`'s page (`/demo/`, no credential needed), as a newcomer
/// opens it: a signed image loads, a refused one does not, the path-token
/// clip plays. The screenshot is a test artifact,
/// `target/browser/demo-page.png` (not committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_shows_signed_refused_and_streamed_files() {
    let mut demo = Running(
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("TOLLGATE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The printout ends with "Press Ctrl-C"; the page's URL is in it.
    let stdout = std::io::BufReader::new(demo.0.stdout.take().unwrap());
    let text = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut text = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.contains("Press Ctrl-C") {
                break;
            }
        }
        text
    })
    .await
    .unwrap();
    let url = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
        .find(|w| w.starts_with("http://") && w.ends_with("/demo/"))
        .unwrap_or_else(|| panic!("the demo does not print its page: {text}"))
        .to_owned();
    let out = common::repo().join("target/browser/demo-page.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let facts = drive("screenshot", json!({"url": url, "out": out})).await;
    let _ = Command::new("kill").arg("-INT").arg(demo.0.id().to_string()).status();
    let status = demo.0.wait().unwrap();
    let widths: Vec<u64> = facts["images"].as_array().unwrap().iter().map(|i| i[1].as_u64().unwrap()).collect();
    assert!(widths.iter().any(|w| *w > 0) && widths.contains(&0), "a signed and a refused image: {facts}");
    let videos = facts["videos"].as_array().unwrap();
    assert!(!videos.is_empty(), "{facts}");
    for v in videos {
        assert!(v[0].as_f64().unwrap() > 0.5 && v[1].is_null(), "the clip did not play: {facts}");
    }
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "{}", out.display());
    assert!(status.success(), "the demo should exit cleanly on Ctrl-C: {status}");
}

/// A process the test started (the demo, a live ffmpeg), killed if the
/// test ends before it stops.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg in `dir` encoding a `seconds`-long test picture, 160x120, as
/// H.264 with a keyframe every second (so a muxer can cut one-second
/// segments); `input` goes before the input (`-re`: in real time, as a
/// live encoder does). The caller adds the muxer and its output.
fn encode(dir: &Path, input: &[&str], seconds: u32) -> Command {
    let mut ffmpeg = Command::new(common::require("ffmpeg", &["/usr/bin/ffmpeg"]));
    ffmpeg
        .current_dir(dir)
        .args(["-hide_banner", "-loglevel", "error"])
        .args(input)
        .args(["-f", "lavfi", "-i", &format!("testsrc=duration={seconds}:size=160x120:rate=10")])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10", "-sc_threshold", "0"]);
    ffmpeg
}

/// Runs `ffmpeg` to its end.
fn run(ffmpeg: &mut Command) {
    let out = ffmpeg.output().unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

/// A three-second HLS VOD playlist, `index.m3u8`, in `dir`, with `args`.
fn ffmpeg(dir: &Path, args: &[&str]) {
    run(encode(dir, &[], 3)
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args(args)
        .arg("index.m3u8"));
}

/// Manifest rewriting in chromium with hls.js: a master playlist whose
/// variants sit in a sibling folder (AES-128, the key on a route of its
/// own) and behind an absolute path (fMP4 with `EXT-X-MAP`, absolute
/// segment paths), all played through one path token granting `/media/u1/`;
/// the key loads through the short link tollgate minted, and a segment
/// outside the grant stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_plays_rewritten_masters_with_sibling_encrypted_and_fmp4_variants() {
    let routes = r#"  - name: media
    prefix: /media/
    upstream: files
    auth: { signed_url: { keys: [media], path_tokens: true } }
    cors: { origins: ["{app}"] }
    manifests: { key_routes: [keys], key_link_ttl: 2m }
  - name: keys
    prefix: /keys/
    upstream: files
    auth: { signed_url: { keys: [api], max_ttl: 5m } }
    cors: { origins: ["{app}"] }"#;
    let b = Browser::start(&[], routes).await;
    let www = b.www();
    for dir in ["media/u1/720p", "media/u1/480p", "media/u1/video", "media/u2", "keys"] {
        std::fs::create_dir_all(www.join(dir)).unwrap();
    }
    // AES-128 TS segments; the playlist names the key by an absolute path.
    let key = common::random_secret()[..16].to_vec();
    std::fs::write(www.join("keys/u1.key"), &key).unwrap();
    let keyinfo = www.join("media/u1/720p/keyinfo");
    std::fs::write(&keyinfo, format!("/keys/u1.key\n{}\n", www.join("keys/u1.key").display())).unwrap();
    ffmpeg(
        &www.join("media/u1/720p"),
        &["-hls_key_info_file", keyinfo.to_str().unwrap(), "-hls_segment_filename", "seg-%d.ts"],
    );
    std::fs::remove_file(&keyinfo).unwrap();
    // fMP4 with absolute segment and init-section paths.
    ffmpeg(
        &www.join("media/u1/480p"),
        &["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4", "-hls_base_url", "/media/u1/480p/"],
    );
    // ffmpeg writes the init section's URI relative: made absolute too.
    let fmp4 = std::fs::read_to_string(www.join("media/u1/480p/index.m3u8")).unwrap();
    assert!(fmp4.contains("\n/media/u1/480p/index0.m4s\n"), "{fmp4}");
    let fmp4 = fmp4.replace("#EXT-X-MAP:URI=\"init.mp4\"", "#EXT-X-MAP:URI=\"/media/u1/480p/init.mp4\"");
    std::fs::write(www.join("media/u1/480p/index.m3u8"), fmp4).unwrap();
    let variant = |uri: &str| format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x120\n{uri}\n");
    std::fs::write(www.join("media/u1/video/sibling.m3u8"), variant("../720p/index.m3u8")).unwrap();
    std::fs::write(www.join("media/u1/video/absolute.m3u8"), variant("/media/u1/480p/index.m3u8")).unwrap();
    // A playlist naming a segment outside the grant; nginx has the file.
    std::fs::copy(www.join("media/u1/720p/seg-0.ts"), www.join("media/u2/seg-0.ts")).unwrap();
    let outside = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1.0,\n/media/u2/seg-0.ts\n#EXT-X-ENDLIST\n";
    std::fs::write(www.join("media/u1/video/outside.m3u8"), outside).unwrap();

    let signed =
        |path: &str| format!("{}{}", b.files_origin(), common::sign_path(&b.media, path, 600, Some("/media/u1/")));
    let token = token_of(&signed("/media/u1/video/sibling.m3u8")).to_owned();
    let mut all = Vec::new();
    for master in ["sibling", "absolute"] {
        let plan = json!({
            "app": b.app_origin(),
            "player": readme_block("video-hlsjs"),
            "manifest": signed(&format!("/media/u1/video/{master}.m3u8")),
            "outside": signed("/media/u1/video/outside.m3u8"),
        });
        let facts = drive("hls_plays_through_path_token", plan).await;
        assert!(facts["good"]["currentTime"].as_f64().unwrap() > 1.5, "{master}: {facts}");
        assert_eq!(facts["good"]["errors"], json!([]), "{master}: {facts}");
        all.extend(b.responses(&facts));
    }
    let got = |pred: &dyn Fn(&str) -> bool| -> Vec<Option<u64>> {
        all.iter().filter(|(_, path, _)| pred(path)).map(|r| r.2).collect()
    };
    let key_loads = got(&|p| p.starts_with("/keys/u1.key?exp=") && p.contains("&sig="));
    assert!(!key_loads.is_empty() && key_loads.iter().all(|s| *s == Some(200)), "the key link: {all:?}");
    // Each master was signed when it was played: its own token.
    for (what, below_token, ext) in [
        ("TS segments of the sibling folder", "/720p/seg-", ".ts"),
        ("fMP4 segments behind absolute paths", "/480p/index", ".m4s"),
        ("the fMP4 init section", "/480p/init", ".mp4"),
    ] {
        let under_token = below_a_token;
        let loads =
            got(&|p| under_token(p).is_some_and(|r| format!("/{r}").starts_with(below_token) && r.ends_with(ext)));
        assert!(!loads.is_empty() && loads.iter().all(|s| *s == Some(200)), "{what}: {all:?}");
    }
    assert_eq!(got(&|p| p == "/media/u2/seg-0.ts"), vec![Some(401), Some(401)], "outside the grant: {all:?}");
    b.assert_upstream_saw_no_credential(&[token.as_str()]);
}

/// What follows the token segment of a `/media/u1/tg~…/` path.
fn below_a_token(path: &str) -> Option<&str> {
    path.strip_prefix("/media/u1/tg~").and_then(|r| r.split_once('/')).map(|(_, r)| r)
}

/// The route the players below play through: path tokens and signed
/// queries on `/media/`, read cross-origin by the app, its playlists and
/// MPDs rewritten with the defaults.
const MANIFEST_ROUTE: &str = r#"  - name: media
    prefix: /media/
    upstream: files
    auth: { signed_url: { keys: [media], path_tokens: true } }
    cors: { origins: ["{app}"] }
    manifests: {}"#;

/// DASH as ffmpeg writes it (one-second fMP4 segments by a
/// `SegmentTemplate`), with the absolute `<BaseURL>` a packager writes
/// added (ffmpeg writes none), played by `scenario`'s player through a
/// path token granting `/media/u1/`: the MPD's `BaseURL` is rewritten to
/// carry the token, so every segment the player resolves against it does.
/// Every request the player made is 200 and under the token.
async fn dash_plays_through_a_rewritten_base_url(scenario: &str) {
    let b = Browser::start(&[], MANIFEST_ROUTE).await;
    let dash = b.www().join("media/u1/dash");
    std::fs::create_dir_all(&dash).unwrap();
    run(encode(&dash, &[], 3)
        .args(["-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0"])
        .arg("index.mpd"));
    let mpd = std::fs::read_to_string(dash.join("index.mpd")).unwrap();
    assert!(!mpd.contains("<BaseURL>"), "{mpd}");
    assert!(mpd.contains(r#"media="chunk-stream$RepresentationID$-$Number%05d$.m4s""#), "{mpd}");
    let mpd = mpd.replacen("<Period ", "<BaseURL>/media/u1/dash/</BaseURL>\n\t<Period ", 1);
    std::fs::write(dash.join("index.mpd"), mpd).unwrap();

    let manifest = format!(
        "{}{}",
        b.files_origin(),
        common::sign_path(&b.media, "/media/u1/dash/index.mpd", 600, Some("/media/u1/"))
    );
    let token = token_of(&manifest).to_owned();
    let facts = drive(scenario, json!({"app": b.app_origin(), "manifest": manifest})).await;
    assert_eq!(facts["errors"], json!([]), "{scenario}: {facts}");
    assert!(facts["currentTime"].as_f64().unwrap() > 1.5, "{scenario}: {facts}");

    let under = format!("/media/u1/{token}/dash/");
    let responses = b.responses(&facts);
    for (method, path, status) in &responses {
        assert!(method == "GET" && path.starts_with(&under) && *status == Some(200), "{path}: {facts}");
    }
    let loaded: Vec<&str> = responses.iter().filter_map(|r| r.1.strip_prefix(&under)).collect();
    for file in ["index.mpd", "init-stream0.m4s", "chunk-stream0-00001.m4s", "chunk-stream0-00002.m4s"] {
        assert!(loaded.contains(&file), "{scenario} did not load {file}: {facts}");
    }
    let log = b.upstream.access_log();
    assert!(log.contains("GET /media/u1/dash/chunk-stream0-00002.m4s HTTP/1.1"), "{log}");
    b.assert_upstream_saw_no_credential(&[token.as_str()]);
}

/// dash.js plays ffmpeg's DASH stream whose absolute `<BaseURL>` tollgate
/// rewrote to carry the path token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashjs_plays_an_mpd_whose_absolute_base_url_carries_the_path_token() {
    dash_plays_through_a_rewritten_base_url("dashjs_plays").await;
}

/// Shaka Player plays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaka_plays_an_mpd_whose_absolute_base_url_carries_the_path_token() {
    dash_plays_through_a_rewritten_base_url("shaka_plays").await;
}

/// A signed prefix query in the browser: hls.js plays a master signed with
/// `?exp=…&prefix=/media/u1/&sig=…` whose variant sits in a sibling folder
/// (`../720p/`) and names its segments relatively. A player drops the
/// master's query when it resolves them; tollgate appended it to the
/// variant's URI and to every segment URI, so each request carried it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_plays_a_sibling_variant_through_a_signed_prefix_query() {
    let b = Browser::start(&[], MANIFEST_ROUTE).await;
    let www = b.www();
    for dir in ["media/u1/video", "media/u1/720p"] {
        std::fs::create_dir_all(www.join(dir)).unwrap();
    }
    ffmpeg(&www.join("media/u1/720p"), &["-hls_segment_filename", "seg-%d.ts"]);
    let index = std::fs::read_to_string(www.join("media/u1/720p/index.m3u8")).unwrap();
    let segments: Vec<&str> = index.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 3 && segments.iter().all(|s| !s.contains(['/', '?'])), "{index}");
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x120\n../720p/index.m3u8\n";
    std::fs::write(www.join("media/u1/video/master.m3u8"), master).unwrap();

    let signed = common::sign(&b.media, "GET", "/media/u1/video/master.m3u8", 600, None, Some("/media/u1/"));
    let (_, query) = signed.split_once('?').unwrap();
    assert!(query.contains("prefix=%2Fmedia%2Fu1%2F"), "{signed}");
    let plan = json!({
        "app": b.app_origin(),
        "player": readme_block("video-hlsjs"),
        "manifest": format!("{}{signed}", b.files_origin()),
    });
    let facts = drive("hls_plays", plan).await;
    assert!(facts["good"]["currentTime"].as_f64().unwrap() > 1.5, "{facts}");
    assert_eq!(facts["good"]["errors"], json!([]), "{facts}");

    // Every request of the player: the master, the variant and the
    // segments, each with the signed query as it was signed, each 200.
    let responses = b.responses(&facts);
    let mut paths = Vec::new();
    for (method, path, status) in &responses {
        let bare = path.strip_suffix(&format!("?{query}"));
        assert!(method == "GET" && bare.is_some() && *status == Some(200), "{path}: {facts}");
        paths.extend(bare);
    }
    assert!(paths.contains(&"/media/u1/720p/index.m3u8"), "the sibling variant: {facts}");
    for segment in &segments[..2] {
        assert!(paths.contains(&format!("/media/u1/720p/{segment}").as_str()), "{segment}: {facts}");
    }
    let log = b.upstream.access_log();
    assert!(log.contains(&format!("GET /media/u1/720p/{} HTTP/1.1", segments[1])), "{log}");
    b.assert_upstream_saw_no_credential(&[sig_of(&signed)]);
}

/// A live stream: ffmpeg is still writing a three-segment sliding playlist
/// (absolute segment paths, `-hls_base_url`) while hls.js plays it through
/// a path token. The player reloads the playlist as it plays, and every
/// reload is rewritten: the segments only a reload lists carry the token
/// too, and load. ffmpeg is still running when the test ends, and killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_plays_a_live_playlist_rewritten_on_every_refresh() {
    let b = Browser::start(&[], MANIFEST_ROUTE).await;
    let live = b.www().join("media/u1/live");
    std::fs::create_dir_all(&live).unwrap();
    let log = std::fs::File::create(b.upstream.dir.path().join("ffmpeg.log")).unwrap();
    // 30 s of picture in real time: far longer than the test plays.
    let mut writer = Running(
        encode(&live, &["-re"], 30)
            .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "3", "-hls_base_url", "/media/u1/live/"])
            .args(["-hls_segment_filename", "seg-%d.ts", "index.m3u8"])
            .stdin(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // Ready once the playlist lists two segments (ffmpeg replaces it
    // whole: a temporary file renamed).
    let playlist = live.join("index.m3u8");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&playlist).unwrap_or_default();
        if text.lines().filter(|l| l.ends_with(".ts")).count() >= 2 {
            assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
            break;
        }
        let ffmpeg_log = || std::fs::read_to_string(b.upstream.dir.path().join("ffmpeg.log")).unwrap();
        assert!(writer.0.try_wait().unwrap().is_none(), "ffmpeg stopped: {}", ffmpeg_log());
        assert!(std::time::Instant::now() < deadline, "no live playlist: {text} {}", ffmpeg_log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let manifest = format!(
        "{}{}",
        b.files_origin(),
        common::sign_path(&b.media, "/media/u1/live/index.m3u8", 600, Some("/media/u1/"))
    );
    let token = token_of(&manifest).to_owned();
    let facts = drive("hls_plays_live", json!({"app": b.app_origin(), "manifest": manifest})).await;
    assert!(writer.0.try_wait().unwrap().is_none(), "ffmpeg stopped writing before the test ended: {facts}");
    drop(writer);
    assert_eq!(facts["errors"], json!([]), "{facts}");
    let (played, from) = (facts["currentTime"].as_f64().unwrap(), facts["playingAt"].as_f64().unwrap());
    assert!(played > from + 2.0, "playback did not advance: {facts}");

    // Each load of the playlist as the player read it: live, and every
    // segment in it under the token.
    let carried = format!("/media/u1/{token}/live/seg-");
    let loads = facts["loads"].as_array().unwrap();
    assert!(loads.len() >= 3, "{facts}");
    let uris = |load: &Value| -> Vec<String> {
        load["uris"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect()
    };
    for load in loads {
        assert_eq!(load["live"], true, "{facts}");
        assert!(uris(load).iter().all(|u| u.starts_with(&carried) && u.ends_with(".ts")), "{facts}");
    }
    let first = uris(&loads[0]);
    let listed_later: Vec<String> = loads[1..].iter().flat_map(uris).filter(|u| !first.contains(u)).collect();
    assert!(!listed_later.is_empty(), "no reload listed a new segment: {facts}");

    let responses = b.responses(&facts);
    let playlist = format!("/media/u1/{token}/live/index.m3u8");
    let reloads = responses.iter().filter(|r| r.1 == playlist).count();
    assert!(reloads > 1, "the playlist was fetched {reloads} time(s): {facts}");
    let mut segments = Vec::new();
    for (method, path, status) in &responses {
        assert!(method == "GET" && *status == Some(200), "{path}: {facts}");
        if path.ends_with(".ts") {
            assert!(path.starts_with(&carried), "{path}: {facts}");
            segments.push(path.as_str());
        }
    }
    assert!(
        segments.iter().any(|s| listed_later.iter().any(|u| u == s)),
        "no segment listed only by a reload was loaded: {facts}"
    );
    let log = b.upstream.access_log();
    assert!(log.matches("GET /media/u1/live/index.m3u8 HTTP/1.1").count() > 1, "{log}");
    b.assert_upstream_saw_no_credential(&[token.as_str()]);
}
