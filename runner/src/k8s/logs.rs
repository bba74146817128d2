//! The logs of an experiment's runner pods (`iter8 log`): every run headed by its
//! revision, Job and loop, or the newest run followed as it is written.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use super::{
    api_err, error_message, to_chrono, Result, INSTANCE_LABEL, NAME_LABEL, REVISION_LABEL,
    RUNNER_CONTAINER,
};

/// The logs of one runner pod (or of a Job without a pod).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLog {
    /// Helm release revision of the run (the Job's `iter8.tools/revision` label).
    pub revision: Option<i64>,
    /// The Job.
    pub job: String,
    /// The CronJob that created the Job, for CronJob loops.
    pub cronjob: Option<String>,
    /// 1-based rank of this Job among the Jobs of the same revision still kept by
    /// Kubernetes, oldest first (a CronJob keeps only its last few Jobs).
    pub loop_index: usize,
    /// When the Job started (else when it was created).
    pub start_time: Option<DateTime<Utc>>,
    /// The pod; None when the Job has no pod (not started yet, or cleaned up).
    pub pod: Option<String>,
    /// The runner container's log.
    pub logs: String,
    /// Why the log could not be read (pod pending, forbidden, ...).
    pub error: Option<String>,
}

impl RunLog {
    /// `revision 3, job hello-3-job, loop 1, pod hello-3-job-abcde, started 2026-...`
    pub fn heading(&self) -> String {
        let mut h = match self.revision {
            Some(r) => format!("revision {r}, job {}", self.job),
            None => format!("job {}", self.job),
        };
        if let Some(cj) = &self.cronjob {
            h.push_str(&format!(" (cronjob {cj})"));
        }
        h.push_str(&format!(", loop {}", self.loop_index));
        if let Some(p) = &self.pod {
            h.push_str(&format!(", pod {p}"));
        }
        if let Some(t) = &self.start_time {
            h.push_str(&format!(", started {}", t.to_rfc3339()));
        }
        h
    }
}

