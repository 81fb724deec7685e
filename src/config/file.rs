//! The YAML as written: raw serde structs, `deny_unknown_fields`, no logic.
//! `compile.rs` turns them into runtime types and reports every error with
//! its YAML path. Keys, upstreams and routes are kept as YAML values at the
//! top level and deserialized one entry at a time, so one bad route does not
//! hide the errors of the next.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_yaml_ng::{Mapping, Value};

pub use crate::auth::keys::SecretEncoding;
use crate::auth::kinds::REGISTRY;
pub use crate::auth::section::{CarrierFile, SecretFile};
use crate::duration::{ByteSize, HumanDuration};

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Proxy listener, `host:port`.
    pub listen: Option<String>,
    /// Admin listener (metrics and probes), `host:port`.
    pub admin: Option<String>,
    /// Worker threads, each with its own listener and pools (default: one per CPU).
    pub workers: Option<usize>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, KeyEntry>")]
    pub keys: Mapping,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, UpstreamFile>")]
    pub upstreams: Mapping,
    #[serde(default)]
    #[schemars(with = "Vec<RouteFile>")]
    pub routes: Vec<Value>,
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub limits: LimitsFile,
    pub tls: Option<TlsFile>,
    #[serde(default)]
    pub shutdown: ShutdownFile,
    /// Keep client-sent `X-Forwarded-*` and append to them (only behind a
    /// trusted proxy); by default tollgate replaces them.
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    /// Poll the config file for changes and reload (also on SIGHUP).
    #[serde(default)]
    pub reload: ReloadFile,
    /// Metrics settings.
    #[serde(default)]
    pub metrics: MetricsFile,
    /// Where use counts and revocations live (README: One-time and limited links): `memory` (the
    /// default: one replica, uses forgotten on restart) or `redis` (shared
    /// by every replica). Changes need a restart.
    pub store: Option<StoreFile>,
}

/// `metrics:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// How many routes get series of their own (in the order they are
    /// first used; routes with `own_metrics: true` always do). The others
    /// count under `route="(other)"`. Default 200: the exposition stays
    /// under 1 MB whatever the number of routes.
    pub route_series: Option<usize>,
}

/// `store:`: exactly one of `memory` and `redis`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    pub memory: Option<MemoryStoreFile>,
    pub redis: Option<RedisStoreFile>,
}

/// `store.memory`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryStoreFile {
    /// Revocations written by `tollgate revoke` and read by the running
    /// process when the file changes (no network endpoint writes them).
    pub revocations_file: Option<PathBuf>,
}

/// `store.redis`. The URL may hold a password, so it comes from the
/// environment or a file, never inline.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreFile {
    /// Environment variable holding the URL: `redis://[user:password@]host:port[/db]`,
    /// or `rediss://` for TLS. Cluster seeds and sentinels: several URLs, comma-separated.
    pub url_env: Option<String>,
    /// File holding the URL(s), instead of `url_env`.
    pub url_file: Option<PathBuf>,
    /// `standalone` (default), `cluster` or `sentinel`.
    pub mode: Option<RedisModeFile>,
    /// The master's name, for `mode: sentinel`.
    pub master_name: Option<String>,
    /// Prepended to every key (default `tollgate:`).
    pub key_prefix: Option<String>,
    /// Longest a store operation may take, connecting included (default 250ms).
    pub timeout: Option<HumanDuration>,
    /// Longest a connection attempt may take (default: `timeout`).
    pub connect_timeout: Option<HumanDuration>,
    /// Keep `/readyz` at 503 while Redis is unreachable (default false: the
    /// routes that need no store keep serving).
    #[serde(default)]
    pub required_for_ready: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisModeFile {
    Standalone,
    Cluster,
    Sentinel,
}

/// `routes[].auth.use_limit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UseLimitFile {
    /// Uses one credential (by its `jti`) may have on this route.
    pub uses: u32,
    /// How long one use lasts after its first successful answer: Range
    /// requests and resumes inside it are the same use (default 0s).
    pub grace: Option<HumanDuration>,
    /// `deny` (default: 503 store_unavailable) or `allow` (serve unchecked).
    pub on_store_error: Option<OnStoreError>,
}

