//! Compiling `routes:`: prefixes, methods, and the credentials each route
//! accepts (references to keys and upstreams are checked here).

use http::{HeaderName, HeaderValue, Method};

use super::context::{CompiledKey, Compiler, Known, did_you_mean, valid_name};
use super::file::{
    AuthFile, AuthRulesFile, ByteQuotaFile, CookieExchangeFile, CorsFile, RevocationFile, RouteFile, SecretEncoding,
    SecretFile, ShareLimitFile, StreamLimitFile, UseLimitFile,
};
use crate::auth::kinds::exchanged_cookie::{self, ExchangedCookies};
use crate::auth::kinds::{REGISTRY, jwt};
use crate::auth::section::CompileContext;
use crate::auth::{AuthError, Kind, RouteAuth, TooManyParams};
use crate::metrics::RouteProfile;
use crate::normalize;
use crate::routes::Route;
use crate::routes::cors::{self, Cors};
use crate::routes::state::StatePolicy;

impl Compiler {
    pub(super) fn route(&mut self, path: &str, index: usize, raw: RouteFile, known: &Known<'_>) -> Option<Route> {
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
                    let hint = did_you_mean(&raw.upstream, known.declared_upstreams);
                    self.error(format!("{path}.upstream"), format!("unknown upstream {:?}{hint}", raw.upstream));
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
        let (auth, state, report_only) = match raw.auth {
            AuthFile::None => (None, None, false),
            AuthFile::Rules(rules) => self.route_auth(&format!("{path}.auth"), &raw.name, &raw.prefix, *rules, known),
        };
        if report_only && state.is_some() {
            // A refused request served unverified would escape them.
            self.error(
                format!("{path}.auth.report_only"),
                "cannot be combined with use_limit, revocation, share_limit, stream_limit or byte_quota",
            );
        }
        if report_only && methods.iter().any(|m| !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)) {
            self.error(format!("{path}.auth.report_only"), "serves unverified requests: GET and HEAD routes only");
        }
        // A download record names a credential without an id by its digest.
        let auth = auth.map(|a| a.with_fingerprints(raw.download_records));
        let object_store = upstream.as_ref().is_some_and(|u| u.s3.is_some());
        for (flag, set) in
            [("allow_empty_segments", raw.allow_empty_segments), ("allow_encoded_slashes", raw.allow_encoded_slashes)]
        {
            if set && !object_store {
                // nginx and most file servers merge `//` and decode `%2F`:
                // the path they serve would not be the path verified.
                self.error(format!("{path}.{flag}"), "only for routes to an object store (s3 upstreams)");
            }
        }
        if object_store {
            if !raw.prefix.ends_with('/') {
                self.error(format!("{path}.prefix"), "a route to an object store needs a prefix ending in /");
            }
            if methods.iter().any(|m| !matches!(*m, Method::GET | Method::HEAD | Method::PUT)) {
                self.error(format!("{path}.methods"), "object-store routes support GET, HEAD and PUT");
            }
        }
        let max_body = raw.max_body.map_or(known.limits.max_body, |b| b.0);
        let response_rate = raw.response_rate.map(|r| (r.rate.0, r.burst.map_or(0, |b| b.0)));
        if response_rate.is_some_and(|(rate, _)| rate == 0) {
            self.error(format!("{path}.response_rate.rate"), "must be more than 0");
        }
        let manifests = raw.manifests.map(|m| {
            let defaults = crate::manifest::ManifestSettings::default();
            if m.key_routes.contains(&raw.name) {
                // Its own links would be minted for any path a manifest names.
                self.error(format!("{path}.manifests.key_routes"), "cannot name the route itself");
            }
            crate::manifest::ManifestSettings {
                max_size: m.max_size.map_or(defaults.max_size, |b| b.0),
                key_link_ttl: m.key_link_ttl.map_or(defaults.key_link_ttl, |d| d.0),
                key_routes: m.key_routes,
            }
        });
        let cors = raw.cors.and_then(|c| self.cors(&format!("{path}.cors"), c, &methods));
        if self.errors.len() != errors_before {
            return None;
        }
        // The denial reasons the route can count: none when it is public;
        // the uses and revocations ones only with those checks.
        let verification = (1u64 << AuthError::Replayed.index()) - 1;
        let stateful = match &state {
            Some(s) => {
                let mut bits = 1 << AuthError::StoreUnavailable.index();
                if s.use_limit.is_some() {
                    bits |= 1 << AuthError::Replayed.index();
                }
                if s.revocation {
                    bits |= 1 << AuthError::Revoked.index();
                }
                if s.share.is_some() {
                    bits |= 1 << AuthError::Shared.index();
                }
                if s.streams.is_some() {
                    bits |= 1 << AuthError::TooManyStreams.index();
                }
                if s.quota.is_some() {
                    bits |= 1 << AuthError::QuotaExceeded.index();
                }
                bits
            }
            None => 0,
        };
        let object_store = upstream.as_ref().is_some_and(|u| u.s3.is_some());
        let reasons = if auth.is_some() { verification | stateful } else { 0 };
        let profile = RouteProfile { codes: &AuthError::CODES, reasons, object_store };
        Some(Route {
            id: u32::try_from(index).unwrap_or(u32::MAX),
            metrics: known.metrics.route(&raw.name, profile, raw.own_metrics),
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
            cors,
            forward_authorization: raw.forward_authorization,
            state,
            manifests,
            download_records: raw.download_records,
            response_rate,
            report_only,
        })
    }

    /// Two kinds reading one query parameter could not tell their
    /// credentials apart (CloudFront and Cloud CDN both use `Expires`).
    fn distinct_params(&mut self, path: &str, kinds: &[Box<dyn Kind>]) {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for kind in kinds {
            for param in kind.query_params() {
                match seen.iter().find(|(p, _)| *p == param) {
                    Some((_, other)) if *other != kind.name() => self.error(
                        path,
                        format!(
                            "{} and {other} both read the query parameter {param:?}: use them on separate routes",
                            kind.name()
                        ),
                    ),
                    Some(_) => {}
                    None => seen.push((param, kind.name())),
                }
            }
        }
    }

    fn cors(&mut self, path: &str, raw: CorsFile, methods: &[Method]) -> Option<Cors> {
        if raw.origins.is_empty() {
            self.error(format!("{path}.origins"), "list at least one origin");
        }
        let mut origins = Vec::new();
        for (i, origin) in raw.origins.iter().enumerate() {
            match HeaderValue::from_str(origin) {
                Ok(v) if cors::valid_origin(origin) => origins.push(v),
                _ => self.error(
                    format!("{path}.origins[{i}]"),
                    format!("{origin:?} is not an origin: write scheme://host[:port] in lower case, no path, no *"),
                ),
            }
        }
        let mut list = |field: &str, names: Option<Vec<String>>, default: &'static str| match names {
            None => Some(HeaderValue::from_static(default)),
            Some(names) => {
                let mut ok = true;
                for (i, n) in names.iter().enumerate() {
                    if HeaderName::from_bytes(n.as_bytes()).is_err() {
                        self.error(format!("{path}.{field}[{i}]"), format!("{n:?} is not a header name"));
                        ok = false;
                    }
                }
                let joined = names.iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>().join(", ");
                if !ok || joined.is_empty() { None } else { HeaderValue::from_str(&joined).ok() }
            }
        };
        let allow_headers = list("headers", raw.headers, cors::DEFAULT_ALLOW_HEADERS);
        let expose_headers = list("expose_headers", raw.expose_headers, cors::DEFAULT_EXPOSE_HEADERS);
        let methods = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let max_age = raw.max_age.map_or(600, |d| d.0.as_secs());
        Some(Cors {
            origins,
            allow_methods: HeaderValue::from_str(&methods).ok()?,
            allow_headers: allow_headers.unwrap_or(HeaderValue::from_static(cors::DEFAULT_ALLOW_HEADERS)),
            expose_headers,
            max_age: HeaderValue::from(max_age),
            credentials: raw.credentials,
        })
    }

    pub(super) fn key_ref<'k>(&mut self, path: &str, name: &str, known: &'k Known<'_>) -> Option<&'k CompiledKey> {
        self.used_keys.insert(name.to_owned());
        self.key_uses.push((path.to_owned(), name.to_owned()));
        match known.keys.get(name) {
            Some(k) => Some(k),
            None => {
                if !known.declared_keys.contains(name) {
                    let hint = did_you_mean(name, known.declared_keys);
                    self.error(path, format!("unknown key {name:?}{hint}"));
                }
                None
            }
        }
    }

    fn cookie_exchange(
        &mut self,
        path: &str,
        raw: CookieExchangeFile,
        route: &str,
        prefix: &str,
        known: &Known<'_>,
    ) -> Option<ExchangedCookies> {
        let name = raw.name.unwrap_or_else(|| exchanged_cookie::DEFAULT_NAME.to_owned());
        if !(1..=32).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.error(format!("{path}.name"), "must match [A-Za-z0-9_-]{1,32}");
        }
        let key_path = format!("{path}.key");
        self.cookie_keys.push((key_path.clone(), raw.key.clone()));
        match self.key_ref(&key_path, &raw.key, known) {
            Some(CompiledKey::Hmac { signer, .. }) => Some(ExchangedCookies {
                key: signer.clone(),
                name: name.into_boxed_str(),
                route: route.into(),
                prefix: prefix.into(),
                // Filled in by `RouteAuth::with_exchange`, which knows the
                // route's other kinds.
                accepted: Default::default(),
            }),
            Some(_) => {
                self.error(format!("{path}.key"), format!("key {:?} is not an hmac key", raw.key));
                None
            }
            None => None,
        }
    }
}

