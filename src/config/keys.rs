//! Compiling `keys:`: secrets from files or the environment, PEM public
//! keys, JWK sets, and JWKS URLs to fetch.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use serde_yaml_ng::Value;

use super::context::{CompiledKey, Compiler};
use super::file::{KeyFile, SecretEncoding, SecretFile};
use crate::auth::jwks::JwksFetch;
use crate::auth::keyfile;
use crate::auth::keys::{self, HmacKey, JwtKey, KeySet, MIN_SECRET_LEN};
use crate::auth::kinds::REGISTRY;
use crate::auth::kinds::cdn::{NamedSecret, Secret};
use crate::auth::section::KeyFormat;

impl Compiler {
    /// Secret bytes from `secret_env`/`secret_file`, decoded; any length.
    pub(super) fn secret_bytes(&mut self, path: &str, raw: SecretFile, default: SecretEncoding) -> Option<Vec<u8>> {
        let Some(text) = self.env_or_file(path, "secret", raw.secret_env, raw.secret_file)? else {
            self.error(path, "set one of secret_env and secret_file (secrets are never inline)");
            return None;
        };
        let Some(secret) = keys::decode_secret(text, raw.encoding.unwrap_or(default)) else {
            self.error(format!("{path}.encoding"), "the secret is not valid in this encoding");
            return None;
        };
        if secret.is_empty() {
            self.error(path, "the secret is empty");
            return None;
        }
        Some(secret)
    }

