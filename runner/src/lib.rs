//! Iter8 in Rust: the experiment model, the task engine, the load engine, result
//! stores and reports. The two binaries (`iter8-runner`, `iter8`) only wire these.

pub mod cli;
pub mod engine;
pub mod grpc;
pub mod k8s;
pub mod load;
pub mod model;
pub mod report;
pub mod store;
pub mod tasks;

/// The runner's version, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
