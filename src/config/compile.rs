//! Raw YAML → runtime [`Config`], once. Every problem is collected with its
//! YAML path (`routes[2].auth.jwt.keys[0]: unknown key "idp2"`) so `tollgate
//! check` can print them all; the request path never parses config strings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Method, Uri};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::file::{
    AuthFile, CarrierFile, ConfigFile, HostHeader, JwtFile, KeyFile, LogFormat, RouteFile, S3Addressing, S3File,
    SecretEncoding, SecretFile, SignedUrlFile, UpstreamFile,
};
use super::{
    Config, ConfigError, ConfigErrors, DEFAULT_ADMIN, DEFAULT_LISTEN, Limits, LogSettings, ReloadSettings,
    ShutdownSettings, TlsSettings,
};
use crate::auth::jwt::{Carriers, ClaimRules, JwtPolicy};
use crate::auth::keyfile;
use crate::auth::keys::{self, HmacKey, JwtKey, JwtKeySource, KeySet, MIN_SECRET_LEN};
use crate::auth::signed_url::{self, SignedUrlPolicy};
use crate::auth::{CacheSettings, RouteAuth};
use crate::metrics::Metrics;
use crate::proxy::normalize;
use crate::routes::{Route, RouteTable};
use crate::upstream::s3::{Addressing, S3Credentials, S3Target};
use crate::upstream::{Upstream, UpstreamSettings};

/// Reads and compiles the file at `path`.
pub fn load(path: &Path, metrics: &Metrics) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError { path: String::new(), message: format!("cannot read {}: {e}", path.display()) }])
    })?;
    let mut config = compile_str(&text, &Config::base_dir(path), metrics)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Compiles YAML text; relative file paths resolve against `base`.
pub fn compile_str(yaml: &str, base: &Path, metrics: &Metrics) -> Result<Config, ConfigErrors> {
    let mut c = Compiler {
        base: base.to_path_buf(),
        errors: Vec::new(),
        inputs: Vec::new(),
        used_keys: BTreeSet::new(),
        used_upstreams: BTreeSet::new(),
    };
    let value: Value = serde_yaml_ng::from_str(yaml).map_err(|e| one_error("", format!("invalid YAML: {e}")))?;
    if value.is_null() {
        return Err(one_error("", "the file is empty".to_owned()));
    }
    let file: ConfigFile = c.entry("", value).ok_or_else(|| ConfigErrors(std::mem::take(&mut c.errors)))?;
    let config = c.compile(file, metrics);
    match config {
        Some(config) if c.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(c.errors)),
    }
}

fn one_error(path: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { path: path.to_owned(), message }])
}

/// A compiled entry of `keys:`.
enum CompiledKey {
    Hmac { signer: Arc<HmacKey>, jwt: Arc<JwtKey> },
    Public(Arc<JwtKey>),
    Set(Arc<KeySet>),
}

