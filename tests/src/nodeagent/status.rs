//! Pod status as the kubelet reports it: phase from the container states (its `getPhase`),
//! conditions PodScheduled / Initialized / ContainersReady / Ready with stable transition
//! times, `initContainerStatuses` and `containerStatuses`. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Now, as the API writes times (RFC 3339, seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started (reason: ContainerCreating, ErrImagePull, CreateContainerConfigError,
    /// PodInitializing, CrashLoopBackOff, ...).
    Waiting { reason: String, message: String },
    /// Its process runs.
    Running { started_at: String },
    /// Its process ended.
    Terminated {
        exit_code: i32,
        /// Completed (exit 0), Error, or what ended it.
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

impl State {
    /// A waiting state.
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        State::Waiting {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A terminated state with the kubelet's reason for the exit code.
    pub fn exited(code: i32, started_at: String) -> Self {
        State::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.to_string(),
            started_at,
            finished_at: now(),
        }
    }

    /// The state object; the two other kinds are explicit nulls, so a merge patch (or
    /// strategic merge patch) of the status removes the previous state.
    fn to_json(&self, container_id: &str) -> Value {
        let mut v = json!({"waiting": null, "running": null, "terminated": null});
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                v["waiting"] = w;
            }
            State::Running { started_at } => v["running"] = json!({"startedAt": started_at}),
            State::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason,
                                   "startedAt": started_at, "finishedAt": finished_at});
                if !container_id.is_empty() {
                    t["containerID"] = json!(container_id);
                }
                v["terminated"] = t;
            }
        }
        v
    }

    fn exit_code(&self) -> Option<i32> {
        match self {
            State::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

/// One container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Image as in the spec.
    pub image: String,
    /// `sha256:...` (podman) or empty.
    pub image_id: String,
    /// `podman://ID` or `iter8-node://PID`; empty before it starts.
    pub container_id: String,
    /// Current state.
    pub state: State,
    /// The previous run's state (after a restart).
    pub last_state: Option<State>,
    /// Restarts so far.
    pub restart_count: u32,
}

impl ContainerStatus {
    /// A container that has not been created yet.
    pub fn new(name: &str, image: &str, waiting_reason: &str) -> Self {
        ContainerStatus {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: String::new(),
            state: State::waiting(waiting_reason, ""),
            last_state: None,
            restart_count: 0,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name, "image": self.image, "imageID": self.image_id,
            "ready": self.running(), "started": self.running(),
            "restartCount": self.restart_count,
            "state": self.state.to_json(&self.container_id),
            "lastState": self.last_state.as_ref().map(|s| s.to_json("")).unwrap_or(json!({})),
        });
        if !self.container_id.is_empty() {
            v["containerID"] = json!(self.container_id);
        }
        v
    }
}

/// Everything the agent reports about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStatus {
    /// `spec.restartPolicy` (Always, OnFailure, Never).
    pub restart_policy: String,
    /// Init containers, in order.
    pub init: Vec<ContainerStatus>,
    /// Containers.
    pub containers: Vec<ContainerStatus>,
    /// When the agent accepted the pod.
    pub start_time: String,
    /// Condition type -> (status, lastTransitionTime).
    conditions: BTreeMap<&'static str, (bool, String)>,
}

