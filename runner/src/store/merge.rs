//! Several runners on one release (an overlapping CronJob loop; `kubectl create job
//! --from=cronjob/...` beside a scheduled one): each writes its loop into what is stored
//! *now*, never over it. Loops are additive: a loop's insight changes (its [`Journal`]) are
//! replayed onto the stored result, so values append and histograms merge exactly.
//!
//! - A loop gets its number when its first write lands: one more than the stored
//!   `numLoops`, so two runners never share a loop and `numLoops` counts the loops that ran.
//! - A loop that starts while the stored loop has not finished records the overlap.
//! - The progress fields (`numCompletedTasks`, `failure`, ...) and the assessment (SLOs,
//!   rewards) are those of the newest loop; `lastFinishedLoop` is the newest loop that ended.
//!
//! [`Journal`]: crate::model::journal::Journal

use crate::model::{ExperimentResult, Overlap};

/// What this runner's loop looks like once written into the stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// The document to store.
    pub doc: ExperimentResult,
    /// This runner's loop number.
    pub loop_number: u64,
    /// Set when this loop started while the stored loop had not finished.
    pub overlap: Option<Overlap>,
}

/// Write `mine` (this runner's view) into `stored` (what the store holds now, of the same
/// revision; None when nothing is stored). `saved_ops`: how many of `mine`'s journal
/// entries `stored` already holds. `claimed`: this loop's number once a write landed.
pub fn compose(
    stored: Option<&ExperimentResult>,
    mine: &ExperimentResult,
    saved_ops: usize,
    claimed: Option<u64>,
) -> Composed {
    let Some(s) = stored else {
        // Nothing stored: this runner's view is the whole result.
        let mut doc = mine.clone();
        if let Some(i) = doc.insights.as_mut() {
            i.journal = Default::default();
        }
        return Composed {
            doc,
            loop_number: claimed.unwrap_or(mine.num_loops),
            overlap: None,
        };
    };
    let mut doc = s.clone();
    let (loop_number, overlap) = match claimed {
        Some(l) => (l, None),
        None => {
            let l = s.num_loops + 1;
            let overlap = (s.num_loops > 0 && !s.finished()).then_some(Overlap {
                loop_number: l,
                with: s.num_loops,
            });
            if let Some(o) = &overlap {
                doc.record_overlap(o.loop_number, o.with);
            }
            (l, overlap)
        }
    };
    doc.num_loops = doc.num_loops.max(loop_number);
    let newest = loop_number >= doc.num_loops;
    if let Some(mi) = &mine.insights {
        let target = doc.insights_mut();
        mi.journal.replay(saved_ops, target);
        if newest {
            target.slos = mi.slos.clone();
            target.slos_satisfied = mi.slos_satisfied.clone();
            target.rewards = mi.rewards.clone();
            target.reward_winners = mi.reward_winners.clone();
            target.relative_slos = mi.relative_slos.clone();
            target.regression = mi.regression.clone();
            target.comparisons = mi.comparisons.clone();
        }
    }
    if newest {
        doc.num_completed_tasks = mine.num_completed_tasks;
        doc.num_tasks = mine.num_tasks;
        doc.failure = mine.failure;
        doc.failed_task = mine.failed_task.clone();
        doc.iter8_version = mine.iter8_version.clone();
        doc.warnings.clone_from(&mine.warnings);
    }
    if let Some(done) = &mine.last_finished_loop {
        let newer = doc
            .last_finished_loop
            .as_ref()
            .is_none_or(|d| d.num_loops < done.num_loops);
        if newer {
            doc.last_finished_loop = Some(done.clone());
        }
    }
    if let Some(i) = doc.insights.as_mut() {
        // What the document holds is stored; its journal means nothing to the next write.
        i.journal = Default::default();
    }
    Composed {
        doc,
        loop_number,
        overlap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::start_loop;
    use crate::model::{HistBucket, Histogram};

    fn hist(count: u64) -> Histogram {
        Histogram {
            buckets: vec![HistBucket {
                lower: 1.0,
                upper: 2.0,
                count,
            }],
            count,
            sum: count as f64,
            sum_sq: count as f64,
            min: 1.0,
            max: 2.0,
        }
    }

    /// A loop of `requests` requests, run on `base` (what the runner read).
    fn run_loop(base: Option<&ExperimentResult>, requests: u64) -> ExperimentResult {
        let mut r = start_loop(base.cloned(), 1, Some(1));
        let i = r.insights_mut();
        i.ensure_versions(&["v".into()]);
        i.record(0, "http/request-count", requests as f64);
        i.record_histogram(0, "http/latency", &hist(requests));
        r.num_completed_tasks = 1;
        r.record_finished_loop();
        r
    }

    #[test]
    fn two_loops_from_the_same_stored_result_both_count() {
        let first = run_loop(None, 5);
        let stored = compose(None, &first, 0, None).doc;
        // two runners read the same stored result (loop 1) and each run loop "2"
        let a = run_loop(Some(&stored), 10);
        let b = run_loop(Some(&stored), 20);
        let after_a = compose(Some(&stored), &a, 0, None);
        assert_eq!(after_a.loop_number, 2);
        // b's write conflicts; merged into what a stored, b becomes loop 3
        let after_b = compose(Some(&after_a.doc), &b, 0, None);
        assert_eq!(after_b.loop_number, 3);
        let doc = after_b.doc;
        assert_eq!(doc.num_loops, 3);
        let i = doc.insights.as_ref().expect("insights");
        assert_eq!(
            i.non_histogram_metric_values[0]["http/request-count"],
            vec![5.0, 10.0, 20.0]
        );
        assert_eq!(i.histogram_metric_values[0]["http/latency"].count, 35);
    }

    #[test]
    fn a_loop_starting_while_another_runs_records_the_overlap_and_keeps_the_verdict() {
        let stored = compose(None, &run_loop(None, 5), 0, None).doc;
        // loop 2 starts (claims) and is still running
        let mut running = start_loop(Some(stored.clone()), 1, Some(1));
        let c2 = compose(Some(&stored), &running, 0, None);
        running.num_loops = c2.loop_number;
        assert_eq!(c2.overlap, None);
        // loop 3 starts on what loop 2 stored
        let third = start_loop(Some(c2.doc.clone()), 1, Some(1));
        let c3 = compose(Some(&c2.doc), &third, 0, None);
        assert_eq!(
            c3.overlap,
            Some(Overlap {
                loop_number: 3,
                with: 2
            })
        );
        assert_eq!(c3.doc.overlaps, vec![c3.overlap.clone().expect("overlap")]);
        // loop 2 goes on writing: it is no longer the newest, so loop 3's progress stays
        running.num_completed_tasks = 1;
        let c2b = compose(Some(&c3.doc), &running, 0, Some(2));
        assert_eq!(c2b.doc.num_loops, 3);
        assert_eq!(c2b.doc.num_completed_tasks, 0);
        // the verdict while loop 3 runs is loop 1's (the last that finished)
        assert_eq!(c2b.doc.verdict().num_loops, 1);
        assert!(c2b.doc.verdict().completed());
    }
}
