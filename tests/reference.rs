//! `docs/reference.md`, checked against the code and the test vectors so
//! that it cannot drift: its worked examples are recomputed (HMAC-SHA256
//! here, and tollgate's own signers) and must give the vectors' strings to
//! sign, signatures, URLs and cookies; its table of answers must hold
//! exactly the codes and statuses tollgate answers with; its metrics table
//! exactly the families, types, labels and label values tollgate registers;
//! its commands section exactly the commands and options of the binary.
//! The README must point to it, never to the old external contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode};
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::Value;
use tollgate::auth::keys::HmacKey;
use tollgate::auth::kinds::exchanged_cookie::{AcceptedKeys, DEFAULT_NAME, ExchangedCookies};
use tollgate::auth::kinds::signed_url;
use tollgate::auth::{AuthError, Carrier, Denial, Scope, query};
use tollgate::metrics::{
    DEFAULT_ROUTE_SERIES, Metrics, OTHER, Outcome, RouteProfile, UNMATCHED, UpstreamErrorKind, UseResult,
};
use tollgate::proxy::answers::{ManifestRefusal, Rejection, ResponseBody};
use tollgate::tools::{SignRequest, sign};
use tollgate::upstream::UpstreamError;
use tollgate::upstream::s3::{S3Error, classify_error};

// ---- Reading the document ----

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn reference() -> String {
    read("docs/reference.md")
}

/// The text under the heading `## {title}`, up to the next `## ` heading.
fn section(doc: &str, title: &str) -> String {
    let heading = format!("## {title}\n");
    let start = doc.find(&heading).unwrap_or_else(|| panic!("reference has no section {title:?}")) + heading.len();
    let rest = &doc[start..];
    rest.find("\n## ").map_or(rest, |end| &rest[..end]).to_owned()
}

/// The bodies of the code blocks tagged ```` ```text <tag> ````, in order.
fn blocks(doc: &str, tag: &str) -> Vec<String> {
    let opening = format!("```text {tag}");
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line == opening {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            out.push(body.join("\n"));
        }
    }
    out
}

/// An example block's `name: value` lines.
type Fields = BTreeMap<String, String>;

fn fields(block: &str) -> Fields {
    block
        .lines()
        .map(|l| l.split_once(':').unwrap_or_else(|| panic!("not `name: value`: {l:?}")))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).unwrap_or_else(|| panic!("example has no {name:?} line: {fields:?}"))
}

/// An optional field: absent or empty is `None`.
fn optional<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A string to sign as the reference writes it: a visible `\n` ends each
/// line that is followed by a newline.
fn string_to_sign(block: &str) -> String {
    let lines: Vec<&str> = block.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        match line.strip_suffix("\\n") {
            Some(text) => {
                out.push_str(text);
                out.push('\n');
            }
            None => {
                assert_eq!(i + 1, lines.len(), "only the last line may lack its visible \\n: {block:?}");
                out.push_str(line);
            }
        }
    }
    out
}

/// The rows of the first table whose header starts with `| {first} |`,
/// each as its trimmed cells.
fn table(text: &str, first: &str) -> Vec<Vec<String>> {
    let header = format!("| {first} |");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&header));
    assert!(lines.next().is_some(), "no table with a {first:?} column");
    lines.skip(1).take_while(|l| l.starts_with('|')).map(cells).collect()
}

/// The cells of a table row, split at every `|` but an escaped `\|`.
fn cells(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in row.trim().chars() {
        match c {
            '|' if !escaped => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
        escaped = c == '\\';
    }
    // The row starts and ends with `|`: drop the empty ends.
    out.pop();
    out.remove(0);
    out.iter().map(|c| c.trim().to_owned()).collect()
}

/// The `code` spans of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The one code span a cell holds (a code, a metric name, a command).
fn only_span(cell: &str) -> String {
    let spans = code_spans(cell);
    assert_eq!(spans.len(), 1, "expected one `code` span in {cell:?}");
    spans[0].clone()
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

// ---- Recomputing the examples ----

#[test]
fn the_shortest_secret_is_the_codes() {
    let flat = reference().split_whitespace().collect::<Vec<_>>().join(" ");
    let floor = tollgate::auth::keys::MIN_SECRET_LEN;
    assert!(flat.contains(&format!("must be at least {floor} bytes")), "the reference states another minimum");
}

fn vectors(file: &str) -> Vec<Value> {
    serde_json::from_str(&read(&format!("tests/vectors/{file}"))).unwrap()
}

/// The vector whose `key` is `value`.
fn vector<'a>(all: &'a [Value], key: &str, value: &str) -> &'a Value {
    all.iter().find(|v| v[key] == value).unwrap_or_else(|| panic!("no vector with {key} = {value:?}"))
}

