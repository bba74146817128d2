//! Test support for Iter8: a Kubernetes API server for tests and its controllers (the
//! imitation, `cluster`), and the node agent that plays the kubelet for a real control
//! plane (`nodeagent`).

pub mod cluster;
pub mod k8s;
pub mod nodeagent;
