//! Kubernetes packaging, validated rather than just written: the Dockerfile
//! (hadolint; the build it runs is the one CI runs; the binary fits the
//! distroless runtime), the Helm chart (Helm's own lint, Kubernetes schema
//! validation of what it renders, `tollgate check` and the config schema on
//! the rendered config, secure defaults, checksum annotations, the sidecar
//! include from a parent chart, the PrometheusRule against promtool), the kustomize overlays, the deploy examples, and a "pod on a
//! laptop": nginx and tollgate run on loopback exactly as the default chart
//! wires them.
//!
//! Every tool comes from `tests/setup.sh` (hadolint, kubernetes-validate,
//! helm-sdkpy and helm in `.venv`, kubectl, nginx, promtool): a missing one
//! fails the test, it is never skipped. No secret is committed: every key a
//! config names is generated here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use common::Http;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// Kubernetes versions the manifests are validated against: the chart's
/// `kubeVersion` floor (1.25), a common one, and a recent one.
const KUBE_VERSIONS: &[&str] = &["1.25.0", "1.30.0", "1.34.0"];

/// Every values example of the chart, with the file in `config/` its
/// rendered tollgate config must equal ("" is the chart's own values).
const CHART_CASES: &[(&str, &str)] = &[
    ("", "config/sidecar-nginx.yaml"),
    ("examples/values-minio.yaml", "config/minio-gateway.yaml"),
    ("examples/values-production.yaml", "config/sidecar-nginx.yaml"),
];

/// Every kustomize overlay, with the file in `config/` it ships.
const OVERLAYS: &[(&str, &str)] =
    &[("nginx-sidecar", "config/sidecar-nginx.yaml"), ("minio-gateway", "config/minio-gateway.yaml")];

// ---------------------------------------------------------------- tools

fn repo_path(rel: &str) -> PathBuf {
    common::repo().join(rel)
}

/// A tool `tests/setup.sh` installs into the repository's `.venv`.
fn venv_tool(rel: &str) -> PathBuf {
    let path = repo_path(rel);
    assert!(path.is_file(), "{} is missing: run `make test` (tests/setup.sh installs it)", path.display());
    path
}

fn helm() -> PathBuf {
    venv_tool(".venv/k8s-tools/helm")
}

fn python() -> PathBuf {
    venv_tool(".venv/bin/python")
}

fn kubectl() -> PathBuf {
    let fallback = repo_path(".venv/bin/kubectl");
    common::require("kubectl", &["/usr/bin/kubectl", fallback.to_str().unwrap()])
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn run(cmd: &mut Command) -> Out {
    run_with_stdin(cmd, None)
}

fn run_with_stdin(cmd: &mut Command, input: Option<&str>) -> Out {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert_eq!(out.code, 0, "{what} failed:\n{}", out.all());
    out.stdout
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------- YAML

/// Every non-empty document of a multi-document YAML stream.
fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The ConfigMap holding `key`, and that entry's text.
fn configmap_entry<'a>(docs: &'a [Value], key: &str) -> (&'a Value, String) {
    let found: Vec<_> = of_kind(docs, "ConfigMap").into_iter().filter(|c| c["data"][key].is_string()).collect();
    assert_eq!(found.len(), 1, "expected one ConfigMap with {key}");
    (found[0], found[0]["data"][key].as_str().unwrap().to_owned())
}

/// Seconds in a tollgate duration: 500ms, 30s, 15m, 2h, 1d, 1h30m.
fn seconds(text: &str) -> f64 {
    let mut total = 0.0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().unwrap_or_else(|_| panic!("bad duration {text}"));
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        total += n * match &rest[..unit] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => panic!("bad duration unit {u:?} in {text}"),
        };
        rest = &rest[unit..];
    }
    total
}

fn shutdown_budget(config: &Value) -> (f64, f64) {
    let grace = config["shutdown"]["grace"].as_str().map_or(5.0, seconds);
    let drain = config["shutdown"]["drain_timeout"].as_str().map_or(30.0, seconds);
    (grace, drain)
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- validators

/// `kubernetes-validate --strict` (unknown fields are errors) against each
/// of KUBE_VERSIONS, the manifests piped in. Only kinds in `crds` may lack
/// a schema; every other document must be reported as passed.
fn kube_validate(manifests: &str, crds: &[&str], what: &str) {
    let all = docs(manifests);
    let expected = all.iter().filter(|d| !crds.contains(&d["kind"].as_str().unwrap_or(""))).count();
    assert!(expected > 0, "{what}: nothing to validate");
    for version in KUBE_VERSIONS {
        let out = run_with_stdin(
            Command::new(venv_tool(".venv/bin/kubernetes-validate")).args(["-k", version, "--strict", "-"]),
            Some(manifests),
        );
        let text = out.all();
        assert_eq!(out.code, 0, "{what}: kubernetes-validate {version} failed:\n{text}");
        let passed = text.lines().filter(|l| l.contains("passed for resource")).count();
        assert_eq!(passed, expected, "{what}: {version}: not every resource was validated:\n{text}");
        for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
            assert!(crds.iter().any(|k| line.contains(&format!("kind {k} "))), "{what}: {version}: {line}");
        }
    }
}

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

