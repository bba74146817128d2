//! Spec and result types (serde), metric naming, conditions, input limits. No I/O except
//! the size-capped file reads of [`limits`].

pub mod condition;
pub mod duration;
pub mod iter8doc;
pub mod journal;
pub mod limits;
pub mod loadinfo;
pub mod metrics;
pub mod result;
pub mod schema;
pub mod spec;
pub mod time;
pub mod unknown_keys;
pub mod verdicts;

pub use duration::GoDuration;
pub use loadinfo::{GeneratorInfo, LoadInfo, StageInfo};
pub use result::{
    ExperimentResult, FailedTask, HistBucket, Histogram, Insights, MetricMeta, MetricType, Overlap,
    RewardWinners, Rewards, Slo, Slos, SlosSatisfied,
};
