//! The kustomize overlays and the deploy examples, validated rather than
//! just written: they build, pass Kubernetes schema validation, and ship
//! configs `tollgate check` accepts. No secret is committed: every key a
//! config names is generated here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/k8s.rs"]
mod k8s;

use std::collections::BTreeSet;
use std::process::Command;

use k8s::*;

#[test]
fn kustomize_overlays_build_validate_and_ship_checked_configs() {
    let listed: BTreeSet<String> = std::fs::read_dir(repo_path("deploy/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, OVERLAYS.iter().map(|o| o.0.to_owned()).collect(), "every overlay must be in OVERLAYS");

    for (overlay, expected) in OVERLAYS {
        let what = format!("overlay {overlay}");
        let dir = repo_path(&format!("deploy/overlays/{overlay}"));
        let built = run_ok(Command::new(kubectl()).arg("kustomize").arg(&dir));
        kube_validate(&built, &[], &what);
        let docs = docs(&built);

        // The config it ships is config/<example>, byte for byte, and passes check.
        let (configmap, config_text) = configmap_entry(&docs, "tollgate.yaml");
        assert_eq!(config_text, read(expected), "{what}: tollgate.yaml must be a copy of {expected}");
        assert_check_passes(&config_text, &what);
        let config = yaml(&config_text);

        let deploy = one(&docs, "Deployment");
        assert_secure_pod(deploy, &what);
        assert_tollgate_wiring(deploy, &config, &what);
        assert_service(one(&docs, "Service"), deploy, &what);
        assert_pdb(one(&docs, "PodDisruptionBudget"), deploy, &what);
        assert!(
            of_kind(&docs, "Secret").is_empty(),
            "{what}: secrets are created out of band, never generated from git"
        );

        // Hot-reloaded config keeps a fixed name; the volume uses it.
        let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        let sources = &volumes.iter().find(|v| v["name"] == "tollgate").unwrap()["projected"]["sources"];
        assert_eq!(sources[0]["configMap"]["name"], name(configmap), "{what}");
        assert!(name(configmap).starts_with("tollgate-config"), "{what}");
        assert!(
            !name(configmap).trim_start_matches("tollgate-config").contains(|c: char| c.is_ascii_digit()),
            "{what}: no hash suffix on the hot-reloaded ConfigMap"
        );
        if let Some(_nginx) = container(deploy, "nginx") {
            let (nginx_cm, nginx_conf) = configmap_entry(&docs, "nginx.conf");
            assert_nginx_wiring(deploy, &nginx_conf, &config, &what);
            assert_ne!(
                name(nginx_cm),
                "tollgate-nginx",
                "{what}: nginx's ConfigMap is hash-named so a change rolls the pods"
            );
            // The same nginx config the chart renders.
            let chart_docs = self::docs(&render_chart("", &[]));
            assert_eq!(
                nginx_conf.trim_end(),
                configmap_entry(&chart_docs, "nginx.conf").1.trim_end(),
                "{what}: nginx.conf differs from the chart's"
            );
        }
    }
}

#[test]
fn config_examples_pass_check_and_need_their_secrets() {
    let mut found = 0;
    for entry in std::fs::read_dir(repo_path("config")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".yaml") || file == "tollgate.yaml" {
            continue; // tests/cli.rs checks the reference config
        }
        found += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_check_passes(&text, &file);
        // check really reads the secrets: without them it refuses.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tollgate.yaml"), &text).unwrap();
        let out = run(Command::new(BIN).arg("check").arg("--config").arg(dir.path().join("tollgate.yaml")));
        assert_eq!(out.code, 1, "{file}: check passed without its key files:\n{}", out.all());
        assert!(out.all().contains("keys/"), "{file}: {}", out.all());
    }
    assert!(found >= 2, "config/ examples: {found}");
}

#[test]
fn backend_signer_example_is_a_valid_deployment_using_the_shared_secret() {
    let text = read("deploy/examples/backend-signer.yaml");
    kube_validate(&text, &[], "backend-signer");
    let docs = docs(&text);
    let deploy = one(&docs, "Deployment");
    assert_secure_pod(deploy, "backend-signer");
    let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let keys = volumes.iter().find(|v| v["secret"].is_object()).unwrap();
    let base = read("deploy/base/kustomization.yaml") + &read("deploy/base/deployment.yaml");
    let secret = keys["secret"]["secretName"].as_str().unwrap();
    assert!(base.contains(&format!("name: {secret}")), "the signer mounts tollgate's Secret {secret}");
    assert_eq!(keys["secret"]["items"].as_array().unwrap().len(), 1, "only the signing key, not S3 credentials");
    assert!(configmap_entry(&docs, "sign.py").1.contains("TOLLGATE-HMAC-SHA256"));
}

#[test]
fn prometheus_scrape_config_is_valid_and_targets_the_admin_port() {
    let text = read("deploy/prometheus/scrape-config.yaml");
    let config = yaml(&text);
    let job = &config["scrape_configs"][0];
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
    let keeps: Vec<(&str, &str)> = job["relabel_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "keep")
        .map(|r| (r["source_labels"][0].as_str().unwrap(), r["regex"].as_str().unwrap()))
        .collect();
    assert!(keeps.contains(&("__meta_kubernetes_pod_container_port_name", "admin")), "{keeps:?}");
    assert!(keeps.contains(&("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true")), "{keeps:?}");
    assert!(keeps.contains(&("__meta_kubernetes_pod_label_app_kubernetes_io_name", "tollgate")), "{keeps:?}");
    // The port it keeps is the one the chart and the base name "admin".
    let chart_docs = docs(&render_chart("", &[]));
    let deploy = one(&chart_docs, "Deployment");
    named_port(container(deploy, "tollgate").unwrap(), "admin");
    assert_eq!(deploy["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"], "tollgate");

    // Debian's promtool is built without Kubernetes service discovery, so
    // it checks everything else: the same file with a static target.
    let promtool = common::require("promtool", &["/usr/bin/promtool"]);
    let sd = "    kubernetes_sd_configs:\n      - role: pod\n";
    assert!(text.contains(sd), "the scrape job discovers pods");
    let dir = tempfile::tempdir().unwrap();
    let static_sd = "    static_configs:\n      - targets: [\"127.0.0.1:9090\"]\n";
    let copy = common::write_file(dir.path(), "prometheus.yml", text.replace(sd, static_sd).as_bytes());
    let out = run(Command::new(&promtool).args(["check", "config"]).arg(&copy));
    assert_eq!(out.code, 0, "promtool check config:\n{}", out.all());
    let broken = common::write_file(
        dir.path(),
        "broken.yml",
        text.replace(sd, static_sd).replace("action: keep", "action: kept").as_bytes(),
    );
    assert_ne!(
        run(Command::new(&promtool).args(["check", "config"]).arg(&broken)).code,
        0,
        "promtool accepts anything"
    );
}
