//! Iter8 in Rust: the experiment model, the task engine, the load engine, result
//! stores and reports. The two binaries (`iter8-runner`, `iter8`) only wire these.

pub mod cli;
pub mod dist;
pub mod engine;
pub mod grpc;
pub mod k8s;
pub mod load;
pub mod model;
pub mod prometheus;
pub mod report;
pub mod stats;
pub mod store;
pub mod tasks;

/// The runner's version, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binaries were built from (`unknown` outside a git checkout;
/// `ITER8_GIT_COMMIT` at build time overrides; see `build.rs`).
pub const GIT_COMMIT: &str = env!("ITER8_GIT_COMMIT");
/// When the binaries were built (RFC 3339, UTC; `ITER8_BUILD_DATE` or `SOURCE_DATE_EPOCH`
/// at build time override).
pub const BUILD_DATE: &str = env!("ITER8_BUILD_DATE");
/// `--version` of both binaries: `0.1.0 (commit 0123abcd, built 2026-11-30T07:00:00Z)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ITER8_GIT_COMMIT"),
    ", built ",
    env!("ITER8_BUILD_DATE"),
    ")"
);

/// Whether to colour output on a stream: it is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>). Both binaries decide the same way.
pub fn color_allowed(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
