//! The commands' helpers: `tollgate sign` and `tollgate token` (each kind's
//! signer lives in its own file, `auth::kinds`), and `tollgate revoke`: how
//! an operator takes a credential back.

use std::path::Path;

use serde_json::Value;

use crate::auth::keys::SecretEncoding;
use crate::auth::sign::{KeySource, SignKey};
use crate::auth::unix_now;

pub use crate::auth::kinds::jwt::{TokenKey, mint as token};
pub use crate::auth::kinds::signed_url::{SignRequest, sign, with_id};

/// Reads a secret from an environment variable or a file (one trailing
/// newline dropped, as in the config), decoded as `encoding`, at least 32
/// bytes (an HMAC key of tollgate's own formats).
pub fn read_secret(env: Option<&str>, file: Option<&Path>, encoding: SecretEncoding) -> Result<Vec<u8>, String> {
    key(env, file, encoding)?.hmac()
}

/// Like [`read_secret`], for the CDN formats' keys, whose length the
/// format decides (a Cloud CDN key is 16 bytes).
pub fn read_secret_any(env: Option<&str>, file: Option<&Path>, encoding: SecretEncoding) -> Result<Vec<u8>, String> {
    key(env, file, encoding)?.secret(encoding, 1)
}

fn key(env: Option<&str>, file: Option<&Path>, encoding: SecretEncoding) -> Result<SignKey, String> {
    let source = match (env, file) {
        (Some(var), None) => KeySource::Env(var.to_owned()),
        (None, Some(path)) => KeySource::File(path.to_path_buf()),
        _ => return Err("give exactly one of --key-env and --key-file".to_owned()),
    };
    Ok(SignKey { source, encoding: Some(encoding) })
}

/// What `tollgate revoke` revokes.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// One credential, by its `jti`.
    Id(String),
    /// Everything `sub` was issued before `before` (unix seconds; default:
    /// up to and including the current second).
    Subject { sub: String, before: Option<u64> },
}

/// Writes a revocation to the configured store: Redis directly, the memory
/// store through its revocations file (which the running server watches).
/// It is kept `keep` (default: the longest credential lifetime a route
/// that checks revocations accepts). Returns a line for the operator.
pub async fn revoke(
    config: &crate::config::Config,
    metrics: &crate::metrics::Metrics,
    target: &RevokeTarget,
    keep: Option<std::time::Duration>,
) -> Result<String, String> {
    use crate::store::{Digest, Revocation, Store, StoreSettings, revocations::Revocations};
    let keep = keep
        .or(config.revocation_lifetime)
        .ok_or("no route checks revocations: set `revocation: true` on a route's auth")?
        .as_secs();
    let now = unix_now();
    let revocation = match target {
        RevokeTarget::Id(id) if id.is_empty() => return Err("--jti must not be empty".to_owned()),
        RevokeTarget::Id(id) => Revocation::Id { id: Digest::id(id), until: now + keep },
        RevokeTarget::Subject { sub, before } => {
            let before = before.unwrap_or(now + 1);
            Revocation::Subject { subject: Digest::subject(sub), before, until: before.max(now) + keep }
        }
    };
    let until = match revocation {
        Revocation::Id { until, .. } | Revocation::Subject { until, .. } => until,
    };
    match &config.store {
        StoreSettings::Memory(m) => {
            let path = m.revocations_file.as_ref().ok_or(
                "the memory store takes revocations from a file: set store.memory.revocations_file (or use redis)",
            )?;
            Revocations::append_to(path, &revocation, now)?;
            Ok(format!("revoked until {until} (unix seconds), written to {}", path.display()))
        }
        StoreSettings::Redis(_) => {
            let store = Store::new(&config.store, metrics.store.clone())?;
            store.revoke(&revocation).await.map_err(|e| e.to_string())?;
            Ok(format!("revoked until {until} (unix seconds), in Redis"))
        }
    }
}

/// Parses `name=value`; the value is JSON when it parses as JSON, else a string.
pub fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("claim {text:?} must look like name=value"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

/// A new HMAC secret for `tollgate keygen`: 32 random bytes written as 64
/// hex characters. Read as `raw` (the default everywhere: the config's
/// `secret_file`/`secret_env`, `tollgate sign --key-file`), the secret is
/// those 64 characters, so every reader agrees on it without an encoding.
pub fn keygen() -> Result<String, String> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness available".to_owned())?;
    Ok(crate::normalize::encode_hex(&secret))
}

/// Writes a new secret to `path`, readable by its owner only; never
/// replaces an existing file.
pub fn keygen_file(path: &Path) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let secret = keygen()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_added_encoded() {
        assert_eq!(with_id("/a", "x y"), Ok("/a?jti=x%20y".to_owned()));
        assert_eq!(with_id("/a?b=1", "k"), Ok("/a?b=1&jti=k".to_owned()));
        assert_eq!(with_id("/a?", "k"), Ok("/a?jti=k".to_owned()));
        assert!(with_id("/a", "").is_err());
    }

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(parse_claim("division=Honda"), Ok(("division".into(), Value::String("Honda".into()))));
        assert_eq!(parse_claim("n=3"), Ok(("n".into(), Value::from(3))));
        assert_eq!(parse_claim(r#"path=["/a/*"]"#), Ok(("path".into(), serde_json::json!(["/a/*"]))));
        assert!(parse_claim("novalue").is_err());
    }
}
