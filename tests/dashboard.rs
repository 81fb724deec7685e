//! The Grafana dashboard (`deploy/grafana/tollgate.json`) and the alert
//! rules query what tollgate really exports. Every PromQL expression of the
//! dashboard (panel targets and the `label_values` of its variables) must
//! pass promtool's parser (as a recording rule), and every metric it names,
//! every label it filters or groups by, and every label value it compares
//! with `=` must appear on `/metrics` of a running tollgate (in-process, in
//! front of nginx, after a few requests on each route, since a route's
//! series appear with its first request, and a JWKS fetch that failed once
//! and then succeeded), so renaming a metric, a label or an outcome breaks
//! this test. Labels Prometheus adds while scraping (job, instance and the
//! ones deploy/prometheus/scrape-config.yaml sets) are allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Http, Nginx, Tollgate};
use serde_json::{Value, json};

const DASHBOARD: &str = "deploy/grafana/tollgate.json";

/// Metrics the alert rules may name before tollgate exports them (none now:
/// the store metrics of use limits and revocation are exported). The test fails once
/// one is exported, so an entry gets removed then.
const NOT_YET_EXPORTED: &[&str] = &[];

/// metric name → label name → values seen.
type Exposition = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Parses the Prometheus text format (names, labels and their values).
fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let labels = out.entry(name.to_owned()).or_default();
        let Some(body) = rest.strip_prefix('{') else { continue };
        // name="value" pairs; values may hold \" and \\ escapes.
        let mut chars = body.chars().peekable();
        loop {
            let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let label = label.trim_start_matches(',').trim().to_owned();
            if label.is_empty() || label.starts_with('}') {
                break;
            }
            assert_eq!(chars.next(), Some('"'), "bad exposition line: {line}");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.entry(label).or_default().insert(value);
        }
    }
    out
}

/// Labels a Prometheus scrape adds: job, instance, and the target labels
/// the project's scrape config sets.
fn target_labels() -> BTreeSet<String> {
    let text = std::fs::read_to_string(common::repo().join("deploy/prometheus/scrape-config.yaml")).unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut labels: BTreeSet<String> = ["job", "instance"].map(str::to_owned).into();
    for job in config["scrape_configs"].as_sequence().unwrap() {
        for relabel in job["relabel_configs"].as_sequence().into_iter().flatten() {
            if let Some(target) = relabel["target_label"].as_str().filter(|t| !t.starts_with("__")) {
                labels.insert(target.to_owned());
            }
        }
    }
    labels
}

/// tollgate with a signed-URL route and a JWT route whose keys come from a
/// JWKS URL (served by nginx: missing at first, so one fetch fails, then
/// present), after a forwarded request, a refused one and a cached JWT
/// verdict. Returns what its admin listener's /metrics exposes.
async fn running_exposition() -> Exposition {
    let jwt_secret = common::random_secret();
    let jwk = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256",
        "k": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &jwt_secret)}]});
    let nginx = Nginx::start(&[("media/a.txt", b"a"), ("api/b.txt", b"b"), ("shared/c.txt", b"c")]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "bucket.ak", b"test-only-access-key");
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  idp: {{ jwks_url: "http://{n}/jwks/keys.json", required_for_ready: false }}
upstreams:
  nginx: {{ url: "http://{n}" }}
  bucket: {{ url: "http://127.0.0.1:9", s3: {{ bucket: media, region: us-east-1, access_key_file: bucket.ak, secret_key_file: bucket.ak }} }}
routes:
  - {{ name: media, prefix: /media/, upstream: nginx, auth: {{ signed_url: {{ keys: [media] }} }} }}
  - {{ name: bucket, prefix: /bucket/, upstream: bucket, auth: none }}
  - {{ name: api, prefix: /api/, upstream: nginx, auth: {{ jwt: {{ keys: [idp] }} }} }}
  - name: shared
    prefix: /shared/
    upstream: nginx
    auth: {{ signed_url: {{ keys: [media] }}, share_limit: {{ max_networks: 1, report_only: true }} }}
