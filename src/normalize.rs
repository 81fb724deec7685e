//! The normal form of a request path (docs/reference.md: Signed URLs), and the byte helpers every
//! stage shares: hex, and prefixes on segment boundaries. A leaf: it imports
//! nothing of the crate.
//!
//! Invariant: tollgate never rewrites a path. It accepts only paths whose
//! meaning cannot differ between tollgate and the upstream (no dot segments,
//! no encoded separators, no control bytes, valid UTF-8), decodes them once
//! for routing and verification, and forwards the raw bytes unchanged. Two
//! shapes are legal only on routes that opt in (object-store keys): empty
//! segments (`//`) and encoded slashes (`%2F`); they are reported here and
//! judged after routing.

use std::borrow::Cow;

/// Why a path is not in normal form. Only used for logs and tests; every
/// variant answers 400 `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNormal {
    /// The target is not in origin form (`/…`).
    NotOriginForm,
    /// A `.` or `..` segment, raw or percent-encoded.
    DotSegment,
    /// A raw or encoded backslash.
    Backslash,
    /// A control byte (raw or encoded) or a space.
    Control,
    /// A raw byte outside ASCII: clients must percent-encode.
    RawNonAscii,
    /// `%` not followed by two hex digits.
    BadPercent,
    /// Decoded bytes that are not UTF-8 (including overlong forms).
    BadUtf8,
}

/// A path that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// Percent-decoded path: what routes match and signatures cover.
    pub decoded: Cow<'a, str>,
    /// The path holds an empty segment (`//`, raw or via `%2F`).
    pub empty_segment: bool,
    /// Byte offset in `decoded` of the first slash that arrived as `%2F`.
    pub encoded_slash_at: Option<usize>,
}

/// Checks `raw` (the path exactly as received, without query) and decodes it.
pub fn check_path(raw: &str) -> Result<NormalPath<'_>, NotNormal> {
    if !raw.starts_with('/') {
        return Err(NotNormal::NotOriginForm);
    }
    let mut has_percent = false;
    for &b in raw.as_bytes() {
        match b {
            b'%' => has_percent = true,
            b'\\' => return Err(NotNormal::Backslash),
            0..=0x20 | 0x7f | b'#' | b'?' => return Err(NotNormal::Control),
            0x80.. => return Err(NotNormal::RawNonAscii),
            _ => {}
        }
    }
    let mut encoded_slash_at = None;
    let decoded =
        if has_percent { Cow::Owned(percent_decode_path(raw, &mut encoded_slash_at)?) } else { Cow::Borrowed(raw) };

    let mut empty_segment = false;
    let mut segments = decoded.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Err(NotNormal::DotSegment),
            "" if segments.peek().is_some() => empty_segment = true,
            _ => {}
        }
    }
    Ok(NormalPath { decoded, empty_segment, encoded_slash_at })
}

fn percent_decode_path(raw: &str, encoded_slash_at: &mut Option<usize>) -> Result<String, NotNormal> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let byte = match (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
            (Some(h), Some(l)) => h << 4 | l,
            _ => return Err(NotNormal::BadPercent),
        };
        match byte {
            0..=0x1f | 0x7f => return Err(NotNormal::Control),
            b'\\' => return Err(NotNormal::Backslash),
            b'/' if encoded_slash_at.is_none() => *encoded_slash_at = Some(out.len()),
            _ => {}
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| NotNormal::BadUtf8)
}

/// The value of one hex digit, either case.
pub fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Hex (either case) to bytes: the crate's one hex decoder.
pub fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2).map(|pair| Some(hex(&pair[0])? << 4 | hex(&pair[1])?)).collect()
}

/// Bytes as lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// `path` lies under `prefix`, on a segment boundary: `/u1` matches `/u1`
/// and `/u1/x`, never `/u10`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Percent-encoding in a query that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEncoding;