fn text<'a>(vector: &'a Value, key: &str) -> &'a str {
    vector[key].as_str().unwrap_or_else(|| panic!("vector has no string {key}: {vector}"))
}

fn from_hex(hex: &str) -> Vec<u8> {
    let pairs = hex.as_bytes().chunks(2).map(|pair| std::str::from_utf8(pair).unwrap());
    pairs.map(|pair| u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("not hex: {hex}"))).collect()
}

/// The example's key: its text, which its hex form must spell too.
fn key(fields: &Fields) -> Vec<u8> {
    let text = field(fields, "key (text)").as_bytes().to_vec();
    assert_eq!(from_hex(field(fields, "key (hex)")), text, "the key's hex and text forms differ");
    text
}

/// base64url(HMAC-SHA256(key, text)), computed here rather than by tollgate.
fn hmac_sig(key: &[u8], text: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), text.as_bytes()))
}

/// The example, string-to-sign and result blocks of one kind, side by side.
fn examples(doc: &str, kind: &str) -> Vec<(Fields, String, Fields)> {
    let inputs = blocks(doc, &format!("{kind}-example"));
    let signed = blocks(doc, &format!("{kind}-string-to-sign"));
    let results = blocks(doc, &format!("{kind}-result"));
    assert!(!inputs.is_empty(), "reference has no {kind} example");
    assert_eq!((inputs.len(), signed.len()), (results.len(), results.len()), "{kind}: blocks do not pair up");
    inputs.iter().zip(&signed).zip(&results).map(|((i, s), r)| (fields(i), string_to_sign(s), fields(r))).collect()
}

#[test]
fn signed_url_examples_reproduce_their_vectors() {
    let all = vectors("signed-url.json");
    for (input, to_sign, result) in examples(&reference(), "signed-url") {
        let url = field(&result, "url");
        let v = vector(&all, "request_target", url);
        let key = key(&input);
        assert_eq!(key, text(v, "secret").as_bytes(), "{url}: not the vector's key");
        assert_eq!(to_sign, text(v, "string_to_sign"), "{url}: string to sign");

        // The fields, put together by tollgate's own rules, give that string.
        let (method, exp, path, query) =
            (field(&input, "method"), field(&input, "exp"), field(&input, "path"), field(&input, "query"));
        let (kid, prefix) = (optional(&input, "kid"), optional(&input, "prefix"));
        let canonical = query::canonical(query).unwrap();
        let built = signed_url::string_to_sign(method, exp, kid.unwrap_or(""), prefix, path, &canonical);
        assert_eq!(built, to_sign, "{url}: the example's fields sign another string");

        let sig = field(&result, "sig");
        assert_eq!(hmac_sig(&key, &to_sign), sig, "{url}: HMAC of the string to sign");
        assert_eq!(sig, text(v, "sig"));

        let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        let exp = exp.parse().unwrap();
        let request = SignRequest { target: &target, method, exp, kid, prefix, path_token: None };
        assert_eq!(sign(&key, &request).unwrap(), url, "tollgate sign gives another URL");
    }
}

#[test]
fn path_token_example_reproduces_its_vector() {
    let all = vectors("path-token.json");
    for (input, to_sign, result) in examples(&reference(), "path-token") {
        let url = field(&result, "url");
        let v = vector(&all, "request_target", url);
        let key = key(&input);
        assert_eq!(key, text(v, "secret").as_bytes(), "{url}: not the vector's key");
        assert_eq!(to_sign, text(v, "string_to_sign"), "{url}: string to sign");
        let (marker, prefix, kid) = (field(&input, "marker"), field(&input, "prefix"), optional(&input, "kid"));
        assert_eq!((marker, prefix), (text(v, "marker"), text(v, "granted_prefix")));

        let sig = field(&result, "sig");
        assert_eq!(hmac_sig(&key, &to_sign), sig, "{url}: HMAC of the string to sign");
        assert_eq!(sig, text(v, "sig"));

        let target = format!("{prefix}{}", field(&input, "rest"));
        let exp = field(&input, "exp").parse().unwrap();
        let request =
            SignRequest { target: &target, method: "GET", exp, kid, prefix: Some(prefix), path_token: Some(marker) };
        assert_eq!(sign(&key, &request).unwrap(), url, "tollgate sign --path-token gives another URL");
    }
}

