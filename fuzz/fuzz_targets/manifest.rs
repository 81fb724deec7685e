//! Video manifests (`tollgate::manifest`): any bytes, as an HLS playlist
//! and as a DASH MPD. Never a panic; a rewriter that keeps every URI gets
//! back every byte; one that writes a value with every character XML
//! escapes and an HLS attribute cannot hold (`a&b"c'd<e>`) keeps every HLS
//! line and its ending, changes only URI lines, and never lands raw in an
//! MPD; a URI given back as offered leaves a playlist as it was, and an
//! MPD that, read again, offers the same URIs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::manifest::{Format, Rewrite, Use, rewrite};

const AWKWARD: &str = "a&b\"c'd<e>";
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Keeps every URI, counting the offers.
struct Keep(Vec<String>);
impl Rewrite for Keep {
    fn uri(&mut self, uri: &str, _: Use) -> Option<String> {
        self.0.push(uri.to_owned());
        None
    }
}

struct Awkward(usize);
impl Rewrite for Awkward {
    fn uri(&mut self, _: &str, _: Use) -> Option<String> {
        self.0 += 1;
        Some(AWKWARD.to_owned())
    }
}

struct Echo;
impl Rewrite for Echo {
    fn uri(&mut self, uri: &str, _: Use) -> Option<String> {
        Some(uri.to_owned())
    }
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

fn line_end(line: &[u8]) -> usize {
    line.iter().rev().take_while(|&&b| b == b'\n' || b == b'\r').count()
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

fn hls(data: &[u8]) {
    let mut keep = Keep(Vec::new());
    assert!(rewrite(Format::Hls, data, &mut keep) == data, "kept URIs changed the playlist");
    assert!(rewrite(Format::Hls, data, &mut Echo) == data, "URIs given back changed the playlist");

    let mut awkward = Awkward(0);
    let out = rewrite(Format::Hls, data, &mut awkward);
    assert_eq!(awkward.0, keep.0.len(), "the offers depend on the answers");
    let (before, after) = (lines(data), lines(&out));
    assert_eq!(before.len(), after.len(), "lines added or lost");
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b == a {
            continue;
        }
        let b = if i == 0 { b.strip_prefix(BOM).unwrap_or(b) } else { b };
        assert!(!b.starts_with(b"#"), "a tag line changed: {b:?} -> {a:?}");
        assert!(count(a, AWKWARD.as_bytes()) > 0, "changed, but not to the value: {b:?} -> {a:?}");
        assert_eq!(line_end(b), line_end(a), "a line ending changed: {b:?} -> {a:?}");
    }
}

fn dash(data: &[u8]) {
    let mut keep = Keep(Vec::new());
    assert!(rewrite(Format::Dash, data, &mut keep) == data, "kept URIs changed the MPD");

    let mut awkward = Awkward(0);
    let out = rewrite(Format::Dash, data, &mut awkward);
    assert_eq!(awkward.0, keep.0.len(), "the offers depend on the answers");
    let raw = AWKWARD.as_bytes();
    assert!(count(&out, raw) <= count(data, raw), "a value written unescaped");
    assert!(count(&out, b"<") <= count(data, b"<"), "a new tag written");

    // Given back as offered, the output offers the same URIs when read
    // again (blanks around a BaseURL's decoded text aside: they are trimmed
    // before it is decoded).
    if keep.0.iter().all(|u| u.trim() == u) {
        let echoed = rewrite(Format::Dash, data, &mut Echo);
        let mut again = Keep(Vec::new());
        rewrite(Format::Dash, &echoed, &mut again);
        assert_eq!(again.0, keep.0, "read back, the MPD offers other URIs");
    }
}

fuzz_target!(|data: &[u8]| {
    hls(data);
    dash(data);
});
