//! How a credential kind writes its credentials for `tollgate sign
//! --format <format>`: each kind's file implements [`Signer`] and declares
//! the options it reads; the command line offers every registered
//! signer's options, and hands the chosen one what it was given.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::keys::{MIN_SECRET_LEN, SecretEncoding, decode_secret};

/// One option of `tollgate sign` a signer reads (`--md5 <EXPR>`).
#[derive(Debug, Clone, Copy)]
pub struct SignOption {
    /// The long name, without dashes.
    pub name: &'static str,
    /// The value's name in help; `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
    pub default: Option<&'static str>,
}

/// `--ip`: the options several formats read are declared once.
pub const OPTION_IP: SignOption = SignOption {
    name: "ip",
    value: Some("ADDRESS"),
    help: "bind the link to this client address (or CIDR range, where the format takes one)",
    default: None,
};

/// `--not-before`.
pub const OPTION_NOT_BEFORE: SignOption = SignOption {
    name: "not-before",
    value: Some("UNIX_TIME"),
    help: "not valid before this time (unix seconds)",
    default: None,
};

/// `--cookies`.
pub const OPTION_COOKIES: SignOption = SignOption {
    name: "cookies",
    value: None,
    help: "print the signed cookies (a Cookie header value) instead of a URL",
    default: None,
};

/// `--prefix`.
pub const OPTION_PREFIX: SignOption = SignOption {
    name: "prefix",
    value: Some("PREFIX"),
    help: "grant every path under this prefix (must end with /)",
    default: None,
};

/// Where the signing secret comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Env(String),
    File(PathBuf),
    /// Already read (from the configuration).
    Bytes(Vec<u8>),
}

/// The key a signer reads, and how its text is encoded (`None`: the
/// format's usual encoding).
#[derive(Debug, Clone)]
pub struct SignKey {
    pub source: KeySource,
    pub encoding: Option<SecretEncoding>,
}

impl SignKey {
    /// The secret bytes: read, decoded (`default` unless an encoding was
    /// given), and at least `min_len` long.
    pub fn secret(&self, default: SecretEncoding, min_len: usize) -> Result<Vec<u8>, String> {
        let raw = match &self.source {
            KeySource::Bytes(bytes) => return check_len(bytes.clone(), min_len),
            KeySource::Env(var) => std::env::var_os(var)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| format!("environment variable {var} is not set"))?,
            KeySource::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        };
        let secret = decode_secret(raw, self.encoding.unwrap_or(default))
            .ok_or_else(|| "the secret is not valid in the given encoding".to_owned())?;
        check_len(secret, min_len)
    }

    /// An HMAC secret of tollgate's own formats (raw unless told, 32 bytes
    /// at least).
    pub fn hmac(&self) -> Result<Vec<u8>, String> {
        self.secret(SecretEncoding::Raw, MIN_SECRET_LEN)
    }
}

fn check_len(secret: Vec<u8>, min_len: usize) -> Result<Vec<u8>, String> {
    if secret.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    if secret.len() < min_len {
        return Err(format!(
            "the secret is {} bytes; at least {min_len} are required (make one with `tollgate keygen --out FILE`)",
            secret.len()
        ));
    }
    Ok(secret)
}

/// What `tollgate sign` hands a signer.
pub struct SignInput<'a> {
    /// `/path?query`, or a full `https://host/path?query` URL.
    pub target: &'a str,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// `--kid`.
    pub kid: Option<&'a str>,
    pub key: &'a SignKey,
    /// The signer's options that were given (flags as `"true"`).
    pub options: &'a BTreeMap<&'static str, String>,
}

impl SignInput<'_> {
    /// An option's value, or its default.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }
}

/// A kind's credentials, written for a target.
pub trait Signer: Sync {
    /// The `--format` value.
    fn format(&self) -> &'static str;

    /// The options it reads besides the target, key, expiry and `--kid`.
    fn options(&self) -> &'static [SignOption];

    /// The signed URL (or what the format prints: a `Cookie` value).
    fn sign(&self, input: &SignInput<'_>) -> Result<String, String>;
}

/// Splits `https://host:port/p?q` into (`https://host:port`, `/p?q`); a URL
/// without a path gets `/`; a bare target has no origin.
pub fn split_origin(target: &str) -> (&str, std::borrow::Cow<'_, str>) {
    if let Some(rest) = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
        let scheme_len = target.len() - rest.len();
        let path_at = rest.find(['/', '?']).map_or(target.len(), |i| scheme_len + i);
        return match &target[path_at..] {
            "" => (target, "/".into()),
            t if t.starts_with('?') => (&target[..path_at], format!("/{t}").into()),
            t => (&target[..path_at], t.into()),
        };
    }
    ("", target.into())
}

/// The origin and target of a full URL, or an error: CDN links sign the
/// whole URL.
pub fn absolute(url: &str) -> Result<(&str, std::borrow::Cow<'_, str>), String> {
    match split_origin(url) {
        ("", _) => Err(format!("{url:?}: give the full URL the link is for (https://host/path)")),
        parts => Ok(parts),
    }
}

/// Appends `name=value` pairs to a URL's query.
pub fn append_query(url: &str, fields: &[(&str, String)]) -> String {
    let mut out = url.to_owned();
    for (i, (name, value)) in fields.iter().enumerate() {
        out.push(if i == 0 && !url.contains('?') { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_kept() {
        let split = |t| {
            let (origin, target) = split_origin(t);
            (origin.to_owned(), target.into_owned())
        };
        assert_eq!(split("https://f.example/a?b=1"), ("https://f.example".into(), "/a?b=1".into()));
        assert_eq!(split("http://127.0.0.1:8080"), ("http://127.0.0.1:8080".into(), "/".into()));
        assert_eq!(split("/a"), ("".into(), "/a".into()));
        assert_eq!(split("https://f.example?x=1"), ("https://f.example".into(), "/?x=1".into()));
    }
}