/// Every file a config names under `*_file` (keys, S3 credentials).
fn named_files(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val.as_str() {
                    Some(path) if k.ends_with("_file") => out.push(path.to_owned()),
                    _ => named_files(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| named_files(i, out)),
        _ => {}
    }
}

/// Lays out a config directory as the pod sees /etc/tollgate: the config
/// plus every file it names under keys/ (the projected Secret), generated
/// now. Returns the generated files' contents.
fn write_config_dir(dir: &Path, config: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tollgate.yaml"), config).unwrap();
    let mut files = Vec::new();
    named_files(&yaml(config), &mut files);
    let mut secrets = BTreeMap::new();
    for file in files {
        assert!(
            file.starts_with("keys/"),
            "{file}: secrets must be files under keys/, where the chart and overlays project the Secret"
        );
        let path = dir.join(&file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let secret = common::random_secret();
        std::fs::write(&path, &secret).unwrap();
        secrets.insert(file, secret);
    }
    secrets
}

/// `tollgate check` on `config`, with its key files generated.
fn tollgate_check(config: &str) -> Out {
    let dir = tempfile::tempdir().unwrap();
    write_config_dir(dir.path(), config);
    run(Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("tollgate.yaml"))
        .env_remove("TOLLGATE_CONFIG"))
}

fn assert_check_passes(config: &str, what: &str) {
    let out = tollgate_check(config);
    assert_eq!(out.code, 0, "{what}: `tollgate check` refused the config:\n{}\n---\n{config}", out.all());
    assert!(out.all().contains(": ok"), "{what}: {}", out.all());
}

fn helm_template(chart: &Path, args: &[&str]) -> String {
    run_ok(Command::new(helm()).args(["template", "t"]).arg(chart).args(["--namespace", "media"]).args(args))
}

fn chart() -> PathBuf {
    repo_path("helm/tollgate")
}

fn values_args(values: &str) -> Vec<String> {
    if values.is_empty() { vec![] } else { vec!["-f".into(), chart().join(values).display().to_string()] }
}

fn render_chart(values: &str, extra: &[&str]) -> String {
    let mut args: Vec<&str> = Vec::new();
    let owned = values_args(values);
    args.extend(owned.iter().map(String::as_str));
    args.extend(extra);
    helm_template(&chart(), &args)
}

