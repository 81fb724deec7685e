//! A "pod on a laptop": nginx and tollgate on loopback as the default chart
//! wires them. The chart renders the manifests (only the ports and bind
//! address are set on the command line, to ephemeral loopback ones), and
//! each test runs the rendered containers' commands with the rendered
//! ConfigMaps. Substituted: the mount paths (/etc/tollgate,
//! /etc/nginx/tollgate, nginx's html root and /tmp become temporary
//! directories) and the Secret (generated here, as `secret.create=true`
//! would). One behaviour per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/k8s.rs"]
mod k8s;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::Http;
use k8s::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_answer_on_the_ports_the_kubelet_asks() {
    let lp = LaptopPod::ready().await;
    let tg = lp.tollgate_container();
    assert_eq!(named_port(tg, tg["readinessProbe"]["httpGet"]["port"].as_str().unwrap()), u64::from(lp.admin));
    assert_eq!(Http::h1().get(&lp.probe_url("livenessProbe")).await.status, 200, "liveness");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_port_serves_signed_urls_and_refuses_the_rest() {
    let lp = LaptopPod::ready().await;
    let (http, base) = (Http::h1(), lp.base());
    let signed = common::sign(&lp.key, "GET", "/media/hello.txt", 600, None, None);
    let ok = http.get(&format!("{base}{signed}")).await;
    let logs = format!("{}\n{}", lp.tollgate.log(), lp.nginx.log());
    assert_eq!((ok.status, ok.text().as_str()), (200, "hello from nginx\n"), "{logs}");
    let missing = http.get(&format!("{base}/media/hello.txt")).await;
    assert_eq!((missing.status, missing.code().as_str()), (401, "missing_credential"));
    let forged = common::sign(&common::random_secret(), "GET", "/media/hello.txt", 600, None, None);
    assert_eq!(http.get(&format!("{base}{forged}")).await.status, 403);
    let public = http.get(&format!("{base}/public/readme.txt")).await;
    assert_eq!(public.status, 404, "nginx has the file, but no route serves it without a credential");
    assert_eq!(http.get(&format!("{base}/docs/guide.txt")).await.status, 404, "no route yet");
}

/// The sign command NOTES.txt prints, with its key file fetched from the
/// Secret and its URL (a port-forward to the Service) pointed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_sign_command_makes_a_working_url() {
    let lp = LaptopPod::ready().await;
    let base = lp.base();
    let notes = render_notes("", &[]);
    let key_file = lp.mount.join("keys/media.key");
    let sign_args: Vec<String> = notes_sign_command(&notes)
        .into_iter()
        .map(|a| match a.as_str() {
            "media.key" => key_file.display().to_string(),
            url if url.starts_with("http://localhost:8080/") => url.replace("http://localhost:8080", &base),
            _ => a,
        })
        .collect();
    assert!(sign_args.iter().any(|a| a.starts_with(&base)), "{sign_args:?}");
    let cli_url = run_ok(Command::new(BIN).args(&sign_args));
    assert_eq!(Http::h1().get(cli_url.trim()).await.status, 200, "the URL NOTES.txt tells users to sign");
}

/// The example backend (deploy/examples/backend-signer.yaml), run as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_backend_signer_makes_working_urls() {
    let lp = LaptopPod::ready().await;
    let (http, base, pod) = (Http::h1(), lp.base(), lp.dir.path());
    let (_, sign_py) = configmap_entry(&docs(&read("deploy/examples/backend-signer.yaml")), "sign.py");
    std::fs::write(pod.join("sign.py"), sign_py).unwrap();
    let signer_port = common::free_port();
    let mut signer = Proc::spawn(
        Command::new(python())
            .arg(pod.join("sign.py"))
            .env("PORT", signer_port.to_string())
            .env("BIND", "127.0.0.1")
            .env("PUBLIC_BASE_URL", &base)
            .env("TOLLGATE_KEY_FILE", lp.mount.join("keys/media.key")),
        "backend-signer",
        pod.join("signer.log"),
    );
    assert!(signer.wait_for_port(format!("127.0.0.1:{signer_port}").parse().unwrap()), "backend-signer");
    let answer = http.get(&format!("http://127.0.0.1:{signer_port}/sign?path=/media/hello.txt&ttl=300")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let backend_url = serde_json::from_slice::<Value>(&answer.body).unwrap()["url"].as_str().unwrap().to_owned();
    assert!(backend_url.starts_with(&base), "{backend_url}");
    assert_eq!(http.get(&backend_url).await.status, 200, "a URL the example backend signed");
}

