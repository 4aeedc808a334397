//! Causeway's data plane. The proxy owns the traffic and admin listeners, the request pipeline
//! (stage and route matching, canary choice, integrations), upstream connection pools, metrics
//! and the access log. Its only input is a [`causeway_snapshot::Snapshot`]: [`Proxy::apply`]
//! builds runtime tables from it and swaps them in atomically. The proxy never talks to
//! Kubernetes and interprets no user resources; it must not depend on `kube` or on
//! `causeway-compile`.
//!
//! Where to look: [`pipeline`] shows the request's life in order; `context` holds its facts;
//! `tables` is what a snapshot becomes; `server` accepts connections. The modules form layers
//! (listed below) that import only downward.

// Layers, each importing only from layers below it (`tests/layers.rs` checks the `use crate::`
// lines against this table):
// L0 facts and types
mod body;
mod clock;
mod config;
mod context;
mod error;
// L1 parts of the request's life
mod auth;
mod cache;
mod cors;
mod gateway_response;
pub mod hygiene;
mod integration;
mod limits;
mod telemetry;
mod upstream;
mod validation;
mod websocket;
// L2 what a snapshot becomes, and the state that outlives snapshots
mod state;
mod tables;
// L3 the request's life in order
pub mod pipeline;
// L4 listeners and connections
mod server;
// L5 the proxy itself, and the client that feeds it snapshots from the controller
#[doc(hidden)]
pub mod fuzzing;
pub mod snapshot_client;

use std::future::Future;
use std::sync::Arc;

use causeway_snapshot::Snapshot;
pub use causeway_snapshot::push::DroppedPart;
use tokio::net::TcpListener;

pub use body::{BodyIdleTimeout, BoxError, ProxyBody};
pub use clock::Clock;
pub use config::*;
pub use error::{
    ApplyError, AuthApplyError, AuthError, Classified, Fault, HostRejection, MappingError,
    PathRejection, RequestError, SchemaError, classify,
};
pub use limits::usage;
pub use telemetry::metrics::NONE_LABEL;

use server::{accept, admin, workers};
use state::Shared;

/// The outcome of [`Proxy::apply`]: the snapshot serves, less the parts it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The version now serving.
    pub version: String,
    /// Parts left out because they could not be built, each with why.
    pub dropped: Vec<DroppedPart>,
}

