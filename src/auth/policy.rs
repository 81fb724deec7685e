//! What a protected route accepts ([`RouteAuth`]: its kinds, credential
//! parameters, cookies and headers, its cookie exchange) and the one place
//! that finds the request's credential and verifies it ([`authorize`]):
//! at most one credential per request (README: Bearer tokens).

use std::sync::Arc;

use http::HeaderName;

use super::error::{AuthError, Carrier};
use super::grant::{Denial, Grant};
use super::keys::JwtKeySource;
use super::kind::{AuthRequest, CookieName, Kind, Presented, Tracer, VerifyContext};
use super::kinds;
use super::query::CredentialNames;

/// What a protected route accepts.
#[derive(Debug)]
pub struct RouteAuth {
    kinds: Vec<Box<dyn Kind>>,
    names: CredentialNames,
    cookies: Vec<CookieName>,
    headers: Vec<HeaderName>,
    /// Exchange URL credentials for a cookie on top-level navigations.
    exchange: Option<kinds::exchanged_cookie::ExchangedCookies>,
    /// Give each grant its credential's fingerprint (share detection).
    fingerprints: bool,
}

/// A route names more credential parameters than tollgate tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyParams;

impl RouteAuth {
    /// A route accepting `kinds`.
    pub fn new(kinds: Vec<Box<dyn Kind>>) -> Result<Self, TooManyParams> {
        Self::with_params(kinds, &[])
    }

    /// A route accepting `kinds` that also treats `extra` query parameters
    /// as credential parameters (found once, stripped): the signed URL's id
    /// on routes with use limits or revocation.
    pub fn with_params(kinds: Vec<Box<dyn Kind>>, extra: &[&str]) -> Result<Self, TooManyParams> {
        let params = kinds.iter().flat_map(|k| k.query_params()).chain(extra.iter().copied());
        let names = CredentialNames::new(params).ok_or(TooManyParams)?;
        let mut cookies: Vec<CookieName> = kinds.iter().flat_map(|k| k.cookies()).collect();
        cookies.dedup();
        let mut headers: Vec<HeaderName> = kinds.iter().flat_map(|k| k.headers()).collect();
        headers.dedup();
        Ok(RouteAuth { kinds, names, cookies, headers, exchange: None, fingerprints: false })
    }

    /// Grants carry a fingerprint of the credential they came from, for
    /// routes that count a credential without an id (share detection).
    pub fn with_fingerprints(mut self, on: bool) -> Self {
        self.fingerprints |= on;
        self
    }

    /// Adds cookie exchange (README: Cookies, CORS): the cookies become a kind of the
    /// route, and URL credentials on navigations are exchanged for them.
    pub fn with_exchange(mut self, mut exchange: kinds::exchanged_cookie::ExchangedCookies) -> Self {
        let sets = self
            .key_sources()
            .into_iter()
            .filter_map(|s| match s {
                JwtKeySource::Set(set) => Some(set.clone()),
                JwtKeySource::Static(_) => None,
            })
            .collect();
        let fixed = self.kinds.iter().flat_map(|k| k.key_ids()).map(String::into_boxed_str).collect();
        exchange.accepted = Arc::new(kinds::exchanged_cookie::AcceptedKeys { fixed, sets });
        self.cookies.extend(exchange.cookies());
        self.kinds.push(Box::new(exchange.clone()));
        self.exchange = Some(exchange);
        self
    }

    /// The route's cookie exchange, if any.
    pub fn exchange(&self) -> Option<&kinds::exchanged_cookie::ExchangedCookies> {
        self.exchange.as_ref()
    }

    /// The kinds, in the order they are asked.
    pub fn kinds(&self) -> &[Box<dyn Kind>] {
        &self.kinds
    }

    /// The query parameters that are credentials on this route.
    pub fn credential_names(&self) -> &CredentialNames {
        &self.names
    }

    /// The cookies holding credentials on this route.
    pub fn cookies(&self) -> &[CookieName] {
        &self.cookies
    }

    /// The headers (other than `Authorization`) holding credentials on this route.
    pub fn credential_headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// Whether 401 answers should invite a bearer token.
    pub fn accepts_bearer(&self) -> bool {
        self.kinds.iter().any(|k| k.challenges_bearer())
    }

    /// Every key source of the route's kinds (for a refetch on an unknown key).
    pub fn key_sources(&self) -> Vec<&JwtKeySource> {
        self.kinds.iter().flat_map(|k| k.key_sources()).collect()
    }

    /// Headers the route's kinds set upstream.
    pub fn claim_headers(&self) -> impl Iterator<Item = HeaderName> + '_ {
        self.kinds.iter().flat_map(|k| k.claim_headers())
    }
}

/// The credential a request presents on a route, and the kind that reads it.
pub struct Choice<'k, 'r> {
    pub kind: &'k dyn Kind,
    pub presented: Presented<'r>,
}

/// Finds the one credential the request presents (README: Bearer tokens).
pub fn choose<'k, 'r>(auth: &'k RouteAuth, req: &AuthRequest<'r>) -> Result<Choice<'k, 'r>, AuthError> {
    let mut direct: Option<Choice<'k, 'r>> = None;
    let mut cookie: Option<Choice<'k, 'r>> = None;
    let (mut directs, mut cookies) = (0, 0);
    for kind in &auth.kinds {
        kind.find(req, &mut |presented| {
            let (slot, count) = if presented.carrier == Carrier::Cookie {
                (&mut cookie, &mut cookies)
            } else {
                (&mut direct, &mut directs)
            };
            *count += 1;
            *slot = Some(Choice { kind: kind.as_ref(), presented });
        })?;
    }
    // A cookie counts only when nothing else is presented; two of either
    // are two credentials.
    match (directs, cookies) {
        (1, _) => direct.ok_or(AuthError::MissingCredential),
        (0, 1) => cookie.ok_or(AuthError::MissingCredential),
        (0, 0) => Err(AuthError::MissingCredential),
        _ => Err(AuthError::Malformed),
    }
}

/// Finds the request's credential and verifies it for this route; the
/// choice is the first step a tracer sees (`tollgate explain`).
pub fn authorize(auth: &RouteAuth, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, Denial> {
    let t = &mut ctx.tracer();
    let choice = choose(auth, req).inspect_err(|e| {
        let why = match e {
            AuthError::MissingCredential => "none of the kinds this route accepts found a credential",
            _ => "two credentials, or one that cannot be read apart (refused as ambiguous)",
        };
        t.step("credential", false, format_args!("{why}"));
    })?;
    let carrier = choice.presented.carrier;
    t.step("credential", true, format_args!("{} in the {}", choice.kind.name(), carrier.describe()));
    let mut grant =
        choice.kind.verify(&choice.presented, req, ctx).map_err(|error| Denial { error, carrier: Some(carrier) })?;
    if auth.fingerprints {
        grant.facts.fingerprint = Some(fingerprint(&choice.presented.credential));
    }
    Ok(grant)
}

/// SHA-256 of a credential's bytes: what a credential without an id is
/// counted by, never the credential itself. Where it came from is left
/// out: one token sent as a header, a query parameter and a cookie is one
/// credential.
fn fingerprint(credential: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"tollgate/fingerprint\0");
    ctx.update(credential.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
