//! The config loader on arbitrary text: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else { return };
    let Ok(metrics) = tollgate::metrics::Metrics::new(prometheus::Registry::new()) else { return };
    let _ = tollgate::config::compile_str(yaml, std::path::Path::new("/nonexistent"), &metrics);
});
