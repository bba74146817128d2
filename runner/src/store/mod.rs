//! Where experiments come from and results go: a file locally, the release's Secret in a cluster.
