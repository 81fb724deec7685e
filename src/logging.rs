//! Logging setup: `tracing` to stderr as text or JSON. The level comes from
//! `TOLLGATE_LOG` when set, else from the config's `log.level`.
//!
//! Lines are handed to a writer thread, so a request never waits on the
//! stderr write itself (the access log is on the hot path). The hand-off is
//! not lossy: when the writer falls behind by 64 Ki lines, requests wait
//! rather than lose their log lines.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Keeps the writer thread running; dropping it flushes what is queued.
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Installs the global subscriber; later calls are ignored.
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = std::env::var("TOLLGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&settings.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(false).buffered_lines_limit(64 * 1024).finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(installed.is_ok().then_some(guard))
}