/// NOTES.txt as `helm install` prints it: rendered through a ConfigMap
/// template added to a copy of the chart (`helm template` skips NOTES).
fn render_notes(values: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tollgate");
    copy_dir(&chart(), &copy);
    let wrapper = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  \
                   NOTES.txt: {{ include \"tollgate/templates/NOTES.txt\" . | quote }}\n";
    std::fs::write(copy.join("templates/zz-notes.yaml"), wrapper).unwrap();
    let mut args = values_args(values);
    args.extend(["--show-only".to_owned(), "templates/zz-notes.yaml".to_owned()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rendered = helm_template(&copy, &args);
    docs(&rendered)[0]["data"]["NOTES.txt"].as_str().unwrap().to_owned()
}

/// The `tollgate sign ...` command NOTES.txt prints, as arguments.
fn notes_sign_command(notes: &str) -> Vec<String> {
    let line = notes.lines().find(|l| l.contains("$(tollgate sign ")).expect("NOTES.txt shows tollgate sign");
    let inner = line.split("$(").nth(1).unwrap().split(')').next().unwrap();
    inner.split_whitespace().skip(1).map(str::to_owned).collect()
}

// ---------------------------------------------------------------- pod checks

fn container<'a>(deploy: &'a Value, name: &str) -> Option<&'a Value> {
    deploy["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == name)
}

fn named_port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container {} has no port named {name}", container["name"]))
}

/// The secure defaults the issue asks for, on every container of the pod.
fn assert_secure_pod(deploy: &Value, what: &str) {
    let spec = &deploy["spec"]["template"]["spec"];
    let pod = &spec["securityContext"];
    assert_eq!(spec["automountServiceAccountToken"], false, "{what}: no API token in the pod");
    assert_eq!(pod["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
    for c in spec["containers"].as_array().unwrap() {
        let n = &c["name"];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}: {n}: readOnlyRootFilesystem");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}: {n}: allowPrivilegeEscalation");
        assert_eq!(str_list(&sc["capabilities"]["drop"]), ["ALL"], "{what}: {n}: drop ALL capabilities");
        assert_ne!(sc["runAsNonRoot"], false, "{what}: {n}: runAsNonRoot");
        let seccomp = sc["seccompProfile"]["type"].as_str().or(pod["seccompProfile"]["type"].as_str());
        assert_eq!(seccomp, Some("RuntimeDefault"), "{what}: {n}: seccomp");
        assert!(c["resources"]["requests"]["memory"].is_string(), "{what}: {n}: memory request");
        assert!(c["resources"]["limits"]["memory"].is_string(), "{what}: {n}: memory limit");
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            assert!(m["subPath"].is_null(), "{what}: {n}: subPath mounts never see ConfigMap/Secret updates");
        }
    }
}

/// tollgate's container: args, ports matching the config's listeners,
/// probes on the admin port, config and keys from one projected volume,
/// and a grace period covering tollgate's shutdown.
fn assert_tollgate_wiring(deploy: &Value, config: &Value, what: &str) {
    let spec = &deploy["spec"]["template"]["spec"];
    let tg = container(deploy, "tollgate").unwrap_or_else(|| panic!("{what}: no tollgate container"));
    assert_eq!(str_list(&tg["args"]), ["serve", "--config", "/etc/tollgate/tollgate.yaml"], "{what}");
    assert_eq!(named_port(tg, "http"), port_of(config["listen"].as_str().unwrap()), "{what}: http port = listen");
    assert_eq!(named_port(tg, "admin"), port_of(config["admin"].as_str().unwrap()), "{what}: admin port = admin");
    assert_eq!(tg["livenessProbe"]["httpGet"]["path"], "/healthz", "{what}");
    assert_eq!(tg["livenessProbe"]["httpGet"]["port"], "admin", "{what}");
    assert_eq!(tg["readinessProbe"]["httpGet"]["path"], "/readyz", "{what}");
    assert_eq!(tg["readinessProbe"]["httpGet"]["port"], "admin", "{what}");
    let mounts = tg["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["mountPath"] == "/etc/tollgate").expect("config mount");
    let volume = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    let sources = volume["projected"]["sources"].as_array().expect("a projected config volume");
    assert!(sources.iter().any(|s| s["configMap"]["items"][0]["path"] == "tollgate.yaml"), "{what}: config file");
    assert!(sources.iter().any(|s| s["secret"]["name"].is_string()), "{what}: keys Secret");
    let (grace, drain) = shutdown_budget(config);
    let period = spec["terminationGracePeriodSeconds"].as_f64().unwrap();
    assert!(period > grace + drain, "{what}: terminationGracePeriodSeconds {period} <= grace {grace} + drain {drain}");
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deploy["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{what}: selector label {k}");
    }
}

/// nginx, when present: no declared port, loopback only, the port the
/// config's upstream uses, and alive through tollgate's grace period.
fn assert_nginx_wiring(deploy: &Value, nginx_conf: &str, config: &Value, what: &str) {
    let nginx = container(deploy, "nginx").unwrap();
    assert!(nginx["ports"].is_null(), "{what}: nginx must not declare a port");
    let listen: Vec<&str> =
        nginx_conf.lines().filter_map(|l| l.trim().strip_prefix("listen ")).map(|l| l.trim_end_matches(';')).collect();
    assert_eq!(listen.len(), 1, "{what}: one nginx listener");
    assert!(listen[0].starts_with("127.0.0.1:"), "{what}: nginx listens on {} instead of loopback", listen[0]);
    let upstreams: Vec<&str> =
        config["upstreams"].as_object().unwrap().values().filter_map(|u| u["url"].as_str()).collect();
    assert!(upstreams.contains(&format!("http://{}", listen[0]).as_str()), "{what}: no upstream is nginx");
    let sleep = str_list(&nginx["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(sleep[0], "sleep", "{what}");
    let (grace, _) = shutdown_budget(config);
    assert!(sleep[1].parse::<f64>().unwrap() > grace, "{what}: nginx must outlive shutdown.grace");
}

/// The Service sends clients to tollgate's proxy port only.
fn assert_service(service: &Value, deploy: &Value, what: &str) {
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{what}: Service selector {k}");
    }
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{what}: the Service exposes only the proxy");
    assert_eq!(ports[0]["targetPort"], "http", "{what}: Service targets tollgate's http port");
}

fn assert_pdb(pdb: &Value, deploy: &Value, what: &str) {
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{what}: PodDisruptionBudget selector {k}");
    }
    assert!(pdb["spec"]["maxUnavailable"].is_number(), "{what}: PDB must never block every eviction");
}

// ---------------------------------------------------------------- Dockerfile

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = venv_tool(".venv/bin/hadolint");
    let out =
        run(Command::new(&hadolint).args(["--no-color", "--failure-threshold", "info"]).arg(repo_path("Dockerfile")));
    assert_eq!(out.code, 0, "hadolint findings:\n{}", out.all());
    // The linter really lints: a Dockerfile with classic mistakes fails.
    let dir = tempfile::tempdir().unwrap();
    let bad = common::write_file(dir.path(), "Dockerfile", b"FROM debian:latest\nRUN apt-get install curl\n");
    let out = run(Command::new(&hadolint).arg("--no-color").arg(bad));
    assert_ne!(out.code, 0, "hadolint accepted a bad Dockerfile");
    assert!(out.stdout.contains("DL3007") && out.stdout.contains("DL3008"), "{}", out.all());
}