struct Compiler {
    base: PathBuf,
    errors: Vec<ConfigError>,
    /// Files read while compiling (secrets, keys): watched for reloads.
    inputs: Vec<PathBuf>,
    used_keys: BTreeSet<String>,
    used_upstreams: BTreeSet<String>,
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (_, true) => parent.to_owned(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

impl Compiler {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into() });
    }

    /// Deserializes one YAML value, recording a failure with its full path.
    fn entry<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let inner = if inner == "." { String::new() } else { inner };
                self.error(join(path, &inner), e.into_inner().to_string());
                None
            }
        }
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    /// Reads a file the configuration refers to, remembering it as an input.
    fn read(&mut self, p: &Path) -> std::io::Result<Vec<u8>> {
        let path = self.resolve(p);
        let bytes = std::fs::read(&path);
        self.inputs.push(path);
        bytes
    }

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
            if let Some(raw) = self.entry::<KeyFile>(&path, value)
                && let Some(key) = self.key(&path, &name, raw, &mut jwks)
            {
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
            if let Some(route) = self.route(&path, i, raw, &known) {
                routes.push(Arc::new(route));
            }
        }

        // Unused entries are not errors (a key may be staged for rotation),
        // but usually a typo: `check` shows them.
        let mut warnings = Vec::new();
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
                    self.error(field, format!("cannot read {}: {e}", file.display()));
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
            cache,
            log,
            limits,
            tls,
            shutdown,
            reload,
            trust_forwarded_headers: file.trust_forwarded_headers,
            jwks,
            source: None,
            inputs: std::mem::take(&mut self.inputs),
            warnings,
        })
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

    fn secret(&mut self, path: &str, raw: SecretFile) -> Option<Vec<u8>> {
        let text = match (raw.secret_env, raw.secret_file) {
            (Some(var), None) => match std::env::var_os(&var) {
                Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
                None => {
                    self.error(format!("{path}.secret_env"), format!("environment variable {var} is not set"));
                    return None;
                }
            },
            (None, Some(file)) => match self.read(&file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.error(format!("{path}.secret_file"), format!("cannot read {}: {e}", file.display()));
                    return None;
                }
            },
            _ => {
                self.error(path, "set exactly one of secret_env and secret_file (secrets are never inline)");
                return None;
            }
        };
        let Some(secret) = keys::decode_secret(text, raw.encoding.unwrap_or(SecretEncoding::Raw)) else {
            self.error(format!("{path}.encoding"), "the secret is not valid in this encoding");
            return None;
        };
        if secret.len() < MIN_SECRET_LEN {
            self.error(path, format!("the secret is {} bytes; at least {MIN_SECRET_LEN} are required", secret.len()));
            return None;
        }
        Some(secret)
    }

    fn algorithms(
        &mut self,
        path: &str,
        raw: Option<Vec<String>>,
        family: AlgorithmFamily,
        default: Algorithm,
    ) -> Option<Vec<Algorithm>> {
        let Some(names) = raw else {
            return Some(vec![default]);
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match name.parse::<Algorithm>() {
                Ok(alg) if alg.family() == family => out.push(alg),
                Ok(_) => self.error(
                    format!("{path}.algorithms[{i}]"),
                    format!("{name} does not fit this key's type ({family:?}); a key verifies only its own family"),
                ),
                Err(_) => self.error(format!("{path}.algorithms[{i}]"), format!("unknown algorithm {name:?}")),
            }
        }
        if out.is_empty() {
            self.error(format!("{path}.algorithms"), "list at least one algorithm");
            return None;
        }
        (out.len() == names.len()).then_some(out)
    }

    fn key(&mut self, path: &str, name: &str, raw: KeyFile, jwks: &mut Vec<super::JwksFetch>) -> Option<CompiledKey> {
        let sources =
            [raw.hmac.is_some(), raw.public_key_file.is_some(), raw.jwks_file.is_some(), raw.jwks_url.is_some()];
        if sources.iter().filter(|s| **s).count() != 1 {
            self.error(path, "set exactly one of hmac, public_key_file, jwks_file and jwks_url");
            return None;
        }
        let url_only = [
            ("refresh", raw.refresh.is_some()),
            ("refetch_cooldown", raw.refetch_cooldown.is_some()),
            ("required_for_ready", raw.required_for_ready.is_some()),
            ("allow_insecure_http", raw.allow_insecure_http.is_some()),
            ("ca_file", raw.ca_file.is_some()),
        ];
        if raw.jwks_url.is_none() {
            for (field, set) in url_only {
                if set {
                    self.error(format!("{path}.{field}"), "only applies to jwks_url keys");
                }
            }
        }
        let kid = raw.kid.clone().unwrap_or_else(|| name.to_owned());
        if let Some(secret) = raw.hmac {
            let secret = self.secret(&format!("{path}.hmac"), secret)?;
            let algorithms = self.algorithms(path, raw.algorithms, AlgorithmFamily::Hmac, Algorithm::HS256)?;
            let jwt = match JwtKey::hmac(Some(kid.clone()), &secret, algorithms) {
                Ok(k) => k,
                Err(why) => {
                    self.error(format!("{path}.algorithms"), why);
                    return None;
                }
            };
            return Some(CompiledKey::Hmac { signer: Arc::new(HmacKey::new(kid, &secret)), jwt: Arc::new(jwt) });
        }
        if let Some(file) = raw.public_key_file {
            let pem = match self.read(&file) {
                Ok(pem) => pem,
                Err(e) => {
                    self.error(format!("{path}.public_key_file"), format!("cannot read {}: {e}", file.display()));
                    return None;
                }
            };
            let parsed = match keyfile::parse_public_pem(&pem) {
                Ok(k) => k,
                Err(why) => {
                    self.error(format!("{path}.public_key_file"), why);
                    return None;
                }
            };
            let algorithms = self.algorithms(path, raw.algorithms, parsed.family, parsed.default_alg)?;
            return match JwtKey::public(Some(kid), &parsed.der, algorithms) {
                Ok(key) => Some(CompiledKey::Public(Arc::new(key))),
                Err(why) => {
                    self.error(format!("{path}.algorithms"), why);
                    None
                }
            };
        }
        if raw.algorithms.is_some() || raw.kid.is_some() {
            self.error(path, "kid and algorithms come from the JWK set itself");
            return None;
        }
        if let Some(file) = raw.jwks_file {
            let text = match self.read(&file) {
                Ok(t) => t,
                Err(e) => {
                    self.error(format!("{path}.jwks_file"), format!("cannot read {}: {e}", file.display()));
                    return None;
                }
            };
            return match keyfile::parse_jwks(&text) {
                Ok((set, _skipped)) => Some(CompiledKey::Set(Arc::new(KeySet::new(name, set)))),
                Err(why) => {
                    self.error(format!("{path}.jwks_file"), why);
                    None
                }
            };
        }
        let url_text = raw.jwks_url.unwrap_or_default();
        let url: Uri = match url_text.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(format!("{path}.jwks_url"), format!("{url_text:?} is not a URL"));
                return None;
            }
        };
        let loopback = url.host().is_some_and(is_loopback_host);
        match url.scheme_str() {
            Some("https") => {}
            Some("http") if loopback || raw.allow_insecure_http == Some(true) => {}
            Some("http") => {
                self.error(
                    format!("{path}.jwks_url"),
                    "must be https (http is allowed for loopback, or with allow_insecure_http: true)",
                );
                return None;
            }
            _ => {
                self.error(format!("{path}.jwks_url"), "must be an https:// URL");
                return None;
            }
        }
        let ca_file = raw.ca_file.map(|f| self.resolve(&f));
        if let Some(ca) = &ca_file
            && let Err(e) = crate::upstream::tls::load_roots(Some(ca))
        {
            self.error(format!("{path}.ca_file"), e);
            return None;
        }
        let cooldown = raw.refetch_cooldown.map_or(Duration::from_secs(30), |d| d.0);
        let set = Arc::new(KeySet::new(name, Vec::new()).remote(cooldown));
        jwks.push(super::JwksFetch {
            set: set.clone(),
            url,
            refresh: raw.refresh.map_or(Duration::from_secs(300), |d| d.0),
            required_for_ready: raw.required_for_ready.unwrap_or(true),
            ca_file,
        });
        Some(CompiledKey::Set(set))
    }

    fn upstream(&mut self, path: &str, name: &str, raw: UpstreamFile) -> Option<Upstream> {
        let uri: Uri = match raw.url.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(format!("{path}.url"), format!("{:?} is not a URL", raw.url));
                return None;
            }
        };
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                self.error(format!("{path}.url"), "must start with http:// or https://");
                return None;
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            self.error(format!("{path}.url"), "must name a host");
            return None;
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            self.error(format!("{path}.url"), "must not have a path or query: routes forward the request path as is");
            return None;
        }
        let authority = with_port(&authority, &scheme);
        let mut settings = UpstreamSettings::new(name, scheme, authority);
        if let Some(d) = raw.connect_timeout {
            settings.connect_timeout = d.0;
        }
        if let Some(d) = raw.response_timeout {
            settings.response_timeout = d.0;
        }
        if let Some(d) = raw.pool_idle_timeout {
            settings.pool_idle_timeout = d.0;
        }
        if let Some(n) = raw.pool_max_idle {
            settings.pool_max_idle = n;
        }
        settings.preserve_host = raw.host_header == Some(HostHeader::Preserve);
        if let Some(tls) = raw.tls {
            if settings.scheme != Scheme::HTTPS {
                self.error(format!("{path}.tls"), "only applies to https:// upstreams");
                return None;
            }
            settings.ca_file = tls.ca_file.map(|f| self.resolve(&f));
            settings.server_name = tls.server_name;
        }
        let s3 = match raw.s3 {
            Some(s3) => Some(self.s3(&format!("{path}.s3"), s3)?),
            None => None,
        };
        match Upstream::new(settings, s3) {
            Ok(up) => Some(up),
            Err(e) => {
                self.error(format!("{path}.tls"), e);
                None
            }
        }
    }

    fn s3(&mut self, path: &str, raw: S3File) -> Option<S3Target> {
        let before = self.errors.len();
        let valid_bucket = (3..=63).contains(&raw.bucket.len())
            && raw.bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            self.error(format!("{path}.bucket"), "must be 3-63 characters of a-z 0-9 . -");
        }
        if raw.region.is_empty() {
            self.error(format!("{path}.region"), "must not be empty");
        }
        let key_prefix = raw.key_prefix.unwrap_or_default();
        if key_prefix.starts_with('/') || key_prefix.bytes().any(|b| b < 0x20 || b == 0x7f) {
            self.error(format!("{path}.key_prefix"), "must not start with / or hold control characters");
        }
        let access_key = self.credential(path, "access_key", raw.access_key_env, raw.access_key_file, true);
        let secret_key = self.credential(path, "secret_key", raw.secret_key_env, raw.secret_key_file, true);
        let session_token =
            self.credential(path, "session_token", raw.session_token_env, raw.session_token_file, false);
        if self.errors.len() != before {
            return None;
        }
        let credentials = S3Credentials {
            access_key: access_key.flatten()?,
            secret_key: secret_key.flatten()?,
            session_token: session_token.flatten(),
        };
        let addressing = match raw.addressing {
            Some(S3Addressing::Virtual) => Addressing::Virtual,
            _ => Addressing::Path,
        };
        Some(S3Target::new(
            raw.bucket,
            raw.region,
            key_prefix,
            addressing,
            raw.expose_errors.unwrap_or(false),
            credentials,
        ))
    }

    /// An S3 credential from `<field>_env` or `<field>_file` (whitespace
    /// around it is dropped). `Some(None)`: optional and absent.
    fn credential(
        &mut self,
        path: &str,
        field: &str,
        env: Option<String>,
        file: Option<PathBuf>,
        required: bool,
    ) -> Option<Option<String>> {
        let bytes = match (env, file) {
            (Some(var), None) => match std::env::var(&var) {
                Ok(v) => v.into_bytes(),
                Err(_) => {
                    self.error(format!("{path}.{field}_env"), format!("environment variable {var} is not set"));
                    return None;
                }
            },
            (None, Some(f)) => match self.read(&f) {
                Ok(b) => b,
                Err(e) => {
                    self.error(format!("{path}.{field}_file"), format!("cannot read {}: {e}", f.display()));
                    return None;
                }
            },
            (None, None) if !required => return Some(None),
            _ => {
                self.error(path, format!("set exactly one of {field}_env and {field}_file"));
                return None;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) if !text.trim().is_empty() => Some(Some(text.trim().to_owned())),
            _ => {
                self.error(format!("{path}.{field}"), "must be non-empty UTF-8 text");
                None
            }
        }
    }

    fn route(&mut self, path: &str, index: usize, raw: RouteFile, known: &Known<'_>) -> Option<Route> {
        let errors_before = self.errors.len();
        if !valid_name(&raw.name) {
            self.error(format!("{path}.name"), "names may only use A-Z a-z 0-9 . _ - (at most 64)");
        }
        let prefix_ok = raw.prefix.starts_with('/')
            && normalize::check_path(&raw.prefix).is_ok_and(|p| !p.empty_segment && p.decoded == raw.prefix);
        if !prefix_ok {
            self.error(
                format!("{path}.prefix"),
                "must be a plain path starting with / (no dot segments, //, or %-escapes)",
            );
        }
        self.used_upstreams.insert(raw.upstream.clone());
        let upstream = match known.upstreams.get(&raw.upstream) {
            Some(u) => Some(u.clone()),
            None => {
                if !known.declared_upstreams.contains(&raw.upstream) {
                    self.error(format!("{path}.upstream"), format!("unknown upstream {:?}", raw.upstream));
                }
                None
            }
        };
        let methods = match raw.methods {
            None => vec![Method::GET, Method::HEAD],
            Some(list) => {
                let mut out = Vec::new();
                for (i, m) in list.iter().enumerate() {
                    match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                        Ok(method) if !matches!(method, Method::CONNECT | Method::TRACE) => out.push(method),
                        _ => self.error(format!("{path}.methods[{i}]"), format!("unsupported method {m:?}")),
                    }
                }
                if out.is_empty() {
                    self.error(format!("{path}.methods"), "list at least one method");
                }
                out
            }
        };
        let auth = match raw.auth {
            AuthFile::None => None,
            AuthFile::Rules(rules) => {
                if rules.signed_url.is_none() && rules.jwt.is_none() {
                    self.error(format!("{path}.auth"), "set signed_url and/or jwt, or write `auth: none`");
                }
                let signed_url =
                    rules.signed_url.and_then(|s| self.signed_url(&format!("{path}.auth.signed_url"), s, known));
                let jwt = rules.jwt.and_then(|j| self.jwt(&format!("{path}.auth.jwt"), j, known));
                Some(RouteAuth { signed_url, jwt })
            }
        };
        let claim_headers = auth
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| j.forward_claims.iter().map(|(_, h)| h.clone()).collect())
            .unwrap_or_default();
        if let Some(up) = &upstream
            && up.s3.is_some()
        {
            if !raw.prefix.ends_with('/') {
                self.error(format!("{path}.prefix"), "a route to an object store needs a prefix ending in /");
            }
            if methods.iter().any(|m| !matches!(*m, Method::GET | Method::HEAD | Method::PUT)) {
                self.error(format!("{path}.methods"), "object-store routes support GET, HEAD and PUT");
            }
        }
        let max_body = raw.max_body.map_or(known.limits.max_body, |b| b.0);
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Route {
            id: u32::try_from(index).unwrap_or(u32::MAX),
            metrics: known.metrics.route(&raw.name),
            name: raw.name,
            prefix: raw.prefix,
            host: raw.host.map(|h| h.to_ascii_lowercase()),
            methods,
            auth,
            upstream: upstream?,
            allow_empty_segments: raw.allow_empty_segments,
            allow_encoded_slashes: raw.allow_encoded_slashes,
            max_body,
            require_content_type: raw.require_content_type,
            claim_headers,
        })
    }

    fn key_ref<'k>(&mut self, path: &str, name: &str, known: &'k Known<'_>) -> Option<&'k CompiledKey> {
        self.used_keys.insert(name.to_owned());
        match known.keys.get(name) {
            Some(k) => Some(k),
            None => {
                if !known.declared_keys.contains(name) {
                    self.error(path, format!("unknown key {name:?}"));
                }
                None
            }
        }
    }

    fn signed_url(&mut self, path: &str, raw: SignedUrlFile, known: &Known<'_>) -> Option<SignedUrlPolicy> {
        if raw.keys.is_empty() {
            self.error(format!("{path}.keys"), "list at least one hmac key");
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            match self.key_ref(&kpath, name, known) {
                Some(CompiledKey::Hmac { signer, .. }) => {
                    if !signed_url::valid_kid(&signer.id) {
                        self.error(&kpath, format!("kid {:?} must match [A-Za-z0-9._-]{{1,64}}", signer.id));
                    }
                    keys.push(signer.clone());
                }
                Some(_) => self.error(&kpath, format!("key {name:?} is not an hmac key; signed URLs need one")),
                None => {}
            }
        }
        Some(SignedUrlPolicy { keys, max_ttl: raw.max_ttl.map(|d| d.0.as_secs()) })
    }

    fn jwt(&mut self, path: &str, raw: JwtFile, known: &Known<'_>) -> Option<JwtPolicy> {
        if raw.keys.is_empty() {
            self.error(format!("{path}.keys"), "list at least one key");
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            match self.key_ref(&format!("{path}.keys[{i}]"), name, known) {
                Some(CompiledKey::Hmac { jwt, .. } | CompiledKey::Public(jwt)) => {
                    keys.push(JwtKeySource::Static(jwt.clone()))
                }
                Some(CompiledKey::Set(set)) => keys.push(JwtKeySource::Set(set.clone())),
                None => {}
            }
        }
        let mut from = Carriers::default();
        for carrier in raw.from.unwrap_or_else(|| vec![CarrierFile::Header]) {
            match carrier {
                CarrierFile::Header => from.header = true,
                CarrierFile::Query => from.query = true,
                CarrierFile::Cookie => from.cookie = true,
            }
        }
        if from.query && raw.path_claim.is_none() && !raw.allow_unbound_query_tokens {
            self.error(
                format!("{path}.from"),
                "tokens in the query string must be path-bound: set path_claim (or allow_unbound_query_tokens: true)",
            );
        }
        let query_param = raw.query_param.unwrap_or_else(|| "token".to_owned());
        if matches!(query_param.as_str(), "exp" | "sig" | "kid" | "prefix") || query_param.is_empty() {
            self.error(format!("{path}.query_param"), "must be a non-empty name other than exp, sig, kid and prefix");
        }
        let cookie = raw.cookie.unwrap_or_else(|| "tollgate_token".to_owned());
        if cookie.is_empty() || cookie.bytes().any(|b| b <= b' ' || b"=;,\"".contains(&b)) {
            self.error(format!("{path}.cookie"), "must be a valid cookie name");
        }
        let mut forward_claims = Vec::new();
        for (claim, header) in raw.forward_claims {
            let hpath = format!("{path}.forward_claims.{claim}");
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(h) if !reserved_header(&h) => forward_claims.push((claim, h)),
                Ok(_) => self.error(hpath, format!("{header} is managed by tollgate or the protocol")),
                Err(_) => self.error(hpath, format!("{header:?} is not a valid header name")),
            }
        }
        let rules = ClaimRules {
            issuers: raw.issuer.map(|i| i.into_vec()).unwrap_or_default(),
            audiences: raw.audience.map(|a| a.into_vec()).unwrap_or_default(),
            leeway: raw.leeway.map_or(30, |d| d.0.as_secs()),
            max_lifetime: raw.max_lifetime.map(|d| d.0.as_secs()),
            required: raw.require.into_iter().collect(),
            path_claim: raw.path_claim,
        };
        Some(JwtPolicy::new(keys, from, query_param, cookie, rules, forward_claims))
    }
}

/// What routes may refer to.
struct Known<'a> {
    keys: &'a BTreeMap<String, CompiledKey>,
    declared_keys: &'a BTreeSet<String>,
    upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    declared_upstreams: &'a BTreeSet<String>,
    limits: &'a Limits,
    metrics: &'a Metrics,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Headers a claim may not be forwarded as.
fn reserved_header(h: &HeaderName) -> bool {
    let n = h.as_str();
    matches!(
        n,
        "host"
            | "authorization"
            | "cookie"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
            | "keep-alive"
            | "proxy-authorization"
            | "forwarded"
    ) || n.starts_with("x-forwarded-")
}

fn with_port(authority: &Authority, scheme: &Scheme) -> Authority {
    if authority.port().is_some() {
        return authority.clone();
    }
    let port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    format!("{}:{port}", authority.host()).parse().unwrap_or_else(|_| authority.clone())
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(route.claim_headers, vec![HeaderName::from_static("x-auth-subject")]);
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
