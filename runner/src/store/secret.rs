//! The release's Secret as the store of a cluster run: the chart writes the experiment under
//! key `experiment.yaml`; the runner writes the result under `result.yaml`.
//!
//! - Writes are JSON merge patches of `data["result.yaml"]` alone, carrying
//!   `metadata.resourceVersion` (optimistic concurrency): Helm's labels, annotations and the
//!   experiment are never touched. On 409 Conflict the Secret is re-read and the patch
//!   re-applied with the new resourceVersion.
//! - Transient API errors (429, 5xx, timeouts, connection errors) are retried with capped
//!   exponential backoff for at most [`RetryPolicy::max_elapsed`]; a result that still cannot
//!   be written is logged whole, so nothing is lost.
//! - Revisions: a stored result of another Helm revision is not continued (a `helm upgrade`
//!   starts a fresh result); loops of the same revision (CronJob) continue it.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::time::Instant;

use super::{Store, StoreError, Stored};
use crate::k8s::{error_kind, error_message, ErrorKind, REVISION_LABEL};
use crate::model::ExperimentResult;

/// Key of the experiment document in the Secret.
pub const EXPERIMENT_KEY: &str = "experiment.yaml";
/// Key of the result in the Secret.
pub const RESULT_KEY: &str = "result.yaml";

/// Environment variable with the Helm release revision (the chart sets it on the pod).
pub const REVISION_ENV: &str = "ITER8_REVISION";

/// The revision from `ITER8_REVISION` (None when unset or empty).
pub fn revision_from_env() -> Result<Option<i64>, StoreError> {
    parse_revision(std::env::var(REVISION_ENV).ok().as_deref())
}

fn parse_revision(value: Option<&str>) -> Result<Option<i64>, StoreError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| StoreError::Invalid {
            what: REVISION_ENV.into(),
            message: format!(
                "{v:?} is not a revision number (the chart sets it to .Release.Revision)"
            ),
        }),
    }
}

/// How API calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First backoff delay (doubled after each failure).
    pub initial_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Give up on transient errors after this long.
    pub max_elapsed: Duration,
    /// Give up after this many 409 Conflicts in a row.
    pub max_conflicts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
            max_conflicts: 16,
        }
    }
}

/// Reads the experiment from, and writes the result to, the Secret `<release>` in a namespace.
pub struct SecretStore {
    api: Api<Secret>,
    namespace: String,
    release: String,
    revision: Option<i64>,
    retry: RetryPolicy,
    /// resourceVersion of the Secret as last read or written.
    resource_version: Mutex<Option<String>>,
}

impl SecretStore {
    /// `revision`: the Helm release revision this run belongs to (`ITER8_REVISION`); when
    /// None, the Secret's `iter8.tools/revision` annotation is used.
    pub fn new(client: Client, namespace: &str, release: &str, revision: Option<i64>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            release: release.to_string(),
            revision,
            retry: RetryPolicy::default(),
            resource_version: Mutex::new(None),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn what(&self) -> String {
        format!("secret {}/{}", self.namespace, self.release)
    }

    fn set_rv(&self, rv: Option<String>) {
        if let Ok(mut g) = self.resource_version.lock() {
            *g = rv;
        }
    }

    fn rv(&self) -> Option<String> {
        self.resource_version.lock().ok().and_then(|g| g.clone())
    }

    async fn get(&self) -> Result<Secret, StoreError> {
        get_secret(&self.api, &self.namespace, &self.release, &self.retry).await
    }

    /// The result as YAML, with this run's revision recorded.
    fn result_yaml(&self, result: &ExperimentResult) -> Result<String, StoreError> {
        let mut r = result.clone();
        if r.revision.is_none() {
            r.revision = self.revision;
        }
        serde_yaml::to_string(&r).map_err(|e| StoreError::Invalid {
            what: "result".into(),
            message: e.to_string(),
        })
    }

    async fn try_save(&self, yaml: &str) -> Result<(), StoreError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes());
        let start = Instant::now();
        let mut delay = self.retry.initial_delay;
        let mut conflicts = 0usize;
        let mut rv = self.rv();
        loop {
            if rv.is_none() {
                let s = self.get().await?;
                rv = s.metadata.resource_version.clone();
            }
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": rv },
                "data": { RESULT_KEY: encoded },
            });
            match self
                .api
                .patch(
                    &self.release,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(s) => {
                    self.set_rv(s.metadata.resource_version);
                    return Ok(());
                }
                Err(e) => match error_kind(&e) {
                    ErrorKind::Conflict => {
                        conflicts += 1;
                        if conflicts > self.retry.max_conflicts {
                            return Err(StoreError::Io(format!(
                                "{}: still conflicting after {conflicts} attempts: {}",
                                self.what(),
                                error_message(&e)
                            )));
                        }
                        tracing::debug!(secret = %self.what(), "conflict writing the result; re-reading");
                        rv = None;
                    }
                    ErrorKind::Transient if start.elapsed() + delay <= self.retry.max_elapsed => {
                        tracing::warn!(secret = %self.what(), error = %error_message(&e), retry_in_ms = delay.as_millis() as u64, "writing the result failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(self.retry.max_delay);
                    }
                    kind => return Err(to_store_error(&self.what(), kind, &e)),
                },
            }
        }
    }
}

