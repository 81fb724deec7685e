//! tollgate: a gatekeeper reverse proxy for private files.
//!
//! A request passes through `proxy::handle`: normal-form check, route
//! lookup, credential verification (signed URL or JWT, cached), stripping
//! of every credential carrier, then a streamed exchange with the upstream
//! (nginx, or an S3 bucket re-signed with SigV4). See `SPEC.md` in the
//! shared contract and the README for the configuration.

pub mod admin;
pub mod auth;
pub mod body;
pub mod config;
pub mod demo;
pub mod duration;
pub mod explain;
pub mod logging;
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
