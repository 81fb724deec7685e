//! The `Cookie` header, read as bytes and the same way both for finding the
//! credential cookie and for removing it: a pair the verifier cannot see is
//! a pair the stripping stage cannot miss, whatever bytes surround it.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use super::error::AuthError;

/// The `(name, value)` pairs of one `Cookie` header value: split on `;`,
/// surrounding spaces and tabs trimmed.
pub fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|b| *b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            return None;
        }
        Some(match pair.iter().position(|b| *b == b'=') {
            Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
            None => (pair, &b""[..]),
        })
    })
}

/// The value of cookie `name` across every `Cookie` header (quotes removed);
/// the same cookie twice is malformed.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h [u8]>, AuthError> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        for (n, value) in pairs(header.as_bytes()) {
            if n == name.as_bytes() {
                let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
                if found.replace(value).is_some() {
                    return Err(AuthError::Malformed);
                }
            }
        }
    }
    Ok(found)
}

/// Removes cookie `name` from every `Cookie` header, keeping the other pairs
/// byte for byte; a header left empty is dropped.
pub fn remove(headers: &mut HeaderMap, name: &str) {
    remove_matching(headers, |n| n == name.as_bytes());
}

/// Removes every cookie whose name `matches`, like [`remove`].
pub fn remove_matching(headers: &mut HeaderMap, matches: impl Fn(&[u8]) -> bool) {
    if !headers.get_all(COOKIE).iter().any(|h| pairs(h.as_bytes()).any(|(n, _)| matches(n))) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| {
            let mut out = Vec::with_capacity(header.len());
            for pair in header.as_bytes().split(|b| *b == b';').map(<[u8]>::trim_ascii) {
                let name_of = pair.split(|b| *b == b'=').next().unwrap_or_default().trim_ascii();
                if pair.is_empty() || matches(name_of) {
                    continue;
                }
                if !out.is_empty() {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(pair);
            }
            (!out.is_empty()).then(|| HeaderValue::from_bytes(&out).ok()).flatten()
        })
        .collect();
    headers.remove(COOKIE);
    for v in kept {
        headers.append(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v).unwrap_or_else(|e| panic!("{e}")));
        }
        h
    }

    #[test]
    fn finding() {
        let h = headers(&[b"a=1; tg=tok; b=2"]);
        assert_eq!(find(&h, "tg"), Ok(Some(&b"tok"[..])));
        assert_eq!(find(&h, "zz"), Ok(None));
        assert_eq!(find(&headers(&[b"tg=\"q\""]), "tg"), Ok(Some(&b"q"[..])));
        assert_eq!(find(&headers(&[b"tg=1", b"x=2; tg=3"]), "tg"), Err(AuthError::Malformed));
        // Bytes beyond ASCII do not hide a second credential cookie.
        assert_eq!(find(&headers(&[b"tg=1", b"tg=FORGED; z=\xff"]), "tg"), Err(AuthError::Malformed));
    }

    #[test]
    fn removing_keeps_everything_else() {
        let mut h = headers(&[b"a=1; tg=secret; b=2", b"tg=again", b"tg=x; z=\xff"]);
        remove(&mut h, "tg");
        let all: Vec<&[u8]> = h.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(all, vec![&b"a=1; b=2"[..], &b"z=\xff"[..]]);
        let mut untouched = headers(&[b"a=1;b=2"]);
        remove(&mut untouched, "tg");
        assert_eq!(untouched[COOKIE], "a=1;b=2", "no credential cookie: the header is forwarded as sent");
    }
}