fn to_store_error(what: &str, kind: ErrorKind, e: &kube::Error) -> StoreError {
    let msg = format!("{what}: {}", error_message(e));
    match kind {
        ErrorKind::NotFound => StoreError::NotFound(format!(
            "{msg}; is the experiment installed (helm install) in this namespace?"
        )),
        ErrorKind::Forbidden => StoreError::Forbidden(msg),
        _ => StoreError::Io(msg),
    }
}

/// GET the Secret, retrying transient errors within the policy's bound.
async fn get_secret(
    api: &Api<Secret>,
    namespace: &str,
    release: &str,
    retry: &RetryPolicy,
) -> Result<Secret, StoreError> {
    let what = format!("secret {namespace}/{release}");
    let start = Instant::now();
    let mut delay = retry.initial_delay;
    loop {
        match api.get(release).await {
            Ok(s) => return Ok(s),
            Err(e) => match error_kind(&e) {
                ErrorKind::Transient if start.elapsed() + delay <= retry.max_elapsed => {
                    tracing::warn!(secret = %what, error = %error_message(&e), retry_in_ms = delay.as_millis() as u64, "reading failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(retry.max_delay);
                }
                kind => return Err(to_store_error(&what, kind, &e)),
            },
        }
    }
}

fn data_text(secret: &Secret, key: &str, what: &str) -> Result<Option<String>, StoreError> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(None);
    };
    String::from_utf8(bytes.0.clone())
        .map(Some)
        .map_err(|_| StoreError::Invalid {
            what: format!("{what} key {key}"),
            message: "not UTF-8 text".into(),
        })
}

fn parse_result(text: &str, what: &str) -> Result<ExperimentResult, StoreError> {
    crate::model::result::parse_result(text).map_err(|message| StoreError::Invalid {
        what: format!("{what} key {RESULT_KEY}"),
        message,
    })
}

/// The result inside an Iter8 v0.15 Secret: its key `experiment.yaml` held the spec and
/// the result in one document. None when that document has no `result:`.
fn iter8_result(secret: &Secret, what: &str) -> Result<Option<ExperimentResult>, StoreError> {
    let Some(text) = data_text(secret, EXPERIMENT_KEY, what)? else {
        return Ok(None);
    };
    let has_result = serde_yaml::from_str::<serde_yaml::Value>(&text)
        .ok()
        .and_then(|v| v.get("result").map(|r| !r.is_null()))
        .unwrap_or(false);
    if !has_result {
        return Ok(None);
    }
    crate::model::iter8doc::parse_any_result(&text)
        .map(Some)
        .map_err(|e| StoreError::Invalid {
            what: format!("{what} key {EXPERIMENT_KEY} (an Iter8 v0.15 experiment)"),
            message: e.to_string(),
        })
}

impl Store for SecretStore {
    async fn load(&self) -> Result<Stored, StoreError> {
        let secret = self.get().await?;
        let what = self.what();
        self.set_rv(secret.metadata.resource_version.clone());
        let experiment_yaml =
            data_text(&secret, EXPERIMENT_KEY, &what)?.ok_or_else(|| StoreError::Invalid {
                what: what.clone(),
                message: format!(
                    "no key {EXPERIMENT_KEY}; the Secret must be the one the iter8 chart renders"
                ),
            })?;
        let revision = self.revision.or_else(|| {
            secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_LABEL))
                .and_then(|r| r.parse().ok())
        });
        let previous = match data_text(&secret, RESULT_KEY, &what)? {
            None => None,
            Some(text) => match parse_result(&text, &what) {
                Ok(r) if r.revision == revision => Some(r),
                Ok(r) => {
                    tracing::info!(secret = %what, stored = ?r.revision, current = ?revision, "the stored result belongs to another revision; starting a fresh result");
                    None
                }
                Err(e) => {
                    tracing::warn!(secret = %what, error = %e, "the stored result cannot be read; starting a fresh result");
                    None
                }
            },
        };
        Ok(Stored {
            experiment_yaml,
            previous,
            revision,
        })
    }

    async fn save(&self, result: &ExperimentResult) -> Result<(), StoreError> {
        let yaml = self.result_yaml(result)?;
        match self.try_save(&yaml).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Nothing is lost: the whole result goes to the log.
                tracing::error!(secret = %self.what(), error = %e, result = %yaml, "the result could not be written; it is logged here whole");
                Err(e)
            }
        }
    }
}

