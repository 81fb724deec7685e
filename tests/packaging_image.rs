//! The image: the Dockerfile passes hadolint, builds what CI builds into a
//! non-root distroless image, and the binary needs only what that runtime
//! ships. Every tool comes from `tests/setup.sh`; a missing one fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/k8s.rs"]
mod k8s;

use std::collections::BTreeSet;
use std::process::Command;

use k8s::*;

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
