//! Phase 2, route: the longest matching prefix for the request's host
//! (`crate::routes`), then what the route decides before any credential is
//! asked for: the path shapes it accepts, CORS preflights (answered here,
//! never forwarded), its methods and its body rules.

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use super::answers::{Rejection, ResponseBody};
use crate::config::Config;
use crate::normalize::NormalPath;
use crate::routes::Route;

/// The route for a request whose path is in normal form.
pub fn pick(config: &Config, parts: &Parts, path: &NormalPath<'_>) -> Result<Arc<Route>, Rejection> {
    let host = request_host(parts);
    // Shapes only some routes accept are malformed where no route matches.
    let unmatched =
        if path.empty_segment || path.encoded_slash_at.is_some() { Rejection::NotNormal } else { Rejection::NoRoute };
    let route = config.routes.lookup(host.as_deref(), &path.decoded).ok_or(unmatched)?;
    path_allowed(route, path)?;
    Ok(route.clone())
}

/// The path shapes only some routes opt into (object keys with `//` or
/// `%2F` after the prefix).
fn path_allowed(route: &Route, path: &NormalPath<'_>) -> Result<(), Rejection> {
    if path.empty_segment && !route.allow_empty_segments {
        return Err(Rejection::NotNormal);
    }
    if let Some(at) = path.encoded_slash_at
        && (!route.allow_encoded_slashes || at < route.prefix.len())
    {
        return Err(Rejection::NotNormal);
    }
    Ok(())
}

/// A preflight's answer (it carries no credential by design), or the
/// refusal of a method the route does not answer.
pub fn answer_itself(route: &Route, parts: &Parts) -> Result<Option<Response<ResponseBody>>, Rejection> {
    if let Some(preflight) = route.cors.as_ref().and_then(|c| c.preflight(&parts.method, &parts.headers)) {
        return Ok(Some(preflight.map(|()| ResponseBody::empty())));
    }
    if !route.allows(&parts.method) {
        let allow = HeaderValue::from_str(&route.allow_header()).unwrap_or(HeaderValue::from_static("GET"));
        return Err(Rejection::MethodNotAllowed(allow));
    }
    Ok(None)
}

/// Refuses bodies the route would not accept, before anything is sent.
pub fn check_body(route: &Route, parts: &Parts) -> Result<(), Rejection> {
    if route.max_body > 0
        && let Some(len) = parts.headers.get(CONTENT_LENGTH)
        && len.to_str().ok().and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > route.max_body)
    {
        return Err(Rejection::TooLarge);
    }
    if let Some(prefix) = &route.require_content_type
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE)
    {
        let ok = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()));
        if !ok {
            return Err(Rejection::UnsupportedMediaType);
        }
    }
    if route.upstream.s3.is_some() && parts.method == Method::PUT && !parts.headers.contains_key(CONTENT_LENGTH) {
        return Err(Rejection::LengthRequired);
    }
    Ok(())
}

/// The host a request names, lower-case, without port.
pub(super) fn request_host(parts: &Parts) -> Option<String> {
    let raw = match parts.headers.get(HOST) {
        Some(h) => h.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => raw,
    };
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let parts = |host: &str| {
            http::Request::builder().uri("/x").header(HOST, host).body(()).unwrap_or_default().into_parts().0
        };
        assert_eq!(request_host(&parts("Files.Example:8080")).as_deref(), Some("files.example"));
        assert_eq!(request_host(&parts("files.example")).as_deref(), Some("files.example"));
        assert_eq!(request_host(&parts("[::1]:80")).as_deref(), Some("[::1]"));
    }
}
