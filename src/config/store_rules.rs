//! Compiling `store:` and the routes' `use_limit` / `revocation` (README: One-time and limited links).

use std::time::Duration;

use super::context::Compiler;
use super::file::{
    ByteQuotaFile, MemoryStoreFile, OnStoreError, RedisModeFile, RedisStoreFile, RevocationFile, ShareLimitFile,
    StoreFile, StreamLimitFile, UseLimitFile,
};
use crate::metrics::Metrics;
use crate::routes::state::{ByteQuota, ShareLimit, StatePolicy, StreamLimit, UseLimit};
use crate::store::{Digest, MemorySettings, RedisMode, RedisSettings, StoreSettings};

/// How long a revocation is kept when a route that checks revocations
/// bounds no credential lifetime (no `max_ttl`, no `max_lifetime`).
pub const DEFAULT_REVOCATION_KEEP: Duration = Duration::from_secs(7 * 86_400);

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

impl Compiler {
    pub(super) fn store(&mut self, raw: Option<StoreFile>) -> StoreSettings {
        let Some(raw) = raw else {
            return StoreSettings::default();
        };
        match (raw.memory, raw.redis) {
            (Some(m), None) => self.memory_store(m),
            (None, Some(r)) => self.redis_store(r).unwrap_or_default(),
            (None, None) => StoreSettings::Memory(MemorySettings::default()),
            (Some(_), Some(_)) => {
                self.error("store", "set exactly one of memory and redis");
                StoreSettings::default()
            }
        }
    }

    fn memory_store(&mut self, raw: MemoryStoreFile) -> StoreSettings {
        StoreSettings::Memory(MemorySettings { revocations_file: raw.revocations_file.map(|p| self.resolve(&p)) })
    }

    fn redis_store(&mut self, raw: RedisStoreFile) -> Option<StoreSettings> {
        let path = "store.redis";
        let text = match self.env_or_file(path, "url", raw.url_env, raw.url_file)? {
            Some(bytes) => String::from_utf8(bytes).ok().or_else(|| {
                self.error(path, "the URL is not UTF-8");
                None
            })?,
            None => {
                self.error(path, "set url_env (or url_file)");
                return None;
            }
        };
        let urls: Vec<String> = text.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        let mode = match (raw.mode.unwrap_or(RedisModeFile::Standalone), raw.master_name) {
            (RedisModeFile::Sentinel, Some(master)) => RedisMode::Sentinel { master },
            (RedisModeFile::Sentinel, None) => {
                self.error(format!("{path}.master_name"), "mode sentinel needs the master's name");
                return None;
            }
            (_, Some(_)) => {
                self.error(format!("{path}.master_name"), "only for mode: sentinel");
                return None;
            }
            (RedisModeFile::Standalone, None) => RedisMode::Standalone,
            (RedisModeFile::Cluster, None) => RedisMode::Cluster,
        };
        let key_prefix = raw.key_prefix.unwrap_or_else(|| "tollgate:".to_owned());
        if key_prefix.len() > 64 || key_prefix.bytes().any(|b| !b.is_ascii_graphic() || b == b'{' || b == b'}') {
            // Braces would change which Cluster slot a key lands in.
            self.error(format!("{path}.key_prefix"), "at most 64 printable ASCII characters, no braces");
        }
        let timeout = raw.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        let connect_timeout = raw.connect_timeout.map_or(timeout, |d| d.0);
        for (field, d) in [("timeout", timeout), ("connect_timeout", connect_timeout)] {
            if d < Duration::from_millis(1) || d > Duration::from_secs(30) {
                self.error(format!("{path}.{field}"), "must be between 1ms and 30s");
            }
        }
        let settings = RedisSettings {
            urls,
            mode,
            key_prefix,
            timeout,
            connect_timeout,
            required_for_ready: raw.required_for_ready,
        };
        // Parses the URLs (nothing connects); the message never holds them.
        if let Err(e) = crate::store::redis::RedisStore::new(&settings) {
            self.error(format!("{path}.url"), e);
            return None;
        }
        Some(StoreSettings::Redis(settings))
    }

