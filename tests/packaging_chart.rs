//! The Helm chart, validated rather than just written: Helm's own lint,
//! Kubernetes schema validation of what it renders, `tollgate check` and
//! the config schema on the rendered config, secure defaults (no key and
//! no public route unless asked for, the admin port behind an optional
//! NetworkPolicy), checksum annotations, the sidecar include from a parent
//! chart, the PrometheusRule against promtool. One behaviour per test,
//! many over every values example (`CHART_CASES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/k8s.rs"]
mod k8s;

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

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

    // Schema violations fail: a wrong type and a misspelt key, at the top
    // and inside networkPolicy. (Lint mode only logs the chart's `fail`, so
    // a missing key choice is tested with `helm template` below.)
    let dir = tempfile::tempdir().unwrap();
    let typo = common::write_file(dir.path(), "typo.yaml", b"replicaCount: two\nreplicas: 2\n");
    let policy = common::write_file(dir.path(), "policy.yaml", b"networkPolicy:\n  admin:\n    form: []\n");
    let out = lint(&[typo.display().to_string(), policy.display().to_string()]);
    assert_eq!(out.code, 1, "broken values passed helm lint:\n{}", out.all());
    assert!(out.stdout.contains("typo.yaml: FAILED") && out.stdout.contains("policy.yaml: FAILED"), "{}", out.all());
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
    assert_eq!(of_kind(&docs, "NetworkPolicy").len(), 1);
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
    assert_ne!(restart_checksum(&["--set", "adminBindAddress=[::]"]).0, base.0, "a listener change rolls");
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
    let existing = yaml(&chart_readme_block("parent-values"))["tollgate"]["secret"]["existingSecret"].clone();
    assert_eq!(volume[1]["secret"]["name"], existing, "and the parent's existing Secret");
    assert!(of_kind(&docs, "Secret").is_empty(), "existingSecret: no Secret rendered");
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

/// The name of the Secret the tollgate volume of a Deployment projects.
fn secret_in_volume(deploy: &Value) -> String {
    let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let projected = volumes.iter().find(|v| v["name"] == "tollgate").unwrap();
    projected["projected"]["sources"][1]["secret"]["name"].as_str().unwrap().to_owned()
}

