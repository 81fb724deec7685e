//! The Helm chart, validated rather than just written: Helm's own lint,
//! Kubernetes schema validation of what it renders, `tollgate check` and
//! the config schema on the rendered config, secure defaults, checksum
//! annotations, the sidecar include from a parent chart, the
//! PrometheusRule against promtool. One behaviour per test, each over every
//! values example (`CHART_CASES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/k8s.rs"]
mod k8s;

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine;

use k8s::*;

/// The schema validation is strict: a misspelt field (here the one that
/// makes the root filesystem read-only) fails it, as the API server would
/// refuse it.
#[test]
fn kubernetes_validate_rejects_a_misspelt_security_field() {
    let rendered = render_chart("", &[]);
    let typo = rendered.replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true");
    assert_ne!(typo, rendered);
    let out = run_with_stdin(
        Command::new(venv_tool(".venv/bin/kubernetes-validate")).args(["-k", KUBE_VERSIONS[0], "--strict", "-"]),
        Some(&typo),
    );
    assert_ne!(out.code, 0, "kubernetes-validate accepted a misspelt field:\n{}", out.all());
    assert!(out.all().contains("readOnlyRootFileSystem"), "{}", out.all());
}

#[test]
fn helm_lint_passes_for_default_values_and_every_example() {
    let mut examples: Vec<String> = std::fs::read_dir(chart().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "values examples: {examples:?}");
    let lint = |values: &[String]| {
        run(Command::new(python())
            .arg(repo_path("tests/py/helm_lint.py"))
            .arg(chart())
            .args(values)
            .env("HELM", helm())
            .env("HOME", std::env::temp_dir()))
    };
    let out = lint(&examples);
    let n = examples.len() + 1;
    assert_eq!(out.code, 0, "helm lint failed:\n{}", out.all());
    assert!(out.stdout.contains(&format!("{n} of {n} configurations passed")), "{}", out.all());

    // Errors fail: a schema violation, and a Secret that would not exist.
    let dir = tempfile::tempdir().unwrap();
    let typo = common::write_file(dir.path(), "typo.yaml", b"replicaCount: two\nreplicas: 2\n");
    let no_secret = common::write_file(dir.path(), "no-secret.yaml", b"secret:\n  create: false\n");
    let out = lint(&[typo.display().to_string(), no_secret.display().to_string()]);
    assert_eq!(out.code, 1, "broken values passed helm lint:\n{}", out.all());
    assert!(out.stdout.contains("typo.yaml: FAILED") && out.stdout.contains("no-secret.yaml: FAILED"), "{}", out.all());
    assert!(out.stdout.contains("1 of 3 configurations passed"), "{}", out.all());
}

/// The values example in README.md ("Deploy on Kubernetes")
/// lints, renders valid manifests and a config `tollgate check` accepts.
#[test]
fn documented_values_example_lints_renders_and_passes_check() {
    let doc = read("README.md");
    let mut lines = doc.lines().skip_while(|l| *l != "```yaml my-values");
    assert!(lines.next().is_some(), "README.md has no block tagged my-values");
    let block = lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n";
    let dir = tempfile::tempdir().unwrap();
    let values = common::write_file(dir.path(), "my-values.yaml", block.as_bytes());
    let out = run(Command::new(python())
        .arg(repo_path("tests/py/helm_lint.py"))
        .arg(chart())
        .arg(&values)
        .env("HELM", helm())
        .env("HOME", dir.path()));
    assert_eq!(out.code, 0, "helm lint:\n{}", out.all());
    let rendered = helm_template(&chart(), &["-f", values.to_str().unwrap()]);
    kube_validate(&rendered, &["ServiceMonitor"], "docs values");
    let docs = docs(&rendered);
    let (_, config) = configmap_entry(&docs, "tollgate.yaml");
    assert_check_passes(&config, "docs values");
    assert_eq!(
        yaml(&config),
        yaml(&read("config/sidecar-nginx.yaml")),
        "the documented values deploy the sidecar config"
    );
    let deploy = one(&docs, "Deployment");
    assert_secure_pod(deploy, "docs values");
    assert_tollgate_wiring(deploy, &yaml(&config), "docs values");
    assert!(of_kind(&docs, "Secret").is_empty(), "existingSecret: no Secret rendered");
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
}

