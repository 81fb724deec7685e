//! The query string, read once and the same way everywhere (docs/reference.md: Signed URLs, Canonical query).
//!
//! Parameters are split on `&` only. A parameter is recognised as a
//! credential by its *decoded* name, so `%73ig=` is `sig` here exactly as it
//! would be for any decoder upstream; a credential can therefore never slip
//! past the stripping stage under another spelling. Everything that is not a
//! credential is forwarded as the raw bytes it arrived in, in order.

use std::borrow::Cow;

pub use crate::normalize::{BadEncoding, decode_component, encode_strict, split_piece};

/// The parameters of a native signed URL (docs/reference.md: Signed URLs).
pub const SIGNED_URL_PARAMS: [&str; 4] = ["exp", "sig", "kid", "prefix"];

/// A signed URL's id (README: One-time and limited links). It is signed like any other parameter
/// (the canonical query keeps it); on routes with use limits or revocation
/// it is also a credential parameter: found once, stripped before
/// forwarding, and read as the link's id.
pub const ID_PARAM: &str = "jti";

/// A signed URL's client binding: an address or a CIDR range the client
/// address must lie in. Signed like any other parameter (the canonical
/// query keeps it), read on every route that verifies signed URLs and
/// stripped before forwarding.
pub const IP_PARAM: &str = "ip";

/// Most credential parameter names one route can have.
pub const MAX_NAMES: usize = 16;

/// The parameter names that carry credentials on a route: every kind's,
/// each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialNames {
    names: Vec<Box<str>>,
}

static NO_NAMES: CredentialNames = CredentialNames { names: Vec::new() };

impl CredentialNames {
    /// The names, duplicates dropped; `None` past [`MAX_NAMES`].
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Option<Self> {
        let mut out: Vec<Box<str>> = Vec::new();
        for name in names {
            if !out.iter().any(|n| **n == *name.as_ref()) {
                out.push(name.as_ref().into());
            }
        }
        (out.len() <= MAX_NAMES).then_some(CredentialNames { names: out })
    }

    /// The native signed URL's parameters only.
    pub fn signed_url() -> Self {
        CredentialNames { names: SIGNED_URL_PARAMS.iter().map(|&n| n.into()).collect() }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Position of a decoded name. A name that cannot be decoded cannot
    /// spell a credential for any decoder.
    fn position(&self, raw_name: &str) -> Option<usize> {
        if self.names.is_empty() {
            return None;
        }
        let name = decode_component(raw_name).ok()?;
        self.names.iter().position(|n| n.as_bytes() == &*name)
    }
}

/// The raw values of the credential parameters found in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    names: &'a CredentialNames,
    values: [Option<&'a str>; MAX_NAMES],
}

impl Default for Found<'_> {
    fn default() -> Self {
        Found { names: &NO_NAMES, values: [None; MAX_NAMES] }
    }
}

impl<'a> Found<'a> {
    /// The raw value of credential parameter `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let i = self.names.names.iter().position(|n| **n == *name)?;
        self.values[i]
    }

    /// Whether any of `names` is present.
    pub fn any_of(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.get(n).is_some())
    }

    /// Whether any credential parameter is present.
    pub fn any(&self) -> bool {
        self.values.iter().any(Option::is_some)
    }
}

/// A credential parameter appeared twice (README: Bearer tokens: refused with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate;

/// Finds the credential parameters of a query; any of them twice is an error.
pub fn scan<'a>(query: &'a str, names: &'a CredentialNames) -> Result<Found<'a>, Duplicate> {
    let mut found = Found { names, values: [None; MAX_NAMES] };
    if names.is_empty() {
        return Ok(found);
    }
    for piece in query.split('&') {
        let (name, value) = split_piece(piece);
        let Some(i) = names.position(name) else {
            continue;
        };
        if found.values[i].replace(value).is_some() {
            return Err(Duplicate);
        }
    }
    Ok(found)
}

/// The query to forward: every non-credential piece, byte for byte, in order.
/// `None` when nothing is left.
pub fn strip<'a>(query: &'a str, found: &Found<'_>) -> Option<Cow<'a, str>> {
    if !found.any() {
        return (!query.is_empty()).then_some(Cow::Borrowed(query));
    }
    let mut out = String::with_capacity(query.len());
    let mut first = true;
    for piece in query.split('&') {
        if found.names.position(split_piece(piece).0).is_some() {
            continue;
        }
        if !first {
            out.push('&');
        }
        first = false;
        out.push_str(piece);
    }
    (!out.is_empty()).then_some(Cow::Owned(out))
}