/// `routes[].auth.share_limit`: share detection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareLimitFile {
    /// Distinct client networks one credential may be used from during its
    /// lifetime; a request from one more is refused (403 `shared`).
    pub max_networks: u32,
    /// Prefix length that makes an IPv4 client network (default 24).
    pub ipv4_prefix: Option<u8>,
    /// Prefix length that makes an IPv6 client network (default 64).
    pub ipv6_prefix: Option<u8>,
    /// Count and log what would be refused, and serve it (default false).
    #[serde(default)]
    pub report_only: bool,
    /// `deny` (default: 503 store_unavailable) or `allow` (serve unchecked).
    pub on_store_error: Option<OnStoreError>,
}

/// `routes[].auth.stream_limit`: concurrent downloads per credential.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamLimitFile {
    /// Downloads of one credential in flight at once, across replicas; one
    /// more is answered 429 `too_many_streams` with `Retry-After`.
    pub max_streams: u32,
    /// A slot a replica did not free (it died) is freed this long after it
    /// was taken (default 10m); a download that lasts longer frees its slot
    /// early.
    pub lease: Option<HumanDuration>,
    /// Count and log what would be refused, and serve it (default false).
    #[serde(default)]
    pub report_only: bool,
    /// `deny` (default: 503 store_unavailable) or `allow` (serve unchecked).
    pub on_store_error: Option<OnStoreError>,
}

/// `routes[].auth.byte_quota`: bytes per credential.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByteQuotaFile {
    /// Bytes one credential may be sent during its lifetime, across
    /// replicas (e.g. `10GiB`); a request after that is answered 403
    /// `quota_exceeded` (an answer in flight finishes).
    pub bytes: ByteSize,
    /// Count and log what would be refused, and serve it (default false).
    #[serde(default)]
    pub report_only: bool,
    /// `deny` (default: 503 store_unavailable) or `allow` (serve unchecked).
    pub on_store_error: Option<OnStoreError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    Deny,
    Allow,
}

