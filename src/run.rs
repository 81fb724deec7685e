//! `tollgate serve`: load, start, reload on change or SIGHUP, drain on
//! SIGTERM/SIGINT.
//!
//! Reload is all-or-nothing: the new file is compiled completely (keys read,
//! JWKS fetched) before it replaces the running configuration atomically;
//! an invalid file leaves the old configuration serving and logs every error
//! with its YAML path. The file is polled by content, not by inotify, so a
//! Kubernetes ConfigMap update (a symlink swap) is seen like any edit; the
//! files it refers to (secrets, keys) are polled too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::auth::jwks;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::server::{self, Handle};

/// Runs the proxy from a config file until SIGTERM/SIGINT. `Ok(true)` when
/// the drain completed in time.
pub async fn serve(path: PathBuf) -> Result<bool, String> {
    let metrics = Arc::new(Metrics::new(Registry::new()).map_err(|e| e.to_string())?);
    let config = config::load(&path, &metrics).map_err(|e| e.to_string())?;
    crate::logging::init(&config.log);
    for w in &config.warnings {
        tracing::warn!(path = %w.path, warning = %w.message, "Configuration");
    }
    let reload = config.reload;
    let mut watched = Fingerprint::of(&path, &config);
    let handle = server::start(config, metrics.clone()).await.map_err(|e| format!("cannot listen: {e}"))?;
    tracing::info!(
        listen = %handle.proxy_addr,
        admin = %handle.admin_addr,
        config = %path.display(),
        version = env!("CARGO_PKG_VERSION"),
        "Tollgate started"
    );

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(reload.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                reload_now(&handle, &path, &metrics, &mut watched).await;
                if let Err(e) = handle.reload_tls() {
                    tracing::warn!(error = %e, "TLS reload failed; keeping the current certificate");
                }
            }
            _ = tick.tick(), if reload.watch => {
                if watched.changed(&path) {
                    tracing::info!("Configuration changed on disk: reloading");
                    reload_now(&handle, &path, &metrics, &mut watched).await;
                }
            }
        }
    }
    tracing::info!("Shutting down");
    Ok(handle.shutdown().await)
}

/// Compiles the file again and swaps it in, or keeps the current one.
pub async fn reload_now(handle: &Handle, path: &Path, metrics: &Arc<Metrics>, watched: &mut Fingerprint) -> bool {
    let result = config::load(path, metrics);
    match result {
        Ok(config) => {
            *watched = Fingerprint::of(path, &config);
            let old = handle.shared.runtime.load_full();
            if config.listen != old.config.listen || config.admin != old.config.admin {
                tracing::warn!("listen and admin addresses change only on restart");
            }
            // Keys of a JWKS URL the old config already fetched carry over, so
            // the swap never leaves a route without keys.
            jwks::carry_over(&old.config, &config);
            if let Err(e) = jwks::prime(&config).await {
                tracing::warn!(error = %e, "Reload refused: a JWKS URL could not be fetched");
                metrics.reload(false);
                return false;
            }
            handle.swap(config);
            jwks::start_all(handle, Some(&old.config));
            metrics.reload(true);
            tracing::info!("Configuration reloaded");
            true
        }
        Err(errors) => {
            watched.refresh_source(path);
            for e in &errors.0 {
                tracing::error!(path = %e.path, error = %e.message, "Invalid configuration; keeping the running one");
            }
            metrics.reload(false);
            false
        }
    }
}

/// Content digests of the config file and the files it refers to.
pub struct Fingerprint {
    source: [u8; 32],
    inputs: Vec<(PathBuf, [u8; 32])>,
}

fn digest_file(path: &Path) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(bytes) = std::fs::read(path) {
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref());
    }
    out
}

impl Fingerprint {
    pub fn of(path: &Path, config: &Config) -> Self {
        Fingerprint {
            source: digest_file(path),
            inputs: config.inputs.iter().map(|p| (p.clone(), digest_file(p))).collect(),
        }
    }

    /// Whether any watched file's content differs.
    pub fn changed(&self, path: &Path) -> bool {
        digest_file(path) != self.source || self.inputs.iter().any(|(p, d)| digest_file(p) != *d)
    }

    /// Accepts the current source content after a failed reload, so the same
    /// broken file is reported once, not on every poll.
    fn refresh_source(&mut self, path: &Path) {
        self.source = digest_file(path);
        for (p, d) in &mut self.inputs {
            *d = digest_file(p);
        }
    }
}