/// A proxy: the current runtime tables and everything that outlives a snapshot (upstream
/// pools, metrics). Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy with no snapshot yet: it answers every request with 503 until [`Proxy::apply`].
    pub fn new(config: ProxyConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// Builds runtime tables from the snapshot and swaps them in atomically. It never refuses
    /// a snapshot as a whole: a stage, backend or host rule that cannot be built is left out,
    /// logged, counted in `causeway_proxy_snapshot_dropped_parts` and listed in the result (the
    /// snapshot client sends it with its ack); the rest serves. Requests in flight finish on
    /// the tables they started with.
    pub fn apply(&self, snapshot: Snapshot) -> Applied {
        let version = snapshot.version.clone();
        let previous = self.shared.tables.load_full();
        let runtime = tables::Tables::build(
            snapshot,
            previous.as_deref(),
            &self.shared.limiters,
            &self.shared.caches,
        );
        let dropped = runtime.dropped.clone();
        let websocket_stages: std::collections::HashSet<String> = runtime
            .stages
            .iter()
            .filter(|s| s.api.websocket.is_some())
            .map(|s| s.id.clone())
            .collect();
        self.shared.tables.store(Some(Arc::new(runtime)));
        // WebSocket connections whose stage (or Api) is gone, was dropped or is no longer a
        // WebSocket stage close going away; their sessions call `$disconnect` on the
        // deployment they connected to.
        let closed = self
            .shared
            .websockets
            .close_removed(|stage| websocket_stages.contains(stage));
        if closed > 0 {
            tracing::info!(version = %version, closed, "websocket connections of removed stages closed");
        }
        self.shared.limiters.prune();
        self.shared.caches.prune();
        self.shared.metrics.snapshot_applied(Some(&version));
        self.shared.metrics.snapshot_dropped(&dropped);
        for part in &dropped {
            tracing::warn!(
                version = %version,
                kind = %part.kind,
                id = %part.id,
                reason = %part.reason,
                "snapshot part dropped; the rest is applied"
            );
        }
        tracing::info!(version = %version, dropped = dropped.len(), "snapshot applied");
        Applied { version, dropped }
    }

    /// What this proxy counted today, for the controller's `UsagePlan.status` rollup (sent by
    /// the snapshot client about once a minute). Probes Redis when it is configured.
    pub async fn usage_report(&self, proxy_id: &str) -> causeway_snapshot::push::UsageReport {
        let day = self.shared.config.clock.unix_day();
        let (shared, store_available) = self.shared.quotas.store_health().await;
        causeway_snapshot::push::UsageReport {
            proxy_id: proxy_id.to_string(),
            day,
            shared,
            store_available,
            plans: self.shared.usage.day_report(day),
        }
    }

    /// The version of the applied snapshot, if any.
    pub fn version(&self) -> Option<String> {
        self.shared
            .tables
            .load()
            .as_ref()
            .map(|r| r.snapshot.version.clone())
    }

    /// Serves traffic (HTTP/1.1 and h2c) on `listener` until `shutdown` completes, then drains.
    /// With `workers` ≥ 1 in the config, on that many threads of their own (thread per core);
    /// with 0, on the runtime that calls this.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.start_usage_flush();
        self.shared.tracer.start_export();
        self.start_websocket_relay();
        let served = self
            .serve_kind(listener, shutdown, workers::Kind::Plain)
            .await;
        // Its WebSocket connections are closed: calls for them answer 410 at once.
        self.retire_websocket_relay().await;
        // Give unspent quota leases back, so the other replicas can spend them.
        self.shared.quotas.release().await;
        // Send the spans of the last requests.
        self.shared.tracer.flush().await;
        served
    }

    /// The accept loop of a traffic listener, on worker threads or on this runtime.
    async fn serve_kind(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        kind: workers::Kind,
    ) -> std::io::Result<()> {
        let workers = self.shared.config.workers;
        if workers >= 1 {
            return workers::serve(Arc::clone(&self.shared), listener, shutdown, workers, kind)
                .await;
        }
        let settings = workers::listener_settings(&self.shared, kind);
        let scheme = match kind {
            workers::Kind::Plain => "http",
            workers::Kind::Tls => "https",
        };
        let shared = Arc::clone(&self.shared);
        accept::accept_loop(listener, shutdown, settings, move |request, peer| {
            let upstream = Arc::clone(&shared.upstream);
            pipeline::handle(Arc::clone(&shared), upstream, request, peer, scheme)
        })
        .await
    }

    /// Starts (once) the task that answers `@connections` calls relayed from other replicas
    /// for this replica's WebSocket connections, when Redis is configured.
    fn start_websocket_relay(&self) {
        if let Some(relay) = &self.shared.relay {
            relay.start(Arc::clone(&self.shared.websockets));
        }
    }

    /// Tells the other replicas that this one is gone (its liveness key is deleted).
    async fn retire_websocket_relay(&self) {
        if let Some(relay) = &self.shared.relay {
            relay.retire().await;
        }
    }

    /// Starts (once) the task that flushes usage counts to Redis, when Redis is configured.
    fn start_usage_flush(&self) {
        use std::sync::atomic::Ordering;
        let Some(url) = self.shared.config.redis_url.clone() else {
            return;
        };
        if self.shared.usage_flush_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let mut conn = None;
            loop {
                tokio::time::sleep(limits::usage::FLUSH_EVERY).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if conn.is_none() {
                    conn = client.get_connection_manager().await.ok();
                }
                if let Some(c) = conn.as_mut()
                    && let Err(error) = shared.usage.flush(c).await
                {
                    tracing::warn!(%error, "usage not flushed to redis; kept for the next flush");
                }
            }
        });
    }

    /// Serves HTTPS on `listener` until `shutdown` completes: TLS 1.2 and 1.3 (rustls, ring),
    /// ALPN `h2` and `http/1.1`, the certificate chosen by SNI from the applied snapshot's
    /// `certificates` (a handshake for an unknown name fails). On mutual-TLS domains the client
    /// must present a certificate from the domain's CA, or the handshake fails. Has its own
    /// connection cap of `max_connections`.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.shared.tracer.start_export();
        self.start_websocket_relay();
        self.serve_kind(listener, shutdown, workers::Kind::Tls)
            .await
    }

    /// Serves the admin endpoints (`/healthz`, `/readyz`, `/metrics`, `/config_dump`).
    pub async fn serve_admin(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let config = &self.shared.config;
        let settings = accept::ListenerSettings::new(config);
        let shared = Arc::clone(&self.shared);
        accept::accept_loop(listener, shutdown, settings, move |request, _peer| {
            admin::handle(Arc::clone(&shared), request)
        })
        .await
    }
}
