//! The compiler's state while one file is compiled: the errors found so far
//! (each with its YAML path), the files read, which keys and upstreams were
//! used, and the helpers every section's rules share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::compiled::{ConfigError, Limits};
use crate::metrics::Metrics;
use crate::upstream::Upstream;

pub(super) struct Compiler {
    pub(super) base: PathBuf,
    pub(super) errors: Vec<ConfigError>,
    /// Files read while compiling (secrets, keys): watched for reloads.
    pub(super) inputs: Vec<PathBuf>,
    pub(super) used_keys: BTreeSet<String>,
    pub(super) used_upstreams: BTreeSet<String>,
    /// Likely mistakes found while compiling (see `Config::warnings`).
    pub(super) warnings: Vec<ConfigError>,
    /// Every reference to a key: (YAML path, key name).
    pub(super) key_uses: Vec<(String, String)>,
    /// The keys that sign exchanged cookies: (YAML path, key name).
    pub(super) cookie_keys: Vec<(String, String)>,
    /// SHA-256 of each secret key's bytes, by key name: a cookie key must
    /// not be another key under a second name.
    pub(super) secret_digests: BTreeMap<String, [u8; 32]>,
    /// The path-token markers of every route (see `Config::path_token_markers`).
    pub(super) path_token_markers: Vec<Box<str>>,
    /// `tollgate check --offline`: a file or environment variable that is
    /// absent is listed in `unchecked` instead of being an error.
    pub(super) offline: bool,
    pub(super) unchecked: Vec<ConfigError>,
}

pub(super) fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (_, true) => parent.to_owned(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

impl Compiler {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into() });
    }

    /// Deserializes one YAML value, recording a failure with its full path.
    pub(super) fn entry<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let inner = if inner == "." { String::new() } else { inner };
                let mut message = e.into_inner().to_string();
                if message.starts_with("missing field `auth`") {
                    message.push_str(" (a route without a credential says so: `auth: none`)");
                }
                self.error(join(path, &inner), message);
                None
            }
        }
    }

    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    /// Reads a file the configuration names at `at`, remembering it as an
    /// input; a failure is recorded at `at`.
    pub(super) fn read(&mut self, at: String, p: &Path) -> Option<Vec<u8>> {
        let path = self.resolve(p);
        let bytes = std::fs::read(&path);
        self.inputs.push(path);
        bytes
            .map_err(|e| {
                let message = format!("cannot read {}: {e}", p.display());
                if e.kind() == std::io::ErrorKind::NotFound {
                    self.absent(at, message)
                } else {
                    self.error(at, message)
                }
            })
            .ok()
    }

    /// Something the config reads from outside the file is missing: an
    /// error, or with `--offline` a note of what was not checked.
    pub(super) fn absent(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let found = ConfigError { path: path.into(), message: message.into() };
        if self.offline { self.unchecked.push(found) } else { self.errors.push(found) }
    }

    /// A value from `<field>_env` or `<field>_file`, never inline: `None`
    /// on an error (recorded), `Some(None)` when neither is set.
    pub(super) fn env_or_file(
        &mut self,
        path: &str,
        field: &str,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<Option<Vec<u8>>> {
        match (env, file) {
            (Some(var), None) => match std::env::var_os(&var) {
                Some(v) => Some(Some(std::os::unix::ffi::OsStringExt::into_vec(v))),
                None => {
                    self.absent(format!("{path}.{field}_env"), format!("environment variable {var} is not set"));
                    None
                }
            },
            (None, Some(f)) => self.read(format!("{path}.{field}_file"), &f).map(Some),
            (None, None) => Some(None),
            (Some(_), Some(_)) => {
                self.error(path, format!("set exactly one of {field}_env and {field}_file"));
                None
            }
        }
    }
}

/// What routes may refer to.
pub(super) struct Known<'a> {
    pub(super) keys: &'a BTreeMap<String, CompiledKey>,
    pub(super) declared_keys: &'a BTreeSet<String>,
    pub(super) upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    pub(super) declared_upstreams: &'a BTreeSet<String>,
    pub(super) limits: &'a Limits,
    pub(super) metrics: &'a Metrics,
}

/// `; did you mean "media"?` when one of `names` is a likely typo of
/// `wrong` (at most two edits, and fewer than half its length), else "".
pub(super) fn did_you_mean<'n>(wrong: &str, names: impl IntoIterator<Item = &'n String>) -> String {
    let limit = 2.min(wrong.chars().count() / 2);
    names
        .into_iter()
        .map(|n| (edit_distance(wrong, n), n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| format!("; did you mean {n:?}?"))
        .unwrap_or_default()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

pub(super) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub use crate::auth::section::CompiledKey;
