//! Compiling `upstreams:`: URLs, timeouts, TLS, and object-store settings.

use std::path::PathBuf;

use http::Uri;
use http::uri::{Authority, Scheme};

use super::context::Compiler;
use super::file::{HostHeader, S3Addressing, S3File, UpstreamFile};
use crate::upstream::s3::{Addressing, S3Credentials, S3Target};
use crate::upstream::{Upstream, UpstreamSettings};

impl Compiler {
    pub(super) fn upstream(&mut self, path: &str, name: &str, raw: UpstreamFile) -> Option<Upstream> {
        let uri: Uri = match raw.url.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(format!("{path}.url"), format!("{:?} is not a URL", raw.url));
                return None;
            }
        };
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                self.error(format!("{path}.url"), "must start with http:// or https://");
                return None;
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            self.error(format!("{path}.url"), "must name a host");
            return None;
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            self.error(format!("{path}.url"), "must not have a path or query: routes forward the request path as is");
            return None;
        }
        let authority = with_port(&authority, &scheme);
        let mut settings = UpstreamSettings::new(name, scheme, authority);
        if let Some(d) = raw.connect_timeout {
            settings.connect_timeout = d.0;
        }
        if let Some(d) = raw.response_timeout {
            settings.response_timeout = d.0;
        }
        if let Some(d) = raw.pool_idle_timeout {
            settings.pool_idle_timeout = d.0;
        }
        if let Some(n) = raw.pool_max_idle {
            settings.pool_max_idle = n;
        }
        settings.preserve_host = raw.host_header == Some(HostHeader::Preserve);
        if let Some(tls) = raw.tls {
            if settings.scheme != Scheme::HTTPS {
                self.error(format!("{path}.tls"), "only applies to https:// upstreams");
                return None;
            }
            settings.ca_file = tls.ca_file.map(|f| self.resolve(&f));
            if let Some(ca) = settings.ca_file.as_ref().filter(|ca| self.offline && !ca.exists()) {
                self.absent(format!("{path}.tls.ca_file"), format!("cannot read {}: no such file", ca.display()));
                return None;
            }
            settings.server_name = tls.server_name;
        }
        let s3 = match raw.s3 {
            Some(s3) => Some(self.s3(&format!("{path}.s3"), s3)?),
            None => None,
        };
        if s3.is_some() && settings.preserve_host {
            // The Host is signed: a client's Host would pick the bucket.
            self.error(format!("{path}.host_header"), "an s3 upstream always sends its own Host");
            return None;
        }
        match Upstream::new(settings, s3) {
            Ok(up) => Some(up),
            Err(e) => {
                self.error(format!("{path}.tls"), e);
                None
            }
        }
    }

    pub(super) fn s3(&mut self, path: &str, raw: S3File) -> Option<S3Target> {
        let before = self.errors.len();
        let valid_bucket = (3..=63).contains(&raw.bucket.len())
            && raw.bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            self.error(format!("{path}.bucket"), "must be 3-63 characters of a-z 0-9 . -");
        }
        if raw.region.is_empty() {
            self.error(format!("{path}.region"), "must not be empty");
        }
        let key_prefix = raw.key_prefix.unwrap_or_default();
        if key_prefix.starts_with('/')
            || !(key_prefix.is_empty() || key_prefix.ends_with('/'))
            || key_prefix.bytes().any(|b| b < 0x20 || b == 0x7f)
        {
            // Without the trailing slash `/media/-x` would map next to the
            // prefix (`public-site-x`) instead of under it.
            self.error(format!("{path}.key_prefix"), "must end with / and not start with one (e.g. public-site/)");
        }
        let access_key = self.credential(path, "access_key", raw.access_key_env, raw.access_key_file, true);
        let secret_key = self.credential(path, "secret_key", raw.secret_key_env, raw.secret_key_file, true);
        let session_token =
            self.credential(path, "session_token", raw.session_token_env, raw.session_token_file, false);
        if self.errors.len() != before {
            return None;
        }
        let credentials = S3Credentials {
            access_key: access_key.flatten()?,
            secret_key: secret_key.flatten()?,
            session_token: session_token.flatten(),
        };
        let addressing = match raw.addressing {
            Some(S3Addressing::Virtual) => Addressing::Virtual,
            _ => Addressing::Path,
        };
        Some(S3Target::new(
            raw.bucket,
            raw.region,
            key_prefix,
            addressing,
            raw.expose_errors.unwrap_or(false),
            credentials,
        ))
    }

    /// An S3 credential from `<field>_env` or `<field>_file` (whitespace
    /// around it is dropped). `Some(None)`: optional and absent.
    pub(super) fn credential(
        &mut self,
        path: &str,
        field: &str,
        env: Option<String>,
        file: Option<PathBuf>,
        required: bool,
    ) -> Option<Option<String>> {
        let Some(bytes) = self.env_or_file(path, field, env, file)? else {
            if required {
                self.error(path, format!("set one of {field}_env and {field}_file"));
                return None;
            }
            return Some(None);
        };
        match String::from_utf8(bytes) {
            Ok(text) if !text.trim().is_empty() => Some(Some(text.trim().to_owned())),
            _ => {
                self.error(format!("{path}.{field}"), "must be non-empty UTF-8 text");
                None
            }
        }
    }
}

fn with_port(authority: &Authority, scheme: &Scheme) -> Authority {
    if authority.port().is_some() {
        return authority.clone();
    }
    let port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    format!("{}:{port}", authority.host()).parse().unwrap_or_else(|_| authority.clone())
}
