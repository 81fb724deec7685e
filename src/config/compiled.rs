//! The compiled configuration: what the request path reads, built once by
//! `compile.rs` and swapped whole on reload.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::LogFormat;
use crate::auth::CacheSettings;
use crate::routes::RouteTable;

/// Default proxy listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default admin listener.
pub const DEFAULT_ADMIN: &str = "0.0.0.0:9090";
/// Default config path (docs/reference.md: Commands).
pub const DEFAULT_PATH: &str = "config/tollgate.yaml";

/// One configuration problem, located by its YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// e.g. `routes[2].auth.jwt.keys[0]`; empty for whole-file problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found in a configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

/// Protections against slow and oversized clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub max_connections: usize,
    pub max_body: u64,
    pub http2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_connections: 10_000,
            max_body: 0,
            http2_max_concurrent_streams: 128,
        }
    }
}

/// TLS on the proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_interval: Duration,
}

/// What happens on SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    pub grace: Duration,
    pub drain_timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings { grace: Duration::from_secs(5), drain_timeout: Duration::from_secs(30) }
    }
}

/// Whether and how often the config file is polled for changes.
#[derive(Debug, Clone, Copy)]
pub struct ReloadSettings {
    pub watch: bool,
    pub interval: Duration,
}

use crate::auth::jwks::JwksFetch;

/// A compiled configuration: what the request path reads. Immutable; a
/// reload compiles a new one and swaps it in.
pub struct Config {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Worker threads serving the proxy listener.
    pub workers: usize,
    pub routes: RouteTable,
    /// Headers any route sets from claims: removed from every request.
    pub claim_headers: Vec<http::HeaderName>,
    /// Cookies any route reads credentials from: removed from every request.
    pub credential_cookies: Vec<crate::auth::CookieName>,
    /// Headers (other than `Authorization`) any route reads credentials
    /// from: removed from every request.
    pub credential_headers: Vec<http::HeaderName>,
    /// Every route's path-token marker: token segments are redacted from
    /// log lines whatever route the request matched (or none).
    pub path_token_markers: Vec<Box<str>>,
    pub cache: CacheSettings,
    pub log: LogSettings,
    pub limits: Limits,
    pub tls: Option<TlsSettings>,
    pub shutdown: ShutdownSettings,
    pub reload: ReloadSettings,
    pub trust_forwarded_headers: bool,
    /// JWKS URLs this configuration fetches.
    pub jwks: Vec<JwksFetch>,
    /// Where use counts and revocations live (restart to change).
    pub store: crate::store::StoreSettings,
    /// How long `tollgate revoke` keeps a revocation: the longest credential
    /// lifetime a route that checks revocations accepts (`None`: no route
    /// checks them).
    pub revocation_lifetime: Option<Duration>,
    /// The file this configuration came from.
    pub source: Option<PathBuf>,
    /// Other files it read (secrets, keys); a change to any triggers a reload.
    pub inputs: Vec<PathBuf>,
    /// Likely mistakes that are not errors (unused keys and upstreams).
    pub warnings: Vec<ConfigError>,
    /// With `check --offline`: the absent secrets and files not checked.
    pub unchecked: Vec<ConfigError>,
}

impl Config {
    /// Directory relative paths in the file are resolved against.
    pub fn base_dir(path: &Path) -> PathBuf {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

impl Config {
    /// Whether any route checks use limits or revocations (and so needs the
    /// store).
    pub fn needs_store(&self) -> bool {
        self.routes.iter().any(|r| r.state.is_some())
    }

    /// The settings a running server keeps from its start, that differ in
    /// `other` (a reload cannot apply them).
    pub fn restart_only_changes(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let checks = [
            ("listen", self.listen != other.listen),
            ("admin", self.admin != other.admin),
            ("workers", self.workers != other.workers),
            ("tls", self.tls != other.tls),
            ("limits", self.limits != other.limits),
            ("shutdown", self.shutdown != other.shutdown),
            ("log", self.log.format != other.log.format || self.log.level != other.log.level),
            ("store", self.store != other.store),
            ("reload", self.reload.watch != other.reload.watch || self.reload.interval != other.reload.interval),
        ];
        for (name, differs) in checks {
            if differs {
                changed.push(name);
            }
        }
        changed
    }
}
