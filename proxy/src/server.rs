//! Listeners and connections: [`accept`] (the accept loop, connection limits and timeouts),
//! [`tls`] (TLS termination by SNI), [`tunnel`] (upgraded connections), [`workers`]
//! (thread-per-core serving), [`admin`] (the operators' endpoints).

pub(crate) mod accept;
pub(crate) mod admin;
pub(crate) mod framing;
pub(crate) mod tls;
pub(crate) mod tunnel;
pub(crate) mod workers;