#[test]
fn dockerfile_builds_what_ci_builds_into_a_nonroot_distroless_image() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let froms: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a builder stage and a runtime stage");
    let (build, runtime) = (&lines[froms[0]..froms[1]], &lines[froms[1]..]);

    // Builder: the official Rust image, on the runtime's Debian, running
    // exactly `make release` (which CI runs too).
    let image = build[0].split_whitespace().nth(1).unwrap();
    let tag = image.strip_prefix("docker.io/library/rust:").expect("official rust image");
    assert!(tag.ends_with("-bookworm"), "builder must be Debian 12 like distroless cc-debian12: {tag}");
    let rust: Vec<u32> = tag.split('-').next().unwrap().split('.').map(|n| n.parse().unwrap()).collect();
    let manifest = read("Cargo.toml");
    let msrv = manifest.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    let msrv: Vec<u32> = msrv.split('.').map(|n| n.parse().unwrap()).collect();
    assert!(rust[..2] >= msrv[..2], "builder Rust {rust:?} is older than rust-version {msrv:?}");
    assert!(build.iter().any(|l| l.starts_with("RUN make release")), "the builder runs `make release`");
    let makefile = read("Makefile");
    let release = makefile.split("\nrelease:\n").nth(1).expect("Makefile has a release target");
    assert_eq!(release.lines().next().unwrap().trim(), "cargo build --release --locked");
    let ci = read(".ci/run");
    let (release_at, test_at) = (ci.find("make release").expect("CI runs make release"), ci.find("make test").unwrap());
    assert!(release_at < test_at, "CI builds the release binary before testing");

    // Runtime: distroless, non-root, nothing but the binary.
    assert_eq!(runtime[0], "FROM gcr.io/distroless/cc-debian12:nonroot");
    let copies: Vec<&&str> = runtime.iter().filter(|l| l.starts_with("COPY") || l.starts_with("ADD")).collect();
    assert_eq!(copies.len(), 1, "the runtime image receives only the binary: {copies:?}");
    assert!(copies[0].starts_with("COPY --from=build "), "{}", copies[0]);
    assert!(!runtime.iter().any(|l| l.starts_with("RUN ")), "no RUN in the runtime stage (no shell there)");
    assert!(runtime.contains(&"USER 65532:65532"), "numeric non-root user");
    assert!(runtime.contains(&"EXPOSE 8080 9090"));
    assert!(runtime.contains(&"ENTRYPOINT [\"/tollgate\"]"));
    assert!(runtime.contains(&"CMD [\"serve\", \"--config\", \"/etc/tollgate/tollgate.yaml\"]"));

    // The build context carries no artefacts, venvs or key material.
    let ignore = read(".dockerignore");
    for pattern in [".git", "target", ".venv", "**/*.key", "**/*.pem"] {
        assert!(ignore.lines().any(|l| l.trim() == pattern), ".dockerignore lacks {pattern}");
    }
}

/// distroless/cc-debian12 ships glibc 2.36, libgcc_s and nothing else the
/// binary could link: check what the binary needs.
#[test]
fn binary_needs_only_what_distroless_cc_debian12_ships() {
    let objdump = common::require("objdump", &["/usr/bin/objdump"]);
    let out = run_ok(Command::new(objdump).arg("-p").arg(BIN));
    let needed: BTreeSet<&str> = out.lines().filter_map(|l| l.trim().strip_prefix("NEEDED")).map(str::trim).collect();
    let shipped = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
    ];
    assert!(!needed.is_empty(), "objdump found no NEEDED entries:\n{out}");
    for lib in &needed {
        assert!(shipped.contains(lib), "{lib} is not in distroless cc-debian12");
    }
    let newest = out
        .split("GLIBC_")
        .skip(1)
        .filter_map(|s| {
            let v: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let parts: Vec<u32> = v.split('.').filter_map(|n| n.parse().ok()).collect();
            (parts.len() >= 2).then(|| (parts[0], parts[1]))
        })
        .max()
        .expect("glibc symbol versions");
    assert!(newest <= (2, 36), "the binary needs GLIBC_{}.{}; Debian 12 has 2.36", newest.0, newest.1);
}

