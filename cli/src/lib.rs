//! The library half of the `causeway` binary: the operator commands ([`ops`]) that talk to a
//! cluster through the user's kubeconfig, kept here so tests can drive them against a mock API
//! server. The long-running subcommands (controller, proxy, standalone) stay in the binary.

pub mod ops;
