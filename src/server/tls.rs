//! TLS on the proxy listener: rustls, TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, and certificate files re-read when their content changes
//! (cert-manager rotates them in place). A new certificate applies to new
//! handshakes; established connections keep theirs and are not dropped.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// The current server config and what it was built from.
pub struct TlsReloader {
    settings: TlsSettings,
    config: ArcSwap<ServerConfig>,
    /// SHA-256 of cert and key file contents last loaded.
    fingerprint: Mutex<[u8; 32]>,
}

impl TlsReloader {
    /// Loads the certificate and key; fails on unreadable or invalid files.
    pub fn new(settings: TlsSettings) -> Result<Self, String> {
        let (config, fingerprint) = load(&settings)?;
        Ok(TlsReloader { settings, config: ArcSwap::from_pointee(config), fingerprint: Mutex::new(fingerprint) })
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Re-reads the files; swaps the config if they changed. `Ok(true)` when
    /// a new certificate was installed.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let current = fingerprint(&self.settings)?;
        let mut last = self.fingerprint.lock().map_err(|_| "TLS state poisoned".to_owned())?;
        if *last == current {
            return Ok(false);
        }
        let (config, fp) = load(&self.settings)?;
        self.config.store(Arc::new(config));
        *last = fp;
        Ok(true)
    }
}

/// Polls the certificate files until shutdown.
pub async fn watch(reloader: Arc<TlsReloader>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(reloader.settings.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => match reloader.reload_if_changed() {
                Ok(true) => tracing::info!("TLS certificate reloaded"),
                Ok(false) => {}
                // A half-written rotation reads as invalid: keep the old one.
                Err(e) => tracing::warn!(error = %e, "TLS certificate reload failed; keeping the current one"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn fingerprint(settings: &TlsSettings) -> Result<[u8; 32], String> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for path in [&settings.cert_file, &settings.key_file] {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(&bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

fn load(settings: &TlsSettings) -> Result<(ServerConfig, [u8; 32]), String> {
    let fp = fingerprint(settings)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{}: invalid certificate PEM: {e}", settings.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", settings.cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| format!("{}: invalid private key PEM: {e}", settings.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, fp))
}