#[test]
fn cookie_example_reproduces_its_vector() {
    let all = vectors("exchanged-cookie.json");
    let mut seen = 0;
    for (input, to_sign, result) in examples(&reference(), "cookie") {
        let value = field(&result, "value");
        let v = vector(&all, "cookie_value", value);
        let key = key(&input);
        assert_eq!(key, text(v, "secret").as_bytes(), "not the vector's cookie key");
        assert_eq!(to_sign, text(v, "string_to_sign"), "string to sign");
        assert_eq!(field(&result, "name"), text(v, "cookie_name"));

        let (route, verified_by, mode, scope, exp) = (
            field(&input, "route"),
            field(&input, "verified by"),
            field(&input, "mode"),
            field(&input, "scope"),
            field(&input, "exp"),
        );
        // The value and the name, assembled as the reference describes them.
        let sig = hmac_sig(&key, &to_sign);
        let assembled =
            format!("{exp}.{mode}.{}.{}.{sig}", URL_SAFE_NO_PAD.encode(scope), URL_SAFE_NO_PAD.encode(verified_by));
        assert_eq!(assembled, value, "the cookie value's parts");
        let digest = digest::digest(&digest::SHA256, format!("{route}\n{mode}\n{scope}").as_bytes());
        let hex: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("{DEFAULT_NAME}_{hex}"), field(&result, "name"), "the cookie's name");

        // And as tollgate mints them.
        let exchange = ExchangedCookies {
            key: Arc::new(HmacKey::new("cookies", &key)),
            name: DEFAULT_NAME.into(),
            route: route.into(),
            prefix: "/".into(),
            accepted: Arc::new(AcceptedKeys::default()),
        };
        let grant = match mode {
            "p" => Scope::Prefix(scope.into()),
            _ => Scope::Path(scope.into()),
        };
        assert_eq!(exchange.mint(&grant, verified_by, exp.parse().unwrap()), value, "tollgate mints another value");
        assert_eq!(exchange.cookie_name(&grant), field(&result, "name"), "tollgate names it otherwise");
        seen += 1;
    }
    assert!(seen > 0);
}

// ---- Answers ----

/// Every carrier, and none.
fn carriers() -> Vec<Option<Carrier>> {
    // Fails to compile when a carrier is added: list it here too.
    let _ = |c: Carrier| match c {
        Carrier::SignedUrl
        | Carrier::Header
        | Carrier::Query
        | Carrier::Cookie
        | Carrier::PathToken
        | Carrier::CustomHeader => (),
    };
    let all = [
        Carrier::SignedUrl,
        Carrier::Header,
        Carrier::Query,
        Carrier::Cookie,
        Carrier::PathToken,
        Carrier::CustomHeader,
    ];
    std::iter::once(None).chain(all.map(Some)).collect()
}

/// Every refusal of a credential: each error, from each carrier, on
/// routes with and without bearer tokens.
fn auth_rejections() -> Vec<Rejection> {
    let mut out = Vec::new();
    for error in AuthError::ALL {
        for carrier in carriers() {
            for bearer in [true, false] {
                out.push(Rejection::Auth { denial: Denial { error, carrier }, bearer });
            }
        }
    }
    out
}