/// The Secret a pod mounts, and the key files its config names.
fn mounted_secret(r: &Rendered) -> (String, Vec<String>) {
    let mut files = Vec::new();
    named_files(&r.config, &mut files);
    (secret_in_volume(r.deploy()), files)
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

// ------------------------------------------------ the key choice

/// Without `secret.existingSecret` or `secret.create=true` the chart
/// refuses to render and says what to set, with a kubectl line for the key
/// files the config names.
#[test]
fn without_a_key_choice_the_chart_fails_saying_what_to_set() {
    let media = "tollgate: set secret.existingSecret to the Secret holding keys/media.key (kubectl -n media create \
                 secret generic tollgate-keys --from-file=media.key=./media.key), or secret.create=true for a \
                 development key";
    let minio = values_args("examples/values-minio.yaml");
    let cases: [(Vec<&str>, &str); 4] = [
        (vec![], media),
        (vec!["--set", "secret.create=false"], media),
        (vec!["--set", "secret.existingSecret="], media),
        (
            vec![minio[0].as_str(), minio[1].as_str(), "--set", "secret.existingSecret="],
            "--from-file=media.key=./media.key --from-file=s3-access-key=./s3-access-key \
             --from-file=s3-secret-key=./s3-secret-key",
        ),
    ];
    for (args, message) in cases {
        let out = helm_template_out(&chart(), &args);
        assert_ne!(out.code, 0, "{args:?}: rendered without a key choice:\n{}", out.stdout);
        assert!(out.stderr.contains(message), "{args:?}: wanted {message:?} in:\n{}", out.stderr);
    }
}

/// `secret.create=true`: a Secret with a generated 64-character key, and
/// the pod mounts that Secret.
#[test]
fn secret_create_renders_a_generated_key_the_pod_mounts() {
    let docs = docs(&helm_template(&chart(), &DEV_SECRET));
    let secret = one(&docs, "Secret");
    let b64 = secret["data"]["media.key"].as_str().expect("the Secret has media.key");
    let key = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(key.len(), 64, "{key:?}");
    assert!(key.iter().all(u8::is_ascii_alphanumeric), "{key:?}");
    assert_eq!(secret_in_volume(one(&docs, "Deployment")), name(secret));
}

/// `secret.existingSecret` renders no Secret (even with `secret.create`)
/// and the pod mounts the named one.
#[test]
fn existing_secret_renders_no_secret_and_the_pod_mounts_it() {
    let existing = ["--set", "secret.existingSecret=media-keys"];
    for args in [&existing[..], &[existing[0], existing[1], DEV_SECRET[0], DEV_SECRET[1]][..]] {
        let docs = docs(&helm_template(&chart(), args));
        assert!(of_kind(&docs, "Secret").is_empty(), "{args:?}: a Secret was rendered");
        assert_eq!(secret_in_volume(one(&docs, "Deployment")), "media-keys", "{args:?}");
    }
}

// ------------------------------------------------ routes

/// Every route of every rendered config asks for a credential: nothing is
/// public unless the user adds an `auth: none` route.
#[test]
fn no_route_is_unauthenticated_by_default() {
    for r in rendered_cases() {
        let routes = r.config["routes"].as_array().unwrap();
        assert!(!routes.is_empty(), "{}", r.what);
        for route in routes {
            assert_ne!(route["auth"], "none", "{}: route {} needs no credential", r.what, route["name"]);
        }
    }
}

// ------------------------------------------------ the admin listener

/// The kubelet's probes and Prometheus connect to the pod IP, so by
/// default the admin listener binds an address reachable there.
#[test]
fn admin_listener_binds_an_address_reachable_on_the_pod_ip_by_default() {
    for r in rendered_cases() {
        let admin = r.config["admin"].as_str().unwrap();
        assert!(admin.starts_with("0.0.0.0:") || admin.starts_with("[::]:"), "{}: admin {admin}", r.what);
    }
}

#[test]
fn admin_bind_address_moves_only_the_admin_listener() {
    let (_, text) = configmap_entry(&docs(&render_chart("", &["--set", "adminBindAddress=[::]"])), "tollgate.yaml");
    let config = yaml(&text);
    assert_eq!(config["admin"], "[::]:9090");
    assert_eq!(config["listen"], "0.0.0.0:8080");
    assert_check_passes(&text, "adminBindAddress [::]");
}

/// A loopback admin listener is out of reach of the kubelet's probes and
/// of Prometheus: NOTES.txt warns, and points at the NetworkPolicy.
#[test]
fn notes_warn_when_the_admin_listener_is_on_loopback() {
    let warning = "WARNING: the admin listener binds";
    for admin in ["127.0.0.1", "[::1]"] {
        let notes = render_notes("", &["--set", &format!("adminBindAddress={admin}")]);
        assert!(notes.contains(&format!("{warning} {admin}, out of reach of the")), "{admin}: {notes}");
        assert!(notes.contains("restrict it with networkPolicy.admin.from"), "{admin}: {notes}");
    }
    assert!(!render_notes("", &[]).contains(warning), "no warning by default");
}

// ------------------------------------------------ NetworkPolicy

/// Prometheus's pods in the namespace "monitoring", as NetworkPolicy peers.
const PROMETHEUS: &str = r#"[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}]"#;

/// The chart's own values with the NetworkPolicy on, plus `extra`.
fn with_network_policy(extra: &[&str]) -> String {
    render_chart("", &[&["--set", "networkPolicy.enabled=true"][..], extra].concat())
}

/// The ingress rules of a NetworkPolicy that admit the tollgate port
/// named `port` (by number or name).
fn rules_for<'a>(policy: &'a Value, deploy: &Value, port: &str) -> Vec<&'a Value> {
    let number = named_port(container(deploy, "tollgate").unwrap(), port);
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert!(rules.iter().all(|r| r["ports"].is_array()), "a rule without ports admits every port: {rules:?}");
    rules
        .iter()
        .filter(|r| r["ports"].as_array().unwrap().iter().any(|p| p["port"] == number || p["port"] == port))
        .collect()
}

#[test]
fn network_policy_is_off_by_default() {
    for r in rendered_cases() {
        assert!(of_kind(&r.docs, "NetworkPolicy").is_empty(), "{}", r.what);
    }
}

