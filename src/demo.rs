//! `tollgate demo`: a complete setup in one process — a small static file
//! server standing in for nginx, a freshly generated key, and tollgate in
//! front — with ready-to-paste URLs printed on stdout.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::Algorithm;
use prometheus::Registry;
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::normalize;
use crate::proxy::answers::ResponseBody;
use crate::tools::{self, SignRequest, TokenKey};

const FILES: &[(&str, &[u8])] = &[
    ("files/hello.txt", b"Hello from behind tollgate.\n"),
    ("files/report.txt", b"Quarterly numbers: all private.\n"),
    (
        "files/cat.svg",
        br##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="120" viewBox="0 0 120 120"><circle cx="60" cy="68" r="40" fill="#f4a340"/><path d="M28 45 L36 10 L58 32 Z M92 45 L84 10 L62 32 Z" fill="#f4a340"/><circle cx="46" cy="62" r="5"/><circle cx="74" cy="62" r="5"/><path d="M54 80 Q60 86 66 80" stroke="#000" fill="none" stroke-width="3"/></svg>"##,
    ),
    ("public/readme.txt", b"Anyone may read this file; /files/ needs a credential.\n"),
    // A three-second clip (ffmpeg testsrc, 160x90), shipped as HLS segments.
    ("files/video/index.m3u8", include_bytes!("../assets/demo/index.m3u8")),
    ("files/video/seg-0.ts", include_bytes!("../assets/demo/seg-0.ts")),
    ("files/video/seg-1.ts", include_bytes!("../assets/demo/seg-1.ts")),
    ("files/video/seg-2.ts", include_bytes!("../assets/demo/seg-2.ts")),
];

/// Where a checkout keeps hls.js once `make test` has installed it; the
/// page falls back to a CDN copy when it is not there.
const HLS_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/node_modules/hls.js/dist/hls.min.js");