    /// The route's use-limit and revocation stage, if it has one.
    /// A route's use limit and revocation; `lifetimes` are the longest
    /// lifetimes its kinds that carry ids accept (seconds, `None` when
    /// unbounded), `leeway` the route's clock leeway.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn state_policy(
        &mut self,
        path: &str,
        route: &str,
        use_limit_raw: Option<UseLimitFile>,
        revocation_raw: Option<RevocationFile>,
        share_raw: Option<ShareLimitFile>,
        streams_raw: Option<StreamLimitFile>,
        quota_raw: Option<ByteQuotaFile>,
        lifetimes: &[Option<u64>],
        leeway: u64,
        metrics: &Metrics,
    ) -> Option<StatePolicy> {
        let (revocation, revocation_policy) = match &revocation_raw {
            None | Some(RevocationFile::Enabled(false)) => (false, None),
            Some(RevocationFile::Enabled(true)) => (true, None),
            Some(RevocationFile::Rules(r)) => (true, r.on_store_error),
        };
        if use_limit_raw.is_none() && !revocation && share_raw.is_none() && streams_raw.is_none() && quota_raw.is_none()
        {
            return None;
        }
        let quota = quota_raw.as_ref().map(|raw| {
            if raw.bytes.0 == 0 {
                self.error(format!("{path}.byte_quota.bytes"), "must be more than 0");
            }
            ByteQuota { bytes: raw.bytes.0, report_only: raw.report_only }
        });
        let quota_policy = quota_raw.and_then(|raw| raw.on_store_error);
        let streams = streams_raw.as_ref().map(|raw| {
            if raw.max_streams == 0 {
                self.error(format!("{path}.stream_limit.max_streams"), "must be at least 1");
            }
            let lease = raw.lease.map_or(Duration::from_secs(600), |d| d.0);
            if lease < Duration::from_secs(1) {
                self.error(format!("{path}.stream_limit.lease"), "at least 1s");
            }
            StreamLimit { max_streams: raw.max_streams, lease, report_only: raw.report_only }
        });
        let streams_policy = streams_raw.and_then(|raw| raw.on_store_error);
        let share = share_raw.as_ref().map(|raw| {
            if raw.max_networks == 0 {
                self.error(format!("{path}.share_limit.max_networks"), "must be at least 1");
            }
            let (v4, v6) = (raw.ipv4_prefix.unwrap_or(24), raw.ipv6_prefix.unwrap_or(64));
            if v4 > 32 {
                self.error(format!("{path}.share_limit.ipv4_prefix"), "at most 32");
            }
            if v6 > 128 {
                self.error(format!("{path}.share_limit.ipv6_prefix"), "at most 128");
            }
            ShareLimit {
                max_networks: raw.max_networks,
                ipv4_prefix: v4,
                ipv6_prefix: v6,
                report_only: raw.report_only,
            }
        });
        let share_policy = share_raw.and_then(|raw| raw.on_store_error);
        let mut use_limit = None;
        let mut limit_policy = None;
        if let Some(raw) = &use_limit_raw {
            if raw.uses == 0 {
                self.error(format!("{path}.use_limit.uses"), "must be at least 1");
            }
            let grace = raw.grace.map_or(Duration::ZERO, |d| d.0);
            if grace > Duration::from_secs(86_400) {
                self.error(format!("{path}.use_limit.grace"), "at most 1d");
            }
            use_limit = Some(UseLimit { uses: raw.uses, grace });
            limit_policy = raw.on_store_error;
        }
        // Failing open needs every check on the route to allow it.
        let fail_open = [limit_policy, revocation_policy, share_policy, streams_policy, quota_policy]
            .into_iter()
            .zip([use_limit.is_some(), revocation, share.is_some(), streams.is_some(), quota.is_some()])
            .filter(|(_, on)| *on)
            .all(|(p, _)| p == Some(OnStoreError::Allow));
        // A revocation must outlive every credential it can match: the
        // longest lifetime any kind of the route accepts.
        let keep = lifetimes
            .iter()
            .map(|b| b.unwrap_or(DEFAULT_REVOCATION_KEEP.as_secs()))
            .max()
            .unwrap_or(DEFAULT_REVOCATION_KEEP.as_secs());
        let policy = StatePolicy {
            use_limit,
            revocation,
            share,
            share_counters: metrics.share_counters(route),
            streams_in_use: streams.map(|_| metrics.streams_in_use(route)),
            streams,
            quota,
            fail_open,
            route: Digest::route(route),
            leeway,
            revocation_keep: if revocation { keep } else { 0 },
            counters: metrics.use_counters(route),
        };
        if revocation && lifetimes.iter().any(Option::is_none) {
            self.warnings.push(super::ConfigError {
                path: format!("{path}.revocation"),
                message: format!(
                    "set signed_url.max_ttl and jwt.max_lifetime: revocations are kept {}d, so a credential that \
                     lives longer would be accepted again after that",
                    DEFAULT_REVOCATION_KEEP.as_secs() / 86_400
                ),
            });
        }
        Some(policy)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use prometheus::Registry;

    use crate::config::compile_str;
    use crate::metrics::Metrics;
    use crate::store::{RedisMode, StoreSettings};

    fn compile(yaml: &str, dir: &Path) -> Result<crate::config::Config, Vec<String>> {
        let metrics = Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        compile_str(yaml, dir, &metrics).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    fn dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("k"), "0123456789abcdef0123456789abcdef").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("url"), "redis://:pw@127.0.0.1:6379/0\n").unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    const HEAD: &str = "keys: { k: { hmac: { secret_file: k } } }\nupstreams: { u: { url: \"http://127.0.0.1:9\" } }\n";

    #[test]
    fn store_and_route_errors_name_their_yaml_path() {
        let d = dir();
        let yaml = format!(
            "{HEAD}store: {{ redis: {{ url_env: TOLLGATE_TEST_SURELY_UNSET, key_prefix: \"a{{b}}\", mode: sentinel }} }}\n\
             routes:\n\
             - {{ name: r, prefix: /r/, upstream: u, auth: {{ signed_url: {{ keys: [k] }}, use_limit: {{ uses: 0, grace: 2d }} }} }}\n\
             - {{ name: s, prefix: /s/, upstream: u, auth: {{ jwt: {{ keys: [k], from: [query], query_param: jti, path_claim: p }}, revocation: true }} }}\n\
             - {{ name: t, prefix: /t/, upstream: u, auth: {{ signed_url: {{ keys: [k] }}, use_limit: {{ uses: 1, on_store_error: maybe }} }} }}\n"
        );
        let errs = compile(&yaml, d.path()).err().unwrap_or_default();
        for want in [
            "store.redis.url_env: environment variable TOLLGATE_TEST_SURELY_UNSET is not set",
            "routes[0].auth.use_limit.uses: must be at least 1",
            "routes[0].auth.use_limit.grace: at most 1d",
            "routes[1].auth.jwt.query_param: jti is the signed URL's id",
            "routes[2].auth.use_limit.on_store_error: unknown variant `maybe`",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(want)), "missing {want:?} in {errs:#?}");
        }
        let both = format!("{HEAD}store: {{ memory: {{}}, redis: {{ url_file: url }} }}\nroutes: []\n");
        assert!(
            compile(&both, d.path()).err().unwrap_or_default().iter().any(|e| e.starts_with("store: set exactly one"))
        );
        let braces = format!(
            "{HEAD}store: {{ redis: {{ url_file: url, key_prefix: \"x{{\" }} }}\n\
             routes: [ {{ name: r, prefix: /r/, upstream: u, auth: none }} ]\n"
        );
        let errs = compile(&braces, d.path()).err().unwrap_or_default();
        assert!(errs.iter().any(|e| e.starts_with("store.redis.key_prefix")), "{errs:#?}");
        assert!(!errs.iter().any(|e| e.contains("pw@")), "the URL's password leaked: {errs:#?}");
    }

    #[test]
    fn revocation_lifetime_is_the_longest_bound_and_defaults_to_a_week() {
        let d = dir();
        let yaml = format!(
            "{HEAD}store: {{ redis: {{ url_file: url, mode: cluster }} }}\n\
             routes:\n\
             - {{ name: a, prefix: /a/, upstream: u, auth: {{ signed_url: {{ keys: [k], max_ttl: 2h }}, revocation: true }} }}\n\
             - {{ name: b, prefix: /b/, upstream: u, auth: {{ jwt: {{ keys: [k], max_lifetime: 3h, leeway: 10s }}, revocation: {{ on_store_error: allow }} }} }}\n\
             - {{ name: c, prefix: /c/, upstream: u, auth: {{ signed_url: {{ keys: [k] }}, use_limit: {{ uses: 3 }} }} }}\n"
        );
        let config = compile(&yaml, d.path()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(config.revocation_lifetime.map(|d| d.as_secs()), Some(3 * 3600 + 10));
        assert!(matches!(&config.store, StoreSettings::Redis(r) if r.mode == RedisMode::Cluster));
        assert!(config.needs_store() && config.warnings.is_empty(), "{:?}", config.warnings);
        let b = config.routes.lookup(None, "/b/x").and_then(|r| r.state.as_ref()).map(|s| s.fail_open);
        assert_eq!(b, Some(true));
        let unbounded = yaml
            .replace("max_ttl: 2h", "max_ttl: 1h")
            .replace("jwt: { keys: [k], max_lifetime: 3h, leeway: 10s }", "jwt: { keys: [k] }");
        let config = compile(&unbounded, d.path()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(config.revocation_lifetime, Some(super::DEFAULT_REVOCATION_KEEP));
        assert!(config.warnings.iter().any(|w| w.path == "routes[1].auth.revocation"), "{:?}", config.warnings);
    }
}
