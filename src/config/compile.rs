//! Raw YAML → runtime [`Config`], once. Every problem is collected with its
//! YAML path (`routes[2].auth.jwt.keys[0]: unknown key "idp2"`) so `tollgate
//! check` can print them all; the request path never parses config strings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde_yaml_ng::Value;

use super::compiled::{
    Config, ConfigError, ConfigErrors, DEFAULT_ADMIN, DEFAULT_LISTEN, Limits, LogSettings, ReloadSettings,
    ShutdownSettings, TlsSettings,
};
use super::context::{Compiler, Known, did_you_mean, valid_name};
use super::file::{ConfigFile, LogFormat, RouteFile, UpstreamFile};
use crate::auth::CacheSettings;
use crate::metrics::Metrics;
use crate::routes::RouteTable;

/// Reads and compiles the file at `path`.
pub fn load(path: &Path, metrics: &Metrics) -> Result<Config, ConfigErrors> {
    load_with(path, metrics, false)
}

/// [`load`], or with `offline` the check `tollgate check --offline` runs
/// where the deployment's secrets and key files are not: whatever the file
/// reads from outside itself and is absent (an unset environment variable,
/// a missing file) goes to `Config::unchecked` instead of failing; the rest
/// (the shape, every reference, the files that do exist) is checked as
/// always. Such a config is for reporting only: its routes lack those keys.
pub fn load_with(path: &Path, metrics: &Metrics, offline: bool) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError { path: String::new(), message: format!("cannot read {}: {e}", path.display()) }])
    })?;
    let mut c = Compiler::new(&Config::base_dir(path));
    c.offline = offline;
    let mut config = c.compile_text(&text, metrics)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Compiles YAML text; relative file paths resolve against `base`.
pub fn compile_str(yaml: &str, base: &Path, metrics: &Metrics) -> Result<Config, ConfigErrors> {
    Compiler::new(base).compile_text(yaml, metrics)
}

impl Compiler {
    fn compile_text(mut self, yaml: &str, metrics: &Metrics) -> Result<Config, ConfigErrors> {
        let c = &mut self;
        let value: Value = serde_yaml_ng::from_str(yaml).map_err(|e| one_error("", format!("invalid YAML: {e}")))?;
        if value.is_null() {
            return Err(one_error("", "the file is empty".to_owned()));
        }
        let file: ConfigFile = c.entry("", value).ok_or_else(|| ConfigErrors(std::mem::take(&mut c.errors)))?;
        let config = c.compile(file, metrics);
        match config {
            Some(mut config) if c.errors.is_empty() => {
                config.unchecked = std::mem::take(&mut c.unchecked);
                Ok(config)
            }
            _ => Err(ConfigErrors(std::mem::take(&mut c.errors))),
        }
    }
}

/// The HMAC secret of key `name` in the file at `path`, read and decoded
/// exactly as `serve` reads it (`tollgate sign --config --key`).
pub fn hmac_secret(path: &Path, name: &str) -> Result<Vec<u8>, ConfigErrors> {
    let text =
        std::fs::read_to_string(path).map_err(|e| one_error("", format!("cannot read {}: {e}", path.display())))?;
    let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| one_error("", format!("invalid YAML: {e}")))?;
    let at = format!("keys.{name}.hmac");
    let Some(section) = value.get("keys").and_then(|k| k.get(name)) else {
        let declared: Vec<String> = value
            .get("keys")
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        return Err(one_error("keys", format!("no key {name:?}{}", did_you_mean(name, &declared))));
    };
    let Some(hmac) = section.get("hmac") else {
        return Err(one_error(&format!("keys.{name}"), "not an HMAC secret (`hmac:`)".to_owned()));
    };
    let mut c = Compiler::new(&Config::base_dir(path));
    let secret = c.entry(&at, hmac.clone()).and_then(|raw| c.secret(&at, raw));
    match secret {
        Some(secret) if c.errors.is_empty() => Ok(secret),
        _ => Err(ConfigErrors(c.errors)),
    }
}

impl Compiler {
    fn new(base: &Path) -> Self {
        Compiler {
            base: base.to_path_buf(),
            errors: Vec::new(),
            inputs: Vec::new(),
            used_keys: BTreeSet::new(),
            used_upstreams: BTreeSet::new(),
            warnings: Vec::new(),
            key_uses: Vec::new(),
            cookie_keys: Vec::new(),
            secret_digests: BTreeMap::new(),
            path_token_markers: Vec::new(),
            offline: false,
            unchecked: Vec::new(),
        }
    }
}