#[test]
fn chart_versions_match_the_crate() {
    let chart_yaml = yaml(&read("helm/tollgate/Chart.yaml"));
    let values = yaml(&read("helm/tollgate/values.yaml"));
    let manifest = read("Cargo.toml");
    let version = manifest.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
    assert_eq!(chart_yaml["appVersion"], version, "Chart.yaml appVersion");
    assert_eq!(values["image"]["tag"], version, "values.yaml image.tag");
    let base = yaml(&read("deploy/base/kustomization.yaml"));
    assert_eq!(base["images"][0]["newTag"], version, "deploy/base image tag");
}

/// Hot reload applies config and key changes, so those must not roll the
/// pods; what it cannot apply (listeners, TLS paths, nginx's config) must.
#[test]
fn checksum_annotations_roll_pods_only_when_hot_reload_cannot_apply_the_change() {
    let base = restart_checksum(&[]);
    let route = ["--set-json", r#"config.routes=[{"name":"open","prefix":"/open/","upstream":"files","auth":"none"}]"#];
    let key = ["--set", "secret.files.media\\.key=0123456789abcdef0123456789abcdef"];
    let routes_docs = docs(&render_chart("", &route));
    assert!(configmap_entry(&routes_docs, "tollgate.yaml").1.contains("/open/"), "the route change renders");
    assert_eq!(restart_checksum(&route), base, "a route change is hot-reloaded: no roll");
    assert_eq!(restart_checksum(&key), base, "a key change is hot-reloaded: no roll");

    assert_ne!(restart_checksum(&["--set", "ports.admin=9191"]).0, base.0, "a listener change rolls");
    assert_ne!(restart_checksum(&["--set", "bindAddress=[::]"]).0, base.0, "a listener change rolls");
    let ipv6 = docs(&render_chart("", &["--set", "bindAddress=[::]"]));
    assert_check_passes(&configmap_entry(&ipv6, "tollgate.yaml").1, "IPv6 bindAddress");
    let tls = ["--set-json", r#"config.tls={"cert_file":"keys/tls.crt","key_file":"keys/tls.key"}"#];
    assert_ne!(restart_checksum(&tls).0, base.0, "TLS file paths need a restart");
    let nginx = restart_checksum(&["--set", "nginx.port=8082"]);
    assert_ne!(nginx.1, base.1, "nginx does not reload: its config change rolls");

    // Opting out of hot reload puts everything in the checksum.
    for opt in [["--set", "rollOnConfigChange=true"], ["--set", "config.reload.watch=false"]] {
        let pinned = restart_checksum(&opt);
        let changed = restart_checksum(&[opt[0], opt[1], route[0], route[1]]);
        assert_ne!(pinned.0, changed.0, "{opt:?}: a route change rolls");
        let rekeyed = restart_checksum(&[opt[0], opt[1], key[0], key[1]]);
        assert_ne!(pinned.0, rekeyed.0, "{opt:?}: a key change rolls");
    }
}

/// The README's "sidecar in your chart" recipe, as written: a parent chart
/// with tollgate as a dependency includes `tollgate.sidecar`.
#[test]
fn sidecar_template_injects_tollgate_into_a_parent_chart_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("my-app");
    std::fs::create_dir_all(parent.join("templates")).unwrap();
    std::fs::write(parent.join("Chart.yaml"), chart_readme_block("parent-chart")).unwrap();
    std::fs::write(parent.join("values.yaml"), chart_readme_block("parent-values")).unwrap();
    std::fs::write(parent.join("templates/deployment.yaml"), chart_readme_block("parent-deployment")).unwrap();
    // `helm dependency build` would package ../tollgate into charts/.
    copy_dir(&chart(), &parent.join("charts/tollgate"));

    let out = run(Command::new(python())
        .arg(repo_path("tests/py/helm_lint.py"))
        .arg(&parent)
        .env("HELM", helm())
        .env("HOME", dir.path()));
    assert_eq!(out.code, 0, "helm lint of the parent chart:\n{}", out.all());

    let rendered = helm_template(&parent, &[]);
    kube_validate(&rendered, &[], "parent chart");
    let docs = docs(&rendered);
    assert!(of_kind(&docs, "Service").is_empty(), "deployment.enabled=false renders no tollgate Service");
    let deploy = one(&docs, "Deployment");
    assert_eq!(name(deploy), "t-my-app");
    let names: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "tollgate"]);
    assert_secure_pod(deploy, "parent chart");

    let (configmap, config_text) = configmap_entry(&docs, "tollgate.yaml");
    let config = yaml(&config_text);
    assert_eq!(config["upstreams"]["files"]["url"], "http://127.0.0.1:8000", "the parent's values reach the config");
    assert_tollgate_wiring(deploy, &config, "parent chart");
    assert_check_passes(&config_text, "parent chart");
    let volume = &deploy["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(volume[0]["configMap"]["name"], name(configmap), "the sidecar mounts the subchart's ConfigMap");
    assert_eq!(volume[1]["secret"]["name"], name(one(&docs, "Secret")), "and its Secret");
    assert!(deploy["spec"]["template"]["metadata"]["annotations"]["checksum/tollgate-restart"].is_string());
}

