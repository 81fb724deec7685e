//! HLS playlists (RFC 8216 and its successor draft): a URI is a line that
//! is not a tag, or the quoted `URI` attribute of the tags below. Lines end
//! in `\n` or `\r\n`, kept as they are; a line that a player could end
//! sooner, and a URI with a variable in it, are never rewritten.

use super::uri::{Rewrite, Use};

/// Tags whose `URI="…"` attribute names content.
const CONTENT_TAGS: &[&str] = &[
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-MAP",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-SESSION-DATA",
];

/// Tags whose `URI="…"` attribute names a decryption key.
const KEY_TAGS: &[&str] = &["EXT-X-KEY", "EXT-X-SESSION-KEY"];

/// Where players end a line that RFC 8216 does not: a lone CR (hls.js,
/// ExoPlayer, Shaka, FFmpeg), NUL (FFmpeg), U+2028 and U+2029 (hls.js's tag
/// patterns). A line holding one is kept as it is: the text after it may be
/// read as a URI line of its own, and a credential written into the tag
/// before it would travel with that URI, wherever it points.
const PLAYER_LINE_BREAKS: [char; 4] = ['\r', '\0', '\u{2028}', '\u{2029}'];

/// A UTF-8 byte order mark: RFC 8216 forbids one, players skip it; it is
/// copied, and not taken for the start of the first line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn rewrite(input: &[u8], r: &mut dyn Rewrite) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    let input = match input.strip_prefix(BOM) {
        Some(rest) => {
            out.extend_from_slice(BOM);
            rest
        }
        None => input,
    };
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body_len = line.len() - line.iter().rev().take_while(|&&b| b == b'\n' || b == b'\r').count();
        let (body, end) = line.split_at(body_len);
        match std::str::from_utf8(body) {
            Ok(text) if !text.contains(PLAYER_LINE_BREAKS) => match rewrite_line(text, r) {
                Some(new) => out.extend_from_slice(new.as_bytes()),
                None => out.extend_from_slice(body),
            },
            _ => out.extend_from_slice(body),
        }
        out.extend_from_slice(end);
    }
    out
}

/// Whether `uri` holds a variable reference (`{$name}`, `EXT-X-DEFINE`): a
/// player substitutes it first, so what it names, even its origin, is not
/// known here and it is not offered.
fn has_variable(uri: &str) -> bool {
    uri.contains("{$")
}

/// The line rewritten, or `None` to keep it.
fn rewrite_line(line: &str, r: &mut dyn Rewrite) -> Option<String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    let Some(tag_line) = line.strip_prefix('#') else {
        // A URI line; surrounding blanks are kept out of it.
        if has_variable(trimmed) {
            return None;
        }
        let new = r.uri(trimmed, Use::Content)?;
        let start = line.len() - line.trim_start().len();
        return Some(format!("{}{new}{}", &line[..start], &line[start + trimmed.len()..]));
    };
    let (tag, attributes) = tag_line.split_once(':')?;
    let used = if KEY_TAGS.contains(&tag) {
        Use::Key
    } else if CONTENT_TAGS.contains(&tag) {
        Use::Content
    } else {
        return None;
    };
    let (start, end) = uri_attribute(attributes)?;
    if has_variable(&attributes[start..end]) {
        return None;
    }
    let new = r.uri(&attributes[start..end], used)?;
    if new.contains(['"', '\r', '\n']) {
        return None; // cannot be written in a quoted attribute
    }
    let offset = line.len() - attributes.len();
    Some(format!("{}{new}{}", &line[..offset + start], &line[offset + end..]))
}