fn one_error(path: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { path: path.to_owned(), message }])
}

impl Compiler {
    fn compile(&mut self, file: ConfigFile, metrics: &Metrics) -> Option<Config> {
        let listen = self.address("listen", file.listen.as_deref().unwrap_or(DEFAULT_LISTEN));
        let admin = self.address("admin", file.admin.as_deref().unwrap_or(DEFAULT_ADMIN));

        let mut jwks = Vec::new();
        let mut declared_keys = BTreeSet::new();
        let mut keys = BTreeMap::new();
        for (name, value) in file.keys {
            let Some(name) = self.name("keys", &name) else {
                continue;
            };
            declared_keys.insert(name.clone());
            let path = format!("keys.{name}");
            if let Some(key) = self.key_entry(&path, &name, value, &mut jwks) {
                keys.insert(name, key);
            }
        }

        let mut declared_upstreams = BTreeSet::new();
        let mut upstreams = BTreeMap::new();
        for (name, value) in file.upstreams {
            let Some(name) = self.name("upstreams", &name) else {
                continue;
            };
            declared_upstreams.insert(name.clone());
            let path = format!("upstreams.{name}");
            if let Some(raw) = self.entry::<UpstreamFile>(&path, value)
                && let Some(up) = self.upstream(&path, &name, raw)
            {
                upstreams.insert(name, Arc::new(up));
            }
        }

        let limits = self.limits(&file.limits);
        metrics.set_route_series(file.metrics.route_series.unwrap_or(crate::metrics::DEFAULT_ROUTE_SERIES));
        let known = Known {
            keys: &keys,
            declared_keys: &declared_keys,
            upstreams: &upstreams,
            declared_upstreams: &declared_upstreams,
            limits: &limits,
            metrics,
        };
        let mut routes = Vec::new();
        let mut names = BTreeSet::new();
        if file.routes.is_empty() {
            self.error("routes", "at least one route is required");
        }
        for (i, value) in file.routes.into_iter().enumerate() {
            let path = format!("routes[{i}]");
            let Some(raw) = self.entry::<RouteFile>(&path, value) else {
                continue;
            };
            if !names.insert(raw.name.clone()) {
                self.error(format!("{path}.name"), format!("duplicate route name {:?}", raw.name));
            }
            let errors = self.errors.len();
            match self.route(&path, i, raw, &known) {
                Some(route) => routes.push(Arc::new(route)),
                // Offline, a route whose key or upstream is absent cannot be
                // built; its own fields and references were still checked.
                None if self.offline && self.errors.len() == errors => self
                    .unchecked
                    .push(ConfigError { path, message: "not built: it uses a key or upstream not checked".into() }),
                None => {}
            }
        }

        self.check_cookie_keys();
        // Every header any route sets from claims is removed from every
        // request, so no client can present one where tollgate sets none.
        let mut claim_headers: Vec<HeaderName> =
            routes.iter().filter_map(|r| r.auth.as_ref()).flat_map(|a| a.claim_headers()).collect();
        claim_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        claim_headers.dedup();
        // Likewise every credential cookie and header of any route: a grant
        // cookie the browser sends to a nested public route, or the app's
        // token in a header, never reaches a file server.
        let mut credential_cookies: Vec<crate::auth::CookieName> =
            routes.iter().filter_map(|r| r.auth.as_ref()).flat_map(|a| a.cookies().iter().cloned()).collect();
        credential_cookies.sort();
        credential_cookies.dedup();
        let mut credential_headers: Vec<HeaderName> = routes
            .iter()
            .filter_map(|r| r.auth.as_ref())
            .flat_map(|a| a.credential_headers().iter().cloned())
            .collect();
        credential_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        credential_headers.dedup();
        // Unused entries are not errors (a key may be staged for rotation),
        // but usually a typo: `check` shows them.
        let mut warnings = std::mem::take(&mut self.warnings);
        for (section, names, used) in
            [("upstreams", &declared_upstreams, &self.used_upstreams), ("keys", &declared_keys, &self.used_keys)]
        {
            for name in names.difference(used) {
                warnings.push(ConfigError {
                    path: format!("{section}.{name}"),
                    message: "not used by any route".to_owned(),
                });
            }
        }
        let cache = CacheSettings {
            max_entries: file.cache.max_entries.unwrap_or(CacheSettings::default().max_entries),
            ttl: file.cache.ttl.map_or(CacheSettings::default().ttl, |d| d.0),
            negative_ttl: file.cache.negative_ttl.map_or(CacheSettings::default().negative_ttl, |d| d.0),
        };
        let log = LogSettings {
            format: file.log.format.unwrap_or(LogFormat::Text),
            level: file.log.level.unwrap_or_else(|| "info".to_owned()),
            access_log: file.log.access_log.unwrap_or(true),
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log.level) {
            self.error("log.level", format!("invalid filter: {e}"));
        }
        let tls = file.tls.map(|t| TlsSettings {
            cert_file: self.resolve(&t.cert_file),
            key_file: self.resolve(&t.key_file),
            reload_interval: t.reload_interval.map_or(Duration::from_secs(30), |d| d.0),
        });
        if let Some(t) = &tls {
            for (field, file) in [("tls.cert_file", &t.cert_file), ("tls.key_file", &t.key_file)] {
                if let Err(e) = std::fs::metadata(file) {
                    let message = format!("cannot read {}: {e}", file.display());
                    if e.kind() == std::io::ErrorKind::NotFound {
                        self.absent(field, message);
                    } else {
                        self.error(field, message);
                    }
                }
            }
        }
        let shutdown = ShutdownSettings {
            grace: file.shutdown.grace.map_or(ShutdownSettings::default().grace, |d| d.0),
            drain_timeout: file.shutdown.drain_timeout.map_or(ShutdownSettings::default().drain_timeout, |d| d.0),
        };
        let reload = ReloadSettings {
            watch: file.reload.watch.unwrap_or(true),
            interval: file.reload.interval.map_or(Duration::from_secs(2), |d| d.0),
        };
        let store = self.store(file.store);
        let revocation_lifetime = routes
            .iter()
            .filter_map(|r| r.state.as_ref())
            .filter(|s| s.revocation)
            .map(|s| Duration::from_secs(s.revocation_keep))
            .max();
        let workers = match file.workers {
            Some(0) => {
                self.error("workers", "must be at least 1");
                1
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Some(Config {
            listen: listen?,
            admin: admin?,
            workers,
            routes: RouteTable::new(routes),
            claim_headers,
            credential_cookies,
            credential_headers,
            path_token_markers: std::mem::take(&mut self.path_token_markers),
            cache,
            log,
            limits,
            tls,
            shutdown,
            reload,
            trust_forwarded_headers: file.trust_forwarded_headers,
            jwks,
            store,
            revocation_lifetime,
            source: None,
            inputs: std::mem::take(&mut self.inputs),
            warnings,
            unchecked: Vec::new(),
        })
    }

    /// A cookie key signs one route's cookies and nothing else: shared by
    /// two routes, a cookie minted on one would be offered to the other
    /// (refused there, but one key's leak would open both); used for URLs
    /// or tokens too, anyone holding a link could mint cookies.
    fn check_cookie_keys(&mut self) {
        let cookie_keys = std::mem::take(&mut self.cookie_keys);
        for (i, (path, key)) in cookie_keys.iter().enumerate() {
            if let Some((other, _)) = cookie_keys[..i].iter().find(|(_, k)| k == key) {
                let route = other.split(".auth").next().unwrap_or(other);
                self.error(
                    path,
                    format!("key {key:?} also signs the cookies of {route}: give each route a cookie key of its own"),
                );
            } else if let Some((other, _)) =
                self.key_uses.iter().find(|(p, k)| k == key && !cookie_keys.iter().any(|(c, _)| c == p))
            {
                let message = format!("key {key:?} also verifies {other}: a cookie key must sign cookies only");
                self.error(path, message);
            } else if let Some(mine) = self.secret_digests.get(key)
                && let Some((twin, _)) = self.secret_digests.iter().find(|(name, d)| *name != key && *d == mine)
            {
                let message = format!("key {key:?} has the same secret as key {twin:?}: a cookie key needs its own");
                self.error(path, message);
            }
        }
    }

    fn address(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
        match full.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(path, format!("{text:?} is not an address like 0.0.0.0:8080 or [::]:8080"));
                None
            }
        }
    }