/// The tollgate config every values example renders (and the README's
/// values example) passes the config's JSON Schema, as the files in
/// config/ do (tests/schema.rs).
#[test]
fn rendered_chart_configs_pass_the_config_schema() {
    let dir = tempfile::tempdir().unwrap();
    let doc = read("README.md");
    let mut lines = doc.lines().skip_while(|l| *l != "```yaml my-values");
    assert!(lines.next().is_some(), "README.md has no block tagged my-values");
    let block = lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n";
    let readme_values = common::write_file(dir.path(), "my-values.yaml", block.as_bytes());
    let mut renders: Vec<Vec<String>> = CHART_CASES.iter().map(|(values, _)| values_args(values)).collect();
    renders.push(vec!["-f".into(), readme_values.display().to_string()]);
    let mut files = Vec::new();
    for (i, args) in renders.iter().enumerate() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, config) = configmap_entry(&docs(&helm_template(&chart(), &args)), "tollgate.yaml");
        files.push(common::write_file(dir.path(), &format!("config{i}.yaml"), config.as_bytes()));
    }
    let out = run(Command::new(venv_tool(".venv/bin/check-jsonschema"))
        .arg("--schemafile")
        .arg(repo_path("config/tollgate.schema.json"))
        .args(&files));
    assert_eq!(out.code, 0, "rendered configs fail the schema:\n{}", out.all());
}

