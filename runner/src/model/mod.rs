//! Spec and result types (serde), metric naming, conditions. No I/O.

pub mod metrics;
pub mod result;

pub use result::{
    ExperimentResult, FailedTask, HistBucket, Histogram, Insights, MetricMeta, MetricType,
    RewardWinners, Rewards, Slo, Slos, SlosSatisfied,
};
