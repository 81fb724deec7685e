//! DASH MPDs (ISO/IEC 23009-1): the text of `BaseURL` and `Location`, and
//! the URI attributes of `SegmentTemplate`, `SegmentURL`, `Initialization`
//! and `RepresentationIndex`. One scan over the tags; comments, CDATA,
//! processing instructions and every other byte are copied unchanged.
//! Values are XML: entities are decoded before a URI is offered and the
//! new URI is escaped again.
//!
//! Only markup in the strict form that every parser reads alike is
//! scanned: from the first thing that is not (a DOCTYPE, a stray quote, an
//! unquoted value, `<` in a value, a tag never closed) the rest is copied
//! as it is. A lenient parser (Shaka's, for one) would read such bytes its
//! own way, and a credential written where this scan saw a value could land
//! in a value of its own, on another origin.

use super::uri::{Rewrite, Use};

/// Elements whose text is a URI.
const TEXT_URIS: &[&str] = &["BaseURL", "Location"];

/// Elements and their URI attributes.
const ATTRIBUTE_URIS: &[(&str, &[&str])] = &[
    ("SegmentTemplate", &["media", "initialization", "index", "bitstreamSwitching"]),
    ("SegmentURL", &["media", "index"]),
    ("Initialization", &["sourceURL"]),
    ("RepresentationIndex", &["sourceURL"]),
];

/// XML's white space.
const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

pub(super) fn rewrite(input: &[u8], r: &mut dyn Rewrite) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(input) else {
        return input.to_vec();
    };
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let Some((len, kind)) = markup(rest) else {
            break; // not strict markup: the rest is copied as it is
        };
        let (tag, after) = rest.split_at(len);
        rest = after;
        let Markup::Start { empty } = kind else {
            out.push_str(tag);
            continue;
        };
        out.push_str(&rewrite_tag(tag, r).unwrap_or_else(|| tag.to_owned()));
        // The text of a URI element, when it runs to the end tag (a comment
        // or CDATA section in it would join what follows to the URI).
        if !empty && TEXT_URIS.contains(&local_name(tag)) {
            let end = rest.find('<').unwrap_or(rest.len());
            let (content, after) = rest.split_at(end);
            let whole = after.is_empty() || after.starts_with("</");
            let used = if local_name(tag) == "BaseURL" { Use::Base } else { Use::Content };
            match whole.then(|| rewrite_text(content, used, r)).flatten() {
                Some(new) => out.push_str(&new),
                None => out.push_str(content),
            }
            rest = after;
        }
    }
    out.push_str(rest);
    out.into_bytes()
}

/// What `markup` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// A start tag; `empty` when it is also the end (`<x/>`).
    Start { empty: bool },
    /// An end tag, comment, CDATA section or processing instruction.
    Other,
}

/// Length and kind of the markup at the start of `s` (a `<`), in the
/// strict form; `None` for anything else.
fn markup(s: &str) -> Option<(usize, Markup)> {
    let through = |end: &str| s.find(end).map(|i| (i + end.len(), Markup::Other));
    if s.starts_with("<!--") {
        return through("-->");
    }
    if s.starts_with("<![CDATA[") {
        return through("]]>");
    }
    if let Some(body) = s.strip_prefix("<?") {
        let at = 2 + name_len(body)?;
        let at = at + attributes_len(&s[at..])?;
        return s[at..].starts_with("?>").then_some((at + 2, Markup::Other));
    }
    if let Some(body) = s.strip_prefix("</") {
        let at = 2 + name_len(body)?;
        let at = at + blanks(&s[at..]);
        return s[at..].starts_with('>').then_some((at + 1, Markup::Other));
    }
    let at = 1 + name_len(&s[1..])?;
    let at = at + attributes_len(&s[at..])?;
    if s[at..].starts_with("/>") {
        Some((at + 2, Markup::Start { empty: true }))
    } else {
        s[at..].starts_with('>').then_some((at + 1, Markup::Start { empty: false }))
    }
}

/// Length of the white space at the start of `s`.
fn blanks(s: &str) -> usize {
    s.len() - s.trim_start_matches(SPACE).len()
}

/// Length of the name at the start of `s`: an ASCII letter (where every
/// parser starts one), then letters, digits, `_`, `:`, `.`, `-` or
/// non-ASCII characters.
fn name_len(s: &str) -> Option<usize> {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let other = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-') || !c.is_ascii());
    Some(s.find(other).unwrap_or(s.len()))
}

/// Length of the attributes at the start of `s`, white space after them
/// included: each is ` name="value"` or ` name='value'` (blanks allowed
/// around `=`), a value holding neither its quote nor `<`. `None` when one
/// is not.
fn attributes_len(s: &str) -> Option<usize> {
    let mut i = 0;
    loop {
        let spaced = blanks(&s[i..]);
        let at = i + spaced;
        let Some(name) = name_len(&s[at..]).filter(|_| spaced > 0) else {
            return Some(at);
        };
        let eq = at + name + blanks(&s[at + name..]);
        if !s[eq..].starts_with('=') {
            return None;
        }
        let open = eq + 1 + blanks(&s[eq + 1..]);
        let quote = s[open..].chars().next().filter(|q| matches!(q, '"' | '\''))?;
        let close = open + 1 + s[open + 1..].find([quote, '<'])?;
        if !s[close..].starts_with(quote) {
            return None;
        }
        i = close + 1;
    }
}