/// Every answer tollgate gives by itself.
fn rejections() -> Vec<Rejection> {
    // Fails to compile when a kind of answer is added: list it below too.
    let _ = |r: &Rejection| match r {
        Rejection::NotNormal
        | Rejection::UriTooLong
        | Rejection::HeadersTooLarge
        | Rejection::NoRoute
        | Rejection::MethodNotAllowed(_)
        | Rejection::Auth { .. }
        | Rejection::TooLarge
        | Rejection::UnsupportedMediaType
        | Rejection::LengthRequired
        | Rejection::Relayed { .. }
        | Rejection::Upstream(
            UpstreamError::Failed(_)
            | UpstreamError::Timeout
            | UpstreamError::BodyTooLarge
            | UpstreamError::ClientAborted
            | UpstreamError::Relayed { .. },
        )
        | Rejection::Manifest(ManifestRefusal::TooLarge | ManifestRefusal::Encoded) => (),
    };
    let mut out = vec![
        Rejection::NotNormal,
        Rejection::UriTooLong,
        Rejection::HeadersTooLarge,
        Rejection::NoRoute,
        Rejection::MethodNotAllowed(HeaderValue::from_static("GET, HEAD")),
        Rejection::TooLarge,
        Rejection::UnsupportedMediaType,
        Rejection::LengthRequired,
        Rejection::Upstream(UpstreamError::Timeout),
        Rejection::Upstream(UpstreamError::BodyTooLarge),
        Rejection::Upstream(UpstreamError::ClientAborted),
        Rejection::Manifest(ManifestRefusal::TooLarge),
        Rejection::Manifest(ManifestRefusal::Encoded),
    ];
    out.extend(UpstreamErrorKind::ALL.map(|kind| Rejection::Upstream(UpstreamError::Failed(kind))));
    out.extend(auth_rejections());
    // The object store's refusals, retold.
    let refusals: [(u16, &str); 6] = [
        (404, ""),
        (412, ""),
        (416, ""),
        (411, ""),
        (400, "<Error><Code>EntityTooLarge</Code></Error>"),
        (400, "<Error><Code>InvalidArgument</Code></Error>"),
    ];
    for (status, body) in refusals {
        if let S3Error::Client(status, code) = classify_error(StatusCode::from_u16(status).unwrap(), body.as_bytes()) {
            out.push(Rejection::Relayed { status, code, content_range: None });
        }
    }
    out
}

#[test]
fn answers_table_holds_every_code_with_its_statuses() {
    let mut expected: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for r in rejections() {
        let (status, code) = r.status_and_code();
        expected.entry(code.to_owned()).or_default().insert(status.as_u16());
    }
    // Every code the object store's refusals can be retold with is among them.
    let s3 = read("src/upstream/s3.rs");
    let s3 = s3.split("#[cfg(test)]").next().unwrap();
    for piece in s3.split("S3Error::Client(StatusCode::").skip(1) {
        let code = piece.split('"').nth(1).unwrap();
        assert!(expected.contains_key(code), "rejections() misses the object store's {code}");
    }
    let mut documented: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for row in table(&section(&reference(), "Answers"), "code") {
        let statuses = row[1].split(" / ").map(|s| s.parse().unwrap_or_else(|_| panic!("status {s:?}"))).collect();
        assert!(documented.insert(only_span(&row[0]), statuses).is_none(), "{} listed twice", row[0]);
    }
    assert_eq!(documented, expected, "docs/reference.md's answers (left) differ from tollgate's (right)");
}

/// The status line, headers and body of an answer as the reference writes it.
fn written_answer(block: &str) -> (String, BTreeSet<(String, String)>, String) {
    let (head, body) = block.split_once("\n\n").expect("a blank line between head and body");
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines.map(|l| l.split_once(": ").unwrap()).map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
    (status, headers, body.to_owned())
}

#[test]
fn answer_example_is_what_tollgate_sends() {
    let doc = reference();
    let [block] = &blocks(&doc, "answer-example")[..] else { panic!("expected one answer-example block") };
    let (status_line, headers, body) = written_answer(block);
    // A request without a credential on a route that accepts bearer tokens.
    let denial = Denial { error: AuthError::MissingCredential, carrier: None };
    let answer = Rejection::Auth { denial, bearer: true }.into_response();
    let status = answer.status();
    assert_eq!(status_line, format!("HTTP/1.1 {} {}", status.as_u16(), status.canonical_reason().unwrap()));
    let sent: BTreeSet<(String, String)> =
        answer.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    assert_eq!(headers, sent, "headers");
    let ResponseBody::Full(Some(bytes)) = answer.into_body() else { panic!("an answer of tollgate's has a body") };
    assert_eq!(format!("{body}\n"), String::from_utf8(bytes.to_vec()).unwrap(), "body");
}

#[test]
fn www_authenticate_table_holds_every_value_sent() {
    let sent: BTreeSet<String> = auth_rejections()
        .into_iter()
        .filter_map(|r| r.into_response().headers().get(http::header::WWW_AUTHENTICATE).cloned())
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let documented: BTreeSet<String> =
        table(&section(&reference(), "Answers"), "answer").iter().map(|row| only_span(&row[1])).collect();
    assert_eq!(documented, sent, "WWW-Authenticate values: documented (left), sent (right)");
}