/// `iter8 log` output: each run headed by its revision, Job and loop, newest first.
pub fn format_run_logs(release: &str, namespace: &str, logs: &[RunLog]) -> String {
    if logs.is_empty() {
        return format!(
            "no runner Jobs of release {release} in namespace {namespace} (runner=none, not started yet, or removed after ttlSecondsAfterFinished)\n"
        );
    }
    let mut out = String::new();
    for l in logs {
        out.push_str(&format!("=== {} ===\n", l.heading()));
        if let Some(e) = &l.error {
            out.push_str(&format!("(no log: {e})\n"));
        }
        out.push_str(&l.logs);
        if !l.logs.is_empty() && !l.logs.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The logs of the release's runner pods, newest run first: Job runs and CronJob loops,
/// found by the labels the chart sets (`app.kubernetes.io/instance=<release>`,
/// `app.kubernetes.io/name=iter8`; a CronJob copies them onto its Jobs).
pub async fn pod_logs(
    client: &Client,
    namespace: &str,
    release: &str,
    opts: &LogOptions,
) -> Result<Vec<RunLog>> {
    let runs = runs(client, namespace, release).await?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::with_capacity(runs.len());
    for mut run in runs {
        if let Some(name) = &run.pod {
            match pods_api.logs(name, &opts.params(false)).await {
                Ok(l) => run.logs = l,
                Err(e) => run.error = Some(error_message(&e)),
            }
        }
        out.push(run);
    }
    Ok(out)
}

/// Which part of a log to read (`iter8 log --tail`).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last this many lines of each pod's log.
    pub tail_lines: Option<i64>,
}

impl LogOptions {
    fn params(&self, follow: bool) -> LogParams {
        LogParams {
            container: Some(RUNNER_CONTAINER.into()),
            tail_lines: self.tail_lines,
            follow,
            ..Default::default()
        }
    }
}

/// How long `follow_newest_log` waits for the newest run's container to start.
pub const FOLLOW_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `iter8 log --follow`: the newest run's heading, then its log as it is written, until
/// the container ends. While that run has no pod yet or its container has not started
/// (the API answers 400), it is looked up again every second, for up to `start_timeout`.
/// `Ok(false)`: the release has no runner Job (`write` got the explanation).
pub async fn follow_newest_log(
    client: &Client,
    namespace: &str,
    release: &str,
    opts: &LogOptions,
    start_timeout: std::time::Duration,
    write: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<bool> {
    use futures::AsyncBufReadExt;
    let io_err = |e: std::io::Error| super::K8sError::Api(format!("writing the log: {e}"));
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + start_timeout;
    let (run, mut stream) = loop {
        let runs = runs(client, namespace, release).await?;
        let Some(newest) = runs.into_iter().next() else {
            write(format_run_logs(release, namespace, &[]).as_bytes()).map_err(io_err)?;
            return Ok(false);
        };
        let waiting = match &newest.pod {
            None => "no pod yet".to_string(),
            Some(pod) => match pods_api.log_stream(pod, &opts.params(true)).await {
                Ok(stream) => break (newest, stream),
                // 400: the container is waiting to start (ContainerCreating, ...)
                Err(kube::Error::Api(s)) if s.code == 400 => s.message,
                Err(e) => return Err(api_err(&format!("log of pod {pod}"), &e)),
            },
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(super::K8sError::Api(format!(
                "the newest run of release {release} ({}) did not start within {}s: {waiting}",
                newest.job,
                start_timeout.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    write(format!("=== {} ===\n", run.heading()).as_bytes()).map_err(io_err)?;
    loop {
        let chunk = stream
            .fill_buf()
            .await
            .map_err(|e| super::K8sError::Api(format!("reading the log: {e}")))?;
        if chunk.is_empty() {
            return Ok(true);
        }
        let n = chunk.len();
        write(chunk).map_err(io_err)?;
        stream.consume_unpin(n);
    }
}

/// The release's runner Jobs as runs (newest first), each with its pod (if any); logs
/// not read yet.
async fn runs(client: &Client, namespace: &str, release: &str) -> Result<Vec<RunLog>> {
    let selector = format!("{INSTANCE_LABEL}={release},{NAME_LABEL}=iter8");
    let lp = ListParams::default().labels(&selector);
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs = jobs_api
        .list(&lp)
        .await
        .map_err(|e| {
            api_err(
                &format!("list jobs of release {release} in {namespace}"),
                &e,
            )
        })?
        .items;
    let pods = pods_api
        .list(&lp)
        .await
        .map_err(|e| {
            api_err(
                &format!("list pods of release {release} in {namespace}"),
                &e,
            )
        })?
        .items;

    struct JobInfo {
        name: String,
        revision: Option<i64>,
        cronjob: Option<String>,
        start: Option<DateTime<Utc>>,
    }
    let mut infos: Vec<JobInfo> = jobs
        .iter()
        .map(|j| {
            let meta = &j.metadata;
            let revision = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .and_then(|r| r.parse().ok());
            let cronjob = meta.owner_references.as_ref().and_then(|o| {
                o.iter()
                    .find(|r| r.kind == "CronJob")
                    .map(|r| r.name.clone())
            });
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(meta.creation_timestamp.as_ref())
                .and_then(|t| to_chrono(t.0));
            JobInfo {
                name: meta.name.clone().unwrap_or_default(),
                revision,
                cronjob,
                start,
            }
        })
        .collect();
    // oldest first to number the loops of each revision
    infos.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
    let mut out = Vec::new();
    let mut seen: std::collections::BTreeMap<Option<i64>, usize> = Default::default();
    for info in &infos {
        let n = seen.entry(info.revision).or_default();
        *n += 1;
        let loop_index = *n;
        let mut job_pods: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.kind == "Job" && r.name == info.name))
            })
            .collect();
        job_pods.sort_by_key(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| to_chrono(t.0))
        });
        let base = RunLog {
            revision: info.revision,
            job: info.name.clone(),
            cronjob: info.cronjob.clone(),
            loop_index,
            start_time: info.start,
            pod: None,
            logs: String::new(),
            error: None,
        };
        if job_pods.is_empty() {
            out.push(RunLog {
                error: Some("no pod (not started yet, or already cleaned up)".into()),
                ..base
            });
            continue;
        }
        for p in job_pods {
            out.push(RunLog {
                pod: p.metadata.name.clone(),
                ..base.clone()
            });
        }
    }
    out.sort_by(|a, b| {
        (b.start_time, b.revision, b.loop_index).cmp(&(a.start_time, a.revision, a.loop_index))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::mock::MockApi;
    use super::*;
    use serde_json::json;

    fn job(name: &str, rev: i64, start: &str, cronjob: Option<&str>) -> serde_json::Value {
        let mut j = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns", "labels": {
                INSTANCE_LABEL: "exp", NAME_LABEL: "iter8", REVISION_LABEL: rev.to_string()},
                "creationTimestamp": start},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"startTime": start},
        });
        if let Some(cj) = cronjob {
            j["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj, "uid": "u"}]);
        }
        j
    }

    fn pod(name: &str, job: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns",
                "labels": {INSTANCE_LABEL: "exp", NAME_LABEL: "iter8"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u"}]},
            "spec": {"containers": []},
        })
    }

    #[tokio::test]
    async fn pod_logs_lists_runs_newest_first_with_revision_job_and_loop() {
        let api = MockApi::start().await;
        api.with(|s| {
            let jobs = "/apis/batch/v1/namespaces/ns/jobs";
            s.put(
                &format!("{jobs}/exp-1-job"),
                job("exp-1-job", 1, "2026-01-01T00:00:00Z", None),
            );
            s.put(
                &format!("{jobs}/exp-2-cronjob-100"),
                job(
                    "exp-2-cronjob-100",
                    2,
                    "2026-01-02T00:00:00Z",
                    Some("exp-2-cronjob"),
                ),
            );
            s.put(
                &format!("{jobs}/exp-2-cronjob-105"),
                job(
                    "exp-2-cronjob-105",
                    2,
                    "2026-01-02T00:05:00Z",
                    Some("exp-2-cronjob"),
                ),
            );
            // another release's Job: not listed
            let mut other = job("other-1-job", 1, "2026-01-03T00:00:00Z", None);
            other["metadata"]["labels"][INSTANCE_LABEL] = json!("other");
            s.put(&format!("{jobs}/other-1-job"), other);
            let pods = "/api/v1/namespaces/ns/pods";
            s.put(
                &format!("{pods}/exp-1-job-a"),
                pod("exp-1-job-a", "exp-1-job"),
            );
            s.put(
                &format!("{pods}/exp-2-cronjob-105-b"),
                pod("exp-2-cronjob-105-b", "exp-2-cronjob-105"),
            );
            s.logs
                .insert(format!("{pods}/exp-1-job-a/log"), "job log\n".into());
            s.logs.insert(
                format!("{pods}/exp-2-cronjob-105-b/log"),
                "loop 2 log\n".into(),
            );
        });
        let logs = pod_logs(&api.client(), "ns", "exp", &LogOptions::default())
            .await
            .expect("logs");
        let summary: Vec<_> = logs
            .iter()
            .map(|l| {
                (
                    l.revision,
                    l.job.as_str(),
                    l.loop_index,
                    l.pod.as_deref(),
                    l.logs.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    Some(2),
                    "exp-2-cronjob-105",
                    2,
                    Some("exp-2-cronjob-105-b"),
                    "loop 2 log\n"
                ),
                (Some(2), "exp-2-cronjob-100", 1, None, ""),
                (Some(1), "exp-1-job", 1, Some("exp-1-job-a"), "job log\n"),
            ]
        );
        assert_eq!(logs[0].cronjob.as_deref(), Some("exp-2-cronjob"));
        assert!(logs[1].error.as_deref().unwrap_or("").contains("no pod"));
        assert!(logs[0].heading().starts_with("revision 2, job exp-2-cronjob-105 (cronjob exp-2-cronjob), loop 2, pod exp-2-cronjob-105-b"));
        let text = format_run_logs("exp", "ns", &logs);
        assert!(
            text.starts_with("=== revision 2, job exp-2-cronjob-105"),
            "{text}"
        );
        assert!(
            text.contains("loop 2 log\n=== revision 2, job exp-2-cronjob-100"),
            "{text}"
        );
        assert!(text.contains("(no log: no pod"), "{text}");
        assert!(text.ends_with("job log\n"), "{text}");
        assert!(format_run_logs("exp", "ns", &[]).starts_with("no runner Jobs of release exp"));
        let (_, q) = &api.with(|s| s.requests[0].clone());
        assert!(q.contains("labelSelector"), "{q}");
    }

    #[tokio::test]
    async fn pod_logs_reports_forbidden_clearly() {
        let api = MockApi::start().await;
        api.with(|s| s.forbidden.push("/apis/batch/v1/namespaces/ns/jobs".into()));
        let err = pod_logs(&api.client(), "ns", "exp", &LogOptions::default())
            .await
            .expect_err("forbidden");
        let msg = err.to_string();
        assert!(
            msg.starts_with("list jobs of release exp in ns: 403 Forbidden:"),
            "{msg}"
        );
    }

    fn one_run(api: &MockApi, with_pod: bool) {
        api.with(|s| {
            s.put(
                "/apis/batch/v1/namespaces/ns/jobs/exp-1-job",
                job("exp-1-job", 1, "2026-01-01T00:00:00Z", None),
            );
            if with_pod {
                let pods = "/api/v1/namespaces/ns/pods";
                s.put(
                    &format!("{pods}/exp-1-job-a"),
                    pod("exp-1-job-a", "exp-1-job"),
                );
                s.logs.insert(
                    format!("{pods}/exp-1-job-a/log"),
                    "one\ntwo\nthree\n".into(),
                );
            }
        });
    }

    fn log_queries(api: &MockApi) -> Vec<String> {
        api.with(|s| {
            s.requests
                .iter()
                .filter(|(_, q)| q.contains("/log?"))
                .map(|(_, q)| q.clone())
                .collect()
        })
    }

    #[tokio::test]
    async fn tail_asks_the_api_for_the_last_lines() {
        let api = MockApi::start().await;
        one_run(&api, true);
        let opts = LogOptions {
            tail_lines: Some(2),
        };
        let logs = pod_logs(&api.client(), "ns", "exp", &opts)
            .await
            .expect("logs");
        assert_eq!(logs[0].logs, "two\nthree\n");
        let q = log_queries(&api);
        assert!(q[0].contains("tailLines=2"), "{q:?}");
        assert!(!q[0].contains("follow"), "{q:?}");
    }

    #[tokio::test]
    async fn follow_streams_the_newest_run_under_its_heading() {
        let api = MockApi::start().await;
        one_run(&api, true);
        let mut written = Vec::new();
        let found = follow_newest_log(
            &api.client(),
            "ns",
            "exp",
            &LogOptions {
                tail_lines: Some(1),
            },
            std::time::Duration::ZERO,
            &mut |chunk: &[u8]| {
                written.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await
        .expect("follow");
        assert!(found);
        let text = String::from_utf8_lossy(&written);
        assert_eq!(
            text,
            "=== revision 1, job exp-1-job, loop 1, pod exp-1-job-a, started 2026-01-01T00:00:00+00:00 ===\nthree\n"
        );
        let q = log_queries(&api);
        assert!(
            q[0].contains("follow=true") && q[0].contains("tailLines=1"),
            "{q:?}"
        );
    }

    #[tokio::test]
    async fn follow_without_a_job_or_a_pod_says_so() {
        let api = MockApi::start().await;
        // (another release's Job: the mock lists only collections that have objects)
        let mut other = job("other-1-job", 1, "2026-01-03T00:00:00Z", None);
        other["metadata"]["labels"][INSTANCE_LABEL] = json!("other");
        api.with(|s| s.put("/apis/batch/v1/namespaces/ns/jobs/other-1-job", other));
        let mut written = Vec::new();
        let found = follow_newest_log(
            &api.client(),
            "ns",
            "exp",
            &LogOptions::default(),
            std::time::Duration::ZERO,
            &mut |chunk: &[u8]| {
                written.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await
        .expect("no job is not an error");
        assert!(!found);
        assert!(String::from_utf8_lossy(&written).starts_with("no runner Jobs of release exp"));

        one_run(&api, false);
        let err = follow_newest_log(
            &api.client(),
            "ns",
            "exp",
            &LogOptions::default(),
            std::time::Duration::ZERO,
            &mut |_: &[u8]| Ok(()),
        )
        .await
        .expect_err("no pod within the timeout");
        assert!(
            err.to_string().contains(
                "newest run of release exp (exp-1-job) did not start within 0s: no pod yet"
            ),
            "{err}"
        );
    }
}