log: {{ access_log: false }}
"#,
        n = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    let http = Http::h1();
    let metrics = || async { http.get(&tg.admin_url("/metrics")).await.text() };

    // The first JWKS fetch fails (404); once the file is there the retry
    // (backoff from 1s) loads it.
    wait_for(&metrics, r#"tollgate_jwks_fetches_total{keyset="idp",result="error"}"#).await;
    let jwks_dir = nginx.dir.path().join("www/jwks");
    std::fs::create_dir_all(&jwks_dir).unwrap();
    std::fs::write(jwks_dir.join("keys.json"), jwk.to_string()).unwrap();
    wait_for(&metrics, r#"tollgate_jwks_last_success_timestamp_seconds{keyset="idp"}"#).await;

    let url = common::sign(&secret, "GET", "/media/a.txt", 300, None, None);
    assert_eq!(http.get(&tg.url(&url)).await.status, 200);
    assert_eq!(http.get(&tg.url(&url.replace("sig=", "sig=A"))).await.status, 403);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let claims = json!({"sub": "u", "exp": tollgate::auth::unix_now() + 300});
    let token = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&jwt_secret)).unwrap();
    for _ in 0..2 {
        let r = http.get_with(&tg.url("/api/b.txt"), &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(r.status, 200);
    }
    // One link from two client networks, past a report-only share limit.
    let shared = common::sign(&secret, "GET", "/shared/c.txt", 300, None, None);
    for from in ["127.0.1.2", "127.0.2.2"] {
        let client = Http::h1_from(from.parse().unwrap());
        assert_eq!(client.get(&tg.url(&shared)).await.status, 200);
    }
    // A route's series appear with its first request: an object-store
    // route (the one that can count kind="credentials"), here unreachable.
    assert_eq!(http.get(&tg.url("/bucket/x")).await.status, 502);
    parse_exposition(&metrics().await)
}

async fn wait_for<F, Fut>(metrics: &F, needle: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics().await.contains(needle) {
        assert!(Instant::now() < deadline, "/metrics never showed {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every PromQL expression of a dashboard, with where it is: panel targets
/// (also in collapsed rows) and `label_values(selector, label)` variables
/// (the label must then be on the selector's metric too: returned as a
/// grouping-like `by` check).
fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String, Option<String>)> {
    fn panels(list: &Value, out: &mut Vec<(String, String, Option<String>)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("panel {title:?} {}", target["refId"]), expr.to_owned(), None));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["definition"].as_str().unwrap();
        assert_eq!(var["query"]["query"], query, "variable {}: query and definition differ", var["name"]);
        let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).unwrap_or(query);
        let (selector, label) = inner.rsplit_once(',').unwrap_or_else(|| panic!("variable query {query}"));
        out.push((format!("variable {}", var["name"]), selector.trim().to_owned(), Some(label.trim().to_owned())));
    }
    out
}

/// Replaces Grafana's variables with values PromQL accepts: intervals by
/// 5m, the dashboard's own variables (used only in `=~` matchers) by `.*`.
fn substitute(expr: &str, variables: &[String]) -> String {
    let mut out = expr.to_owned();
    for interval in ["$__rate_interval", "$__interval", "$__range"] {
        out = out.replace(interval, "5m");
    }
    for name in variables {
        out = out.replace(&format!("${{{name}}}"), ".*").replace(&format!("${name}"), ".*");
    }
    assert!(!out.contains('$'), "unknown variable in {expr}");
    out
}