/// The config compiler as a kind's section sees it (`auth::section`).
struct KindContext<'c, 'k> {
    compiler: &'c mut Compiler,
    known: &'c Known<'k>,
    /// The route counts uses or checks revocations (credential ids matter).
    counts_ids: bool,
}

impl CompileContext for KindContext<'_, '_> {
    fn error(&mut self, path: &str, message: String) {
        self.compiler.error(path, message);
    }

    fn key(&mut self, path: &str, name: &str) -> Option<CompiledKey> {
        self.compiler.key_ref(path, name, self.known).cloned()
    }

    fn secret(&mut self, path: &str, raw: SecretFile, default: SecretEncoding) -> Option<Vec<u8>> {
        self.compiler.secret_bytes(path, raw, default)
    }

    fn counts_ids(&self) -> bool {
        self.counts_ids
    }
}

impl Compiler {
    /// A route's `auth:` map: each registered kind compiles its own
    /// section (in the registry's order, which is the order a route's kinds
    /// are asked for a credential), then the route's use limit, revocation
    /// and cookie exchange.
    fn route_auth(
        &mut self,
        path: &str,
        route: &str,
        prefix: &str,
        mut rules: AuthRulesFile,
        known: &Known<'_>,
    ) -> (Option<RouteAuth>, Option<StatePolicy>, bool) {
        if rules.kinds.is_empty() {
            let names: Vec<&str> = REGISTRY.iter().map(|k| k.section()).collect();
            self.error(path, format!("set {}, or write `auth: none`", names.join(", ")));
        }
        let use_limit =
            rules.use_limit.take().and_then(|v| self.entry::<UseLimitFile>(&format!("{path}.use_limit"), v));
        let revocation =
            rules.revocation.take().and_then(|v| self.entry::<RevocationFile>(&format!("{path}.revocation"), v));
        let share_limit =
            rules.share_limit.take().and_then(|v| self.entry::<ShareLimitFile>(&format!("{path}.share_limit"), v));
        let stream_limit =
            rules.stream_limit.take().and_then(|v| self.entry::<StreamLimitFile>(&format!("{path}.stream_limit"), v));
        let byte_quota =
            rules.byte_quota.take().and_then(|v| self.entry::<ByteQuotaFile>(&format!("{path}.byte_quota"), v));
        let counts_ids = use_limit.is_some()
            || share_limit.is_some()
            || stream_limit.is_some()
            || byte_quota.is_some()
            || matches!(revocation, Some(RevocationFile::Rules(_) | RevocationFile::Enabled(true)));
        let mut kinds: Vec<Box<dyn Kind>> = Vec::new();
        let mut cx = KindContext { compiler: self, known, counts_ids };
        for registered in REGISTRY {
            if let Some(section) = rules.kinds.remove(registered.section()) {
                kinds.extend(registered.compile(&mut cx, &format!("{path}.{}", registered.section()), section));
            }
        }
        for kind in &kinds {
            if let Some(marker) = kind.path_marker()
                && !self.path_token_markers.iter().any(|m| **m == *marker)
            {
                self.path_token_markers.push(marker.into());
            }
        }
        let leeway = kinds.iter().find_map(|k| k.leeway()).unwrap_or(jwt::DEFAULT_LEEWAY);
        let lifetimes: Vec<Option<u64>> = kinds.iter().filter_map(|k| k.id_lifetime()).collect();
        let fingerprints = share_limit.is_some() || stream_limit.is_some() || byte_quota.is_some();
        let state = self.state_policy(
            path,
            route,
            use_limit,
            revocation,
            share_limit,
            stream_limit,
            byte_quota,
            &lifetimes,
            leeway,
            known.metrics,
        );
        // A signed URL's id is a credential parameter where it is read:
        // found once, stripped before forwarding.
        let ids: Vec<&str> =
            if state.is_some() { kinds.iter().filter_map(|k| k.id_param()).collect() } else { Vec::new() };
        self.distinct_params(path, &kinds);
        if rules.cookie_exchange.is_some() && state.is_some() {
            // A cookie carries no id: exchanging a one-time or revocable
            // link for one would escape the limit.
            self.error(
                format!("{path}.cookie_exchange"),
                "cannot be combined with use_limit or revocation (the cookie would escape them)",
            );
        }
        let report_only = rules
            .report_only
            .take()
            .and_then(|v| self.entry::<bool>(&format!("{path}.report_only"), v))
            .unwrap_or(false);
        let exchange = rules.cookie_exchange.take().and_then(|value| {
            let at = format!("{path}.cookie_exchange");
            let raw = self.entry::<CookieExchangeFile>(&at, value)?;
            self.cookie_exchange(&at, raw, route, prefix, known)
        });
        let auth = match RouteAuth::with_params(kinds, &ids) {
            Ok(auth) => Some(match exchange {
                Some(exchange) => auth.with_exchange(exchange),
                None => auth,
            })
            .map(|auth| auth.with_fingerprints(fingerprints)),
            Err(TooManyParams) => {
                self.error(path, "too many credential query parameters on one route");
                None
            }
        };
        (auth, state, report_only)
    }
}