    fn name(&mut self, section: &str, key: &Value) -> Option<String> {
        match key.as_str() {
            Some(n) if valid_name(n) => Some(n.to_owned()),
            Some(n) => {
                self.error(format!("{section}.{n}"), "names may only use A-Z a-z 0-9 . _ - (at most 64)");
                None
            }
            None => {
                self.error(section, "every name must be a string");
                None
            }
        }
    }

    fn limits(&mut self, raw: &super::file::LimitsFile) -> Limits {
        let d = Limits::default();
        let limits = Limits {
            header_read_timeout: raw.header_read_timeout.map_or(d.header_read_timeout, |v| v.0),
            idle_timeout: raw.idle_timeout.map_or(d.idle_timeout, |v| v.0),
            max_header_bytes: raw.max_header_bytes.map_or(d.max_header_bytes, |v| v.0 as usize),
            max_headers: raw.max_headers.unwrap_or(d.max_headers),
            max_uri_bytes: raw.max_uri_bytes.map_or(d.max_uri_bytes, |v| v.0 as usize),
            max_connections: raw.max_connections.unwrap_or(d.max_connections),
            max_body: raw.max_body.map_or(d.max_body, |v| v.0),
            http2_max_concurrent_streams: raw.http2_max_concurrent_streams.unwrap_or(d.http2_max_concurrent_streams),
        };
        if limits.max_header_bytes < 8192 {
            self.error("limits.max_header_bytes", "must be at least 8KiB (hyper's minimum buffer)");
        }
        if limits.max_connections == 0 {
            self.error("limits.max_connections", "must be at least 1");
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;
    use prometheus::Registry;

    fn metrics() -> Metrics {
        Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(yaml: &str, dir: &Path) -> Vec<String> {
        match compile_str(yaml, dir, &metrics()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn secret_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("good.key"), "0123456789abcdef0123456789abcdef\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("short.key"), "sixteen-bytes-xx").unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    const GOOD: &str = r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: { hmac: { secret_file: good.key } }
upstreams:
  files: { url: "http://127.0.0.1:8081" }
routes:
  - name: media
    prefix: /media/
    upstream: files
    auth:
      signed_url: { keys: [media], max_ttl: 1d }
      jwt: { keys: [media], from: [header, query], path_claim: path, forward_claims: { sub: X-Auth-Subject } }
  - name: public
    prefix: /public/
    upstream: files
    auth: none
"#;

    #[test]
    fn a_good_config_compiles() {
        let dir = secret_dir();
        let config = compile_str(GOOD, dir.path(), &metrics()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.routes.len(), 2);
        let route = config.routes.lookup(None, "/media/a").unwrap_or_else(|| panic!("no route"));
        assert_eq!(route.name, "media");
        assert_eq!(config.claim_headers, vec![HeaderName::from_static("x-auth-subject")]);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let dir = secret_dir();
        let yaml = r#"
keys:
  short: { hmac: { secret_file: short.key } }
  both: { hmac: { secret_env: X }, jwks_file: x.json }
  inline: { hmac: { secret: hunter2hunter2hunter2hunter2hunter2 } }
  nokey: { hmac: { secret_env: TOLLGATE_TEST_SURELY_UNSET_VAR } }
upstreams:
  files: { url: "ftp://x" }
routes:
  - name: a
    prefix: /a/
    upstream: nowhere
    auth:
      jwt: { keys: [idp2], audence: media }
  - name: b
    prefix: /b/../c/
    upstream: files
    methods: [GET, "BAD METHOD"]
    auth:
      signed_url: { keys: [media2] }
  - name: c
    prefix: /c/
    upstream: files
    auth:
      jwt: { keys: [short], from: [query] }
  - name: e
    prefix: /e/
    upstream: files
    auth:
      signed_url: { keys: [short], max_ttl: 15 }
  - name: d
    prefix: /d/
    upstream: files
"#;
        let errs = errors(yaml, dir.path());
        let expect = [
            "keys.short.hmac: the secret is 16 bytes; at least 32 are required",
            "keys.both: set exactly one of hmac, public_key_file, jwks_file and jwks_url",
            "keys.inline.hmac.secret: unknown field `secret`",
            "keys.nokey.hmac.secret_env: environment variable TOLLGATE_TEST_SURELY_UNSET_VAR is not set",
            "upstreams.files.url: must start with http:// or https://",
            "routes[0].auth.jwt.audence: unknown field `audence`",
            "routes[1].prefix: must be a plain path",
            "routes[1].methods[1]: unsupported method",
            "routes[1].auth.signed_url.keys[0]: unknown key \"media2\"",
            "routes[3].auth.signed_url.max_ttl: a bare number (15) is ambiguous",
            "routes[2].auth.jwt.from: tokens in the query string must be path-bound",
            "routes[4]: missing field `auth`",
        ];
        for want in expect {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(want)
                        || (want.contains("missing field") && e.contains("missing field `auth`"))),
                "missing {want:?} in {errs:#?}"
            );
        }
        assert!(!errs.iter().any(|e| e.contains("hunter2")), "a secret leaked into an error");
    }

    #[test]
    fn unused_keys_and_upstreams_are_warnings() {
        let dir = secret_dir();
        let yaml = GOOD.replace("routes:", "  spare: { url: \"http://127.0.0.1:9\" }\nroutes:");
        let yaml = yaml.replace("keys:\n  media:", "keys:\n  staged: { hmac: { secret_file: good.key } }\n  media:");
        let config = compile_str(&yaml, dir.path(), &metrics()).unwrap_or_else(|e| panic!("{e}"));
        let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, vec!["upstreams.spare: not used by any route", "keys.staged: not used by any route"]);
    }

    #[test]
    fn object_store_settings_are_checked() {
        let dir = secret_dir();
        std::fs::write(dir.path().join("ak"), "access").unwrap_or_else(|e| panic!("{e}"));
        let yaml = r#"
upstreams:
  files: { url: "http://127.0.0.1:8081" }
  bucket:
    url: "http://127.0.0.1:9000"
    host_header: preserve
    s3: { bucket: media, region: us-east-1, key_prefix: site, access_key_file: ak, secret_key_file: ak }
  bucket2:
    url: "http://127.0.0.1:9000"
    s3: { bucket: media, region: us-east-1, access_key_file: ak, secret_key_file: ak }
keys:
  idp: { jwks_url: "http://127.0.0.1:1/jwks", refresh: 1s, refetch_cooldown: 0s }
routes:
  - { name: f, prefix: /f/, upstream: files, auth: none, allow_empty_segments: true, allow_encoded_slashes: true }
  - { name: b, prefix: /b/, upstream: bucket2, auth: none, allow_empty_segments: true }
  - { name: j, prefix: /j/, upstream: files, auth: { jwt: { keys: [idp] } } }
"#;
        let errs = errors(yaml, dir.path());
        for want in [
            "upstreams.bucket.s3.key_prefix: must end with /",
            "routes[0].allow_empty_segments: only for routes to an object store",
            "routes[0].allow_encoded_slashes: only for routes to an object store",
            "keys.idp.refresh: must be at least 10s",
            "keys.idp.refetch_cooldown: must be at least 1s",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(want)), "missing {want:?} in {errs:#?}");
        }
        assert!(!errs.iter().any(|e| e.starts_with("routes[1]")), "{errs:#?}");
        let preserve = yaml.replace("key_prefix: site, ", "");
        let errs = errors(&preserve, dir.path());
        assert!(
            errs.iter()
                .any(|e| e.starts_with("upstreams.bucket.host_header: an s3 upstream always sends its own Host")),
            "{errs:#?}"
        );
    }