/// What `tests/py/promql_selectors.py` (a real PromQL parser) finds in each
/// expression.
fn analyse(exprs: &[String]) -> Vec<Value> {
    let mut child = Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("tests/py/promql_selectors.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tests/py/promql_selectors.py (tests/setup.sh installs promql-parser)");
    let input = serde_json::to_vec(exprs).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promql_selectors.py failed");
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// `promtool check rules` on the expressions as recording rules.
fn promtool_check(exprs: &[String]) -> Result<(), String> {
    let rules: Vec<Value> =
        exprs.iter().enumerate().map(|(i, e)| json!({"record": format!("dashboard:expr_{i}"), "expr": e})).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_file(
        dir.path(),
        "rules.yaml",
        serde_yaml_ng::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]})).unwrap().as_bytes(),
    );
    let promtool = common::require("promtool", &["/usr/bin/promtool"]);
    let out = Command::new(promtool).args(["check", "rules"]).arg(&file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && text.contains(&format!("SUCCESS: {} rules found", exprs.len())) {
        Ok(())
    } else {
        Err(text)
    }
}

/// Every problem of `exprs` (context, PromQL, label that a `label_values`
/// lists) against `exposed`: unparsable, unnamed selectors, metrics,
/// labels or `=` values that are not exported. `allowed_missing` metrics may
/// be absent.
fn problems(exprs: &[(String, String, Option<String>)], exposed: &Exposition, allowed_missing: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let texts: Vec<String> = exprs.iter().map(|e| e.1.clone()).collect();
    if let Err(text) = promtool_check(&texts) {
        found.push(format!("promtool check rules refused the expressions:\n{text}"));
    }
    let target = target_labels();
    let has_label = |metric: &str, label: &str| {
        target.contains(label) || exposed.get(metric).is_some_and(|labels| labels.contains_key(label))
    };
    for ((context, expr, listed), analysis) in exprs.iter().zip(analyse(&texts)) {
        if let Some(error) = analysis["error"].as_str() {
            found.push(format!("{context}: does not parse: {error}: {expr}"));
            continue;
        }
        for selector in analysis["selectors"].as_array().unwrap() {
            let Some(name) = selector["name"].as_str() else {
                found.push(format!("{context}: a selector without a metric name: {expr}"));
                continue;
            };
            if allowed_missing.contains(&name) {
                continue;
            }
            let Some(labels) = exposed.get(name) else {
                found.push(format!("{context}: {name} is not exported by tollgate"));
                continue;
            };
            for matcher in selector["matchers"].as_array().unwrap() {
                let (label, op, value) =
                    (matcher[0].as_str().unwrap(), matcher[1].as_str().unwrap(), matcher[2].as_str().unwrap());
                if !has_label(name, label) {
                    found.push(format!("{context}: {name} has no label {label}"));
                } else if op == "=" && !target.contains(label) && !labels[label].contains(value) {
                    found.push(format!("{context}: {name}{{{label}}} is never {value:?} (seen {:?})", labels[label]));
                }
            }
            if let Some(label) = listed
                && !has_label(name, label)
            {
                found.push(format!("{context}: lists label {label}, which {name} does not have"));
            }
        }
        for grouping in analysis["groupings"].as_array().unwrap() {
            let metrics: Vec<&str> = grouping["metrics"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            if metrics.iter().any(|m| allowed_missing.contains(m)) {
                continue;
            }
            for label in grouping["labels"].as_array().unwrap().iter().filter_map(Value::as_str) {
                if !metrics.iter().any(|m| has_label(m, label)) {
                    found.push(format!("{context}: groups by {label}, which none of {metrics:?} has"));
                }
            }
        }
    }
    found
}

fn load_dashboard(text: &str) -> (Value, Vec<(String, String, Option<String>)>) {
    let dashboard: Value = serde_json::from_str(text).expect("the dashboard is JSON");
    let variables: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    let exprs = dashboard_expressions(&dashboard)
        .into_iter()
        .map(|(context, expr, listed)| (context, substitute(&expr, &variables), listed))
        .collect();
    (dashboard, exprs)
}

/// The panels the issue asks for, each querying its metric the way its
/// title says, with a datasource variable so the import works anywhere.
#[test]
fn dashboard_has_the_operator_panels() {
    let text = std::fs::read_to_string(common::repo().join(DASHBOARD)).unwrap();
    let (dashboard, _) = load_dashboard(&text);
    let panels = dashboard["panels"].as_array().unwrap();
    let panel = |title: &str| -> &Value {
        panels.iter().find(|p| p["title"] == title).unwrap_or_else(|| panic!("no panel {title:?}"))
    };
    let exprs = |title: &str| -> String {
        panel(title)["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap()).collect()
    };
    for (title, needles) in [
        ("Requests by outcome", &["by (outcome)", "tollgate_requests_total"][..]),
        ("Denials by reason", &["by (reason)", "tollgate_auth_denied_total"]),
        ("Latency heatmap", &["by (le)", "tollgate_request_duration_seconds_bucket"]),
        ("Verification cache hit ratio", &[r#"tollgate_verify_cache_total{"#, r#"result="hit""#]),
        ("Upstream errors by kind", &["by (kind)", "tollgate_upstream_errors_total"]),
        ("JWKS age", &["time() -", "tollgate_jwks_last_success_timestamp_seconds"]),
        ("In-flight requests", &["tollgate_inflight_requests"]),
    ] {
        let text = exprs(title);
        for needle in needles {
            assert!(text.contains(needle), "{title}: {needle} not in {text}");
        }
    }
    let heatmap = panel("Latency heatmap");
    assert_eq!(heatmap["type"], "heatmap");
    assert_eq!(heatmap["targets"][0]["format"], "heatmap");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id {} twice", p["id"]);
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}: fixed datasource", p["title"]);
    }
    assert!(dashboard["templating"]["list"].as_array().unwrap().iter().any(|v| v["type"] == "datasource"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_parse_and_name_only_what_tollgate_exports() {
    let exposed = running_exposition().await;
    let text = std::fs::read_to_string(common::repo().join(DASHBOARD)).unwrap();
    let (_, exprs) = load_dashboard(&text);
    assert!(exprs.len() >= 15, "expressions found: {}", exprs.len());
    let found = problems(&exprs, &exposed, &[]);
    assert!(found.is_empty(), "{}", found.join("\n"));

    // The check has teeth: a renamed metric, a grouping label and a label
    // value that tollgate does not export are each reported, and so is
    // an expression promtool cannot parse.
    for (from, to, report) in [
        ("tollgate_inflight_requests", "tollgate_inflight", "tollgate_inflight is not exported"),
        ("by (outcome)", "by (outcomes)", "groups by outcomes"),
        (r#"result=\"hit\""#, r#"result=\"hits\""#, r#"is never "hits""#),
        (r#"outcome=\"denied\""#, r#"outcomes=\"denied\""#, "has no label outcomes"),
        ("sum by (kind) (rate(", "sum by (kind) (rate((", "does not parse"),
    ] {
        assert!(text.contains(from), "{from}");
        let (_, exprs) = load_dashboard(&text.replacen(from, to, 1));
        let found = problems(&exprs, &exposed, &[]).join("\n");
        assert!(found.contains(report), "renaming {from} to {to} went unnoticed:\n{found}");
    }
}

/// The alert rules name only exported metrics and labels too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_name_only_what_tollgate_exports() {
    let exposed = running_exposition().await;
    let text = std::fs::read_to_string(common::repo().join("deploy/prometheus/alerts.yaml")).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push((rule["alert"].as_str().unwrap().to_owned(), rule["expr"].as_str().unwrap().to_owned(), None));
        }
    }
    let found = problems(&exprs, &exposed, NOT_YET_EXPORTED);
    assert!(found.is_empty(), "{}", found.join("\n"));
    for name in NOT_YET_EXPORTED {
        assert!(
            !exposed.contains_key(*name),
            "{name} is exported now: remove it from NOT_YET_EXPORTED so the alerts are checked against it"
        );
        assert!(text.contains(name), "{name} is no longer used by the alerts");
    }
}