/// `routes[].auth.revocation`: `true`, or a map with `on_store_error`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RevocationFile {
    Enabled(bool),
    Rules(RevocationRulesFile),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationRulesFile {
    /// `deny` (default) or `allow`.
    pub on_store_error: Option<OnStoreError>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub max_entries: Option<u64>,
    pub ttl: Option<HumanDuration>,
    pub negative_ttl: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `tollgate=debug`.
    pub level: Option<String>,
    /// One line per request at `info` (default true).
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub header_read_timeout: Option<HumanDuration>,
    pub idle_timeout: Option<HumanDuration>,
    pub max_header_bytes: Option<ByteSize>,
    pub max_headers: Option<usize>,
    pub max_uri_bytes: Option<ByteSize>,
    pub max_connections: Option<usize>,
    pub max_body: Option<ByteSize>,
    pub http2_max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often to look for rotated certificate files.
    pub reload_interval: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownFile {
    /// Keep accepting after SIGTERM for this long, so endpoints can update.
    pub grace: Option<HumanDuration>,
    /// Then wait at most this long for in-flight requests.
    pub drain_timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadFile {
    /// Watch the file (default true when served from a file).
    pub watch: Option<bool>,
    pub interval: Option<HumanDuration>,
}

/// One entry of `keys:`: exactly one source: the four below, or a
/// credential kind's own secret format (`edgeauth: {...}`, see
/// `auth::section::KeyFormat`), which `compile.rs` takes out of the map
/// before the rest is read as this struct.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub hmac: Option<SecretFile>,
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// The `kid` that selects this key (default: the key's name).
    pub kid: Option<String>,
    /// Algorithms this key may verify (default: the one its type implies).
    pub algorithms: Option<Vec<String>>,
    /// JWKS URL refresh interval.
    pub refresh: Option<HumanDuration>,
    /// Minimum time between fetches triggered by unknown `kid`s.
    pub refetch_cooldown: Option<HumanDuration>,
    /// Keep `/readyz` at 503 until the first fetch succeeds (default true).
    pub required_for_ready: Option<bool>,
    /// Allow `http://` for a non-loopback JWKS URL.
    pub allow_insecure_http: Option<bool>,
    /// CA bundle for the JWKS URL (default: system roots).
    pub ca_file: Option<PathBuf>,
}

/// One entry of `upstreams:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub url: String,
    pub connect_timeout: Option<HumanDuration>,
    pub response_timeout: Option<HumanDuration>,
    pub pool_idle_timeout: Option<HumanDuration>,
    pub pool_max_idle: Option<usize>,
    /// `upstream` (default): Host is the upstream's; `preserve`: the client's.
    pub host_header: Option<HostHeader>,
    pub tls: Option<UpstreamTlsFile>,
    pub s3: Option<S3File>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostHeader {
    Upstream,
    Preserve,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name to send in SNI and verify (default: the URL's host).
    pub server_name: Option<String>,
}

/// S3 settings of an object-store upstream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    pub bucket: String,
    pub region: String,
    /// Prepended to every object key (e.g. `public-site/`).
    pub key_prefix: Option<String>,
    /// `path` (default) or `virtual` host style.
    pub addressing: Option<S3Addressing>,
    pub access_key_env: Option<String>,
    pub access_key_file: Option<PathBuf>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub session_token_env: Option<String>,
    pub session_token_file: Option<PathBuf>,
    /// Relay S3's own error XML to clients (default false).
    pub expose_errors: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum S3Addressing {
    Path,
    Virtual,
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    pub prefix: String,
    pub host: Option<String>,
    pub upstream: String,
    pub methods: Option<Vec<String>>,
    pub auth: AuthFile,
    /// Accept empty path segments (`//`), for object keys that have them.
    #[serde(default)]
    pub allow_empty_segments: bool,
    /// Accept `%2F` in the part of the path after the prefix.
    #[serde(default)]
    pub allow_encoded_slashes: bool,
    /// Largest request body accepted.
    pub max_body: Option<ByteSize>,
    /// Upload requests must send a `Content-Type` starting with this.
    pub require_content_type: Option<String>,
    /// Cross-origin access from the listed origins (README: Cookies, CORS).
    pub cors: Option<CorsFile>,
    /// Forward the client's `Authorization` header to this route's
    /// upstream, for an upstream that authenticates requests itself (HTTP
    /// Basic on nginx). Default false: removed on every route, so an app's
    /// bearer token never reaches a file server. A header that carried the
    /// credential tollgate verified is removed all the same.
    #[serde(default)]
    pub forward_authorization: bool,
    /// Keep this route's own `route` label in the metrics whatever
    /// `metrics.route_series` (default false).
    #[serde(default)]
    pub own_metrics: bool,
    /// Send each answer no faster than `rate` bytes a second once `burst`
    /// bytes went out (README: Leaked links).
    pub response_rate: Option<ResponseRateFile>,
    /// Log one record per answered download on the `tollgate::download`
    /// target: route, credential id (or digest), subject, client, status,
    /// bytes sent, complete or broken off, duration (default false).
    /// Such a route's answers are never spliced (README: Leaked links).
    #[serde(default)]
    pub download_records: bool,
    /// Rewrite HLS playlists and DASH MPDs so that every URI inside the
    /// request's grant carries its credential, and key URIs get a short
    /// link of their own (README: Video). `{}` for the defaults.
    pub manifests: Option<ManifestsFile>,
}

/// `routes[].response_rate`: like nginx's `limit_rate_after` and `limit_rate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseRateFile {
    /// Bytes a second, per answer, once the burst is sent (e.g. `1MiB`).
    pub rate: ByteSize,
    /// Bytes sent at full speed first (default 0).
    pub burst: Option<ByteSize>,
}

/// `routes[].manifests`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestsFile {
    /// Largest manifest rewritten (default 8MiB); a larger one is answered
    /// 502 `manifest_too_large`.
    pub max_size: Option<ByteSize>,
    /// Lifetime of the signed link put in place of a key URI (default 1m),
    /// never longer than the request's own credential.
    pub key_link_ttl: Option<HumanDuration>,
    /// The routes (by name) whose key URIs get a fresh signed link; a key
    /// URI on any other route is left as it is. None by default.
    #[serde(default)]
    pub key_routes: Vec<String>,
}

/// `routes[].cors`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    /// Exact origins, e.g. `https://app.example`.
    pub origins: Vec<String>,
    /// Request headers a page may send (default: authorization, range).
    pub headers: Option<Vec<String>>,
    /// Response headers a page may read (default: content-length,
    /// content-range, accept-ranges, etag).
    pub expose_headers: Option<Vec<String>>,
    /// How long a browser may cache a preflight (default 10m).
    pub max_age: Option<HumanDuration>,
    /// Allow credentialed requests (cookies) from these origins.
    #[serde(default)]
    pub credentials: bool,
}

