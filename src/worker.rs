//! Which worker thread is running: per-worker state (upstream connection
//! pools, the store's connections) is indexed by it, so a connection is
//! driven by the thread that uses it. A leaf: it imports nothing of the
//! crate.

use std::cell::Cell;

/// Most worker threads with state of their own (more share it).
pub const MAX_WORKERS: usize = 64;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `id`.
pub fn set(id: usize) {
    WORKER.with(|w| w.set(id % MAX_WORKERS));
}

/// The current thread's worker number, `0..MAX_WORKERS` (0 off the workers).
pub fn current() -> usize {
    WORKER.with(Cell::get)
}
