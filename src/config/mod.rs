//! Configuration: `file.rs` mirrors the YAML, `compile.rs` turns it into the
//! runtime [`Config`] (`compiled.rs`) once, collecting every error with its
//! YAML path; `context.rs` is the compiler's state, and each `*_rules.rs`
//! compiles one section. This file declares and re-exports.

mod compile;
pub mod compiled;
mod context;
pub mod file;
mod keys;
mod route_rules;
pub mod schema;
mod store_rules;
mod upstreams;

pub use crate::duration;
pub use compile::{compile_str, hmac_secret, load, load_with};
pub use compiled::*;
pub use file::LogFormat;