/// `auth: none`, or the credentials a route accepts.
#[derive(Debug)]
pub enum AuthFile {
    None,
    Rules(Box<AuthRulesFile>),
}

/// The credentials a route accepts: the credential kinds' sections (each
/// compiled by its kind, `auth::kinds::REGISTRY`) and the route's use
/// limit, revocation and cookie exchange. Every section is kept as YAML and
/// deserialised where it is compiled, so its errors carry their paths.
#[derive(Debug, Default)]
pub struct AuthRulesFile {
    /// Limit how often one credential may be used (README: One-time and limited links); the id is the
    /// JWT `jti` or the signed URL's `jti` parameter.
    pub use_limit: Option<Value>,
    /// Refuse credentials revoked with `tollgate revoke` (README: One-time and limited links).
    pub revocation: Option<Value>,
    /// Refuse a credential used from more client networks than this
    /// (README: Leaked links).
    pub share_limit: Option<Value>,
    /// At most this many downloads of one credential in flight at once,
    /// across replicas (README: Leaked links).
    pub stream_limit: Option<Value>,
    /// Bytes one credential may download in its lifetime, across replicas
    /// (README: Leaked links).
    pub byte_quota: Option<Value>,
    /// Exchange a URL credential for a cookie on top-level navigations.
    pub cookie_exchange: Option<Value>,
    /// Serve what verification would refuse, counting and logging it
    /// (rolling a route's protection out; README: Leaked links).
    pub report_only: Option<Value>,
    /// The credential kinds' sections, by section name.
    pub kinds: BTreeMap<String, Value>,
}

/// The fields of `auth:` that are the route's, not a kind's.
pub const ROUTE_AUTH_FIELDS: [&str; 7] =
    ["use_limit", "revocation", "share_limit", "stream_limit", "byte_quota", "cookie_exchange", "report_only"];

/// Every field `auth:` may hold: the route's, then each kind's section.
pub fn auth_fields() -> &'static [&'static str] {
    static FIELDS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        ROUTE_AUTH_FIELDS.iter().copied().chain(REGISTRY.iter().map(|k| k.section())).collect()
    });
    &FIELDS
}

/// `routes[].auth.cookie_exchange` (README: Cookies, CORS).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieExchangeFile {
    /// An hmac key of its own that signs the cookies.
    pub key: String,
    /// Cookie-name prefix (default `tg_grant`).
    pub name: Option<String>,
}

/// The schema of one entry of `keys:`: [`KeyFile`]'s fields and every
/// credential kind's own secret format.
pub struct KeyEntry;

impl JsonSchema for KeyEntry {
    fn schema_name() -> Cow<'static, str> {
        "KeyFile".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = KeyFile::json_schema(generator);
        for format in REGISTRY.iter().filter_map(|k| k.key_format()) {
            let mut secret = generator.subschema_for::<Option<SecretFile>>();
            if let Some(object) = secret.as_object_mut() {
                object.insert("description".into(), format.about.into());
            }
            if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
                properties.insert(format.field.into(), secret.to_value());
            }
        }
        schema
    }
}

impl<'de> Deserialize<'de> for AuthFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AuthFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`none` or a map of credential kinds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthFile, E> {
                match v {
                    "none" => Ok(AuthFile::None),
                    other => Err(E::custom(format!(
                        "unknown auth {other:?}: use `none` or a map of credential kinds (signed_url, jwt, ...)"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthFile, A::Error> {
                let mut rules = AuthRulesFile::default();
                while let Some(field) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    let slot = match field.as_str() {
                        "use_limit" => &mut rules.use_limit,
                        "revocation" => &mut rules.revocation,
                        "share_limit" => &mut rules.share_limit,
                        "stream_limit" => &mut rules.stream_limit,
                        "byte_quota" => &mut rules.byte_quota,
                        "report_only" => &mut rules.report_only,
                        "cookie_exchange" => &mut rules.cookie_exchange,
                        kind if REGISTRY.iter().any(|k| k.section() == kind) => {
                            rules.kinds.insert(field, value);
                            continue;
                        }
                        other => return Err(de::Error::unknown_field(other, auth_fields())),
                    };
                    *slot = Some(value);
                }
                Ok(AuthFile::Rules(Box::new(rules)))
            }
        }
        deserializer.deserialize_any(V)
    }
}