/// A decoded (name, value) query pair.
type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The signed URL's `canonical_query` (docs/reference.md: Signed URLs): every parameter except the
/// four signed-URL ones, decoded, re-encoded strictly, sorted by (name, value).
pub fn canonical(query: &str) -> Result<String, BadEncoding> {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = split_piece(piece);
        let name = decode_component(name)?;
        if SIGNED_URL_PARAMS.iter().any(|p| p.as_bytes() == &*name) {
            continue;
        }
        pairs.push((name, decode_component(value)?));
    }
    if pairs.is_empty() {
        return Ok(String::new());
    }
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_strict(name, &mut out);
        out.push('=');
        encode_strict(value, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> CredentialNames {
        CredentialNames::signed_url()
    }

    fn token() -> CredentialNames {
        CredentialNames::new(["token"]).unwrap_or_default()
    }

    #[test]
    fn canonical_matches_the_spec_example() {
        let q = "w=200&format=web+p&a=%7e&exp=1893456000&sig=x";
        assert_eq!(canonical(q), Ok("a=~&format=web%20p&w=200".to_owned()));
    }

    #[test]
    fn canonical_sorts_by_name_then_value_and_encodes_everything_else() {
        assert_eq!(canonical("b=2&a=2&a=1"), Ok("a=1&a=2&b=2".to_owned()));
        assert_eq!(canonical("flag&&x="), Ok("flag=&x=".to_owned()));
        assert_eq!(canonical("k=a;b/c"), Ok("k=a%3Bb%2Fc".to_owned()), "; is data, not a separator");
        assert_eq!(canonical("%C3%A9=%e9"), Ok("%C3%A9=%E9".to_owned()));
        assert_eq!(canonical(""), Ok(String::new()));
        assert_eq!(canonical("%73ig=x&%65xp=1"), Ok(String::new()), "encoded names are still credentials");
        assert_eq!(canonical("a=%zz"), Err(BadEncoding));
    }

    #[test]
    fn scan_finds_credentials_by_decoded_name() {
        let names = signed();
        let found = scan("a=1&%73ig=S&exp=9&kid=k&prefix=%2F", &names).unwrap_or_default();
        let got: Vec<_> = SIGNED_URL_PARAMS.iter().map(|n| found.get(n)).collect();
        assert_eq!(got, [Some("9"), Some("S"), Some("k"), Some("%2F")]);
        assert_eq!(scan("sig=a&sig=b", &names), Err(Duplicate));
        assert_eq!(scan("exp=1&%65xp=2", &names), Err(Duplicate));
        let token = token();
        assert_eq!(scan("token=a&token=b", &token), Err(Duplicate));
        assert!(!scan("sig=a&sig=b", &token).unwrap_or_default().any(), "not credentials on this route");
        assert_eq!(CredentialNames::new(["a", "b", "a"]).map(|n| n.len()), Some(2));
        assert_eq!(CredentialNames::new((0..=MAX_NAMES).map(|i| i.to_string())), None);
    }

    #[test]
    fn strip_keeps_other_pieces_byte_for_byte_in_order() {
        let (signed, token) = (signed(), token());
        let q = "w=200&exp=1&format=web+p&sig=S&a=%7e";
        let found = scan(q, &signed).unwrap_or_default();
        assert_eq!(strip(q, &found).as_deref(), Some("w=200&format=web+p&a=%7e"));

        let q = "exp=1&sig=S";
        let found = scan(q, &signed).unwrap_or_default();
        assert_eq!(strip(q, &found), None);

        let q = "x=1&&y=2&token=abc";
        let found = scan(q, &token).unwrap_or_default();
        assert_eq!(strip(q, &found).as_deref(), Some("x=1&&y=2"));

        let q = "token=abc&x=%2B";
        let found = scan(q, &token).unwrap_or_default();
        assert_eq!(strip(q, &found).as_deref(), Some("x=%2B"));

        let q = "plain=1";
        assert!(matches!(strip(q, &Found::default()), Some(Cow::Borrowed("plain=1"))));
    }

    #[test]
    fn decode_component_handles_plus_and_percent() {
        assert_eq!(decode_component("a+b%20c").as_deref(), Ok(&b"a b c"[..]));
        assert_eq!(decode_component("%4"), Err(BadEncoding));
    }
}
