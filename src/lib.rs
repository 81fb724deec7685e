//! tollgate: a gatekeeper reverse proxy for private files.
//!
//! A request passes through the phases of `proxy` (normalize, route,
//! verify, target, admit, forward, respond). The modules are stages, and
//! imports point only to the same stage or a lower one
//! (`tests/architecture.rs` checks it, README "Architecture" draws it):
//! leaves (`body`, `duration`, `normalize`, `worker`, `metrics`) <
//! `upstream`, `splice` < `store` < `auth` < `routes` < `config` < `proxy`
//! < `server`, `admin` < the commands (`run`, `explain`, `tools`, `demo`,
//! `logging`). The README documents the configuration and the answers.

pub mod admin;
pub mod auth;
pub mod body;
pub mod config;
pub mod demo;
pub mod duration;
pub mod explain;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod normalize;
pub mod proxy;
pub mod routes;
pub mod run;
pub mod server;
pub mod splice;
pub mod store;
pub mod tools;
pub mod upstream;
pub mod worker;

pub use server::{Handle, start};