/// A query piece's raw name and value (`name` alone has an empty value).
pub fn split_piece(piece: &str) -> (&str, &str) {
    piece.split_once('=').unwrap_or((piece, ""))
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

    fn ok(raw: &str) -> NormalPath<'_> {
        check_path(raw).unwrap_or_else(|e| panic!("{raw:?} rejected: {e:?}"))
    }

    #[test]
    fn plain_paths_are_borrowed() {
        let p = ok("/media/cat.jpg");
        assert!(matches!(p.decoded, Cow::Borrowed("/media/cat.jpg")));
        assert!(!p.empty_segment);
        assert_eq!(ok("/").decoded, "/");
        assert_eq!(ok("/media/").decoded, "/media/");
    }

    #[test]
    fn percent_encoding_is_decoded_once() {
        assert_eq!(ok("/media/caf%C3%A9%20noir.jpg").decoded, "/media/café noir.jpg");
        assert_eq!(ok("/a%2541").decoded, "/a%41");
        assert_eq!(ok("/a+b").decoded, "/a+b", "+ is literal in paths");
        assert_eq!(ok("/a/..b/c..").decoded, "/a/..b/c..");
    }

    #[test]
    fn dot_segments_in_any_spelling_are_rejected() {
        for raw in [
            "/public/../private/x",
            "/public/./x",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a/.%2e/b",
            "/a/%2e/b",
            "/a/%2E%2E",
        ] {
            assert_eq!(check_path(raw), Err(NotNormal::DotSegment), "{raw}");
        }
    }

    #[test]
    fn separators_and_controls_are_rejected() {
        assert_eq!(check_path("/a\\b"), Err(NotNormal::Backslash));
        assert_eq!(check_path("/a%5Cb"), Err(NotNormal::Backslash));
        assert_eq!(check_path("/a%5cb"), Err(NotNormal::Backslash));
        assert_eq!(check_path("/a%00b"), Err(NotNormal::Control));
        assert_eq!(check_path("/a%0d%0ab"), Err(NotNormal::Control));
        assert_eq!(check_path("/a%7f"), Err(NotNormal::Control));
        assert_eq!(check_path("/a b"), Err(NotNormal::Control));
        assert_eq!(check_path("/a#b"), Err(NotNormal::Control));
        assert_eq!(check_path("/caf\u{e9}"), Err(NotNormal::RawNonAscii));
    }

    #[test]
    fn bad_encodings_are_rejected() {
        assert_eq!(check_path("/a%zz"), Err(NotNormal::BadPercent));
        assert_eq!(check_path("/a%4"), Err(NotNormal::BadPercent));
        assert_eq!(check_path("/a%"), Err(NotNormal::BadPercent));
        assert_eq!(check_path("/%c0%af"), Err(NotNormal::BadUtf8), "overlong /");
        assert_eq!(check_path("/%ff"), Err(NotNormal::BadUtf8));
    }

    #[test]
    fn origin_form_only() {
        assert_eq!(check_path("*"), Err(NotNormal::NotOriginForm));
        assert_eq!(check_path(""), Err(NotNormal::NotOriginForm));
        assert_eq!(check_path("media/x"), Err(NotNormal::NotOriginForm));
    }

    #[test]
    fn opt_in_shapes_are_reported_not_rejected() {
        let p = ok("/b//k");
        assert!(p.empty_segment);
        let p = ok("/b/a%2Fb");
        assert_eq!(p.encoded_slash_at, Some(4));
        assert_eq!(p.decoded, "/b/a/b");
        let p = ok("/b/%2F");
        assert!(p.empty_segment, "an encoded slash can form an empty segment");
        assert!(!ok("/b/").empty_segment, "a trailing slash is not an empty segment");
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/u1/", "/u1/x"));
        assert!(!prefix_matches("/u1/", "/u1"));
        assert!(prefix_matches("/u1", "/u1"));
        assert!(prefix_matches("/u1", "/u1/x"));
        assert!(!prefix_matches("/u1", "/u10"));
        assert!(!prefix_matches("/u1/", "/u10/x"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn hex_both_ways() {
        assert_eq!(decode_hex(b"00ffA0").as_deref(), Some(&[0u8, 255, 160][..]));
        assert_eq!(decode_hex(b"0"), None);
        assert_eq!(decode_hex(b"zz"), None);
        assert_eq!(encode_hex(&[0, 255, 160]), "00ffa0");
    }
}