/// `SegmentTemplate` of `<mpd:SegmentTemplate media=…>`; "" for end tags.
fn local_name(tag: &str) -> &str {
    let name = tag.trim_start_matches('<');
    if name.starts_with('/') {
        return "";
    }
    let name = &name[..name.find(|c: char| SPACE.contains(&c) || c == '/' || c == '>').unwrap_or(name.len())];
    name.rsplit(':').next().unwrap_or(name)
}

fn rewrite_tag(tag: &str, r: &mut dyn Rewrite) -> Option<String> {
    let name = local_name(tag);
    let (_, attributes) = ATTRIBUTE_URIS.iter().find(|(n, _)| *n == name)?;
    let mut out = String::with_capacity(tag.len() + 64);
    let mut copied = 0;
    let mut changed = false;
    let mut i = 1 + tag[1..].find(|c: char| SPACE.contains(&c) || c == '/' || c == '>')?;
    while let Some(eq) = tag[i..].find('=').map(|e| i + e) {
        let attr = tag[i..eq].trim_matches(SPACE);
        let value_start = eq + 1 + blanks(&tag[eq + 1..]);
        let quote = tag[value_start..].chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let close = value_start + 1 + tag[value_start + 1..].find(quote)?;
        let raw = &tag[value_start + 1..close];
        if let Some(new) =
            attributes.contains(&attr).then(|| unescape(raw)).flatten().and_then(|u| r.uri(&u, Use::Content))
        {
            out.push_str(&tag[copied..value_start + 1]);
            out.push_str(&escape(&new));
            copied = close;
            changed = true;
        }
        i = close + 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&tag[copied..]);
    Some(out)
}

fn rewrite_text(content: &str, used: Use, r: &mut dyn Rewrite) -> Option<String> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return None;
    }
    let new = r.uri(&unescape(trimmed)?, used)?;
    let start = content.len() - content.trim_start().len();
    Some(format!("{}{}{}", &content[..start], escape(&new), &content[start + trimmed.len()..]))
}

/// XML text with its five predefined entities and character references
/// decoded; `None` for anything else (left as it is).
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';')? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Escapes what XML text and either kind of quoted attribute need; tab,
/// line feed and carriage return as character references, which a parser
/// keeps (it reads them written raw in an attribute as spaces).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mark;
    impl Rewrite for Mark {
        fn uri(&mut self, uri: &str, _: Use) -> Option<String> {
            Some(format!("{uri}?a=1&b=2"))
        }
    }

    fn marked(input: &str) -> String {
        String::from_utf8_lossy(&rewrite(input.as_bytes(), &mut Mark)).into_owned()
    }

    #[test]
    fn every_uri_element_and_attribute_is_offered() {
        let input = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><!-- <BaseURL>no</BaseURL> -->
  <Location> https://files.example/v/stream.mpd </Location>
  <BaseURL>/media/u1/v/</BaseURL>
  <Period><AdaptationSet mimeType="video/mp4" codecs='avc1.64001f'>
    <SegmentTemplate timescale="1000" initialization="init-$RepresentationID$.m4s" media='chunk-$RepresentationID$-$Number%05d$.m4s' startNumber="1"/>
    <Representation id="0" bandwidth="1"><BaseURL>a&amp;b/</BaseURL>
      <SegmentList><Initialization sourceURL="i.mp4" range="0-99"/><SegmentURL media="s1.m4s" mediaRange="100-199"/></SegmentList>
    </Representation>
  </AdaptationSet></Period><![CDATA[<BaseURL>x</BaseURL>]]>
</MPD>
"#;
        let want = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><!-- <BaseURL>no</BaseURL> -->
  <Location> https://files.example/v/stream.mpd?a=1&amp;b=2 </Location>
  <BaseURL>/media/u1/v/?a=1&amp;b=2</BaseURL>
  <Period><AdaptationSet mimeType="video/mp4" codecs='avc1.64001f'>
    <SegmentTemplate timescale="1000" initialization="init-$RepresentationID$.m4s?a=1&amp;b=2" media='chunk-$RepresentationID$-$Number%05d$.m4s?a=1&amp;b=2' startNumber="1"/>
    <Representation id="0" bandwidth="1"><BaseURL>a&amp;b/?a=1&amp;b=2</BaseURL>
      <SegmentList><Initialization sourceURL="i.mp4?a=1&amp;b=2" range="0-99"/><SegmentURL media="s1.m4s?a=1&amp;b=2" mediaRange="100-199"/></SegmentList>
    </Representation>
  </AdaptationSet></Period><![CDATA[<BaseURL>x</BaseURL>]]>
</MPD>
"#;
        assert_eq!(marked(input), want);
    }

    #[test]
    fn namespaced_and_malformed_input_is_handled() {
        assert_eq!(marked("<mpd:BaseURL>x/</mpd:BaseURL>"), "<mpd:BaseURL>x/?a=1&amp;b=2</mpd:BaseURL>");
        for input in [
            "<BaseURL>x",
            "<SegmentURL media=\"x",
            "<SegmentURL media=x/>",
            "<BaseURL>&bogus;</BaseURL>",
            "<!-- never closed <BaseURL>x</BaseURL>",
            "<Segment",
        ] {
            let out = marked(input);
            assert!(out == input || input == "<BaseURL>x", "{input} -> {out}");
        }
        assert_eq!(marked("<BaseURL>x"), "<BaseURL>x?a=1&amp;b=2");
        assert_eq!(rewrite(b"<BaseURL>\xff</BaseURL>", &mut Mark), b"<BaseURL>\xff</BaseURL>".to_vec());
    }
}
