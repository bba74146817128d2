//! Test support for Iter8: a Kubernetes API server for tests and its controllers.

pub mod cluster;