    #[test]
    fn references_are_checked() {
        let dir = secret_dir();
        let yaml = GOOD
            .replace("keys: [media], max_ttl", "keys: [nope], max_ttl")
            .replace("upstream: files\n    auth: none", "upstream: gone\n    auth: none");
        let errs = errors(&yaml, dir.path());
        assert!(errs.contains(&"routes[0].auth.signed_url.keys[0]: unknown key \"nope\"".to_owned()), "{errs:#?}");
        assert!(errs.contains(&"routes[1].upstream: unknown upstream \"gone\"".to_owned()), "{errs:#?}");
    }

    #[test]
    fn yaml_syntax_and_empty_files() {
        let dir = secret_dir();
        assert!(errors("routes: [", dir.path())[0].starts_with("invalid YAML"));
        assert_eq!(errors("", dir.path()), vec!["the file is empty".to_owned()]);
        assert!(errors("bogus: 2\nroutes: []", dir.path()).iter().any(|e| e.contains("unknown field `bogus`")));
    }

    #[test]
    fn algorithm_pins_must_fit_the_key() {
        let dir = secret_dir();
        let yaml = GOOD
            .replace("{ hmac: { secret_file: good.key } }", "{ hmac: { secret_file: good.key }, algorithms: [RS256] }");
        let errs = errors(&yaml, dir.path());
        assert!(errs.iter().any(|e| e.starts_with("keys.media.algorithms[0]: RS256 does not fit")), "{errs:#?}");
    }
}