/// The policy with no peers, with admin peers, with proxy peers too, and as
/// the chart's README shows it.
#[test]
fn network_policy_passes_kubernetes_validation() {
    let admin = format!("networkPolicy.admin.from={PROMETHEUS}");
    let proxy = r#"networkPolicy.proxy.from=[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}]"#;
    let dir = tempfile::tempdir().unwrap();
    let readme = common::write_file(dir.path(), "np.yaml", chart_readme_block("network-policy").as_bytes());
    let (admin, readme) = (admin.as_str(), readme.to_str().unwrap());
    let cases: [&[&str]; 4] =
        [&[], &["--set-json", admin], &["--set-json", admin, "--set-json", proxy], &["-f", readme]];
    for extra in cases {
        let rendered = with_network_policy(extra);
        assert_eq!(of_kind(&docs(&rendered), "NetworkPolicy").len(), 1, "{extra:?}");
        kube_validate(&rendered, &[], &format!("networkPolicy {extra:?}"));
    }
}

/// With `admin.from` set, the policy isolates the Deployment's pods and
/// admits their admin port from exactly those peers, the proxy port from
/// anywhere.
#[test]
fn network_policy_admits_the_admin_port_only_from_the_configured_peers() {
    let docs = docs(&with_network_policy(&["--set-json", &format!("networkPolicy.admin.from={PROMETHEUS}")]));
    let (policy, deploy) = (one(&docs, "NetworkPolicy"), one(&docs, "Deployment"));
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "NetworkPolicy selector {k}");
    }
    assert_eq!(str_list(&policy["spec"]["policyTypes"]), ["Ingress"]);
    let admin = rules_for(policy, deploy, "admin");
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert_eq!(admin[0]["from"], serde_json::from_str::<Value>(PROMETHEUS).unwrap());
    let proxy = rules_for(policy, deploy, "http");
    assert_eq!(proxy.len(), 1, "{proxy:?}");
    assert!(proxy[0]["from"].is_null(), "the proxy port from anywhere: {proxy:?}");
}

/// With no admin peers no rule admits the admin port: no pod reaches it
/// (the kubelet probes from the pod's own node, which a NetworkPolicy
/// cannot block).
#[test]
fn network_policy_without_admin_peers_admits_no_pod_to_the_admin_port() {
    let docs = docs(&with_network_policy(&[]));
    let (policy, deploy) = (one(&docs, "NetworkPolicy"), one(&docs, "Deployment"));
    assert!(rules_for(policy, deploy, "admin").is_empty(), "{policy}");
    assert_eq!(rules_for(policy, deploy, "http").len(), 1, "{policy}");
}

#[test]
fn network_policy_proxy_peers_narrow_the_proxy_port() {
    let peers = r#"[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ingress-nginx"}}}]"#;
    let docs = docs(&with_network_policy(&["--set-json", &format!("networkPolicy.proxy.from={peers}")]));
    let (policy, deploy) = (one(&docs, "NetworkPolicy"), one(&docs, "Deployment"));
    let proxy = rules_for(policy, deploy, "http");
    assert_eq!(proxy.len(), 1, "{proxy:?}");
    assert_eq!(proxy[0]["from"], serde_json::from_str::<Value>(peers).unwrap());
}

/// With the policy on and no admin peers, Prometheus cannot scrape:
/// NOTES.txt says so, and stops once peers are listed.
#[test]
fn notes_warn_when_the_network_policy_blocks_the_scrapes() {
    let on = ["--set", "networkPolicy.enabled=true"];
    let warning = "cannot scrape /metrics: list its pods in networkPolicy.admin.from";
    assert!(render_notes("", &on).contains(warning), "{}", render_notes("", &on));
    let admitted = format!("networkPolicy.admin.from={PROMETHEUS}");
    assert!(!render_notes("", &[on[0], on[1], "--set-json", &admitted]).contains(warning));
}

/// values.schema.json describes every new value: a misspelt key or a
/// malformed address fails the render instead of being ignored.
#[test]
fn misspelt_admin_and_network_policy_values_fail_the_schema() {
    let cases = [
        ["--set", "adminBindAdress=0.0.0.0"],
        ["--set", "adminBindAddress=localhost"],
        ["--set", "networkPolicy.enable=true"],
        ["--set-json", "networkPolicy.admin.form=[]"],
        ["--set-json", r#"networkPolicy.admin.from=[{"namespaceSelecter":{}}]"#],
        ["--set-json", r#"networkPolicy.proxy.from=[{"ipBlock":{"cdir":"10.0.0.0/8"}}]"#],
    ];
    for set in cases {
        let out = helm_template_out(&chart(), &[DEV_SECRET[0], DEV_SECRET[1], set[0], set[1]]);
        assert_ne!(out.code, 0, "{set:?}: rendered:\n{}", out.stdout);
        assert!(out.stderr.contains("values don't meet the specifications of the schema"), "{set:?}: {}", out.stderr);
    }
}
