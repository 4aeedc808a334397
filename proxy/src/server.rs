//! Listeners and connections: [`accept`] (the accept loop, connection limits and timeouts),
//! [`tls`] (TLS termination by SNI), [`workers`] (thread-per-core serving), [`admin`] (the
//! operators' endpoints).

pub(crate) mod accept;
pub(crate) mod admin;
pub(crate) mod tls;
pub(crate) mod workers;
