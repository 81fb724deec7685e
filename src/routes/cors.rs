//! CORS for routes that opt in (README: Cookies, CORS): tollgate answers preflights
//! itself and owns the CORS headers of every answer on the route.
//!
//! Invariants:
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//!   is answered here, before any credential is asked for, and is never
//!   forwarded: it carries no credential by design (browsers strip them).
//! - Origins match exactly against the configured list; an arbitrary
//!   origin is never reflected. An origin that is not listed gets no CORS
//!   headers at all.
//! - Every answer to a listed origin — the upstream's, and tollgate's own
//!   refusals, so a page can read `{"error":"expired"}` — carries the
//!   headers, with `Vary: Origin`. The upstream's own `Access-Control-*`
//!   headers are removed first: replaced, never doubled.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// A route's compiled CORS rules.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Exact origins (`scheme://host[:port]`, lower-case).
    pub origins: Vec<HeaderValue>,
    /// `Access-Control-Allow-Methods`: the route's methods.
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: HeaderValue,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: HeaderValue,
    /// Send `Access-Control-Allow-Credentials: true` (cookies, credentialed fetch).
    pub credentials: bool,
}

/// Request headers a page sends cross-origin to read private files: a
/// bearer token and a byte range.
pub const DEFAULT_ALLOW_HEADERS: &str = "authorization, range";
/// Response headers a page may read besides the CORS-safelisted ones.
pub const DEFAULT_EXPOSE_HEADERS: &str = "content-length, content-range, accept-ranges, etag";

impl Cors {
    /// The request's origin, when it is one of the route's.
    pub fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        // Byte for byte: browsers serialize origins in lower case, so any
        // other spelling is not the listed origin.
        origin.filter(|o| self.origins.iter().any(|allowed| allowed.as_bytes() == o.as_bytes()))
    }

    /// The answer to a preflight (no body), or `None` when the request is
    /// not one.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<()>> {
        if *method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = headers.get(ORIGIN)?;
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        if let Some(origin) = self.allowed(Some(origin)) {
            let h = resp.headers_mut();
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, self.allow_headers.clone());
            h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
            self.set_origin(h, origin.clone());
        } else {
            resp.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
        }
        Some(resp)
    }

    /// Puts the route's CORS headers on an answer (and takes the
    /// upstream's off).
    pub fn decorate(&self, headers: &mut HeaderMap, origin: Option<&HeaderValue>) {
        remove_cors_headers(headers);
        match self.allowed(origin) {
            Some(origin) => {
                if let Some(expose) = &self.expose_headers {
                    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
                }
                self.set_origin(headers, origin.clone());
            }
            // The answer depends on Origin even when none is allowed: a
            // shared cache must not hand it to a listed origin.
            None => append_vary_origin(headers),
        }
    }

    fn set_origin(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        append_vary_origin(headers);
    }
}

fn remove_cors_headers(headers: &mut HeaderMap) {
    if headers.keys().any(|k| k.as_str().starts_with("access-control-")) {
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
    }
}

fn append_vary_origin(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*"))
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// Whether `origin` is a serialized origin tollgate can match exactly:
/// `http(s)://host[:port]`, lower-case, nothing after the authority.
pub fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b))
        && !rest.ends_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(credentials: bool) -> Cors {
        Cors {
            origins: vec![HeaderValue::from_static("https://app.example")],
            allow_methods: HeaderValue::from_static("GET, HEAD"),
            allow_headers: HeaderValue::from_static(DEFAULT_ALLOW_HEADERS),
            expose_headers: Some(HeaderValue::from_static(DEFAULT_EXPOSE_HEADERS)),
            max_age: HeaderValue::from_static("600"),
            credentials,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflights_are_answered_for_listed_origins_only() {
        let c = cors(false);
        let req = headers(&[("origin", "https://app.example"), ("access-control-request-method", "GET")]);
        let Some(resp) = c.preflight(&Method::OPTIONS, &req) else { panic!("not a preflight") };
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(resp.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(resp.headers()[ACCESS_CONTROL_ALLOW_HEADERS], DEFAULT_ALLOW_HEADERS);
        assert!(!resp.headers().contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));

        let evil = headers(&[("origin", "https://evil.example"), ("access-control-request-method", "GET")]);
        let Some(resp) = c.preflight(&Method::OPTIONS, &evil) else { panic!("not a preflight") };
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(!resp.headers().keys().any(|k| k.as_str().starts_with("access-control-")), "{:?}", resp.headers());

        let plain_options = headers(&[("origin", "https://app.example")]);
        assert!(c.preflight(&Method::OPTIONS, &plain_options).is_none());
        assert!(c.preflight(&Method::GET, &req).is_none());
    }

    #[test]
    fn answers_are_decorated_and_upstream_headers_replaced() {
        let c = cors(true);
        let origin = HeaderValue::from_static("https://app.example");
        let mut h = headers(&[("access-control-allow-origin", "*"), ("vary", "Accept-Encoding")]);
        c.decorate(&mut h, Some(&origin));
        assert_eq!(h.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().count(), 1);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h.get_all(VARY).iter().collect::<Vec<_>>(), ["Accept-Encoding", "Origin"]);

        let evil = HeaderValue::from_static("https://evil.example");
        let mut h = headers(&[("access-control-allow-origin", "*")]);
        c.decorate(&mut h, Some(&evil));
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(h[VARY], "Origin");
    }

    #[test]
    fn origins_are_exact_serializations() {
        assert!(valid_origin("https://app.example"));
        assert!(valid_origin("http://127.0.0.1:8080"));
        for bad in ["*", "https://app.example/", "app.example", "https://App.example", "https://", "null"] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }
}