/// A scrape of the admin port, where the pod annotations point, counts
/// what the proxy answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_the_annotations_name_counts_the_requests() {
    let lp = LaptopPod::ready().await;
    let (http, base) = (Http::h1(), lp.base());
    let signed = common::sign(&lp.key, "GET", "/media/hello.txt", 600, None, None);
    for _ in 0..3 {
        assert_eq!(http.get(&format!("{base}{signed}")).await.status, 200);
    }
    assert_eq!(http.get(&format!("{base}/media/hello.txt")).await.status, 401);
    let forged = common::sign(&common::random_secret(), "GET", "/media/hello.txt", 600, None, None);
    assert_eq!(http.get(&format!("{base}{forged}")).await.status, 403);
    let metrics = http.get(&lp.scrape_url()).await;
    assert_eq!(metrics.status, 200);
    let samples = common::metrics(&metrics.text());
    let sample = |name: &str, labels: &[&str]| -> f64 {
        samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l)))
            .map(|(_, v)| v)
            .sum()
    };
    let text = metrics.text();
    assert_eq!(sample("tollgate_requests_total", &["route=\"media\"", "outcome=\"forwarded\""]), 3.0, "{text}");
    assert_eq!(sample("tollgate_requests_total", &["route=\"media\"", "outcome=\"denied\""]), 2.0, "{text}");
    assert_eq!(sample("tollgate_auth_denied_total", &["reason=\"missing_credential\""]), 1.0, "{text}");
    assert!(sample("tollgate_build_info", &[]) >= 1.0);
}

/// A ConfigMap edit and a key rotation, delivered the way the kubelet
/// updates a projected volume (atomic ..data swap, old data removed): hot
/// reload applies both without a restart, which is why they are left out
/// of the restart checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_edits_and_key_rotations_apply_without_a_restart() {
    let lp = LaptopPod::ready().await;
    let (http, base) = (Http::h1(), lp.base());
    let signed = common::sign(&lp.key, "GET", "/media/hello.txt", 600, None, None);
    let rotated = common::random_secret();
    let config2 =
        lp.config.replace("routes:\n", "routes:\n- name: docs\n  prefix: /docs/\n  upstream: files\n  auth: none\n");
    assert_ne!(config2, lp.config);
    project(&lp.mount, "gen2", &[("tollgate.yaml", config2.as_bytes()), ("keys/media.key", &rotated)]);
    std::fs::remove_dir_all(lp.mount.join("..gen1")).unwrap();
    wait_status(&http, &format!("{base}/docs/guide.txt"), 200, Duration::from_secs(15), "route added by reload").await;
    let new_url = common::sign(&rotated, "GET", "/media/hello.txt", 600, None, None);
    wait_status(&http, &format!("{base}{new_url}"), 200, Duration::from_secs(15), "rotated key").await;
    assert_eq!(http.get(&format!("{base}{signed}")).await.status, 403, "the old key is gone");
    let reloads = common::metrics(&http.get(&lp.scrape_url()).await.text());
    assert!(reloads["tollgate_config_reloads_total{result=\"ok\"}"] >= 1.0, "{reloads:?}");
    assert_eq!(reloads["tollgate_config_reloads_total{result=\"error\"}"], 0.0, "{}", lp.tollgate.log());
    let mut lp = lp;
    assert!(lp.tollgate.child.try_wait().unwrap().is_none(), "reloaded without a restart");
}

/// Pod termination: SIGTERM turns readiness off at once, requests are still
/// served during the grace period, then tollgate exits cleanly within
/// terminationGracePeriodSeconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_serves_the_grace_period_and_exits_in_time() {
    let mut lp = LaptopPod::ready().await;
    let (http, base) = (Http::h1(), lp.base());
    let signed = common::sign(&lp.key, "GET", "/media/hello.txt", 600, None, None);
    let deploy = one(&lp.docs, "Deployment");
    let period = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    let readiness = lp.probe_url("readinessProbe");
    let terminated = Instant::now();
    lp.tollgate.signal("-TERM");
    wait_status(&http, &readiness, 503, Duration::from_secs(1), "readiness after SIGTERM").await;
    assert_eq!(http.get(&format!("{base}{signed}")).await.status, 200, "served during shutdown.grace");
    let status = lp.tollgate.wait_exit(Duration::from_secs(period));
    assert!(status.success(), "tollgate exited with {status}:\n{}", lp.tollgate.log());
    assert!(terminated.elapsed() < Duration::from_secs(period), "exit within the grace period");
    assert!(!lp.tollgate.log().contains("panicked"), "{}", lp.tollgate.log());
}
