//! TLS towards upstreams and identity providers: system roots or a
//! configured CA bundle, verified with rustls.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Trust anchors: the PEM bundle at `ca_file`, or the system's roots.
pub fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(path)
                    .and_then(Iterator::collect)
                    .map_err(|e| format!("cannot read CA bundle {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("CA bundle {} holds no usable certificate", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// A client config trusting `ca_file` (or the system roots), TLS 1.2+.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let roots = load_roots(ca_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A client config for plain-http upstreams: the connector type is shared,
/// but no handshake ever uses it.
pub fn client_config_without_roots() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}
