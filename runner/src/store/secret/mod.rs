//! The release's Secret as the store of a cluster run: the chart writes the experiment under
//! key `experiment.yaml`; the runner writes the result under `result.yaml`.
//!
//! - Writes are JSON merge patches of `data["result.yaml"]` alone, carrying
//!   `metadata.resourceVersion` (optimistic concurrency): Helm's labels, annotations and the
//!   experiment are never touched.
//! - On 409 Conflict (another runner of the release wrote meanwhile) the Secret is re-read
//!   and this loop is merged into what is stored now ([`super::merge`]): no loop is lost.
//! - Every call goes through one retry helper ([`crate::k8s::retry::call`]): each request
//!   has its own timeout, transient failures are retried with jittered backoff within a
//!   budget, `Retry-After` is honoured. After a write that timed out or whose connection
//!   dropped, the Secret is re-read to learn whether the write landed: every write carries
//!   its own token in the annotation `iter8.tools/result-write` (two runners can store
//!   byte-identical results, so the data alone cannot tell whose write landed).
//! - A result that still cannot be written is logged whole, so nothing is lost.
//! - Revisions: a stored result of another Helm revision is not continued (a `helm upgrade`
//!   starts a fresh result); loops of the same revision (CronJob) continue it.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::merge::{compose, Composed};
use super::{Store, StoreError, Stored};
use crate::k8s::retry::{attempt, call, CallError};
use crate::k8s::{ErrorKind, REVISION_LABEL};
use crate::model::ExperimentResult;

pub use crate::k8s::retry::RetryPolicy;

#[cfg(test)]
mod tests;

/// Key of the experiment document in the Secret.
pub const EXPERIMENT_KEY: &str = "experiment.yaml";
/// Key of the result in the Secret.
pub const RESULT_KEY: &str = "result.yaml";

/// Environment variable with the Helm release revision (the chart sets it on the pod).
pub const REVISION_ENV: &str = "ITER8_REVISION";

/// Annotation naming the write that stored the current result (`<runner>-<write>`): after
/// a write whose answer was lost, it tells whether that write landed, even when another
/// runner stored the very same document.
pub const WRITE_ANNOTATION: &str = "iter8.tools/result-write";

/// An identity for this runner's writes: process id and a random number.
fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{}-{:016x}", std::process::id(), h.finish())
}

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

/// What this runner knows of the stored result.
#[derive(Default)]
struct State {
    /// resourceVersion of the Secret as last read or written.
    rv: Option<String>,
    /// The stored result of this run's revision, as last read or written.
    stored: Option<ExperimentResult>,
    /// The revision this run belongs to (resolved at load).
    revision: Option<i64>,
    /// This run's loop number, once a write of it landed.
    loop_number: Option<u64>,
    /// How many of this run's journal entries the stored result holds.
    saved_ops: usize,
    /// The token of the last write that failed (to recognise it if it landed after all).
    last_token: Option<String>,
}

/// Reads the experiment from, and writes the result to, the Secret `<release>` in a namespace.
pub struct SecretStore {
    api: Api<Secret>,
    namespace: String,
    release: String,
    revision: Option<i64>,
    retry: RetryPolicy,
    state: Mutex<State>,
    /// This runner's identity, and how many writes it made.
    writer: String,
    writes: std::sync::atomic::AtomicU64,
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
            state: Mutex::new(State::default()),
            writer: writer_id(),
            writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn what(&self) -> String {
        format!("secret {}/{}", self.namespace, self.release)
    }

    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    async fn get(&self) -> Result<Secret, StoreError> {
        get_secret(&self.api, &self.namespace, &self.release, &self.retry).await
    }

    /// The stored result of this run's revision in `secret` (None: nothing of it stored);
    /// an error when a newer revision's run has taken the Secret over.
    fn stored_of_revision(
        &self,
        secret: &Secret,
        revision: Option<i64>,
    ) -> Result<Option<ExperimentResult>, StoreError> {
        let what = self.what();
        let Some(text) = data_text(secret, RESULT_KEY, &what)? else {
            return Ok(None);
        };
        match parse_result(&text, &what) {
            Ok(r) if r.revision == revision => Ok(Some(r)),
            Ok(r) => match (r.revision, revision) {
                (Some(theirs), Some(ours)) if theirs > ours => Err(StoreError::Io(format!(
                    "{what}: the result now belongs to revision {theirs} (helm upgrade); this run of revision {ours} does not overwrite it"
                ))),
                _ => {
                    tracing::info!(secret = %what, stored = ?r.revision, current = ?revision, "the stored result belongs to another revision; starting a fresh result");
                    Ok(None)
                }
            },
            Err(e) => {
                tracing::warn!(secret = %what, error = %e, "the stored result cannot be read; starting a fresh result");
                Ok(None)
            }
        }
    }

    fn to_yaml(&self, result: &ExperimentResult) -> Result<String, StoreError> {
        serde_yaml::to_string(result).map_err(|e| StoreError::Invalid {
            what: "result".into(),
            message: e.to_string(),
        })
    }

