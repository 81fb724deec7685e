//! The alerting rules (`deploy/prometheus/alerts.yaml`), checked by
//! Prometheus's own `promtool`: `check rules` accepts the file, and every
//! rule has `promtool test rules` unit tests in `tests/prometheus/` with
//! synthetic series that fire it and series that must not. Those tests are
//! shown to have teeth: with a rule's expression replaced by one that never
//! fires, its firing cases fail; replaced by one that always fires, its quiet
//! cases fail. (The chart's PrometheusRule copy is checked in
//! tests/packaging.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

const RULES: &str = "deploy/prometheus/alerts.yaml";
const TESTS: &str = "tests/prometheus";

fn promtool() -> PathBuf {
    common::require("promtool", &["/usr/bin/promtool"])
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every rule of the rules file, by alert name.
fn rules() -> BTreeMap<String, Value> {
    let file = yaml(&common::repo().join(RULES));
    let mut out = BTreeMap::new();
    for group in file["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules").to_owned();
            assert!(out.insert(name.clone(), rule.clone()).is_none(), "{name} twice");
        }
    }
    out
}

/// The unit test files, `tests/prometheus/*.test.yaml`.
fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::repo().join(TESTS))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    files
}

struct Out {
    ok: bool,
    text: String,
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        ok: out.status.success(),
        text: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn alert_rules_pass_promtool_check() {
    let out = run(Command::new(promtool()).args(["check", "rules"]).arg(common::repo().join(RULES)));
    assert!(out.ok, "promtool check rules:\n{}", out.text);
    let count = rules().len();
    assert!(count >= 8, "rules: {count}");
    assert!(out.text.contains(&format!("SUCCESS: {count} rules found")), "{}", out.text);

    // promtool really parses the expressions: a syntax error fails it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join(RULES)).unwrap();
    let broken = text.replacen("increase(tollgate_config_reloads_total", "increase(tollgate_config_reloads_total[", 1);
    assert_ne!(broken, text);
    let file = common::write_file(dir.path(), "broken.yaml", broken.as_bytes());
    let out = run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
    assert!(!out.ok, "promtool accepted a broken expression:\n{}", out.text);
}

/// Every alert has at least one case that expects it to fire and one that
/// expects silence, and `promtool test rules` passes them all.
#[test]
fn every_alert_has_promtool_tests_that_fire_it_and_keep_it_quiet() {
    let files = test_files();
    let mut firing: BTreeMap<String, usize> = BTreeMap::new();
    let mut quiet: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let doc = yaml(file);
        let targets: Vec<PathBuf> = doc["rule_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| file.parent().unwrap().join(r.as_str().unwrap()).canonicalize().unwrap())
            .collect();
        assert_eq!(targets, [common::repo().join(RULES).canonicalize().unwrap()], "{}", file.display());
        for case in doc["tests"].as_sequence().unwrap() {
            for check in case["alert_rule_test"].as_sequence().unwrap() {
                let name = check["alertname"].as_str().unwrap().to_owned();
                let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
                *(if expected > 0 { &mut firing } else { &mut quiet }).entry(name).or_default() += 1;
            }
        }
    }
    for name in rules().keys() {
        assert!(firing.contains_key(name), "no promtool test case fires {name}");
        assert!(quiet.contains_key(name), "no promtool test case keeps {name} quiet");
    }
    for name in firing.keys().chain(quiet.keys()) {
        assert!(rules().contains_key(name), "tests name {name}, which {RULES} does not have");
    }

    let out = run(Command::new(promtool()).args(["test", "rules"]).args(&files));
    assert!(out.ok, "promtool test rules:\n{}", out.text);
    assert_eq!(out.text.matches("SUCCESS").count(), files.len(), "{}", out.text);
}

/// A copy of the rules with `alert`'s expression replaced, and copies of the
/// test cases about `alert` that expect it to fire (`firing`) or not,
/// pointing at that copy. `promtool test rules` on them must fail.
fn mutant_fails(alert: &str, expr: &str, firing: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = yaml(&common::repo().join(RULES));
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            if rule["alert"] == alert {
                rule["expr"] = Value::from(expr);
            }
        }
    }
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(&rules_file, serde_yaml_ng::to_string(&rules).unwrap()).unwrap();
    let mut written = Vec::new();
    for (i, file) in test_files().iter().enumerate() {
        let mut doc = yaml(file);
        doc["rule_files"] = Value::Sequence(vec![Value::from(rules_file.to_str().unwrap())]);
        let cases = doc["tests"].as_sequence_mut().unwrap();
        for case in cases.iter_mut() {
            case["alert_rule_test"].as_sequence_mut().unwrap().retain(|c| {
                c["alertname"] == alert && c["exp_alerts"].as_sequence().is_some_and(|e| !e.is_empty()) == firing
            });
        }
        cases.retain(|c| !c["alert_rule_test"].as_sequence().unwrap().is_empty());
        if !cases.is_empty() {
            let path = dir.path().join(format!("{i}.test.yaml"));
            std::fs::write(&path, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
            written.push(path);
        }
    }
    assert!(!written.is_empty(), "{alert}: no cases");
    !run(Command::new(promtool()).args(["test", "rules"]).args(&written)).ok
}

#[test]
fn promtool_tests_fail_when_a_rule_never_fires_or_always_fires() {
    for (alert, rule) in rules() {
        let alert = alert.as_str();
        // The harness itself: the unchanged expression passes both sets.
        let expr = rule["expr"].as_str().unwrap();
        assert!(!mutant_fails(alert, expr, true) && !mutant_fails(alert, expr, false), "{alert}: harness");
        assert!(mutant_fails(alert, "vector(1) > 2", true), "{alert}: its firing cases pass a rule that never fires");
        assert!(mutant_fails(alert, "vector(1)", false), "{alert}: its quiet cases pass a rule that always fires");
    }
}
