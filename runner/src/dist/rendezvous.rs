//! Where the workers of a distributed run meet: a directory (processes on one machine) or
//! the release's Secret (pods of an Indexed Job). One key (file) per writer: `load-worker-<i>`
//! for worker `i`, `load-control` for the coordinator, each JSON.
//!
//! In the Secret, each write is a JSON merge patch of that one key under `data`, without a
//! resourceVersion precondition: writers never touch each other's keys, so there is nothing
//! to conflict with (the result's writer, which does use a precondition, re-reads and
//! merges on 409 as always). Every call goes through the retry helper
//! ([`crate::k8s::retry::call`]). The Role needs nothing new: `get` and `patch` of the
//! release's Secret, by name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Control, DistError, WorkerRecord};
use crate::k8s::retry::{attempt, call, RetryPolicy};

/// Key (file name without `.json`) of the coordinator's record.
pub const CONTROL_KEY: &str = "load-control";

/// Key of worker `index`'s record.
pub fn worker_key(index: u32) -> String {
    format!("load-worker-{index}")
}

/// The meeting place of a run's workers.
pub enum Rendezvous {
    /// A directory shared by processes on one machine: `<key>.json` files, each replaced
    /// atomically (written beside, then renamed).
    Dir(PathBuf),
    /// The release's Secret.
    Secret(Box<SecretRendezvous>),
}

/// The release's Secret as a rendezvous.
pub struct SecretRendezvous {
    api: Api<Secret>,
    name: String,
    what: String,
    retry: RetryPolicy,
}

impl SecretRendezvous {
    pub fn new(client: Client, namespace: &str, release: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: release.to_string(),
            what: format!("secret {namespace}/{release}"),
            retry: RetryPolicy::default(),
        }
    }

    async fn get(&self) -> Result<Secret, DistError> {
        let name = format!("GET {}", self.what);
        call(&name, &self.retry, || {
            attempt(self.retry.request_timeout, self.api.get(&self.name))
        })
        .await
        .map_err(|e| DistError::Io(e.to_string()))
    }

    async fn put(&self, key: &str, json: &[u8]) -> Result<(), DistError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        self.patch_data(serde_json::json!({ key: encoded })).await
    }

    /// One JSON merge patch of `data` (a key set to null is removed).
    async fn patch_data(&self, data: serde_json::Value) -> Result<(), DistError> {
        let patch = serde_json::json!({ "data": data });
        let name = format!("PATCH {} data", self.what);
        let params = PatchParams::default();
        let merge = Patch::Merge(&patch);
        call(&name, &self.retry, || {
            attempt(
                self.retry.request_timeout,
                self.api.patch(&self.name, &params, &merge),
            )
        })
        .await
        .map(|_| ())
        .map_err(|e| DistError::Io(e.to_string()))
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8], what: String) -> Result<T, DistError> {
    serde_json::from_slice(bytes).map_err(|e| DistError::Invalid {
        what,
        message: e.to_string(),
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, DistError> {
    serde_json::to_vec(v).map_err(|e| DistError::Invalid {
        what: "record".into(),
        message: e.to_string(),
    })
}

impl Rendezvous {
    async fn write(&self, key: &str, json: &[u8]) -> Result<(), DistError> {
        match self {
            Rendezvous::Dir(dir) => {
                let path = dir.join(format!("{key}.json"));
                let tmp = dir.join(format!(".{key}.json.{}", std::process::id()));
                tokio::fs::write(&tmp, json)
                    .await
                    .map_err(|e| DistError::Io(format!("{}: {e}", tmp.display())))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| DistError::Io(format!("{}: {e}", path.display())))
            }
            Rendezvous::Secret(s) => s.put(key, json).await,
        }
    }

    /// The value of `key`, if written.
    async fn read_dir_key(dir: &std::path::Path, key: &str) -> Result<Option<Vec<u8>>, DistError> {
        let path = dir.join(format!("{key}.json"));
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DistError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Remove the records of workers `1..count`.
    pub async fn remove_workers(&self, count: u32) -> Result<(), DistError> {
        match self {
            Rendezvous::Dir(dir) => {
                for i in 1..count {
                    let path = dir.join(format!("{}.json", worker_key(i)));
                    match tokio::fs::remove_file(&path).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(DistError::Io(format!("{}: {e}", path.display()))),
                    }
                }
                Ok(())
            }
            Rendezvous::Secret(s) => {
                let data: serde_json::Map<String, serde_json::Value> = (1..count)
                    .map(|i| (worker_key(i), serde_json::Value::Null))
                    .collect();
                s.patch_data(serde_json::Value::Object(data)).await
            }
        }
    }

    pub async fn write_worker(&self, index: u32, record: &WorkerRecord) -> Result<(), DistError> {
        self.write(&worker_key(index), &to_json(record)?).await
    }

    pub async fn write_control(&self, control: &Control) -> Result<(), DistError> {
        self.write(CONTROL_KEY, &to_json(control)?).await
    }

    /// The records of workers `0..count` that exist.
    pub async fn read_workers(&self, count: u32) -> Result<BTreeMap<u32, WorkerRecord>, DistError> {
        let mut out = BTreeMap::new();
        match self {
            Rendezvous::Dir(dir) => {
                for i in 0..count {
                    let key = worker_key(i);
                    if let Some(b) = Self::read_dir_key(dir, &key).await? {
                        out.insert(i, parse(&b, key)?);
                    }
                }
            }
            Rendezvous::Secret(s) => {
                let secret = s.get().await?;
                if let Some(data) = secret.data.as_ref() {
                    for i in 0..count {
                        let key = worker_key(i);
                        if let Some(b) = data.get(&key) {
                            out.insert(i, parse(&b.0, format!("{} key {key}", s.what))?);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn read_control(&self) -> Result<Option<Control>, DistError> {
        match self {
            Rendezvous::Dir(dir) => match Self::read_dir_key(dir, CONTROL_KEY).await? {
                Some(b) => parse(&b, CONTROL_KEY.to_string()).map(Some),
                None => Ok(None),
            },
            Rendezvous::Secret(s) => {
                let secret = s.get().await?;
                match secret.data.as_ref().and_then(|d| d.get(CONTROL_KEY)) {
                    Some(b) => parse(&b.0, format!("{} key {CONTROL_KEY}", s.what)).map(Some),
                    None => Ok(None),
                }
            }
        }
    }
}