/// The demo page: a signed image, a refused one, and a clip played through
/// a path token. `{...}` are filled with relative signed URLs.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tollgate demo</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
figure{display:inline-block;margin:0 1.5rem 1rem 0;vertical-align:top}figcaption{font-size:.85rem;color:#555}
img,video{border:1px solid #ccc;background:#f6f6f6}code{font-size:.85rem;word-break:break-all}</style></head>
<body><h1>tollgate demo</h1>
<p>Everything below <code>/files/</code> is private. This page (<code>/demo/</code>, public) embeds it with
credentials that tollgate checks and strips before the file server sees them.</p>
<figure><img id="signed" src="{signed_img}" width="120" height="120" alt="signed image">
<figcaption>Signed URL: loads</figcaption></figure>
<figure><img id="refused" src="{refused_img}" width="120" height="120" alt="refused image">
<figcaption>Same signature, other file: refused (403)</figcaption></figure>
<figure><video id="clip" width="320" height="180" controls muted playsinline></video>
<figcaption>HLS through one path token: every segment inherits it</figcaption></figure>
<p><code>{clip}</code></p>
<script src="hls.min.js" onerror="var s=document.createElement('script');s.src='https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js';s.onload=play;document.head.appendChild(s)"></script>
<script>
function play(){var v=document.getElementById('clip'),src='{clip}';
if(window.Hls&&Hls.isSupported()){var h=new Hls();h.loadSource(src);h.attachMedia(v);}
else if(v.canPlayType('application/vnd.apple.mpegurl')){v.src=src;}}
if(window.Hls){play();}else{window.addEventListener('load',function(){if(window.Hls)play();});}
</script></body></html>
"#;

const CONFIG: &str = r#"
listen: "{listen}"
admin: "{admin}"
keys:
  demo: { hmac: { secret_file: demo.key, encoding: hex } }
upstreams:
  files: { url: "http://{upstream}" }
routes:
  - name: files
    prefix: /files/
    upstream: files
    auth:
      signed_url: { keys: [demo], max_ttl: 1d, path_tokens: true }
      jwt:
        keys: [demo]
        from: [header, query, cookie]
        path_claim: path
        forward_claims: { sub: X-Auth-Subject }
  - name: public
    prefix: /public/
    upstream: files
    auth: none
  - name: demo
    prefix: /demo/
    upstream: files
    auth: none
reload: { watch: false }
shutdown: { grace: 0s, drain_timeout: 5s }
"#;

/// Where the demo listens.
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

/// Runs the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tollgate-demo-{}", std::process::id()));
    let result = run_in(&dir, opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &Path, opts: DemoOptions) -> Result<(), String> {
    for (name, content) in FILES {
        let path = dir.join("www").join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, content).map_err(|e| e.to_string())?;
    }
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness available".to_owned())?;
    let key_file = dir.join("demo.key");
    let hex = crate::normalize::encode_hex(&secret);
    std::fs::write(&key_file, format!("{hex}\n")).map_err(|e| e.to_string())?;
    write_page(&dir.join("www/demo"), &secret)?;

    let _logs = crate::logging::init(&crate::config::LogSettings {
        format: crate::config::LogFormat::Text,
        level: "info".to_owned(),
        access_log: true,
    });
    let upstream = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let upstream_addr = upstream.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(serve_files(upstream, dir.join("www")));

    let metrics = Arc::new(Metrics::new(Registry::new()).map_err(|e| e.to_string())?);
    let handle = match start(dir, &opts, upstream_addr, &metrics).await {
        Ok(h) => h,
        Err(e) => {
            // A busy default port should not end the demo: take free ones.
            eprintln!("note: {e}; using free ports instead");
            let any = DemoOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            start(dir, &any, upstream_addr, &metrics).await?
        }
    };
    println!("{}", instructions(&handle, &secret, &key_file)?);
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    Ok(())
}

async fn start(
    dir: &Path,
    opts: &DemoOptions,
    upstream: SocketAddr,
    metrics: &Arc<Metrics>,
) -> Result<crate::Handle, String> {
    let yaml = CONFIG
        .replace("{listen}", &opts.listen.to_string())
        .replace("{admin}", &opts.admin.to_string())
        .replace("{upstream}", &upstream.to_string());
    let config = crate::config::compile_str(&yaml, dir, metrics).map_err(|e| e.to_string())?;
    crate::server::start(config, metrics.clone())
        .await
        .map_err(|e| format!("cannot listen on {} / {}: {e}", opts.listen, opts.admin))
}

/// Writes the demo page with relative signed URLs (valid for a day).
fn write_page(dir: &Path, secret: &[u8]) -> Result<(), String> {
    let exp = crate::auth::unix_now() + 86_400;
    let sign = |target: &str, path_token: Option<&str>, prefix: Option<&str>| {
        tools::sign(secret, &SignRequest { target, method: "GET", exp, kid: None, prefix, path_token })
    };
    let signed_img = sign("/files/cat.svg", None, None)?;
    let refused_img = signed_img.replacen("/files/cat.svg", "/files/report.txt", 1);
    let clip = sign("/files/video/index.m3u8", Some("tg"), Some("/files/video/"))?;
    let page =
        PAGE.replace("{signed_img}", &signed_img).replace("{refused_img}", &refused_img).replace("{clip}", &clip);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("index.html"), page).map_err(|e| e.to_string())?;
    if let Ok(js) = std::fs::read(HLS_JS) {
        std::fs::write(dir.join("hls.min.js"), js).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn instructions(handle: &crate::Handle, secret: &[u8], key_file: &Path) -> Result<String, String> {
    let base = format!("http://{}", handle.proxy_addr);
    let exp = crate::auth::unix_now() + 3600;
    let sign = |target: &str| {
        tools::sign(
            secret,
            &SignRequest {
                target: &format!("{base}{target}"),
                method: "GET",
                exp,
                kid: None,
                prefix: None,
                path_token: None,
            },
        )
    };
    let signed = sign("/files/cat.svg")?;
    let refused = signed.replacen("/files/cat.svg", "/files/report.txt", 1);
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!("demo-user"));
    claims.insert("path".into(), json!(["/files/*"]));
    let jwt = tools::token(&TokenKey::Secret(secret.to_vec()), Algorithm::HS256, Some("demo"), 3600, claims)?;
    let mut out = String::new();
    let _ = writeln!(out, "tollgate demo: a gatekeeper in front of a static file server (both in this process)\n");
    let _ = writeln!(out, "  Open the demo page in a browser: a signed image, a refused one, and a video");
    let _ = writeln!(out, "  whose segments all load through one path token:");
    let _ = writeln!(out, "    {base}/demo/\n");
    let _ = writeln!(out, "  Signed URL, valid for 1 hour (open it in a browser too):");
    let _ = writeln!(out, "    curl -i '{signed}'\n");
    let _ = writeln!(out, "  JWT in a header (HS256, sub=demo-user, path=/files/*):");
    let _ = writeln!(out, "    curl -i -H 'Authorization: Bearer {jwt}' {base}/files/hello.txt\n");
    let _ = writeln!(out, "  Refused: the same signature on another file (403 bad_signature):");
    let _ = writeln!(out, "    curl -i '{refused}'\n");
    let _ = writeln!(out, "  Refused: no credential (401 missing_credential):");
    let _ = writeln!(out, "    curl -i {base}/files/hello.txt\n");
    let _ = writeln!(out, "  Public, no credential needed:");
    let _ = writeln!(out, "    curl -i {base}/public/readme.txt\n");
    let _ = writeln!(out, "  Metrics:");
    let _ = writeln!(out, "    curl http://{}/metrics\n", handle.admin_addr);
    let _ = writeln!(out, "  Sign your own (the demo key lives until the demo stops):");
    let _ = writeln!(
        out,
        "    tollgate sign --key-file {} --key-encoding hex --ttl 10m {base}/files/report.txt\n",
        key_file.display()
    );
    let _ = write!(out, "Press Ctrl-C to stop.");
    Ok(out)
}

/// A minimal static file server over `root` (GET and HEAD).
async fn serve_files(listener: TcpListener, root: PathBuf) {
    let root = Arc::new(root);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(file_response(&root, &req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn file_response(root: &Path, req: &Request<Incoming>) -> Response<ResponseBody> {
    let status = |s: StatusCode| {
        let mut r = Response::new(ResponseBody::empty());
        *r.status_mut() = s;
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Ok(path) = normalize::check_path(req.uri().path()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut file = root.join(path.decoded.trim_start_matches('/'));
    if path.decoded.ends_with('/') {
        file.push("index.html");
    }
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return status(StatusCode::NOT_FOUND);
    };
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        _ => "application/octet-stream",
    };
    let len = bytes.len();
    let mut resp = if req.method() == Method::HEAD {
        Response::new(ResponseBody::empty())
    } else {
        Response::new(ResponseBody::full(bytes))
    };
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