// ---------------------------------------------------------------- Helm

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

#[test]
fn chart_renders_valid_secure_manifests_for_every_values_example() {
    let listed: BTreeSet<String> = std::fs::read_dir(chart().join("examples"))
        .unwrap()
        .map(|e| format!("examples/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let covered: BTreeSet<String> = CHART_CASES.iter().filter(|c| !c.0.is_empty()).map(|c| c.0.to_owned()).collect();
    assert_eq!(listed, covered, "every values example must be listed in CHART_CASES");

    for (values, expected) in CHART_CASES {
        let what = if values.is_empty() { "default values" } else { values };
        let rendered = render_chart(values, &[]);
        kube_validate(&rendered, &["ServiceMonitor", "PrometheusRule"], what);
        let docs = docs(&rendered);

        // The rendered config is the example in config/, and check accepts it.
        let (_, config_text) = configmap_entry(&docs, "tollgate.yaml");
        let config = yaml(&config_text);
        assert_eq!(config, yaml(&read(expected)), "{what}: rendered config differs from {expected}");
        assert_check_passes(&config_text, what);

        let deploy = one(&docs, "Deployment");
        assert_secure_pod(deploy, what);
        assert_tollgate_wiring(deploy, &config, what);
        let services: Vec<_> =
            of_kind(&docs, "Service").into_iter().filter(|s| !name(s).ends_with("-metrics")).collect();
        assert_eq!(services.len(), 1, "{what}");
        assert_service(services[0], deploy, what);
        assert_pdb(one(&docs, "PodDisruptionBudget"), deploy, what);
        let tg = container(deploy, "tollgate").unwrap();
        let example = if values.is_empty() { Value::Null } else { yaml(&read(&format!("helm/tollgate/{values}"))) };
        let repository = example["image"]["repository"].as_str().unwrap_or("tollgate");
        let tag = yaml(&read("helm/tollgate/values.yaml"))["image"]["tag"].as_str().unwrap().to_owned();
        assert_eq!(tg["image"], format!("{repository}:{tag}"), "{what}");

        // nginx (sidecar mode) or none (gateway mode).
        match container(deploy, "nginx") {
            Some(_) => {
                let (_, nginx_conf) = configmap_entry(&docs, "nginx.conf");
                assert_nginx_wiring(deploy, &nginx_conf, &config, what);
            }
            None => assert!(config["upstreams"].as_object().unwrap().values().all(|u| u["s3"].is_object()), "{what}"),
        }

        // Keys: a generated development Secret, or the existing one.
        let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        let projected = volumes.iter().find(|v| v["name"] == "tollgate").unwrap();
        let secret_ref = projected["projected"]["sources"][1]["secret"]["name"].as_str().unwrap();
        let secrets = of_kind(&docs, "Secret");
        let mut files = Vec::new();
        named_files(&config, &mut files);
        if let Some(existing) = example["secret"]["existingSecret"].as_str() {
            assert!(secrets.is_empty(), "{what}: no Secret rendered with existingSecret");
            assert_eq!(secret_ref, existing, "{what}: the volume mounts existingSecret");
        } else {
            assert_eq!(secrets.len(), 1, "{what}: a development Secret");
            assert_eq!(name(secrets[0]), secret_ref, "{what}: the volume mounts the created Secret");
            for file in &files {
                let entry = file.strip_prefix("keys/").unwrap();
                let b64 = secrets[0]["data"][entry].as_str().unwrap_or_else(|| panic!("{what}: Secret lacks {entry}"));
                let secret = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
                assert!(secret.len() >= 32, "{what}: generated {entry} has {} bytes", secret.len());
            }
        }

        // NOTES.txt renders, names the Secret the pod mounts, and shows a
        // sign command for the key file it tells users to fetch.
        let notes = render_notes(values, &[]);
        assert!(notes.contains(&format!("get secret {secret_ref} ")), "{what}: NOTES.txt:\n{notes}");
        let sign = notes_sign_command(&notes);
        assert_eq!(sign[..3], ["sign", "--key-file", "media.key"], "{what}");
        assert!(notes.contains("{.data.media\\.key}"), "{what}: NOTES.txt fetches media.key");
        assert!(files.contains(&"keys/media.key".to_owned()), "{what}: the config uses media.key");

        // Metrics: scrape annotations point at the admin port; a
        // ServiceMonitor selects a Service exposing exactly that port.
        let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
        if annotations["prometheus.io/scrape"] == "true" {
            assert_eq!(annotations["prometheus.io/port"], named_port(tg, "admin").to_string(), "{what}");
            assert_eq!(annotations["prometheus.io/path"], "/metrics", "{what}");
        }
        for monitor in of_kind(&docs, "ServiceMonitor") {
            let selector = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let targets: Vec<_> = of_kind(&docs, "Service")
                .into_iter()
                .filter(|s| selector.iter().all(|(k, v)| &s["metadata"]["labels"][k] == v))
                .collect();
            assert_eq!(targets.len(), 1, "{what}: the ServiceMonitor selects one Service");
            let port = &targets[0]["spec"]["ports"][0];
            assert_eq!(port["name"], monitor["spec"]["endpoints"][0]["port"], "{what}");
            assert_eq!(port["targetPort"], "admin", "{what}: metrics come from the admin port");
        }
    }
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

fn restart_checksum(extra: &[&str]) -> (String, Option<String>) {
    let docs = docs(&render_chart("", extra));
    let annotations = &one(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    (
        annotations["checksum/tollgate-restart"].as_str().unwrap().to_owned(),
        annotations["checksum/nginx-config"].as_str().map(str::to_owned),
    )
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

/// The body of the code block in helm/tollgate/README.md tagged `tag`.
fn chart_readme_block(tag: &str) -> String {
    let readme = read("helm/tollgate/README.md");
    let mut lines = readme.lines().skip_while(|l| !(l.starts_with("```") && l.ends_with(tag)));
    assert!(lines.next().is_some(), "helm/tollgate/README.md has no block tagged {tag}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n"
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
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

// ---------------------------------------------------------------- kustomize

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

// ---------------------------------------------------------------- examples

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

// ---------------------------------------------------------------- pod on a laptop

/// A child process stopped (TERM, then KILL) when dropped.
struct Proc {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &'static str, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Proc { child, what, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} {}", self.what);
    }

    /// False when the process exited first (e.g. its port was taken).
    fn wait_for_port(&mut self, addr: SocketAddr) -> bool {
        let ok = common::wait_for_port(addr, &mut self.child, self.what);
        if !ok {
            eprintln!("{} exited:\n{}", self.what, self.log());
        }
        ok
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {within:?}:\n{}", self.what, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One data generation of a projected volume, the way the kubelet's atomic
/// writer lays it out: `..<gen>/` holds the files, `..data` points at the
/// current generation, and the visible names are symlinks through `..data`.
fn project(mount: &Path, generation: &str, files: &[(&str, &[u8])]) {
    let data = mount.join(format!("..{generation}"));
    for (file, content) in files {
        let path = data.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let tmp = mount.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, mount.join("..data")).unwrap();
    for top in ["tollgate.yaml", "keys"] {
        let link = mount.join(top);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), link).unwrap();
        }
    }
}

async fn wait_status(http: &Http, url: &str, want: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let got = http.get(url).await.status;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {url} answered {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The default chart's pod, running on loopback (see the test below).
/// Fields drop in order: the processes stop before their directory goes.
struct LaptopPod {
    nginx: Proc,
    tollgate: Proc,
    docs: Vec<Value>,
    config: String,
    key: Vec<u8>,
    mount: PathBuf,
    admin: u16,
    dir: tempfile::TempDir,
}

impl LaptopPod {
    /// Renders the chart with ephemeral loopback ports and starts nginx and
    /// tollgate from the rendered containers; retries on a port race.
    fn start() -> LaptopPod {
        for attempt in 0..3 {
            if let Some(pod) = Self::try_start() {
                return pod;
            }
            eprintln!("laptop pod attempt {attempt}: a port was taken; retrying");
        }
        panic!("the laptop pod would not start");
    }

    fn try_start() -> Option<LaptopPod> {
        let nginx_bin = common::require("nginx", &["/usr/sbin/nginx"]);
        let (proxy, admin, upstream) = (common::free_port(), common::free_port(), common::free_port());
        let rendered = render_chart(
            "",
            &[
                "--set",
                "bindAddress=127.0.0.1",
                "--set",
                &format!("ports.proxy={proxy}"),
                "--set",
                &format!("ports.admin={admin}"),
                "--set",
                &format!("nginx.port={upstream}"),
            ],
        );
        let docs = docs(&rendered);
        let deploy = one(&docs, "Deployment");
        let tg = container(deploy, "tollgate").unwrap();
        let nginx = container(deploy, "nginx").unwrap();
        let (_, config) = configmap_entry(&docs, "tollgate.yaml");
        let (_, nginx_conf) = configmap_entry(&docs, "nginx.conf");

        // The pod's filesystem, in a temporary directory readable by nginx's
        // workers (they drop root privileges when the test runs as root).
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path();
        let html = pod.join("html");
        for (file, body) in [
            ("media/hello.txt", "hello from nginx\n"),
            ("public/readme.txt", "public\n"),
            ("docs/guide.txt", "guide\n"),
        ] {
            let path = html.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        for sub in ["nginx-config", "nginx-tmp", "tollgate"] {
            std::fs::create_dir_all(pod.join(sub)).unwrap();
        }
        assert!(Command::new("chmod").args(["-R", "a+rX"]).arg(pod).status().unwrap().success());

        // nginx: the rendered command, args and nginx.conf.
        // (/tmp first: the temporary directory itself lives under /tmp.)
        let nginx_conf = nginx_conf
            .replace(" /tmp/", &format!(" {}/", pod.join("nginx-tmp").display()))
            .replace(" /usr/share/nginx/html;", &format!(" {};", html.display()));
        std::fs::write(pod.join("nginx-config/nginx.conf"), nginx_conf).unwrap();
        assert_eq!(str_list(&nginx["command"]), ["nginx"]);
        let nginx_args: Vec<String> = str_list(&nginx["args"])
            .iter()
            .map(|a| a.replace("/etc/nginx/tollgate", pod.join("nginx-config").to_str().unwrap()))
            .collect();
        let mut nginx = Proc::spawn(Command::new(&nginx_bin).args(&nginx_args), "nginx", pod.join("nginx.log"));
        if !nginx.wait_for_port(format!("127.0.0.1:{upstream}").parse().unwrap()) {
            return None;
        }

        // tollgate: the rendered args and config, the Secret projected next to it.
        let mount = pod.join("tollgate");
        let key = common::random_secret();
        project(&mount, "gen1", &[("tollgate.yaml", config.as_bytes()), ("keys/media.key", &key)]);
        let args: Vec<String> =
            str_list(&tg["args"]).iter().map(|a| a.replace("/etc/tollgate", mount.to_str().unwrap())).collect();
        let mut tollgate = Proc::spawn(
            Command::new(BIN).args(&args).env_remove("TOLLGATE_CONFIG"),
            "tollgate",
            pod.join("tollgate.log"),
        );
        for port in [admin, proxy] {
            if !tollgate.wait_for_port(format!("127.0.0.1:{port}").parse().unwrap()) {
                return None;
            }
        }
        Some(LaptopPod { nginx, tollgate, docs, config, key, mount, admin, dir })
    }
}

/// nginx and tollgate on loopback as the default chart wires them: the
/// chart renders the manifests (only the ports and bind address are set on
/// the command line, to ephemeral loopback ones), and this test runs the
/// rendered containers' commands with the rendered ConfigMaps. Substituted:
/// the mount paths (/etc/tollgate, /etc/nginx/tollgate, nginx's html root
/// and /tmp become temporary directories) and the Secret (generated here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_on_a_laptop_serves_signed_urls_probes_and_metrics_as_the_chart_wires_it() {
    let mut lp = LaptopPod::start();
    let (docs, config, key, mount, admin) = (&lp.docs, &lp.config, &lp.key, &lp.mount, lp.admin);
    let pod = lp.dir.path();
    let deploy = one(docs, "Deployment");
    let tg = container(deploy, "tollgate").unwrap();

    // The readiness probe, as the kubelet runs it.
    let probe_port = |probe: &str| named_port(tg, tg[probe]["httpGet"]["port"].as_str().unwrap());
    let probe_url = |probe: &str| {
        format!("http://127.0.0.1:{}{}", probe_port(probe), tg[probe]["httpGet"]["path"].as_str().unwrap())
    };
    assert_eq!(probe_port("readinessProbe"), u64::from(admin));
    let http = Http::h1();
    wait_status(&http, &probe_url("readinessProbe"), 200, Duration::from_secs(15), "readiness").await;
    assert_eq!(http.get(&probe_url("livenessProbe")).await.status, 200, "liveness");

    // Through the Service's target port (http = proxy).
    let base = format!("http://127.0.0.1:{}", named_port(tg, "http"));
    let signed = common::sign(key, "GET", "/media/hello.txt", 600, None, None);
    let ok = http.get(&format!("{base}{signed}")).await;
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (200, "hello from nginx\n"),
        "{}\n{}",
        lp.tollgate.log(),
        lp.nginx.log()
    );
    let missing = http.get(&format!("{base}/media/hello.txt")).await;
    assert_eq!((missing.status, missing.code().as_str()), (401, "missing_credential"));
    let forged = common::sign(&common::random_secret(), "GET", "/media/hello.txt", 600, None, None);
    assert_eq!(http.get(&format!("{base}{forged}")).await.status, 403);
    assert_eq!(http.get(&format!("{base}/public/readme.txt")).await.status, 200);
    assert_eq!(http.get(&format!("{base}/docs/guide.txt")).await.status, 404, "no route yet");

    // The sign command NOTES.txt prints, with its key file fetched from the
    // Secret and its URL (a port-forward to the Service) pointed here.
    let notes = render_notes("", &[]);
    let key_file = mount.join("keys/media.key");
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
    assert_eq!(http.get(cli_url.trim()).await.status, 200, "the URL NOTES.txt tells users to sign");

    // The example backend (deploy/examples/backend-signer.yaml), run as written.
    let (_, sign_py) = configmap_entry(&self::docs(&read("deploy/examples/backend-signer.yaml")), "sign.py");
    std::fs::write(pod.join("sign.py"), sign_py).unwrap();
    let signer_port = common::free_port();
    let mut signer = Proc::spawn(
        Command::new(python())
            .arg(pod.join("sign.py"))
            .env("PORT", signer_port.to_string())
            .env("BIND", "127.0.0.1")
            .env("PUBLIC_BASE_URL", &base)
            .env("TOLLGATE_KEY_FILE", mount.join("keys/media.key")),
        "backend-signer",
        pod.join("signer.log"),
    );
    assert!(signer.wait_for_port(format!("127.0.0.1:{signer_port}").parse().unwrap()), "backend-signer");
    let answer = http.get(&format!("http://127.0.0.1:{signer_port}/sign?path=/media/hello.txt&ttl=300")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let backend_url = serde_json::from_slice::<Value>(&answer.body).unwrap()["url"].as_str().unwrap().to_owned();
    assert!(backend_url.starts_with(&base), "{backend_url}");
    assert_eq!(http.get(&backend_url).await.status, 200, "a URL the example backend signed");

    // A scrape of the admin port, where the pod annotations point.
    let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
    let scrape = format!(
        "http://127.0.0.1:{}{}",
        annotations["prometheus.io/port"].as_str().unwrap(),
        annotations["prometheus.io/path"].as_str().unwrap()
    );
    let metrics = http.get(&scrape).await;
    assert_eq!(metrics.status, 200);
    let samples = common::metrics(&metrics.text());
    let sample = |name: &str, labels: &[&str]| -> f64 {
        samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l)))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        sample("tollgate_requests_total", &["route=\"media\"", "outcome=\"forwarded\""]),
        3.0,
        "{}",
        metrics.text()
    );
    assert_eq!(sample("tollgate_requests_total", &["route=\"media\"", "outcome=\"denied\""]), 2.0);
    assert_eq!(sample("tollgate_auth_denied_total", &["reason=\"missing_credential\""]), 1.0);
    assert!(sample("tollgate_build_info", &[]) >= 1.0);

    // A ConfigMap edit and a key rotation, delivered the way the kubelet
    // updates a projected volume (atomic ..data swap, old data removed):
    // hot reload applies both without a restart, which is why they are
    // left out of the restart checksum.
    let rotated = common::random_secret();
    let config2 =
        config.replace("routes:\n", "routes:\n- name: docs\n  prefix: /docs/\n  upstream: files\n  auth: none\n");
    assert_ne!(&config2, config);
    project(mount, "gen2", &[("tollgate.yaml", config2.as_bytes()), ("keys/media.key", &rotated)]);
    std::fs::remove_dir_all(mount.join("..gen1")).unwrap();
    wait_status(&http, &format!("{base}/docs/guide.txt"), 200, Duration::from_secs(15), "route added by reload").await;
    let new_url = common::sign(&rotated, "GET", "/media/hello.txt", 600, None, None);
    wait_status(&http, &format!("{base}{new_url}"), 200, Duration::from_secs(15), "rotated key").await;
    assert_eq!(http.get(&format!("{base}{signed}")).await.status, 403, "the old key is gone");
    let reloads = common::metrics(&http.get(&scrape).await.text());
    assert!(reloads["tollgate_config_reloads_total{result=\"ok\"}"] >= 1.0, "{reloads:?}");
    assert_eq!(reloads["tollgate_config_reloads_total{result=\"error\"}"], 0.0, "{}", lp.tollgate.log());
    assert!(lp.tollgate.child.try_wait().unwrap().is_none(), "reloaded without a restart");

    // Pod termination: SIGTERM turns readiness off at once, requests are
    // still served during the grace period, then tollgate exits cleanly
    // within terminationGracePeriodSeconds.
    let period = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    let terminated = Instant::now();
    lp.tollgate.signal("-TERM");
    wait_status(&http, &probe_url("readinessProbe"), 503, Duration::from_secs(1), "readiness after SIGTERM").await;
    assert_eq!(http.get(&format!("{base}{new_url}")).await.status, 200, "served during shutdown.grace");
    let status = lp.tollgate.wait_exit(Duration::from_secs(period));
    assert!(status.success(), "tollgate exited with {status}:\n{}", lp.tollgate.log());
    assert!(terminated.elapsed() < Duration::from_secs(period), "exit within the grace period");
    assert!(!lp.tollgate.log().contains("panicked"), "{}", lp.tollgate.log());
    drop(signer);
}
