//! `ready`: wait until a Kubernetes object exists and, optionally, has a condition with
//! status True (Deployment `Available`, Knative / KServe `Ready`, Service: exists).
//!
//! The object is read with GET about every second (the chart grants `get` on exactly the
//! named objects) inside a timeout; on timeout the task fails naming the object and what it
//! last saw: its conditions, "not found", or "forbidden" with the API's message.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TaskContext, TaskError};
use crate::k8s::{error_kind, error_message, ErrorKind};
use crate::model::GoDuration;

/// Default timeout (Iter8's documentation said 60s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(not(test))]
const POLL_INTERVAL: Duration = Duration::from_secs(1);
#[cfg(test)]
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Inputs of the ready task (Iter8's names).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadyTask {
    /// API group of the object; empty or absent for the core group (Services, ConfigMaps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version of the object, e.g. `v1` (default `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Plural resource name, e.g. `deployments`, `services`, `inferenceservices`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Name of the object. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the object; default: the experiment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A condition type that must have status `True` (e.g. `Available`, `Ready`); absent:
    /// the object only has to exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// How long to wait (Go duration, e.g. `60s`; default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}

impl ReadyTask {
    /// Metric name prefixes this task produces: none.
    pub fn metric_prefixes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), TaskError> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.name) {
            return Err(TaskError::invalid(
                "name",
                "missing; set the name of the object to wait for, e.g. httpbin",
            ));
        }
        if blank(&self.resource) {
            return Err(TaskError::invalid(
                "resource",
                "missing; set the plural resource of the object, e.g. deployments (group apps, version v1) or services (version v1)",
            ));
        }
        if self.version.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(TaskError::invalid(
                "version",
                "empty; set the API version, e.g. v1, or leave it out",
            ));
        }
        if self
            .condition
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(TaskError::invalid(
                "condition",
                "empty; set a condition type such as Available or Ready, or leave it out",
            ));
        }
        Ok(())
    }

    fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("").trim()
    }

    fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("v1").trim()
    }

    fn resource(&self) -> &str {
        self.resource.as_deref().unwrap_or("").trim()
    }

    fn object_name(&self) -> &str {
        self.name.as_deref().unwrap_or("").trim()
    }

    /// kubectl-style: `deployments.apps/httpbin`, `services/httpbin`.
    pub fn display(&self) -> String {
        if self.group().is_empty() {
            format!("{}/{}", self.resource(), self.object_name())
        } else {
            format!(
                "{}.{}/{}",
                self.resource(),
                self.group(),
                self.object_name()
            )
        }
    }

    fn api_resource(&self) -> ApiResource {
        let (group, version) = (self.group().to_string(), self.version().to_string());
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        ApiResource {
            group,
            version,
            api_version,
            kind: String::new(), // display only; requests use the plural
            plural: self.resource().to_string(),
        }
    }

    /// Wait for the object. Fails on timeout naming it and what was last seen.
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        self.validate()?;
        let Some(client) = ctx.kube.clone() else {
            return Err(TaskError::Failed(format!(
                "ready {}: needs a Kubernetes cluster (the runner was started without one; run it with --namespace/--release in a cluster)",
                self.display()
            )));
        };
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| ctx.namespace.clone())
            .unwrap_or_else(|| client.default_namespace().to_string());
        let timeout = self
            .timeout
            .map(GoDuration::as_duration)
            .unwrap_or(DEFAULT_TIMEOUT);
        let api: Api<DynamicObject> =
            Api::namespaced_with(client, &namespace, &self.api_resource());
        let what = self.display();
        ctx.progress
            .start(format!("ready: waiting for {what} in {namespace}"), 0);
        let mut last = String::from("not checked yet");
        let name = self.object_name().to_string();
        let poll = async {
            loop {
                match api.get(&name).await {
                    Ok(obj) => match &self.condition {
                        None => return,
                        Some(cond) => {
                            let (ok, seen) = condition_status(&obj, cond.trim());
                            if ok {
                                return;
                            }
                            last = seen;
                        }
                    },
                    Err(e) => {
                        last = match error_kind(&e) {
                            ErrorKind::NotFound => "not found".to_string(),
                            ErrorKind::Forbidden => format!("forbidden: {}", error_message(&e)),
                            _ => format!("error: {}", error_message(&e)),
                        };
                    }
                }
                ctx.progress.inc(false);
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        };
        match tokio::time::timeout(timeout, poll).await {
            Ok(()) => {
                tracing::info!(object = %what, namespace = %namespace, "ready");
                Ok(())
            }
            Err(_) => Err(TaskError::Failed(format!(
                "{what} in namespace {namespace} not ready after {}: {last}",
                GoDuration(timeout)
            ))),
        }
    }
}

