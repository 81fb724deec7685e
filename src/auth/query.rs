//! The query string, read once and the same way everywhere (SPEC §2, §1.5).
//!
//! Parameters are split on `&` only. A parameter is recognised as a
//! credential by its *decoded* name, so `%73ig=` is `sig` here exactly as it
//! would be for any decoder upstream; a credential can therefore never slip
//! past the stripping stage under another spelling. Everything that is not a
//! credential is forwarded as the raw bytes it arrived in, in order.

use std::borrow::Cow;

use crate::proxy::normalize::hex;

/// Which parameter names carry credentials on a route.
#[derive(Debug, Clone, Copy, Default)]
pub struct CredentialNames<'a> {
    /// `exp`, `sig`, `kid` and `prefix` are the signed-URL parameters.
    pub signed_url: bool,
    /// The name of the JWT query parameter, when the route accepts one.
    pub token: Option<&'a str>,
}

/// The raw values of the credential parameters found in a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found<'a> {
    pub exp: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub kid: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub token: Option<&'a str>,
}

impl Found<'_> {
    /// Whether any signed-URL parameter is present.
    pub fn has_signed_url(&self) -> bool {
        self.exp.is_some() || self.sig.is_some() || self.kid.is_some() || self.prefix.is_some()
    }

    /// Whether any credential parameter is present.
    pub fn any(&self) -> bool {
        self.has_signed_url() || self.token.is_some()
    }
}

/// A credential parameter appeared twice (SPEC §3: refused with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate;

/// Percent-encoding in the query that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEncoding;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exp,
    Sig,
    Kid,
    Prefix,
    Token,
}

/// A query piece's raw name and value (`name` alone has an empty value).
pub fn split_piece(piece: &str) -> (&str, &str) {
    piece.split_once('=').unwrap_or((piece, ""))
}

fn classify(raw_name: &str, names: CredentialNames<'_>) -> Option<Kind> {
    // A name that cannot be decoded cannot spell a credential for any decoder.
    let name = decode_component(raw_name).ok()?;
    let kind = match &*name {
        b"exp" if names.signed_url => Kind::Exp,
        b"sig" if names.signed_url => Kind::Sig,
        b"kid" if names.signed_url => Kind::Kid,
        b"prefix" if names.signed_url => Kind::Prefix,
        n if names.token.is_some_and(|t| t.as_bytes() == n) => Kind::Token,
        _ => return None,
    };
    Some(kind)
}

/// Finds the credential parameters of a query; any of them twice is an error.
pub fn scan<'a>(query: &'a str, names: CredentialNames<'_>) -> Result<Found<'a>, Duplicate> {
    let mut found = Found::default();
    for piece in query.split('&') {
        let (name, value) = split_piece(piece);
        let Some(kind) = classify(name, names) else {
            continue;
        };
        let slot = match kind {
            Kind::Exp => &mut found.exp,
            Kind::Sig => &mut found.sig,
            Kind::Kid => &mut found.kid,
            Kind::Prefix => &mut found.prefix,
            Kind::Token => &mut found.token,
        };
        if slot.replace(value).is_some() {
            return Err(Duplicate);
        }
    }
    Ok(found)
}

/// The query to forward: every non-credential piece, byte for byte, in order.
/// `None` when nothing is left.
pub fn strip<'a>(query: &'a str, names: CredentialNames<'_>, found: &Found<'_>) -> Option<Cow<'a, str>> {
    if !found.any() {
        return (!query.is_empty()).then_some(Cow::Borrowed(query));
    }
    let mut out = String::with_capacity(query.len());
    let mut first = true;
    for piece in query.split('&') {
        if classify(split_piece(piece).0, names).is_some() {
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

/// The signed URL's `canonical_query` (SPEC §2): every parameter except the
/// four signed-URL ones, decoded, re-encoded strictly, sorted by (name, value).
pub fn canonical(query: &str) -> Result<String, BadEncoding> {
    let names = CredentialNames { signed_url: true, token: None };
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = split_piece(piece);
        if classify(name, names).is_some() {
            continue;
        }
        pairs.push((decode_component(name)?, decode_component(value)?));
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

/// Percent-decodes one query component; `+` means space.
pub fn decode_component(raw: &str) -> Result<Cow<'_, [u8]>, BadEncoding> {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let h = bytes.get(i + 1).and_then(hex).ok_or(BadEncoding)?;
                let l = bytes.get(i + 2).and_then(hex).ok_or(BadEncoding)?;
                out.push(h << 4 | l);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// Percent-encodes every byte except `A-Z a-z 0-9 - . _ ~`, upper-case hex.
pub fn encode_strict(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: CredentialNames<'static> = CredentialNames { signed_url: true, token: None };
    const TOKEN: CredentialNames<'static> = CredentialNames { signed_url: false, token: Some("token") };

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
        let found = scan("a=1&%73ig=S&exp=9&kid=k&prefix=%2F", SIGNED);
        assert_eq!(
            found,
            Ok(Found { exp: Some("9"), sig: Some("S"), kid: Some("k"), prefix: Some("%2F"), token: None })
        );
        assert_eq!(scan("sig=a&sig=b", SIGNED), Err(Duplicate));
        assert_eq!(scan("exp=1&%65xp=2", SIGNED), Err(Duplicate));
        assert_eq!(scan("token=a&token=b", TOKEN), Err(Duplicate));
        assert_eq!(scan("sig=a&sig=b", TOKEN), Ok(Found::default()), "not credentials on this route");
    }

    #[test]
    fn strip_keeps_other_pieces_byte_for_byte_in_order() {
        let q = "w=200&exp=1&format=web+p&sig=S&a=%7e";
        let found = scan(q, SIGNED).unwrap_or_default();
        assert_eq!(strip(q, SIGNED, &found).as_deref(), Some("w=200&format=web+p&a=%7e"));

        let q = "exp=1&sig=S";
        let found = scan(q, SIGNED).unwrap_or_default();
        assert_eq!(strip(q, SIGNED, &found), None);

        let q = "x=1&&y=2&token=abc";
        let found = scan(q, TOKEN).unwrap_or_default();
        assert_eq!(strip(q, TOKEN, &found).as_deref(), Some("x=1&&y=2"));

        let q = "token=abc&x=%2B";
        let found = scan(q, TOKEN).unwrap_or_default();
        assert_eq!(strip(q, TOKEN, &found).as_deref(), Some("x=%2B"));

        let q = "plain=1";
        assert!(matches!(strip(q, TOKEN, &Found::default()), Some(Cow::Borrowed("plain=1"))));
    }

    #[test]
    fn decode_component_handles_plus_and_percent() {
        assert_eq!(decode_component("a+b%20c").as_deref(), Ok(&b"a b c"[..]));
        assert_eq!(decode_component("%4"), Err(BadEncoding));
    }
}