    /// One PATCH of the result with a resourceVersion precondition. When the request timed
    /// out or its connection dropped, the Secret is re-read: if it holds exactly this
    /// result, the write landed.
    async fn patch(&self, yaml: &str, rv: Option<&str>) -> Result<(Secret, String), CallError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes());
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{n}", self.writer);
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": rv,
                "annotations": { WRITE_ANNOTATION: token },
            },
            "data": { RESULT_KEY: encoded },
        });
        let token_ref = &token;
        let name = format!("PATCH {}", self.what());
        let (api, release, timeout) = (&self.api, &self.release, self.retry.request_timeout);
        let outcome = call(&name, &self.retry, || {
            let (patch, name) = (&patch, &name);
            async move {
                let params = PatchParams::default();
                match attempt(timeout, api.patch(release, &params, &Patch::Merge(patch))).await {
                    Err(f) if f.is_ambiguous() => match attempt(timeout, api.get(release)).await {
                        Ok(s) if holds(&s, token_ref) => {
                            tracing::info!(call = %name, "{name}: {f}, but the write had landed (re-read)");
                            Ok(s)
                        }
                        _ => Err(f),
                    },
                    other => other,
                }
            }
        })
        .await;
        match outcome {
            Ok(s) => Ok((s, token)),
            Err(e) => {
                // a conflict after a lost answer may be our own write: remember which
                self.state(|st| st.last_token = Some(token));
                Err(e)
            }
        }
    }

    /// Write this run's view of the result, merged into what is stored now.
    async fn write(&self, result: &ExperimentResult) -> Result<Composed, StoreError> {
        let what = self.what();
        let (mut rv, mut stored, revision, claimed, saved_ops) = self.state(|s| {
            (
                s.rv.clone(),
                s.stored.clone(),
                s.revision.or(self.revision),
                s.loop_number,
                s.saved_ops,
            )
        });
        if rv.is_none() {
            let secret = self.get().await?;
            stored = self.stored_of_revision(&secret, revision)?;
            rv = secret.metadata.resource_version.clone();
        }
        let mut conflicts = 0usize;
        loop {
            let mut composed = compose(stored.as_ref(), result, saved_ops, claimed);
            if composed.doc.revision.is_none() {
                composed.doc.revision = revision;
            }
            let yaml = self.to_yaml(&composed.doc)?;
            let written = match self.patch(&yaml, rv.as_deref()).await {
                Ok((secret, _)) => Some(secret),
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    conflicts += 1;
                    // Another writer (a runner of the same release, helm): re-read, and
                    // merge this loop into what is stored now.
                    let secret = self.get().await?;
                    let token = self.state(|s| s.last_token.take()).unwrap_or_default();
                    if e.attempts > 1 && holds(&secret, &token) {
                        // Our own write, landed on an attempt whose answer was lost.
                        Some(secret)
                    } else if conflicts > self.retry.max_conflicts {
                        return Err(StoreError::Io(format!(
                            "{what}: still conflicting after {conflicts} attempts: {e}"
                        )));
                    } else {
                        tracing::info!(secret = %what, conflicts, "another writer changed the result; merging this loop into it");
                        stored = self.stored_of_revision(&secret, revision)?;
                        rv = secret.metadata.resource_version.clone();
                        None
                    }
                }
                Err(e) => return Err(to_store_error(e)),
            };
            if let Some(secret) = written {
                let ops = result.insights.as_ref().map_or(0, |i| i.journal.len());
                self.state(|s| {
                    s.rv = secret.metadata.resource_version.clone();
                    s.stored = Some(composed.doc.clone());
                    s.loop_number = Some(composed.loop_number);
                    s.saved_ops = ops;
                    s.revision = revision;
                });
                return Ok(composed);
            }
        }
    }
}

/// True when the Secret's result was stored by the write `token`.
fn holds(secret: &Secret, token: &str) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WRITE_ANNOTATION))
        .is_some_and(|t| t == token)
}

fn to_store_error(e: CallError) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound(format!(
            "{e}; is the experiment installed (helm install) in this namespace?"
        )),
        ErrorKind::Forbidden => StoreError::Forbidden(e.to_string()),
        _ => StoreError::Io(e.to_string()),
    }
}

/// GET the Secret through the retry helper.
async fn get_secret(
    api: &Api<Secret>,
    namespace: &str,
    release: &str,
    retry: &RetryPolicy,
) -> Result<Secret, StoreError> {
    let name = format!("GET secret {namespace}/{release}");
    call(&name, retry, || {
        attempt(retry.request_timeout, api.get(release))
    })
    .await
    .map_err(to_store_error)
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
        let previous = self.stored_of_revision(&secret, revision)?;
        self.state(|s| {
            *s = State {
                rv: secret.metadata.resource_version.clone(),
                stored: previous.clone(),
                revision,
                loop_number: None,
                saved_ops: 0,
                last_token: None,
            };
        });
        Ok(Stored {
            experiment_yaml,
            previous,
            revision,
        })
    }

    /// The first write of a loop: the loop takes the next number after the stored
    /// `numLoops` (another runner may have taken the one this run expected), and records
    /// an overlap when the stored loop has not finished.
    async fn begin_loop(&self, result: &mut ExperimentResult) -> Result<(), StoreError> {
        // A new loop: nothing of it is stored yet.
        self.state(|s| {
            s.loop_number = None;
            s.saved_ops = 0;
        });
        let composed = self.save_logged(result).await?;
        if result.num_loops != composed.loop_number {
            tracing::info!(
                secret = %self.what(),
                "another runner took loop {}; this is loop {}",
                result.num_loops,
                composed.loop_number
            );
            result.num_loops = composed.loop_number;
        }
        if let Some(o) = composed.overlap {
            tracing::warn!(secret = %self.what(), "loop {} started while loop {} has not finished (two runners on one release); both are kept", o.loop_number, o.with);
            result.record_overlap(o.loop_number, o.with);
        }
        Ok(())
    }

    async fn save(&self, result: &ExperimentResult) -> Result<(), StoreError> {
        self.save_logged(result).await.map(|_| ())
    }
}

impl SecretStore {
    async fn save_logged(&self, result: &ExperimentResult) -> Result<Composed, StoreError> {
        match self.write(result).await {
            Ok(c) => Ok(c),
            Err(e) => {
                // Nothing is lost: the whole result goes to the log.
                let yaml = self.to_yaml(result).unwrap_or_default();
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
        request_timeout: Duration::from_secs(5),
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
