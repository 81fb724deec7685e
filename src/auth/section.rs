//! How a credential kind plugs into the configuration: its section under
//! `routes[].auth` (and, for a CDN format, its secret under `keys:`) is
//! deserialised, compiled and described by the kind's own file, through
//! the services the config compiler offers here ([`CompileContext`]). The
//! compiler knows no kind by name: it asks [`super::kinds::REGISTRY`].

use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::keyfile;
use super::keys::{HmacKey, JwtKey, JwtKeySource, KeySet, NamedSecret, SecretEncoding};
use super::kind::Kind;
use super::sign::Signer;

/// A compiled entry of `keys:`, as a kind's section refers to it by name.
#[derive(Clone)]
pub enum CompiledKey {
    Hmac {
        signer: Arc<HmacKey>,
        jwt: Arc<JwtKey>,
    },
    /// A PEM public key, with its DER for the formats that verify with
    /// other digests than JWT's (CloudFront).
    Public(Arc<JwtKey>, Arc<keyfile::PemKey>),
    Set(Arc<KeySet>),
    /// A secret of a kind's own format (`keys.<name>.<format>`).
    Secret(&'static str, Arc<NamedSecret>),
}

impl CompiledKey {
    /// The JWT key this entry verifies with, if it is one.
    pub fn jwt_source(&self) -> Option<JwtKeySource> {
        match self {
            CompiledKey::Hmac { jwt, .. } | CompiledKey::Public(jwt, _) => Some(JwtKeySource::Static(jwt.clone())),
            CompiledKey::Set(set) => Some(JwtKeySource::Set(set.clone())),
            CompiledKey::Secret(..) => None,
        }
    }
}

/// What the config compiler offers a kind compiling its section.
pub trait CompileContext {
    /// Records a problem at a YAML path (`routes[2].auth.jwt.keys[0]`).
    fn error(&mut self, path: &str, message: String);
    /// The key named `name`, referred to at `path` (an unknown key is
    /// recorded as an error there).
    fn key(&mut self, path: &str, name: &str) -> Option<CompiledKey>;
    /// Secret bytes from a `{secret_env | secret_file, encoding}` entry,
    /// read and decoded (`default` when the entry names no encoding).
    fn secret(&mut self, path: &str, raw: SecretFile, default: SecretEncoding) -> Option<Vec<u8>>;
    /// Whether the route counts uses or checks revocations: credential
    /// ids matter there.
    fn counts_ids(&self) -> bool;
}

/// Deserialises a section, recording a failure with its full YAML path.
pub fn parse_section<T: DeserializeOwned>(cx: &mut dyn CompileContext, path: &str, value: Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let at = if inner == "." { path.to_owned() } else { format!("{path}.{inner}") };
            cx.error(&at, e.into_inner().to_string());
            None
        }
    }
}

/// A kind's compiled section: the kinds it adds to the route.
pub type Compiled = Vec<Box<dyn Kind>>;

/// A credential kind as the configuration, the schema and `tollgate sign`
/// know it. One value per kind, listed in [`super::kinds::REGISTRY`].
pub trait Registered: Sync {
    /// Its section under `routes[].auth`.
    fn section(&self) -> &'static str;

    /// The JSON schema of its section.
    fn schema(&self, generator: &mut SchemaGenerator) -> Schema;

    /// Compiles its section of a route (`path` is the section's YAML path).
    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: Value) -> Compiled;

    /// Its secret's format under `keys:`, when it has one of its own.
    fn key_format(&self) -> Option<KeyFormat> {
        None
    }

    /// How `tollgate sign --format` writes its credentials.
    fn signer(&self) -> &dyn Signer;
}

/// A kind's own secret format under `keys:` (`keys.akamai.edgeauth`).
#[derive(Debug, Clone, Copy)]
pub struct KeyFormat {
    /// The field under `keys.<name>`, also the kind's section name.
    pub field: &'static str,
    /// One line for the schema.
    pub about: &'static str,
    /// How its text is encoded unless the entry says otherwise.
    pub encoding: SecretEncoding,
    /// Refuses a secret of the wrong shape (a Cloud CDN key is 16 bytes).
    pub check: fn(&[u8]) -> Result<(), String>,
}

/// Where a secret comes from: exactly one of `secret_env` and `secret_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    pub secret_env: Option<String>,
    pub secret_file: Option<std::path::PathBuf>,
    /// How the stored text encodes the secret bytes (default `raw`).
    pub encoding: Option<SecretEncoding>,
}

/// Where a kind may read its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CarrierFile {
    Header,
    Query,
    Cookie,
}
