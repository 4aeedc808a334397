//! Causeway's Kubernetes I/O (watches, status writes, leader election, deployment history, the
//! snapshot server). Not built yet: this crate is the place it will live, so that the crate
//! graph (`controller -> {crds, compile, snapshot, kube}`) is fixed from the start. Nothing in
//! the `causeway` binary uses it yet.
