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
use std::time::Duration;

use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::auth::jwks;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::server::{self, Handle};

/// Runs the proxy from a config file until SIGTERM/SIGINT. `Ok(true)` when
/// the drain completed in time.
pub async fn serve(path: PathBuf) -> Result<bool, String> {
    let registry = Registry::new();
    // process_cpu_seconds_total, process_resident_memory_bytes,
    // process_open_fds, ...: what every Prometheus exporter reports.
    registry
        .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
        .map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new(registry).map_err(|e| e.to_string())?);
    let config = config::load(&path, &metrics).map_err(|e| e.to_string())?;
    release_freed_memory();
    let _logs = crate::logging::init(&config.log);
    for w in &config.warnings {
        tracing::warn!(path = %w.path, warning = %w.message, "Configuration");
    }
    let reload = config.reload;
    let mut watched = Watched::new(Fingerprint::of(&path, &config));
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
                if watched.fingerprint.changed(&path) {
                    tracing::info!("Configuration changed on disk: reloading");
                    reload_now(&handle, &path, &metrics, &mut watched).await;
                } else if watched.retry_due() {
                    reload_now(&handle, &path, &metrics, &mut watched).await;
                }
            }
        }
    }
    tracing::info!("Shutting down");
    Ok(handle.shutdown().await)
}

/// How long a failed reload waits before it is tried again by itself (a
/// ConfigMap can name a Secret entry that lands a moment later).
const RETRY_FAILED_RELOAD: Duration = Duration::from_secs(10);

/// Compiles the file again and swaps it in, or keeps the current one.
pub async fn reload_now(handle: &Handle, path: &Path, metrics: &Arc<Metrics>, watched: &mut Watched) -> bool {
    // Compiled off the control thread, so the acceptor and the admin
    // listener keep answering while a large file compiles; the running
    // configuration serves until the swap.
    let compiled = {
        let (path, metrics) = (path.to_path_buf(), metrics.clone());
        tokio::task::spawn_blocking(move || {
            let compiled = config::load(&path, &metrics);
            release_freed_memory();
            compiled
        })
        .await
    };
    let loaded = compiled.unwrap_or_else(|e| {
        Err(config::ConfigErrors(vec![config::ConfigError {
            path: String::new(),
            message: format!("compile failed: {e}"),
        }]))
    });
    let config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            let text = errors.to_string();
            let new = watched.failed(path, &text, || {
                for e in &errors.0 {
                    tracing::error!(path = %e.path, error = %e.message, "Invalid configuration; keeping the running one");
                }
            });
            if new {
                metrics.reload(false);
            }
            return false;
        }
    };
    let old = handle.shared.runtime.load_full();
    for setting in old.config.restart_only_changes(&config) {
        tracing::warn!(setting, "This setting changes only on restart; the running value stays");
    }
    // Keys of a JWKS URL the old config already fetched carry over, so the
    // swap never leaves a route without keys.
    jwks::carry_over(&old.config.jwks, &config.jwks);
    if let Err(e) = jwks::prime(&config.jwks).await {
        let text = format!("a JWKS URL could not be fetched: {e}");
        if watched.failed(
            path,
            &text,
            || tracing::error!(error = %text, "Reload refused; keeping the running configuration"),
        ) {
            metrics.reload(false);
        }
        return false;
    }
    let fingerprint = Fingerprint::of(path, &config);
    for w in &config.warnings {
        tracing::warn!(path = %w.path, warning = %w.message, "Configuration");
    }
    handle.swap(config);
    crate::server::start_key_refreshers(handle, Some(&old.config));
    *watched = Watched::new(fingerprint);
    metrics.reload(true);
    tracing::info!("Configuration reloaded");
    drop(old);
    release_freed_memory();
    true
}

/// Hands the memory a compile freed back to the system. Parsing builds the
/// whole YAML tree before compiling it (100,000 routes: about 170 MB, all
/// freed once the routes are built), and mimalloc keeps freed pages for
/// reuse until its heap is collected, which an idle control thread never
/// does by itself: without this, RSS stays at the parse's peak.
fn release_freed_memory() {
    #[cfg(not(feature = "system-alloc"))]
    // SAFETY: mi_collect takes no arguments but a flag; it frees and purges
    // pages of mimalloc's own heaps that hold no live allocation.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}

/// What the reload loop watches, and the state of a failed reload.
pub struct Watched {
    pub fingerprint: Fingerprint,
    /// When to try a failed reload again, and its errors (logged once).
    retry: Option<(tokio::time::Instant, String)>,
}

impl Watched {
    pub fn new(fingerprint: Fingerprint) -> Self {
        Watched { fingerprint, retry: None }
    }

    /// Whether a failed reload is due for another try.
    pub fn retry_due(&self) -> bool {
        self.retry.as_ref().is_some_and(|(at, _)| tokio::time::Instant::now() >= *at)
    }

    /// Records a failed reload: the same errors are logged and counted only
    /// once (`true` when they are new), and the reload is retried later (the
    /// file it needs may not be there yet).
    fn failed(&mut self, path: &Path, errors: &str, log: impl FnOnce()) -> bool {
        let new = self.retry.as_ref().is_none_or(|(_, last)| last != errors);
        if new {
            log();
        }
        self.fingerprint.source = digest_file(path);
        self.retry = Some((tokio::time::Instant::now() + RETRY_FAILED_RELOAD, errors.to_owned()));
        new
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
}
