//! Spec and result types (serde), metric naming, conditions. No I/O.

pub mod condition;
pub mod duration;
pub mod iter8doc;
pub mod metrics;
pub mod result;
pub mod schema;
pub mod spec;
pub mod time;
pub mod unknown_keys;
pub mod verdicts;

pub use duration::GoDuration;
pub use result::{
    ExperimentResult, FailedTask, HistBucket, Histogram, Insights, MetricMeta, MetricType,
    RewardWinners, Rewards, Slo, Slos, SlosSatisfied,
};
