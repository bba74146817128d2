//! What a loop added to the insights, as the list of calls that added it. Loops are
//! additive (values append, histograms merge), so a loop's additions can be replayed onto a
//! result that other loops changed meanwhile (two runners on one release): nothing of
//! either loop is lost. Not serialized: the journal lives for one run of the runner.

use super::loadinfo::LoadInfo;
use super::result::{Histogram, Insights, MetricMeta};

/// One change to [`Insights`], as made by a task.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Versions(Vec<String>),
    Register(String, MetricMeta),
    Record(usize, String, f64),
    Histogram(usize, String, Histogram),
    Unavailable(usize, String, String),
    Load(String, LoadInfo),
}

/// The changes made to an [`Insights`] value since it was created or read (never part of
/// its value: equality, serialization and schema ignore it).
#[derive(Clone, Debug, Default)]
pub struct Journal(pub(crate) Vec<Op>);

impl PartialEq for Journal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Journal {
    pub(crate) fn push(&mut self, op: Op) {
        self.0.push(op);
    }

    /// Number of changes recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Apply the changes from index `from` on to `target`, in order.
    pub fn replay(&self, from: usize, target: &mut Insights) {
        for op in self.0.iter().skip(from) {
            match op {
                Op::Versions(names) => target.ensure_versions(names),
                Op::Register(name, meta) => target.register_metric(name, meta.clone()),
                Op::Record(v, name, value) => target.record(*v, name, *value),
                Op::Histogram(v, name, h) => target.record_histogram(*v, name, h),
                Op::Unavailable(v, name, why) => target.mark_unavailable(*v, name, why.clone()),
                Op::Load(source, info) => target.record_load(source, info.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::result::{HistBucket, MetricType};

    fn hist(lower: f64, count: u64) -> Histogram {
        Histogram {
            buckets: vec![HistBucket {
                lower,
                upper: lower + 1.0,
                count,
            }],
            count,
            sum: lower * count as f64,
            sum_sq: lower * lower * count as f64,
            min: lower,
            max: lower + 1.0,
        }
    }

    #[test]
    fn a_loop_replayed_onto_another_loops_result_keeps_both() {
        // both loops start from the same stored result
        let mut base = Insights::default();
        base.ensure_versions(&["v1".into()]);
        base.record(0, "http/request-count", 10.0);
        base.record_histogram(0, "http/latency", &hist(1.0, 10));
        let mut a = base.clone();
        let mut b = base.clone();
        let (a_from, b_from) = (a.journal.len(), b.journal.len());
        a.ensure_versions(&["v1".into()]);
        a.register_metric(
            "http/request-count",
            MetricMeta::new(MetricType::Counter, "", None),
        );
        a.record(0, "http/request-count", 20.0);
        a.record_histogram(0, "http/latency", &hist(2.0, 20));
        b.record(0, "http/request-count", 30.0);
        b.record_histogram(0, "http/latency", &hist(1.0, 30));
        // b stored first; a's additions are replayed onto what b stored
        let mut stored = b.clone();
        b.journal.replay(b_from, &mut Insights::default()); // replay has no side effect on b
        a.journal.replay(a_from, &mut stored);
        assert_eq!(
            stored.non_histogram_metric_values[0]["http/request-count"],
            vec![10.0, 30.0, 20.0]
        );
        let h = &stored.histogram_metric_values[0]["http/latency"];
        assert_eq!(h.count, 60);
        assert_eq!(h.min, 1.0);
        assert_eq!(h.max, 3.0);
        assert!(stored.metrics_info.contains_key("http/request-count"));
        assert_eq!(stored, {
            let mut expect = b.clone();
            a.journal.replay(a_from, &mut expect);
            expect
        });
    }
}