/// The chart's PrometheusRule (`metrics.prometheusRule.enabled`): off by
/// default; when on, it parses, carries the chart's and the user's labels,
/// its groups are exactly those of `deploy/prometheus/alerts.yaml` (the
/// chart's `files/alerts.yaml` is a byte-identical copy), and promtool
/// accepts them. There is no CRD schema here to validate the object itself.
#[test]
fn prometheus_rule_renders_the_plain_alert_rules_and_passes_promtool() {
    assert!(of_kind(&docs(&render_chart("", &[])), "PrometheusRule").is_empty(), "off by default");
    assert_eq!(
        read("helm/tollgate/files/alerts.yaml"),
        read("deploy/prometheus/alerts.yaml"),
        "helm/tollgate/files/alerts.yaml must be a copy of deploy/prometheus/alerts.yaml"
    );
    let plain = yaml(&read("deploy/prometheus/alerts.yaml"));
    let promtool = common::require("promtool", &["/usr/bin/promtool"]);
    let dir = tempfile::tempdir().unwrap();
    // (values file, --set arguments, a label the user asked for)
    let cases: [(&str, &[&str], (&str, &str)); 2] = [
        (
            "",
            &["--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.team=media"],
            ("team", "media"),
        ),
        ("examples/values-production.yaml", &[], ("release", "prometheus")),
    ];
    for (i, (values, sets, label)) in cases.iter().enumerate() {
        let rendered = render_chart(values, sets);
        let docs = docs(&rendered);
        let rule = one(&docs, "PrometheusRule");
        assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(rule["metadata"]["labels"]["app.kubernetes.io/name"], "tollgate", "{values}");
        assert_eq!(rule["metadata"]["labels"][label.0], label.1, "{values}: user labels");
        assert_eq!(rule["spec"]["groups"], plain["groups"], "{values}: the rules differ from alerts.yaml");
        // The annotations' Prometheus templates reach the object untouched.
        let text = serde_json::to_string(&rule["spec"]).unwrap();
        assert!(text.contains("{{ $labels.route }}"), "{values}: annotations were templated by Helm");

        let file = common::write_file(
            dir.path(),
            &format!("rules{i}.yaml"),
            serde_yaml_ng::to_string(&serde_json::json!({ "groups": rule["spec"]["groups"] })).unwrap().as_bytes(),
        );
        let out = run(Command::new(&promtool).args(["check", "rules"]).arg(&file));
        assert_eq!(out.code, 0, "promtool check rules on the chart's PrometheusRule:\n{}", out.all());
        let count = plain["groups"][0]["rules"].as_array().unwrap().len();
        assert!(out.all().contains(&format!("SUCCESS: {count} rules found")), "{}", out.all());
        kube_validate(&rendered, &["ServiceMonitor", "PrometheusRule"], values);
    }
}

// ------------------------------------------------ every values example

