//! Compiling `routes:`: prefixes, methods, and the credentials each route
//! accepts (references to keys and upstreams are checked here).

use http::{HeaderName, HeaderValue, Method};

use super::context::{CompiledKey, Compiler, Known, valid_name};
use super::file::{AuthFile, CarrierFile, CookieExchangeFile, CorsFile, JwtFile, RouteFile, SignedUrlFile};

use super::store_rules::Bounds;
use crate::auth::jwt::{Carriers, ClaimRules, JwtPolicy};
use crate::auth::keys::JwtKeySource;
use crate::auth::kinds::exchanged_cookie::{self, ExchangedCookies};
use crate::auth::path_token;
use crate::auth::path_token::PathTokens;
use crate::auth::signed_url::{self, SignedUrlPolicy};
use crate::auth::{Kind, RouteAuth, TooManyParams, query};
use crate::normalize;
use crate::routes::Route;
use crate::routes::cors::{self, Cors};

/// JWT clock leeway when the route sets none (SPEC §3).
const DEFAULT_LEEWAY: u64 = 30;

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
        let mut state = None;
        let auth = match raw.auth {
            AuthFile::None => None,
            AuthFile::Rules(rules) => {
                let any = rules.signed_url.is_some()
                    || rules.jwt.is_some()
                    || rules.cloudfront.is_some()
                    || rules.edgeauth.is_some()
                    || rules.cloud_cdn.is_some()
                    || rules.secure_link.is_some();
                if !any {
                    self.error(
                        format!("{path}.auth"),
                        "set signed_url, jwt, cloudfront, edgeauth, cloud_cdn or secure_link, or write `auth: none`",
                    );
                }
                let leeway = rules.jwt.as_ref().and_then(|j| j.leeway).map_or(DEFAULT_LEEWAY, |d| d.0.as_secs());
                let bounds = Bounds {
                    signed_url: rules.signed_url.as_ref().map(|s| s.max_ttl.map(|d| d.0.as_secs())),
                    jwt: rules.jwt.as_ref().map(|j| j.max_lifetime.map(|d| d.0.as_secs() + leeway)),
                    leeway,
                };
                state = self.state_policy(&format!("{path}.auth"), &raw.name, &rules, &bounds, known.metrics);
                if state.is_some() && rules.jwt.as_ref().and_then(|j| j.query_param.as_deref()) == Some(query::ID_PARAM)
                {
                    self.error(
                        format!("{path}.auth.jwt.query_param"),
                        "jti is the signed URL's id on routes with use_limit or revocation",
                    );
                }
                // The signed URL's id is a credential parameter where it
                // is read: found once, stripped before forwarding.
                let ids: &[&str] = if state.is_some() && rules.signed_url.is_some() { &[query::ID_PARAM] } else { &[] };
                // The route's credential kinds: one line per kind.
                let mut kinds: Vec<Box<dyn Kind>> = Vec::new();
                if let Some(raw) = rules.signed_url {
                    let (signed, paths) = self.signed_url(&format!("{path}.auth.signed_url"), raw, known);
                    kinds.extend(paths.map(|k| Box::new(k) as Box<dyn Kind>));
                    kinds.push(Box::new(signed));
                }
                if let Some(raw) = rules.jwt {
                    kinds.extend(
                        self.jwt(&format!("{path}.auth.jwt"), raw, known).map(|k| Box::new(k) as Box<dyn Kind>),
                    );
                }
                if let Some(raw) = rules.cloudfront {
                    kinds.extend(self.cloudfront(&format!("{path}.auth.cloudfront"), raw, known).map(boxed));
                }
                if let Some(raw) = rules.secure_link {
                    kinds.extend(self.secure_link(&format!("{path}.auth.secure_link"), raw, known).map(boxed));
                }
                if let Some(raw) = rules.edgeauth {
                    kinds.extend(self.edgeauth(&format!("{path}.auth.edgeauth"), raw, known).map(boxed));
                }
                if let Some(raw) = rules.cloud_cdn {
                    kinds.extend(self.cloud_cdn(&format!("{path}.auth.cloud_cdn"), raw, known).map(boxed));
                }
                self.distinct_params(&format!("{path}.auth"), &kinds);
                if rules.cookie_exchange.is_some() && state.is_some() {
                    // A cookie carries no id: exchanging a one-time or
                    // revocable link for one would escape the limit.
                    self.error(
                        format!("{path}.auth.cookie_exchange"),
                        "cannot be combined with use_limit or revocation (the cookie would escape them)",
                    );
                }
                let exchange = rules.cookie_exchange.and_then(|cookies| {
                    self.cookie_exchange(
                        &format!("{path}.auth.cookie_exchange"),
                        cookies,
                        &raw.name,
                        &raw.prefix,
                        known,
                    )
                });
                match RouteAuth::with_params(kinds, ids) {
                    Ok(auth) => Some(match exchange {
                        Some(exchange) => auth.with_exchange(exchange),
                        None => auth,
                    }),
                    Err(TooManyParams) => {
                        self.error(format!("{path}.auth"), "too many credential query parameters on one route");
                        None
                    }
                }
            }
        };
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
        let cors = raw.cors.and_then(|c| self.cors(&format!("{path}.cors"), c, &methods));
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Route {
            id: u32::try_from(index).unwrap_or(u32::MAX),
            metrics: known.metrics.route(&raw.name, &crate::auth::AuthError::CODES),
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
                    self.error(path, format!("unknown key {name:?}"));
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

    /// The signed-URL kind, and the path-token kind when the route takes them.
    pub(super) fn signed_url(
        &mut self,
        path: &str,
        raw: SignedUrlFile,
        known: &Known<'_>,
    ) -> (SignedUrlPolicy, Option<PathTokens>) {
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
        let marker = raw.path_token_marker.unwrap_or_else(|| path_token::DEFAULT_MARKER.to_owned());
        if !path_token::valid_marker(&marker) {
            self.error(format!("{path}.path_token_marker"), "must match [A-Za-z0-9_-]{1,16}");
        }
        let policy = SignedUrlPolicy { keys, max_ttl: raw.max_ttl.map(|d| d.0.as_secs()) };
        if raw.path_tokens && !self.path_token_markers.iter().any(|m| **m == *marker) {
            self.path_token_markers.push(marker.clone().into_boxed_str());
        }
        let paths = raw.path_tokens.then(|| PathTokens { policy: policy.clone(), marker: marker.into_boxed_str() });
        (policy, paths)
    }

    pub(super) fn jwt(&mut self, path: &str, raw: JwtFile, known: &Known<'_>) -> Option<JwtPolicy> {
        if raw.keys.is_empty() {
            self.error(format!("{path}.keys"), "list at least one key");
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            match self.key_ref(&format!("{path}.keys[{i}]"), name, known) {
                Some(CompiledKey::Hmac { jwt, .. } | CompiledKey::Public(jwt, _)) => {
                    keys.push(JwtKeySource::Static(jwt.clone()))
                }
                Some(CompiledKey::Set(set)) => keys.push(JwtKeySource::Set(set.clone())),
                Some(CompiledKey::Cdn(..)) => {
                    self.error(format!("{path}.keys[{i}]"), format!("key {name:?} is a CDN secret, not a JWT key"))
                }
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
            leeway: raw.leeway.map_or(DEFAULT_LEEWAY, |d| d.0.as_secs()),
            max_lifetime: raw.max_lifetime.map(|d| d.0.as_secs()),
            required: raw.require.into_iter().collect(),
            path_claim: raw.path_claim,
        };
        Some(JwtPolicy::new(keys, from, query_param, cookie, rules, forward_claims))
    }
}

fn boxed<K: Kind + 'static>(kind: K) -> Box<dyn Kind> {
    Box::new(kind)
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
