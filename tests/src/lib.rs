//! Test support for Iter8: a Kubernetes API server for tests and its controllers (the
//! imitation, `cluster`), the node agent that plays the kubelet for a real control plane
//! (`nodeagent`), and a fault-injecting proxy for any API server (`faultproxy`).

pub mod cluster;
pub mod faultproxy;
pub mod k8s;
pub mod nodeagent;