#[test]
fn every_values_example_is_a_chart_case() {
    let listed: BTreeSet<String> = std::fs::read_dir(chart().join("examples"))
        .unwrap()
        .map(|e| format!("examples/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let covered: BTreeSet<String> = CHART_CASES.iter().filter(|c| !c.0.is_empty()).map(|c| c.0.to_owned()).collect();
    assert_eq!(listed, covered, "every values example must be listed in CHART_CASES");
}

#[test]
fn rendered_manifests_pass_kubernetes_validation() {
    for r in rendered_cases() {
        kube_validate(&r.manifests, &["ServiceMonitor", "PrometheusRule"], r.what);
    }
}

#[test]
fn rendered_config_is_the_shipped_example_and_passes_check() {
    for r in rendered_cases() {
        assert_eq!(r.config, yaml(&read(r.expected)), "{}: rendered config differs from {}", r.what, r.expected);
        assert_check_passes(&r.config_text, r.what);
    }
}

#[test]
fn pods_run_with_a_restricted_security_context() {
    for r in rendered_cases() {
        assert_secure_pod(r.deploy(), r.what);
    }
}

#[test]
fn the_tollgate_container_runs_the_chart_image_on_its_config() {
    for r in rendered_cases() {
        let deploy = r.deploy();
        assert_tollgate_wiring(deploy, &r.config, r.what);
        let tg = container(deploy, "tollgate").unwrap();
        let repository = r.example["image"]["repository"].as_str().unwrap_or("tollgate");
        let tag = yaml(&read("helm/tollgate/values.yaml"))["image"]["tag"].as_str().unwrap().to_owned();
        assert_eq!(tg["image"], format!("{repository}:{tag}"), "{}", r.what);
    }
}

#[test]
fn one_service_and_a_disruption_budget_select_the_pods() {
    for r in rendered_cases() {
        let deploy = r.deploy();
        let services: Vec<_> =
            of_kind(&r.docs, "Service").into_iter().filter(|s| !name(s).ends_with("-metrics")).collect();
        assert_eq!(services.len(), 1, "{}", r.what);
        assert_service(services[0], deploy, r.what);
        assert_pdb(one(&r.docs, "PodDisruptionBudget"), deploy, r.what);
    }
}

#[test]
fn an_nginx_sidecar_serves_the_upstream_or_every_upstream_is_an_object_store() {
    for r in rendered_cases() {
        let deploy = r.deploy();
        match container(deploy, "nginx") {
            Some(_) => {
                let (_, nginx_conf) = configmap_entry(&r.docs, "nginx.conf");
                assert_nginx_wiring(deploy, &nginx_conf, &r.config, r.what);
            }
            None => {
                assert!(r.config["upstreams"].as_object().unwrap().values().all(|u| u["s3"].is_object()), "{}", r.what)
            }
        }
    }
}

/// The Secret a pod mounts, and the key files its config names.
fn mounted_secret(r: &Rendered) -> (String, Vec<String>) {
    let volumes = r.deploy()["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let projected = volumes.iter().find(|v| v["name"] == "tollgate").unwrap();
    let secret_ref = projected["projected"]["sources"][1]["secret"]["name"].as_str().unwrap().to_owned();
    let mut files = Vec::new();
    named_files(&r.config, &mut files);
    (secret_ref, files)
}

#[test]
fn keys_come_from_the_named_secret_or_a_generated_one() {
    for r in rendered_cases() {
        let (secret_ref, files) = mounted_secret(&r);
        let secrets = of_kind(&r.docs, "Secret");
        if let Some(existing) = r.example["secret"]["existingSecret"].as_str() {
            assert!(secrets.is_empty(), "{}: no Secret rendered with existingSecret", r.what);
            assert_eq!(secret_ref, existing, "{}: the volume mounts existingSecret", r.what);
        } else {
            assert_eq!(secrets.len(), 1, "{}: a development Secret", r.what);
            assert_eq!(name(secrets[0]), secret_ref, "{}: the volume mounts the created Secret", r.what);
            for file in &files {
                let entry = file.strip_prefix("keys/").unwrap();
                let b64 =
                    secrets[0]["data"][entry].as_str().unwrap_or_else(|| panic!("{}: Secret lacks {entry}", r.what));
                let secret = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
                assert!(secret.len() >= 32, "{}: generated {entry} has {} bytes", r.what, secret.len());
            }
        }
    }
}

/// NOTES.txt renders, names the Secret the pod mounts, and shows a sign
/// command for the key file it tells users to fetch.
#[test]
fn notes_show_a_sign_command_for_the_mounted_key() {
    for r in rendered_cases() {
        let (secret_ref, files) = mounted_secret(&r);
        let notes = render_notes(r.values, &[]);
        assert!(notes.contains(&format!("get secret {secret_ref} ")), "{}: NOTES.txt:\n{notes}", r.what);
        let sign = notes_sign_command(&notes);
        assert_eq!(sign[..3], ["sign", "--key-file", "media.key"], "{}", r.what);
        assert!(notes.contains("{.data.media\\.key}"), "{}: NOTES.txt fetches media.key", r.what);
        assert!(files.contains(&"keys/media.key".to_owned()), "{}: the config uses media.key", r.what);
    }
}

/// Scrape annotations point at the admin port; a ServiceMonitor selects a
/// Service exposing exactly that port.
#[test]
fn scrape_annotations_and_service_monitors_target_the_admin_port() {
    for r in rendered_cases() {
        let deploy = r.deploy();
        let tg = container(deploy, "tollgate").unwrap();
        let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
        if annotations["prometheus.io/scrape"] == "true" {
            assert_eq!(annotations["prometheus.io/port"], named_port(tg, "admin").to_string(), "{}", r.what);
            assert_eq!(annotations["prometheus.io/path"], "/metrics", "{}", r.what);
        }
        for monitor in of_kind(&r.docs, "ServiceMonitor") {
            let selector = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let targets: Vec<_> = of_kind(&r.docs, "Service")
                .into_iter()
                .filter(|s| selector.iter().all(|(k, v)| &s["metadata"]["labels"][k] == v))
                .collect();
            assert_eq!(targets.len(), 1, "{}: the ServiceMonitor selects one Service", r.what);
            let port = &targets[0]["spec"]["ports"][0];
            assert_eq!(port["name"], monitor["spec"]["endpoints"][0]["port"], "{}", r.what);
            assert_eq!(port["targetPort"], "admin", "{}: metrics come from the admin port", r.what);
        }
    }
}