impl PodStatus {
    /// The status of a pod just accepted: every container waiting.
    pub fn new(pod: &Value) -> Self {
        let list = |key: &str, reason: &str| -> Vec<ContainerStatus> {
            pod["spec"][key]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            ContainerStatus::new(
                                c["name"].as_str().unwrap_or(""),
                                c["image"].as_str().unwrap_or(""),
                                reason,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let init = list("initContainers", "PodInitializing");
        let first = if init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        PodStatus {
            restart_policy: pod["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("Always")
                .to_string(),
            init,
            containers: list("containers", first),
            start_time: now(),
            conditions: BTreeMap::new(),
        }
    }

    /// Whether every init container completed successfully.
    pub fn initialized(&self) -> bool {
        self.init.iter().all(|c| c.state.exit_code() == Some(0))
    }

    /// The pod phase, as the kubelet's `getPhase` computes it.
    pub fn phase(&self) -> &'static str {
        let never = self.restart_policy == "Never";
        if never
            && self
                .init
                .iter()
                .any(|c| c.state.exit_code().is_some_and(|e| e != 0))
        {
            return "Failed";
        }
        if !self.initialized() {
            return "Pending";
        }
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in &self.containers {
            match &c.state {
                State::Running { .. } => running += 1,
                State::Terminated { exit_code, .. } => {
                    stopped += 1;
                    if *exit_code == 0 {
                        succeeded += 1;
                    }
                }
                State::Waiting { .. } if c.last_state.is_some() => stopped += 1,
                State::Waiting { .. } => waiting += 1,
            }
        }
        if waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            if self.restart_policy == "Always" {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if never {
                "Failed"
            } else {
                "Running"
            }
        } else {
            "Pending"
        }
    }

    /// Whether the phase is final (nothing will run again).
    pub fn terminal(&self) -> bool {
        matches!(self.phase(), "Succeeded" | "Failed")
    }

    fn set_condition(&mut self, t: &'static str, value: bool) {
        match self.conditions.get(t) {
            Some((v, _)) if *v == value => {}
            _ => {
                self.conditions.insert(t, (value, now()));
            }
        }
    }

    /// The `status` object (updates the conditions' transition times).
    pub fn to_json(&mut self) -> Value {
        let phase = self.phase();
        let ready = !self.containers.is_empty()
            && self.containers.iter().all(ContainerStatus::running)
            && !self.terminal();
        let initialized = self.initialized();
        self.set_condition("PodScheduled", true);
        self.set_condition("Initialized", initialized);
        self.set_condition("ContainersReady", ready);
        self.set_condition("Ready", ready);
        let not_ready_reason = if self.terminal() {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
            .iter()
            .filter_map(|t| self.conditions.get(t).map(|c| (t, c)))
            .map(|(t, (v, time))| {
                let mut c = json!({"type": t, "status": if *v { "True" } else { "False" },
                                   "lastProbeTime": null, "lastTransitionTime": time});
                if !*v {
                    let reason = if *t == "Initialized" {
                        "ContainersNotInitialized"
                    } else {
                        not_ready_reason
                    };
                    c["reason"] = json!(reason);
                }
                c
            })
            .collect();
        let mut s = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "containerStatuses": self.containers.iter().map(ContainerStatus::to_json).collect::<Vec<_>>(),
        });
        if !self.init.is_empty() {
            s["initContainerStatuses"] = json!(self
                .init
                .iter()
                .map(ContainerStatus::to_json)
                .collect::<Vec<_>>());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str, init: bool) -> Value {
        let mut p = json!({"spec": {"restartPolicy": policy,
            "containers": [{"name": "a", "image": "ia"}, {"name": "b", "image": "ib"}]}});
        if init {
            p["spec"]["initContainers"] = json!([{"name": "i", "image": "ii"}]);
        }
        p
    }

    fn cond(s: &Value, t: &str) -> String {
        s["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_job_pod_goes_pending_running_succeeded() {
        let mut st = PodStatus::new(&pod("Never", false));
        assert_eq!(st.phase(), "Pending");
        let j = st.to_json();
        assert_eq!(
            j["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(cond(&j, "PodScheduled"), "True");
        assert_eq!(cond(&j, "Ready"), "False");
        for c in &mut st.containers {
            c.state = State::Running { started_at: now() };
        }
        assert_eq!(st.phase(), "Running");
        let j = st.to_json();
        assert_eq!(cond(&j, "Ready"), "True");
        assert_eq!(cond(&j, "ContainersReady"), "True");
        assert_eq!(j["podIP"], "127.0.0.1");
        st.containers[0].state = State::exited(0, now());
        assert_eq!(st.phase(), "Running");
        st.containers[1].state = State::exited(0, now());
        assert_eq!(st.phase(), "Succeeded");
        let j = st.to_json();
        assert_eq!(
            j["containerStatuses"][1]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(cond(&j, "Ready"), "False");
    }

    #[test]
    fn a_failing_container_fails_a_never_pod_only() {
        let mut st = PodStatus::new(&pod("Never", false));
        st.containers[0].state = State::exited(0, now());
        st.containers[1].state = State::exited(3, now());
        assert_eq!(st.phase(), "Failed");
        let j = st.to_json();
        assert_eq!(
            j["containerStatuses"][1]["state"]["terminated"]["exitCode"],
            3
        );
        assert_eq!(
            j["containerStatuses"][1]["state"]["terminated"]["reason"],
            "Error"
        );
        st.restart_policy = "OnFailure".into();
        assert_eq!(st.phase(), "Running");
        st.restart_policy = "Always".into();
        st.containers[1].state = State::exited(0, now());
        assert_eq!(st.phase(), "Running", "Always never completes");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let mut st = PodStatus::new(&pod("Never", true));
        let j = st.to_json();
        assert_eq!(
            j["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(cond(&j, "Initialized"), "False");
        st.init[0].state = State::Running { started_at: now() };
        assert_eq!(st.phase(), "Pending");
        st.init[0].state = State::exited(1, now());
        assert_eq!(st.phase(), "Failed");
        st.init[0].state = State::exited(0, now());
        assert_eq!(st.phase(), "Pending");
        let j = st.to_json();
        assert_eq!(cond(&j, "Initialized"), "True");
        assert_eq!(
            j["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }

    #[test]
    fn transition_times_stay_while_a_condition_holds() {
        let mut st = PodStatus::new(&pod("Never", false));
        let first = st.to_json();
        st.conditions
            .insert("PodScheduled", (true, "2000-01-01T00:00:00Z".into()));
        let again = st.to_json();
        assert_eq!(first["conditions"][0]["type"], "PodScheduled");
        assert_eq!(
            again["conditions"][0]["lastTransitionTime"],
            "2000-01-01T00:00:00Z"
        );
    }
}