/// Whether `obj` has condition `cond` with status True, and a description of its
/// conditions (`Available=False (MinimumReplicasUnavailable: ...), Progressing=True`).
fn condition_status(obj: &DynamicObject, cond: &str) -> (bool, String) {
    let conditions = obj
        .data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let mut ok = false;
    let mut seen = Vec::new();
    for c in &conditions {
        let ty = c.get("type").and_then(|v| v.as_str()).unwrap_or("?");
        let status = c.get("status").and_then(|v| v.as_str()).unwrap_or("?");
        if ty == cond && status == "True" {
            ok = true;
        }
        let mut s = format!("{ty}={status}");
        let reason = c.get("reason").and_then(|v| v.as_str()).unwrap_or("");
        let message = c.get("message").and_then(|v| v.as_str()).unwrap_or("");
        match (reason.is_empty(), message.is_empty()) {
            (false, false) => s.push_str(&format!(" ({reason}: {message})")),
            (false, true) => s.push_str(&format!(" ({reason})")),
            (true, false) => s.push_str(&format!(" ({message})")),
            (true, true) => {}
        }
        seen.push(s);
    }
    let seen = if seen.is_empty() {
        format!("condition {cond} is not True; the object has no conditions yet")
    } else {
        format!(
            "condition {cond} is not True; conditions: {}",
            seen.join(", ")
        )
    };
    (ok, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::mock::MockApi;
    use crate::model::Insights;
    use crate::tasks::Progress;
    use serde_json::json;

    const DEPLOY: &str = "/apis/apps/v1/namespaces/ns/deployments/web";

    fn task(yaml: &str) -> ReadyTask {
        serde_yaml::from_str(yaml).expect("task")
    }

    fn deployment(available: &str) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns"},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                {"type": "Available", "status": available, "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
            ]},
        })
    }

    async fn run(t: &ReadyTask, client: Option<kube::Client>) -> Result<(), TaskError> {
        let mut insights = Insights::default();
        let progress = Progress::default();
        let mut ctx = TaskContext {
            index: 0,
            experiment_start: chrono::Utc::now(),
            namespace: Some("ns".into()),
            insights: &mut insights,
            progress: &progress,
            kube: client,
        };
        t.run(&mut ctx).await
    }

    const DEPLOY_TASK: &str =
        "{group: apps, version: v1, resource: deployments, name: web, condition: Available, timeout: 300ms}";

    #[tokio::test]
    async fn ready_when_the_condition_is_true() {
        let api = MockApi::start().await;
        api.with(|s| s.put(DEPLOY, deployment("True")));
        run(&task(DEPLOY_TASK), Some(api.client()))
            .await
            .expect("ready");
        let (m, p) = api.with(|s| s.requests[0].clone());
        assert_eq!(
            (m.as_str(), p.as_str()),
            ("GET", format!("{DEPLOY}?").as_str())
        );
    }

    #[tokio::test]
    async fn waits_until_the_object_becomes_ready() {
        let api = MockApi::start().await;
        api.with(|s| s.put(DEPLOY, deployment("False")));
        let state = api.state.clone();
        let flip = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            state.lock().expect("lock").put(DEPLOY, deployment("True"));
        });
        let t = task(&DEPLOY_TASK.replace("300ms", "10s"));
        run(&t, Some(api.client()))
            .await
            .expect("ready after the flip");
        flip.await.expect("flip");
        assert!(api.with(|s| s.requests.len()) >= 2);
    }

    #[tokio::test]
    async fn timeout_names_the_object_and_its_conditions() {
        let api = MockApi::start().await;
        api.with(|s| s.put(DEPLOY, deployment("False")));
        let err = run(&task(DEPLOY_TASK), Some(api.client()))
            .await
            .expect_err("times out");
        assert_eq!(
            err.to_string(),
            "deployments.apps/web in namespace ns not ready after 300ms: condition Available is not True; conditions: Progressing=True (NewReplicaSetAvailable), Available=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.)"
        );
    }

    #[tokio::test]
    async fn service_only_has_to_exist_and_missing_objects_say_not_found() {
        let api = MockApi::start().await;
        let svc = task("{version: v1, resource: services, name: httpbin, timeout: 200ms}");
        let err = run(&svc, Some(api.client())).await.expect_err("missing");
        assert_eq!(
            err.to_string(),
            "services/httpbin in namespace ns not ready after 200ms: not found"
        );
        api.with(|s| {
            s.put(
                "/api/v1/namespaces/ns/services/httpbin",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin"}}),
            )
        });
        run(&svc, Some(api.client())).await.expect("exists");
    }

    #[tokio::test]
    async fn forbidden_is_reported_with_the_api_message() {
        let api = MockApi::start().await;
        api.with(|s| s.forbidden.push("/apis/serving.kserve.io".into()));
        let t = task("{group: serving.kserve.io, version: v1beta1, resource: inferenceservices, name: m, namespace: ml, condition: Ready, timeout: 100ms}");
        let err = run(&t, Some(api.client())).await.expect_err("forbidden");
        let msg = err.to_string();
        assert!(
            msg.starts_with("inferenceservices.serving.kserve.io/m in namespace ml not ready after 100ms: forbidden: 403 Forbidden: /apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/m is forbidden"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn without_a_cluster_it_fails_clearly() {
        let err = run(&task(DEPLOY_TASK), None).await.expect_err("no cluster");
        assert!(
            err.to_string().contains("needs a Kubernetes cluster"),
            "{err}"
        );
    }

    #[test]
    fn validate_names_the_missing_field() {
        let err = task("{resource: deployments}")
            .validate()
            .expect_err("name");
        assert!(
            matches!(&err, TaskError::Invalid { field, .. } if field == "name"),
            "{err}"
        );
        let err = task("{name: web}").validate().expect_err("resource");
        assert!(
            matches!(&err, TaskError::Invalid { field, .. } if field == "resource"),
            "{err}"
        );
        let err = task("{name: web, resource: x, condition: ''}")
            .validate()
            .expect_err("cond");
        assert!(
            matches!(&err, TaskError::Invalid { field, .. } if field == "condition"),
            "{err}"
        );
        task(DEPLOY_TASK).validate().expect("valid");
        assert!(task(DEPLOY_TASK).metric_prefixes().is_empty());
        let bad: Result<ReadyTask, _> = serde_yaml::from_str("{name: web, resource: x, deploy: y}");
        assert!(bad.expect_err("unknown").to_string().contains("deploy"));
        let bad: Result<ReadyTask, _> =
            serde_yaml::from_str("{name: web, resource: x, timeout: soon}");
        assert!(bad.is_err());
    }
}