    /// Records a key's secret by digest (see `Compiler::secret_digests`).
    fn remember_secret(&mut self, name: &str, secret: &[u8]) {
        let mut d = [0u8; 32];
        d.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret).as_ref());
        self.secret_digests.insert(name.to_owned(), d);
    }

    pub(super) fn secret(&mut self, path: &str, raw: SecretFile) -> Option<Vec<u8>> {
        let secret = self.secret_bytes(path, raw, SecretEncoding::Raw)?;
        if secret.len() < MIN_SECRET_LEN {
            self.error(path, format!(
                    "the secret is {} bytes; at least {MIN_SECRET_LEN} are required (make one with `tollgate keygen --out FILE`)",
                    secret.len()
                ));
            return None;
        }
        Some(secret)
    }

    pub(super) fn algorithms(
        &mut self,
        path: &str,
        raw: Option<Vec<String>>,
        family: AlgorithmFamily,
        default: Algorithm,
    ) -> Option<Vec<Algorithm>> {
        let Some(names) = raw else {
            return Some(vec![default]);
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match name.parse::<Algorithm>() {
                Ok(alg) if alg.family() == family => out.push(alg),
                Ok(_) => self.error(
                    format!("{path}.algorithms[{i}]"),
                    format!("{name} does not fit this key's type ({family:?}); a key verifies only its own family"),
                ),
                Err(_) => self.error(format!("{path}.algorithms[{i}]"), format!("unknown algorithm {name:?}")),
            }
        }
        if out.is_empty() {
            self.error(format!("{path}.algorithms"), "list at least one algorithm");
            return None;
        }
        (out.len() == names.len()).then_some(out)
    }

    /// One entry of `keys:`: a kind's own secret format is taken out of
    /// the map first (`keys.akamai.edgeauth`), the rest read as [`KeyFile`].
    pub(super) fn key_entry(
        &mut self,
        path: &str,
        name: &str,
        mut value: Value,
        jwks: &mut Vec<JwksFetch>,
    ) -> Option<CompiledKey> {
        let mut formats = Vec::new();
        if let Value::Mapping(map) = &mut value {
            for format in REGISTRY.iter().filter_map(|k| k.key_format()) {
                if let Some(secret) = map.remove(format.field) {
                    formats.push((format, secret));
                }
            }
        }
        let raw = self.entry::<KeyFile>(path, value)?;
        self.key(path, name, raw, formats, jwks)
    }

    fn key(
        &mut self,
        path: &str,
        name: &str,
        raw: KeyFile,
        formats: Vec<(KeyFormat, Value)>,
        jwks: &mut Vec<JwksFetch>,
    ) -> Option<CompiledKey> {
        let sources =
            [raw.hmac.is_some(), raw.public_key_file.is_some(), raw.jwks_file.is_some(), raw.jwks_url.is_some()];
        if sources.iter().filter(|s| **s).count() + formats.len() != 1 {
            let own: Vec<&str> = REGISTRY.iter().filter_map(|k| k.key_format()).map(|f| f.field).collect();
            self.error(
                path,
                format!(
                    "set exactly one of hmac, public_key_file, jwks_file and jwks_url (or a CDN format's {})",
                    own.join(", ")
                ),
            );
            return None;
        }
        let url_only = [
            ("refresh", raw.refresh.is_some()),
            ("refetch_cooldown", raw.refetch_cooldown.is_some()),
            ("required_for_ready", raw.required_for_ready.is_some()),
            ("allow_insecure_http", raw.allow_insecure_http.is_some()),
            ("ca_file", raw.ca_file.is_some()),
        ];
        if raw.jwks_url.is_none() {
            for (field, set) in url_only {
                if set {
                    self.error(format!("{path}.{field}"), "only applies to jwks_url keys");
                }
            }
        }
        let kid = raw.kid.clone().unwrap_or_else(|| name.to_owned());
        if let Some((format, secret)) = formats.into_iter().next() {
            if raw.algorithms.is_some() {
                self.error(format!("{path}.algorithms"), "only for JWT keys");
            }
            let spath = format!("{path}.{}", format.field);
            let secret = self.entry::<SecretFile>(&spath, secret)?;
            let secret = self.secret_bytes(&spath, secret, format.encoding)?;
            self.remember_secret(name, &secret);
            if let Err(why) = (format.check)(&secret) {
                self.error(spath, why);
                return None;
            }
            let named = NamedSecret { id: kid, secret: Secret::new(&secret) };
            return Some(CompiledKey::Secret(format.field, Arc::new(named)));
        }
        if let Some(secret) = raw.hmac {
            let encoding = secret.encoding.unwrap_or(SecretEncoding::Raw);
            let secret = self.secret(&format!("{path}.hmac"), secret)?;
            self.remember_secret(name, &secret);
            let algorithms = self.algorithms(path, raw.algorithms, AlgorithmFamily::Hmac, Algorithm::HS256)?;
            let jwt = match JwtKey::hmac(Some(kid.clone()), &secret, algorithms) {
                Ok(k) => k,
                Err(why) => {
                    self.error(format!("{path}.algorithms"), why);
                    return None;
                }
            };
            let signer = HmacKey::new(kid, &secret).read_as(encoding);
            return Some(CompiledKey::Hmac { signer: Arc::new(signer), jwt: Arc::new(jwt) });
        }
        if let Some(file) = raw.public_key_file {
            let pem = self.read(format!("{path}.public_key_file"), &file)?;
            let parsed = match keyfile::parse_public_pem(&pem) {
                Ok(k) => k,
                Err(why) => {
                    self.error(format!("{path}.public_key_file"), why);
                    return None;
                }
            };
            let algorithms = self.algorithms(path, raw.algorithms, parsed.family, parsed.default_alg)?;
            return match JwtKey::public(Some(kid), &parsed.der, algorithms) {
                Ok(key) => Some(CompiledKey::Public(Arc::new(key), Arc::new(parsed))),
                Err(why) => {
                    self.error(format!("{path}.algorithms"), why);
                    None
                }
            };
        }
        if raw.algorithms.is_some() || raw.kid.is_some() {
            self.error(path, "kid and algorithms come from the JWK set itself");
            return None;
        }
        if let Some(file) = raw.jwks_file {
            let text = self.read(format!("{path}.jwks_file"), &file)?;
            return match keyfile::parse_jwks(&text) {
                Ok((set, _skipped)) => Some(CompiledKey::Set(Arc::new(KeySet::new(name, set)))),
                Err(why) => {
                    self.error(format!("{path}.jwks_file"), why);
                    None
                }
            };
        }
        let url_text = raw.jwks_url.unwrap_or_default();
        let url: Uri = match url_text.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(format!("{path}.jwks_url"), format!("{url_text:?} is not a URL"));
                return None;
            }
        };
        let loopback = url.host().is_some_and(is_loopback_host);
        match url.scheme_str() {
            Some("https") => {}
            Some("http") if loopback || raw.allow_insecure_http == Some(true) => {}
            Some("http") => {
                self.error(
                    format!("{path}.jwks_url"),
                    "must be https (http is allowed for loopback, or with allow_insecure_http: true)",
                );
                return None;
            }
            _ => {
                self.error(format!("{path}.jwks_url"), "must be an https:// URL");
                return None;
            }
        }
        let ca_file = raw.ca_file.map(|f| self.resolve(&f));
        if let Some(ca) = &ca_file
            && let Err(e) = crate::upstream::tls::load_roots(Some(ca))
        {
            self.error(format!("{path}.ca_file"), e);
            return None;
        }
        let cooldown = raw.refetch_cooldown.map_or(Duration::from_secs(30), |d| d.0);
        let refresh = raw.refresh.map_or(Duration::from_secs(300), |d| d.0);
        if refresh < Duration::from_secs(10) {
            self.error(format!("{path}.refresh"), "must be at least 10s (it bounds the load on the identity provider)");
        }
        if cooldown < Duration::from_secs(1) {
            self.error(
                format!("{path}.refetch_cooldown"),
                "must be at least 1s (it bounds refetches caused by unknown kids)",
            );
        }
        let set = Arc::new(KeySet::new(name, Vec::new()).remote(cooldown));
        jwks.push(JwksFetch {
            set: set.clone(),
            url,
            refresh,
            required_for_ready: raw.required_for_ready.unwrap_or(true),
            ca_file,
        });
        Some(CompiledKey::Set(set))
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
