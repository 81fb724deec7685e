//! Compiling the CDN-compatible kinds of `routes[].auth`: `cloudfront`,
//! `edgeauth`, `cloud_cdn` and `secure_link` (keys, origins, carriers).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::context::{CdnFormat, CompiledKey, Compiler, Known};
use super::file::{CarrierFile, CloudCdnFile, CloudFrontFile, EdgeAuthAlgorithm, EdgeAuthFile, SecureLinkFile};

use crate::auth::cloud_cdn::CloudCdn;
use crate::auth::cloudfront::{CloudFront, CloudFrontKey};
use crate::auth::edgeauth::{self, EdgeAuth};
use crate::auth::keys::SecretEncoding;
use crate::auth::kinds::cdn::{NamedSecret, Origins, Secret};
use crate::auth::secure_link::{self, Part, SecureLink};

/// Query parameter names a route may configure: nothing to encode.
fn valid_param(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Compiler {
    /// The route's public origins, errors at `<path>.origins[i]`.
    fn origins(&mut self, path: &str, raw: &[String]) -> Option<Origins> {
        match Origins::new(raw) {
            Ok(o) => Some(o),
            Err((i, why)) => {
                let at = if raw.is_empty() { format!("{path}.origins") } else { format!("{path}.origins[{i}]") };
                self.error(at, why);
                None
            }
        }
    }

    /// `from:` for formats carried in the query or a cookie; default both.
    fn query_or_cookie(&mut self, path: &str, raw: Option<Vec<CarrierFile>>) -> (bool, bool) {
        let Some(list) = raw else {
            return (true, true);
        };
        let (mut query, mut cookie) = (false, false);
        for (i, c) in list.iter().enumerate() {
            match c {
                CarrierFile::Query => query = true,
                CarrierFile::Cookie => cookie = true,
                CarrierFile::Header => {
                    self.error(format!("{path}.from[{i}]"), "this format is carried in the query or a cookie")
                }
            }
        }
        if !query && !cookie {
            self.error(format!("{path}.from"), "list query and/or cookie");
        }
        (query, cookie)
    }

    /// The secrets of one CDN format named by `keys`.
    pub(super) fn cdn_secrets(
        &mut self,
        path: &str,
        names: &[String],
        format: CdnFormat,
        known: &Known<'_>,
    ) -> Vec<Arc<NamedSecret>> {
        if names.is_empty() {
            self.error(format!("{path}.keys"), format!("list at least one {} key", format.field()));
        }
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            match self.key_ref(&kpath, name, known) {
                Some(CompiledKey::Cdn(f, secret)) if *f == format => out.push(secret.clone()),
                Some(_) => {
                    let article = if format.field().starts_with('e') { "an" } else { "a" };
                    self.error(kpath, format!("key {name:?} is not {article} {} key", format.field()))
                }
                None => {}
            }
        }
        out
    }

    pub(super) fn cloudfront(&mut self, path: &str, raw: CloudFrontFile, known: &Known<'_>) -> Option<CloudFront> {
        if raw.keys.is_empty() {
            self.error(format!("{path}.keys"), "list at least one public_key_file key");
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            match self.key_ref(&kpath, name, known) {
                Some(CompiledKey::Public(jwt, pem)) => {
                    let rsa = pem.family == AlgorithmFamily::Rsa;
                    if !rsa && pem.default_alg != Algorithm::ES256 {
                        self.error(kpath, "CloudFront keys are RSA or ECDSA P-256");
                        continue;
                    }
                    let id = jwt.kid.clone().unwrap_or_else(|| name.clone());
                    match CloudFrontKey::new(id, &pem.der, rsa) {
                        Ok(key) => keys.push(Arc::new(key)),
                        Err(why) => self.error(kpath, why),
                    }
                }
                Some(_) => self.error(kpath, format!("key {name:?} is not a public_key_file key")),
                None => {}
            }
        }
        let origins = self.origins(path, &raw.origins);
        let (from_query, from_cookie) = self.query_or_cookie(path, raw.from);
        Some(CloudFront { keys, origins: origins?, from_query, from_cookie })
    }

    pub(super) fn secure_link(&mut self, path: &str, raw: SecureLinkFile, known: &Known<'_>) -> Option<SecureLink> {
        let keys = self.cdn_secrets(path, &raw.keys, CdnFormat::SecureLink, known);
        let template = match secure_link::parse_template(&raw.md5) {
            Ok(t) => Some(t),
            Err(why) => {
                self.error(format!("{path}.md5"), why);
                None
            }
        };
        // Without the secret anyone could mint links; without the expiry a
        // holder could extend theirs.
        for (part, name) in [(Part::Secret, "$secret"), (Part::Expires, "$secure_link_expires")] {
            if template.as_ref().is_some_and(|t| !t.contains(&part)) {
                self.error(format!("{path}.md5"), format!("the expression must contain {name}"));
            }
        }
        let hash_param = raw.hash_param.unwrap_or_else(|| "md5".to_owned());
        let expires_param = raw.expires_param.unwrap_or_else(|| "expires".to_owned());
        for (field, value) in [("hash_param", &hash_param), ("expires_param", &expires_param)] {
            if !valid_param(value) {
                self.error(format!("{path}.{field}"), "must be a plain name (A-Z a-z 0-9 - _ .)");
            }
        }
        if hash_param == expires_param {
            self.error(format!("{path}.expires_param"), "must differ from hash_param");
        }
        Some(SecureLink {
            keys,
            template: template?,
            hash_param: hash_param.into_boxed_str(),
            expires_param: expires_param.into_boxed_str(),
        })
    }

    pub(super) fn edgeauth(&mut self, path: &str, raw: EdgeAuthFile, known: &Known<'_>) -> Option<EdgeAuth> {
        let keys = self.cdn_secrets(path, &raw.keys, CdnFormat::EdgeAuth, known);
        let token_name = raw.token_name.unwrap_or_else(|| "__token__".to_owned());
        let header = match http::HeaderName::from_bytes(token_name.to_ascii_lowercase().as_bytes()) {
            Ok(h) if valid_param(&token_name) => Some(h),
            _ => {
                self.error(format!("{path}.token_name"), "must be a plain name (A-Z a-z 0-9 - _ .)");
                None
            }
        };
        let (mut from_query, mut from_cookie, mut from_header) =
            (raw.from.is_none(), raw.from.is_none(), raw.from.is_none());
        for c in raw.from.iter().flatten() {
            match c {
                CarrierFile::Query => from_query = true,
                CarrierFile::Cookie => from_cookie = true,
                CarrierFile::Header => from_header = true,
            }
        }
        if !(from_query || from_cookie || from_header) {
            self.error(format!("{path}.from"), "list query, cookie and/or header");
        }
        let salt = match raw.salt {
            None => None,
            Some(s) => Some(Secret::new(&self.secret_bytes(&format!("{path}.salt"), s, SecretEncoding::Raw)?)),
        };
        let algorithm = match raw.algorithm.unwrap_or(EdgeAuthAlgorithm::Sha256) {
            EdgeAuthAlgorithm::Sha256 => edgeauth::Algorithm::Sha256,
            EdgeAuthAlgorithm::Sha1 => edgeauth::Algorithm::Sha1,
            EdgeAuthAlgorithm::Md5 => edgeauth::Algorithm::Md5,
        };
        Some(EdgeAuth {
            keys,
            algorithm,
            token_name: token_name.into_boxed_str(),
            from_query,
            from_cookie,
            header: if from_header { header } else { None },
            salt,
            escape_early: raw.escape_early,
        })
    }

    pub(super) fn cloud_cdn(&mut self, path: &str, raw: CloudCdnFile, known: &Known<'_>) -> Option<CloudCdn> {
        let keys = self.cdn_secrets(path, &raw.keys, CdnFormat::CloudCdn, known);
        let origins = self.origins(path, &raw.origins);
        let (from_query, from_cookie) = self.query_or_cookie(path, raw.from);
        Some(CloudCdn { keys, origins: origins?, from_query, from_cookie })
    }
}