/// The byte range of the quoted `URI` attribute's value in an attribute
/// list (`NAME=value,NAME="quoted, with commas",…`), if there is one.
fn uri_attribute(list: &str) -> Option<(usize, usize)> {
    let bytes = list.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let name_end = i + list[i..].find('=')?;
        let name = list[i..name_end].trim();
        let value_start = name_end + 1;
        if bytes.get(value_start) == Some(&b'"') {
            let close = value_start + 1 + list[value_start + 1..].find('"')?;
            if name == "URI" && matches!(bytes.get(close + 1), None | Some(b',')) {
                return Some((value_start + 1, close));
            }
            i = close + 1;
        } else {
            i = value_start + list[value_start..].find(',').unwrap_or(list.len() - value_start);
        }
        // Past the comma between attributes.
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(_) => return None, // malformed: text after a quoted value
            None => break,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks every URI it is offered: `[c:uri]` for content, `[k:uri]` for keys.
    struct Mark;
    impl Rewrite for Mark {
        fn uri(&mut self, uri: &str, used: Use) -> Option<String> {
            Some(format!("[{}:{uri}]", if used == Use::Key { 'k' } else { 'c' }))
        }
    }

    fn marked(input: &str) -> String {
        String::from_utf8_lossy(&rewrite(input.as_bytes(), &mut Mark)).into_owned()
    }

    #[test]
    fn every_uri_bearing_tag_and_line_is_offered() {
        let input = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"/keys/k1\"\r\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"English, US\",URI=\"audio/en.m3u8\"\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\"\r\n\
../720p/index.m3u8\r\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8\"\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\",IV=0x0123\r\n\
#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\r\n\
#EXT-X-PART:DURATION=0.5,URI=\"p1.m4s\"\r\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.m4s\"\r\n\
#EXT-X-RENDITION-REPORT:URI=\"../480p/index.m3u8\",LAST-MSN=3\r\n\
#EXT-X-BYTERANGE:100@0\r\n\
#EXTINF:4.0,title, with comma\r\n\
  seg-1.ts  \r\n\
# a comment URI=\"x\"\r\n\
#EXT-X-UNKNOWN:URI=\"left.ts\"\r\n\
#EXT-X-ENDLIST\r\n";
        let want = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"[k:/keys/k1]\"\r\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"English, US\",URI=\"[c:audio/en.m3u8]\"\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\"\r\n\
[c:../720p/index.m3u8]\r\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"[c:iframes.m3u8]\"\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"[k:key.bin]\",IV=0x0123\r\n\
#EXT-X-MAP:URI=\"[c:init.mp4]\",BYTERANGE=\"720@0\"\r\n\
#EXT-X-PART:DURATION=0.5,URI=\"[c:p1.m4s]\"\r\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"[c:p2.m4s]\"\r\n\
#EXT-X-RENDITION-REPORT:URI=\"[c:../480p/index.m3u8]\",LAST-MSN=3\r\n\
#EXT-X-BYTERANGE:100@0\r\n\
#EXTINF:4.0,title, with comma\r\n\
  [c:seg-1.ts]  \r\n\
# a comment URI=\"x\"\r\n\
#EXT-X-UNKNOWN:URI=\"left.ts\"\r\n\
#EXT-X-ENDLIST\r\n";
        assert_eq!(marked(input), want);
    }

    #[test]
    fn kept_uris_leave_the_bytes_identical() {
        struct Keep;
        impl Rewrite for Keep {
            fn uri(&mut self, _: &str, _: Use) -> Option<String> {
                None
            }
        }
        let input = b"#EXTM3U\n#EXT-X-KEY:URI=\"k\"\nseg\xff.ts\n\n#EXTINF:1,\nlast.ts";
        assert_eq!(rewrite(input, &mut Keep), input.to_vec());
    }

    #[test]
    fn malformed_attribute_lists_are_left_alone() {
        for line in [
            "#EXT-X-MAP:URI=\"unterminated",
            "#EXT-X-MAP:URI=\"a\"junk,BYTERANGE=1",
            "#EXT-X-MAP:NOVALUE",
            "#EXT-X-MAP:",
            "#EXT-X-MAP",
        ] {
            assert_eq!(marked(line), line, "{line}");
        }
        // A value that cannot be quoted is not written.
        struct Quote;
        impl Rewrite for Quote {
            fn uri(&mut self, _: &str, _: Use) -> Option<String> {
                Some("a\"b".into())
            }
        }
        assert_eq!(rewrite(b"#EXT-X-MAP:URI=\"x\"", &mut Quote), b"#EXT-X-MAP:URI=\"x\"".to_vec());
    }
}
