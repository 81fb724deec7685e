//! Per-route series stay bounded with many routes (README, "Per-route
//! series stay bounded"): none before a route's first request, at most
//! `metrics.route_series` routes under their own label, the rest under
//! `route="(other)"`, and `own_metrics: true` labelled whatever the count.
//! Structural bounds only: the sizes and RSS are in `benches/scale.sh`.

mod common;

use std::collections::BTreeSet;

use common::{Http, Nginx, Tollgate};

const ROUTES: usize = 10_000;

/// A table of `ROUTES` public routes `/t<i>/` over nginx; the last one keeps
/// its own label.
async fn start(nginx: &Nginx, route_series: usize) -> Tollgate {
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nworkers: 1\nupstreams: {{ files: {{ url: \"http://{}\" }} }}\n\
         metrics: {{ route_series: {route_series} }}\nlog: {{ access_log: false }}\nreload: {{ watch: false }}\nroutes:\n",
        nginx.addr
    );
    for i in 0..ROUTES {
        let own = if i == ROUTES - 1 { ", own_metrics: true" } else { "" };
        yaml.push_str(&format!("  - {{ name: t{i}, prefix: /t{i}/, upstream: files, auth: none{own} }}\n"));
    }
    Tollgate::start(&yaml, nginx.dir.path()).await
}

/// The `route` label values of `tollgate_requests_total`, and its lines.
fn route_labels(text: &str) -> (BTreeSet<String>, usize) {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("tollgate_requests_total{")).collect();
    let labels = lines
        .iter()
        .filter_map(|l| l.split("route=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    (labels, lines.len())
}

fn nginx() -> Nginx {
    Nginx::start_with(&[], "location ~ ^/t[0-9]+/ { return 200 \"ok\"; }")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_routes_export_no_route_series_before_a_request() {
    let nginx = nginx();
    let tg = start(&nginx, 200).await;
    let text = Http::h1().get(&tg.admin_url("/metrics")).await.text();
    let (labels, _) = route_labels(&text);
    assert!(labels.is_empty(), "series before any request: {labels:?}");
    assert!(!text.contains("route=\"t"), "a route label before any request");
    assert!(text.len() < 64 * 1024, "/metrics with {ROUTES} unused routes is {} bytes", text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_past_route_series_share_the_other_label() {
    let nginx = nginx();
    let tg = start(&nginx, 50).await;
    let http = Http::h1();
    // 100 routes used, in order: the first 50 get a label of their own.
    for i in 0..100 {
        assert_eq!(http.get(&tg.url(&format!("/t{i}/a"))).await.status, 200);
    }
    let text = http.get(&tg.admin_url("/metrics")).await.text();
    let (labels, _) = route_labels(&text);
    let own: BTreeSet<String> = (0..50).map(|i| format!("t{i}")).collect();
    let expected: BTreeSet<String> = own.iter().cloned().chain(["(other)".to_owned()]).collect();
    assert_eq!(labels, expected);
    let counts = common::metrics(&text);
    assert_eq!(counts[r#"tollgate_requests_total{outcome="forwarded",route="(other)"}"#], 50.0);
    assert_eq!(counts[r#"tollgate_requests_total{outcome="forwarded",route="t0"}"#], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_keeps_a_label_past_route_series() {
    let nginx = nginx();
    let tg = start(&nginx, 1).await;
    let http = Http::h1();
    for target in ["/t0/a", "/t1/a", &format!("/t{}/a", ROUTES - 1)] {
        assert_eq!(http.get(&tg.url(target)).await.status, 200);
    }
    let text = http.get(&tg.admin_url("/metrics")).await.text();
    let (labels, _) = route_labels(&text);
    let last = format!("t{}", ROUTES - 1);
    let expected: BTreeSet<String> = ["t0", "(other)", last.as_str()].into_iter().map(str::to_owned).collect();
    assert_eq!(labels, expected);
}