/// The stored result of a release (for `iter8 report` / `iter8 assert --release`): None
/// while the runner has not written one yet, and while the stored result belongs to an
/// earlier revision than the Secret's (`helm upgrade` done, the new run has not written yet),
/// so `assert` waits for the new run instead of judging the old one.
pub async fn read_result(
    client: Client,
    namespace: &str,
    release: &str,
) -> Result<Option<ExperimentResult>, StoreError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let retry = RetryPolicy {
        max_elapsed: Duration::from_secs(10),
        ..Default::default()
    };
    let secret = get_secret(&api, namespace, release, &retry).await?;
    let what = format!("secret {namespace}/{release}");
    let Some(text) = data_text(&secret, RESULT_KEY, &what)? else {
        // a Secret written by Iter8 v0.15 itself: spec and result under experiment.yaml
        return iter8_result(&secret, &what);
    };
    let result = parse_result(&text, &what)?;
    let current: Option<i64> = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_LABEL))
        .and_then(|r| r.parse().ok());
    match (current, result.revision) {
        (Some(cur), Some(stored)) if stored < cur => {
            tracing::debug!(secret = %what, stored, current = cur, "the stored result is of an earlier revision");
            Ok(None)
        }
        _ => Ok(Some(result)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::mock::MockApi;
    use crate::model::{HistBucket, Histogram, MetricMeta, MetricType};
    use serde_json::json;

    const PATH: &str = "/api/v1/namespaces/ns/secrets/exp";
    const EXPERIMENT: &str = "spec:\n- task: http\n  with:\n    url: http://127.0.0.1/\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_elapsed: Duration::from_millis(400),
            max_conflicts: 4,
        }
    }

    async fn api_with_secret(result: Option<&ExperimentResult>) -> MockApi {
        let api = MockApi::start().await;
        let mut data = json!({ EXPERIMENT_KEY: b64(EXPERIMENT) });
        if let Some(r) = result {
            data[RESULT_KEY] = json!(b64(&serde_yaml::to_string(r).expect("yaml")));
        }
        api.with(|s| {
            s.put(
                PATH,
                json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {
                        "name": "exp", "namespace": "ns",
                        "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "exp"},
                        "annotations": {"meta.helm.sh/release-name": "exp", REVISION_LABEL: "3"},
                    },
                    "type": "Opaque",
                    "data": data,
                }),
            )
        });
        api
    }

    fn stored_result(api: &MockApi) -> Option<ExperimentResult> {
        api.with(|s| {
            let text = s.objects[PATH]["data"][RESULT_KEY]
                .as_str()
                .map(str::to_string)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("b64");
            Some(serde_yaml::from_slice(&bytes).expect("result"))
        })
    }

    fn result(rev: Option<i64>, loops: u64) -> ExperimentResult {
        let mut r = ExperimentResult::new(1);
        r.revision = rev;
        r.num_loops = loops;
        r
    }

    #[tokio::test]
    async fn load_reads_experiment_and_revision_then_save_patches_only_the_result() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
        let stored = store.load().await.expect("load");
        assert_eq!(stored.experiment_yaml, EXPERIMENT);
        assert!(stored.previous.is_none());
        assert_eq!(stored.revision, Some(3));

        let mut r = ExperimentResult::new(1);
        r.num_loops = 1;
        store.save(&r).await.expect("save");
        let saved = stored_result(&api).expect("result written");
        assert_eq!(saved.revision, Some(3), "the revision is recorded");
        assert_eq!(saved.num_loops, 1);
        api.with(|s| {
            let o = &s.objects[PATH];
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "Helm"
            );
            assert_eq!(
                o["metadata"]["annotations"]["meta.helm.sh/release-name"],
                "exp"
            );
            assert_eq!(o["data"][EXPERIMENT_KEY], b64(EXPERIMENT));
            let patches: Vec<_> = s.requests.iter().filter(|(m, _)| m == "PATCH").collect();
            assert_eq!(patches.len(), 1);
        });
        // a second save uses the resourceVersion of the first write: no extra GET
        store.save(&r).await.expect("save again");
        let gets = api.with(|s| s.requests.iter().filter(|(m, _)| m == "GET").count());
        assert_eq!(gets, 1);
    }

    #[tokio::test]
    async fn same_revision_continues_and_a_newer_revision_starts_fresh() {
        let api = api_with_secret(Some(&result(Some(3), 5))).await;
        let same = SecretStore::new(api.client(), "ns", "exp", Some(3));
        let prev = same
            .load()
            .await
            .expect("load")
            .previous
            .expect("continued");
        assert_eq!(prev.num_loops, 5);

        let newer = SecretStore::new(api.client(), "ns", "exp", Some(4));
        assert!(newer.load().await.expect("load").previous.is_none());

        // no revision given: the Secret's annotation (3) decides
        let from_annotation = SecretStore::new(api.client(), "ns", "exp", None);
        let stored = from_annotation.load().await.expect("load");
        assert_eq!(stored.revision, Some(3));
        assert_eq!(stored.previous.map(|p| p.num_loops), Some(5));
    }

    #[tokio::test]
    async fn conflict_rereads_and_reapplies_without_dropping_the_other_writer() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
        store.load().await.expect("load");
        api.with(|s| s.concurrent_writes = 2);
        store
            .save(&result(None, 1))
            .await
            .expect("save after conflicts");
        assert_eq!(stored_result(&api).map(|r| r.num_loops), Some(1));
        api.with(|s| {
            let patches = s.requests.iter().filter(|(m, _)| m == "PATCH").count();
            assert_eq!(patches, 3, "two conflicts, then success");
            assert_eq!(
                s.objects[PATH]["metadata"]["annotations"]["touched-by"],
                "someone-else"
            );
        });
    }

    #[tokio::test]
    async fn endless_conflicts_give_up_and_say_so() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
        store.load().await.expect("load");
        api.with(|s| s.concurrent_writes = 100);
        let err = store.save(&result(None, 1)).await.expect_err("gives up");
        assert!(
            err.to_string()
                .contains("still conflicting after 5 attempts"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn transient_errors_are_retried() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
        api.with(|s| s.faults.extend([503, 500]));
        store.load().await.expect("load after two 5xx");
        api.with(|s| s.faults.extend([429, 504]));
        store
            .save(&result(None, 2))
            .await
            .expect("save after 429 and 504");
        assert_eq!(stored_result(&api).map(|r| r.num_loops), Some(2));
    }

    #[tokio::test]
    async fn transient_errors_give_up_within_the_bound() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
        store.load().await.expect("load");
        api.with(|s| s.faults.extend(std::iter::repeat_n(503, 1000)));
        let err = store.save(&result(None, 1)).await.expect_err("bounded");
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        assert!(err.to_string().contains("503"), "{err}");
        let attempts = api.with(|s| s.requests.len());
        assert!((3..1000).contains(&attempts), "{attempts}");
    }

    #[tokio::test]
    async fn unreachable_api_is_a_bounded_io_error() {
        let api = MockApi::start().await;
        let client = api.client();
        drop(api); // nothing listens any more
        let store = SecretStore::new(client, "ns", "exp", Some(1)).with_retry(fast());
        let err = store.load().await.expect_err("unreachable");
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    }

    #[tokio::test]
    async fn forbidden_and_missing_secrets_are_reported_clearly() {
        let api = api_with_secret(None).await;
        api.with(|s| s.forbidden.push(PATH.into()));
        let err = SecretStore::new(api.client(), "ns", "exp", None)
            .load()
            .await
            .expect_err("403");
        assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
        assert!(
            err.to_string().contains("secret ns/exp: 403 Forbidden"),
            "{err}"
        );

        let err = SecretStore::new(api.client(), "ns", "nope", None)
            .load()
            .await
            .expect_err("404");
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("helm install"), "{err}");
    }

    #[test]
    fn revision_parses_from_the_environment_value() {
        assert_eq!(parse_revision(None).expect("none"), None);
        assert_eq!(parse_revision(Some(" ")).expect("empty"), None);
        assert_eq!(parse_revision(Some("12")).expect("12"), Some(12));
        let err = parse_revision(Some("twelve")).expect_err("bad");
        assert!(err.to_string().contains("ITER8_REVISION"), "{err}");
    }

    #[tokio::test]
    async fn read_result_of_a_secret_iter8_wrote() {
        // Iter8 v0.15 kept spec and result together under `experiment.yaml`
        let api = MockApi::start().await;
        let doc =
            "spec:\n- task: http\n  with: {url: http://app.test/}\n- task: assess\n  with:\n    \
                   SLOs: {upper: [{metric: http/error-rate, limit: 0}]}\nresult:\n  numLoops: 1\n  \
                   numCompletedTasks: 2\n  failure: false\n  insights:\n    numVersions: 1\n    \
                   metricsInfo: {http/error-rate: {description: rate, type: Gauge}}\n    \
                   nonHistMetricValues: [{http/error-rate: [0.5]}]\n    \
                   SLOs: {upper: [{metric: http/error-rate, limit: 0}]}\n    \
                   SLOsSatisfied: {upper: [[false]]}\n";
        api.with(|s| {
            s.put(
                PATH,
                json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "exp", "namespace": "ns"},
                    "type": "Opaque",
                    "data": {EXPERIMENT_KEY: b64(doc)},
                }),
            )
        });
        let r = read_result(api.client(), "ns", "exp")
            .await
            .expect("read")
            .expect("a result");
        assert!(r.completed() && r.no_failure() && !r.slos_satisfied());
        assert_eq!(
            r.insights.and_then(|i| i.latest(0, "http/error-rate")),
            Some(0.5)
        );
    }

    #[tokio::test]
    async fn read_result_for_the_cli() {
        let api = api_with_secret(None).await;
        assert_eq!(
            read_result(api.client(), "ns", "exp").await.expect("read"),
            None
        );
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
        store.load().await.expect("load");
        store.save(&result(None, 7)).await.expect("save");
        let r = read_result(api.client(), "ns", "exp")
            .await
            .expect("read")
            .expect("some");
        assert_eq!((r.num_loops, r.revision), (7, Some(3)));
        // helm upgrade: the Secret's revision moves on; the old result is not the verdict
        api.with(|s| {
            let o = s.objects.get_mut(PATH).expect("secret");
            o["metadata"]["annotations"][REVISION_LABEL] = json!("4");
        });
        assert_eq!(
            read_result(api.client(), "ns", "exp").await.expect("read"),
            None
        );
        let err = read_result(api.client(), "ns", "missing")
            .await
            .expect_err("404");
        assert!(matches!(err, StoreError::NotFound(_)));
    }

    #[tokio::test]
    async fn many_cronjob_loops_keep_the_secret_small() {
        let api = api_with_secret(None).await;
        let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
        let mut r = result(None, 0);
        let mut sizes = Vec::new();
        for lp in 1..=60u64 {
            let stored = store.load().await.expect("load");
            if let Some(p) = stored.previous {
                r = p;
            }
            r.num_loops = lp;
            let i = r.insights_mut();
            i.ensure_versions(&["v1".into(), "v2".into()]);
            for v in 0..2 {
                i.register_metric(
                    "http/latency-mean",
                    MetricMeta::new(MetricType::Gauge, "mean", Some("msec")),
                );
                for m in [
                    "request-count",
                    "error-count",
                    "latency-mean",
                    "latency-p99",
                    "latency-p99.9",
                ] {
                    i.record(v, &format!("http/{m}"), lp as f64 * 1.37);
                }
                let lower = (lp % 40) as f64;
                i.record_histogram(
                    v,
                    "http/latency",
                    &Histogram {
                        buckets: vec![HistBucket {
                            lower,
                            upper: lower + 1.0,
                            count: 10,
                        }],
                        count: 10,
                        sum: 10.0 * lower,
                        sum_sq: 10.0 * lower * lower,
                        min: lower,
                        max: lower + 1.0,
                    },
                );
            }
            store.save(&r).await.expect("save");
            sizes.push(api.with(|s| {
                s.objects[PATH]["data"][RESULT_KEY]
                    .as_str()
                    .map_or(0, str::len)
            }));
        }
        let stored = stored_result(&api).expect("result");
        assert_eq!(stored.num_loops, 60);
        let last = *sizes.last().expect("sizes");
        assert!(last < 64 * 1024, "result is {last} bytes after 60 loops");
        // bounded: once the per-loop window and the histogram grid are full, it stops growing
        assert!(
            last <= sizes[44] + sizes[44] / 10,
            "{} -> {last}",
            sizes[44]
        );
    }
}