// ---- Metrics ----

/// Every family name `src/metrics.rs` registers (its string literals
/// `"tollgate_..."` outside its tests).
fn families_in_source() -> BTreeSet<String> {
    let source = read("src/metrics.rs");
    let code = source.split("#[cfg(test)]").next().unwrap();
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("tollgate_") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// A registry after every family has been used once: a route that can
/// count everything, unmatched requests, a use-limited route, a key set.
fn exercised() -> Vec<MetricFamily> {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(registry.clone()).unwrap();
    let everything =
        RouteProfile { codes: &AuthError::CODES, reasons: (1 << AuthError::CODES.len()) - 1, object_store: true };
    metrics.route("media", everything, false).outcome(Outcome::Forwarded).inc();
    metrics.unmatched().outcome(Outcome::NoRoute).inc();
    metrics.use_counters("media").get(UseResult::FirstUse).inc();
    let shared = metrics.share_counters("media");
    shared.get(true).inc();
    shared.get(false).inc();
    metrics.streams_in_use("media").inc();
    metrics.jwks_fetches.with_label_values(&["idp", "ok"]).inc();
    metrics.jwks_age.with_label_values(&["idp"]).set(1);
    registry.gather()
}

/// The metrics table: name → (type, label names, last cell).
fn metrics_table() -> BTreeMap<String, (String, BTreeSet<String>, String)> {
    let mut out = BTreeMap::new();
    for row in table(&section(&reference(), "Metrics"), "metric") {
        let labels = code_spans(&row[2]).into_iter().collect();
        let entry = (row[1].clone(), labels, row[3].clone());
        assert!(out.insert(only_span(&row[0]), entry).is_none(), "{} listed twice", row[0]);
    }
    out
}

fn kind(family: &MetricFamily) -> &'static str {
    match family.get_field_type() {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    }
}

/// Label name → the values a family's series carry.
fn label_values(family: &MetricFamily) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for metric in family.get_metric() {
        for pair in metric.get_label() {
            out.entry(pair.name().to_owned()).or_default().insert(pair.value().to_owned());
        }
    }
    out
}

#[test]
fn metrics_table_names_every_family_registered() {
    let documented: BTreeSet<String> = metrics_table().into_keys().collect();
    assert_eq!(documented, families_in_source(), "metric families: documented (left), in src/metrics.rs (right)");
}

#[test]
fn metrics_table_gives_each_family_its_type_and_labels() {
    let table = metrics_table();
    let families = exercised();
    let gathered: BTreeSet<String> = families.iter().map(|f| f.name().to_owned()).collect();
    assert_eq!(gathered, families_in_source(), "exercised() must use every family once");
    for family in &families {
        let (kind_written, labels, _) = &table[family.name()];
        assert_eq!(kind_written, kind(family), "type of {}", family.name());
        let names: BTreeSet<String> = label_values(family).into_keys().collect();
        assert_eq!(labels, &names, "labels of {}", family.name());
    }
}

#[test]
fn metrics_table_lists_every_label_value() {
    // Labels whose values come from the configuration or the build.
    const OPEN: [&str; 3] = ["route", "keyset", "version"];
    let table = metrics_table();
    let answers = section(&reference(), "Answers");
    for family in exercised() {
        let name = family.name();
        let (_, _, meaning) = &table[name];
        let listed: BTreeSet<String> = code_spans(meaning).into_iter().collect();
        for (label, values) in label_values(&family) {
            for value in values {
                match (name, label.as_str()) {
                    (_, l) if OPEN.contains(&l) => {}
                    // JWKS results are the key-set fetcher's, given here by the test.
                    ("tollgate_jwks_fetches_total", "result") => {}
                    ("tollgate_auth_denied_total", "reason") => {
                        assert!(answers.contains(&format!("| `{value}` |")), "reason {value} is not an answer's code")
                    }
                    _ => assert!(listed.contains(&value), "{name}: {label}={value} is not listed"),
                }
            }
        }
    }
}

#[test]
fn per_route_series_are_described_with_the_code_defaults() {
    let metrics = section(&reference(), "Metrics");
    for needle in [
        format!("route=\"{UNMATCHED}\""),
        format!("route=\"{OTHER}\""),
        format!("`metrics.route_series` (default {DEFAULT_ROUTE_SERIES})"),
        "`own_metrics: true`".to_owned(),
    ] {
        assert!(metrics.contains(&needle), "the Metrics section does not say {needle}");
    }
}

