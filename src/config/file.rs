//! The YAML as written: raw serde structs, `deny_unknown_fields`, no logic.
//! `compile.rs` turns them into runtime types and reports every error with
//! its YAML path. Keys, upstreams and routes are kept as YAML values at the
//! top level and deserialized one entry at a time, so one bad route does not
//! hide the errors of the next.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_yaml_ng::{Mapping, Value};

use super::duration::{ByteSize, HumanDuration};

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
    #[schemars(with = "BTreeMap<String, KeyFile>")]
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
    /// Where use counts and revocations live (SPEC §11): `memory` (the
    /// default: one replica, uses forgotten on restart) or `redis` (shared
    /// by every replica). Changes need a restart.
    pub store: Option<StoreFile>,
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

/// Where a secret comes from: exactly one of `secret_env` and `secret_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// How the stored text encodes the secret bytes (default `raw`).
    pub encoding: Option<SecretEncoding>,
}

pub use crate::auth::keys::SecretEncoding;

/// One entry of `keys:`: exactly one of the four sources.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub hmac: Option<SecretFile>,
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// An Akamai EdgeAuth token key (default encoding `hex`, as Akamai shows it).
    pub edgeauth: Option<SecretFile>,
    /// A Cloud CDN signing key: 16 bytes (default encoding `base64`,
    /// base64url as `gcloud` writes it accepted); `kid` is its `KeyName`.
    pub cloud_cdn: Option<SecretFile>,
    /// The secret of an nginx `secure_link_md5` expression (`$secret`).
    pub secure_link: Option<SecretFile>,
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
    /// Cross-origin access from the listed origins (SPEC §10).
    pub cors: Option<CorsFile>,
    /// Forward the client's `Authorization` header to this route's
    /// upstream, for an upstream that authenticates requests itself (HTTP
    /// Basic on nginx). Default false: removed on every route, so an app's
    /// bearer token never reaches a file server. A header that carried the
    /// credential tollgate verified is removed all the same.
    #[serde(default)]
    pub forward_authorization: bool,
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthRulesFile {
    pub signed_url: Option<SignedUrlFile>,
    pub jwt: Option<JwtFile>,
    /// Limit how often one credential may be used (SPEC §11); the id is the
    /// JWT `jti` or the signed URL's `jti` parameter.
    pub use_limit: Option<UseLimitFile>,
    /// Refuse credentials revoked with `tollgate revoke` (SPEC §11).
    pub revocation: Option<RevocationFile>,
    /// Exchange a URL credential for a cookie on top-level navigations.
    pub cookie_exchange: Option<CookieExchangeFile>,
    /// CloudFront signed URLs and cookies.
    pub cloudfront: Option<CloudFrontFile>,
    /// Akamai EdgeAuth tokens.
    pub edgeauth: Option<EdgeAuthFile>,
    /// Google Cloud CDN signed URLs and cookies.
    pub cloud_cdn: Option<CloudCdnFile>,
    /// nginx `secure_link` hashes.
    pub secure_link: Option<SecureLinkFile>,
}

/// `auth.cloudfront`: links and cookies minted for CloudFront.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontFile {
    /// `public_key_file` keys (RSA or ECDSA P-256); each key's `kid` is its
    /// CloudFront ID, the `Key-Pair-Id` links carry.
    pub keys: Vec<String>,
    /// The scheme and host links are signed for, e.g.
    /// `https://d111111abcdef8.cloudfront.net` (the request's own Host is
    /// never used).
    pub origins: Vec<String>,
    /// Where credentials are read: `query`, `cookie` (default both).
    pub from: Option<Vec<CarrierFile>>,
}

/// `auth.edgeauth`: Akamai EdgeAuth (Token Authorization) tokens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeAuthFile {
    /// `edgeauth` keys, tried in order (a rotation's old and new key).
    pub keys: Vec<String>,
    /// `sha256` (default), `sha1` or `md5`.
    pub algorithm: Option<EdgeAuthAlgorithm>,
    /// The token's name in the query, cookie and header (default `__token__`).
    pub token_name: Option<String>,
    /// Where the token is read: `query`, `cookie`, `header` (default all three).
    pub from: Option<Vec<CarrierFile>>,
    /// The salt the tokens were made with, from a file or the environment.
    pub salt: Option<SecretFile>,
    /// URL-mode tokens were made with `escape_early` (the path hashed
    /// percent-encoded).
    #[serde(default)]
    pub escape_early: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EdgeAuthAlgorithm {
    Sha256,
    Sha1,
    Md5,
}

/// `auth.cloud_cdn`: Google Cloud CDN signed URLs and cookies.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudCdnFile {
    /// `cloud_cdn` keys; each key's `kid` is the `KeyName` links carry.
    pub keys: Vec<String>,
    /// The scheme and host links are signed for, e.g. `https://media.example.com`.
    pub origins: Vec<String>,
    /// Where credentials are read: `query`, `cookie` (default both).
    pub from: Option<Vec<CarrierFile>>,
}

/// `auth.secure_link`: links minted for nginx's `secure_link` module.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecureLinkFile {
    /// `secure_link` keys (the `$secret` of the expression), tried in order.
    pub keys: Vec<String>,
    /// nginx's `secure_link_md5` expression with `$secret` where nginx's
    /// config has the secret, e.g. `"$secure_link_expires$uri$remote_addr $secret"`.
    pub md5: String,
    /// The query parameter with the hash (default `md5`).
    pub hash_param: Option<String>,
    /// The query parameter with the expiry (default `expires`).
    pub expires_param: Option<String>,
}

/// `routes[].auth.cookie_exchange` (SPEC §10).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieExchangeFile {
    /// An hmac key of its own that signs the cookies.
    pub key: String,
    /// Cookie-name prefix (default `tg_grant`).
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlFile {
    pub keys: Vec<String>,
    pub max_ttl: Option<HumanDuration>,
    /// Also accept path tokens (SPEC §2b), for HLS/DASH.
    #[serde(default)]
    pub path_tokens: bool,
    /// The path-token segment's marker (default `tg`).
    pub path_token_marker: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CarrierFile {
    Header,
    Query,
    Cookie,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    pub keys: Vec<String>,
    pub from: Option<Vec<CarrierFile>>,
    pub query_param: Option<String>,
    pub cookie: Option<String>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub leeway: Option<HumanDuration>,
    pub max_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub require: BTreeMap<String, serde_json::Value>,
    pub path_claim: Option<String>,
    /// Accept query-string tokens without a path claim (not recommended).
    #[serde(default)]
    pub allow_unbound_query_tokens: bool,
    /// Claims forwarded as request headers, e.g. `sub: X-Auth-Subject`.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
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
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthFile, A::Error> {
                AuthRulesFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|r| AuthFile::Rules(Box::new(r)))
            }
        }
        deserializer.deserialize_any(V)
    }
}
