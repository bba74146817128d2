//! Test support for Iter8: the harness for the real control plane of `scripts/test-cluster`
//! (`k8s`), the node agent that plays its kubelet (`nodeagent`), and a fault-injecting proxy
//! for any API server (`faultproxy`).

pub mod faultproxy;
pub mod k8s;
pub mod nodeagent;