// ---- Commands ----

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate")).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "tollgate {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of a `--help` section (`Commands:`, `Options:`).
fn help_section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines().skip_while(|l| *l != title).skip(1).take_while(|l| !l.trim().is_empty()).collect()
}

fn commands_of_binary() -> BTreeSet<String> {
    let text = help(&[]);
    let words = help_section(&text, "Commands:").into_iter().filter_map(|l| l.split_whitespace().next());
    words.filter(|w| *w != "help").map(str::to_owned).collect()
}

#[test]
fn commands_table_lists_every_command() {
    let documented: BTreeSet<String> =
        table(&section(&reference(), "Commands"), "command").iter().map(|row| only_span(&row[0])).collect();
    assert_eq!(documented, commands_of_binary(), "commands: documented (left), `tollgate --help` (right)");
}

/// The long options written in the first column of the tables under
/// `### \`tollgate {command}\``.
fn documented_options(commands: &str, command: &str) -> BTreeSet<String> {
    let heading = format!("### `tollgate {command}`\n");
    let start = commands.find(&heading).unwrap_or_else(|| panic!("no heading {heading:?}")) + heading.len();
    let rest = &commands[start..];
    let sub = rest.find("\n### ").map_or(rest, |end| &rest[..end]);
    let first_cells = sub.lines().filter(|l| l.starts_with("| `-")).map(|l| cells(l).remove(0));
    first_cells.flat_map(|cell| code_spans(&cell)).filter_map(|s| long_option(&s)).collect()
}

/// `--name` of `--name VALUE` (or of a help line's `-X, --name <V>`).
fn long_option(text: &str) -> Option<String> {
    text.split_whitespace().find(|w| w.starts_with("--")).map(|w| w.trim_end_matches(',').to_owned())
}

#[test]
fn command_options_are_documented() {
    let commands = section(&reference(), "Commands");
    for command in commands_of_binary() {
        let text = help(&[command.as_str()]);
        let options: BTreeSet<String> = help_section(&text, "Options:")
            .into_iter()
            .filter(|l| l.trim_start().starts_with('-'))
            .filter_map(long_option)
            .filter(|o| o != "--help" && o != "--version")
            .collect();
        assert_eq!(
            documented_options(&commands, &command),
            options,
            "options of `tollgate {command}`: documented (left), --help (right)"
        );
    }
}

// ---- The README ----

#[test]
fn readme_points_to_the_reference_not_to_spec() {
    let readme = read("README.md");
    let found: Vec<&str> = readme.lines().filter(|l| l.contains("SPEC")).collect();
    assert!(found.is_empty(), "README still refers to SPEC:\n{}", found.join("\n"));
    let top: String = readme.lines().take(15).collect::<Vec<_>>().join("\n");
    assert!(top.contains("](docs/reference.md)"), "README links to docs/reference.md near the top");
    assert!(!reference().contains("SPEC"), "the reference stands on its own");
}

/// The contract this project started from is not in the repository: no
/// file a user or contributor reads cites it (schema hover text, comments,
/// dashboards, alerts, scripts).
#[test]
fn no_shipped_file_cites_the_outside_spec() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> =
        ["src", "config", "deploy", "helm", "benches", "docs", "examples"].iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                for (n, line) in text.lines().enumerate() {
                    if line.contains("SPEC §") || line.contains("SPEC section") || line.contains("SPEC.md") {
                        found.push(format!("{}:{}: {line}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "cites SPEC:\n{}", found.join("\n"));
}

#[test]
fn links_into_the_reference_resolve() {
    let doc = reference();
    let anchors: BTreeSet<String> =
        doc.lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect();
    let readme = read("README.md");
    let from_readme = readme.split("](docs/reference.md#").skip(1);
    let from_doc = doc.split("](#").skip(1);
    let mut checked = 0;
    for link in from_readme.chain(from_doc) {
        let anchor = &link[..link.find(')').unwrap()];
        assert!(anchors.contains(anchor), "#{anchor} names no heading of docs/reference.md");
        checked += 1;
    }
    assert!(checked > 5, "expected links into the reference, found {checked}");
}
