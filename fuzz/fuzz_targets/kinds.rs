//! Every credential kind's parser, through the proxy's own stages
//! (`tollgate explain` runs them): a request target and header lines from
//! the fuzzer, against a config with a route per kind — signed URLs with
//! path tokens and cookie exchange (cookies bound to their route and to
//! the key that verified their link), JWTs from header and cookie,
//! CloudFront, EdgeAuth, Cloud CDN and nginx secure_link. Never a panic,
//! and never an allowed request: the fuzzer holds none of the keys, which
//! are generated here at start (test-only, written to a temporary folder).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::explain::{Probe, explain};
use tollgate::metrics::Metrics;

const CONFIG: &str = r#"
keys:
  media: { hmac: { secret_file: media.key } }
  grant: { hmac: { secret_file: grant.key } }
  app: { hmac: { secret_file: app.key } }
  cf: { public_key_file: cf.pub.pem, kid: KFUZZ }
  akamai: { edgeauth: { secret_file: akamai.hex } }
  gcdn: { cloud_cdn: { secret_file: gcdn.key }, kid: fuzz-key }
  nsl: { secure_link: { secret_file: sl.txt } }
upstreams:
  u: { url: "http://127.0.0.1:9" }
routes:
  - name: media
    prefix: /media/
    upstream: u
    auth:
      signed_url: { keys: [media], path_tokens: true }
      jwt: { keys: [app], from: [header, cookie] }
      cookie_exchange: { key: grant }
  - name: cloudfront
    prefix: /cf/
    upstream: u
    auth:
      cloudfront: { keys: [cf], origins: ["https://media.example.com"] }
  - name: edgeauth
    prefix: /ea/
    upstream: u
    auth:
      edgeauth: { keys: [akamai], algorithm: sha256, salt: { secret_file: salt.txt } }
  - name: gcdn
    prefix: /cdn/
    upstream: u
    auth:
      cloud_cdn: { keys: [gcdn], origins: ["https://media.example.com"] }
  - name: secure-links
    prefix: /s/
    upstream: u
    auth:
      secure_link:
        keys: [nsl]
        md5: "$secure_link_expires$uri$remote_addr $secret"
        hash_param: md5
        expires_param: expires
"#;

struct Fixture {
    config: Config,
    metrics: Metrics,
    runtime: tokio::runtime::Runtime,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("tollgate-fuzz-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let random = |n: usize| -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
        bytes
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let b64url = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, b);
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("key file");
    write("media.key", &random(32));
    write("grant.key", &random(32));
    write("app.key", &random(32));
    write("akamai.hex", hex(&random(32)).as_bytes());
    write("salt.txt", hex(&random(8)).as_bytes());
    write("gcdn.key", b64url(&random(16)).as_bytes());
    write("sl.txt", hex(&random(16)).as_bytes());
    let cf = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    write("cf.pub.pem", cf.public_key_pem().as_bytes());
    let metrics = Metrics::new(prometheus::Registry::new()).expect("metrics");
    let config = tollgate::config::compile_str(CONFIG, &dir, &metrics).expect("the fuzz config compiles");
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    Fixture { config, metrics, runtime }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // First line: `METHOD target`; the rest: header lines.
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, url) = first.split_once(' ').unwrap_or(("GET", first));
    let headers: Vec<String> = lines.take(8).map(str::to_owned).collect();
    let fixture = &*FIXTURE;
    let probe = Probe { url, method, headers: &headers, client: None };
    let explanation = fixture.runtime.block_on(explain(&fixture.config, &fixture.metrics, &probe));
    assert!(!explanation.allowed, "allowed without a key: {text:?}\n{}", explanation.report);
});
