//! The proxy's long-lived state: what every connection shares and what outlives a snapshot
//! (upstream pools, limiters, caches, quota counters, metrics), next to the current tables.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::Semaphore;

use crate::config::ProxyConfig;
use crate::telemetry::{access_log, metrics, trace};
use crate::{auth, cache, limits, tables, upstream, websocket};

/// State shared by every connection of one proxy.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) tables: ArcSwapOption<tables::Tables>,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) upstream: Arc<upstream::Upstream>,
    pub(crate) access_log: access_log::AccessLogger,
    /// OpenTelemetry spans of requests (off unless an OTLP endpoint is configured).
    pub(crate) tracer: trace::Tracer,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) auth: auth::AuthState,
    /// Token buckets that outlive snapshots (see `limits`).
    pub(crate) limiters: limits::Limiters,
    /// The gateway-wide bucket, if configured.
    pub(crate) gateway_throttle: Option<Arc<limits::TokenBucket>>,
    /// Stage response caches that outlive snapshots (see `cache`).
    pub(crate) caches: cache::Caches,
    /// Quota counters (Redis-shared or local).
    pub(crate) quotas: limits::quota::Quotas,
    /// Usage per key per day.
    pub(crate) usage: limits::usage::Usage,
    /// Whether the usage flush task runs.
    pub(crate) usage_flush_started: std::sync::atomic::AtomicBool,
    /// The HTTPS listener's own cap: a listener waits for a permit before `accept`, so two
    /// listeners sharing one semaphore could starve each other.
    pub(crate) tls_connections: Arc<Semaphore>,
    /// Open connections per client address, over every listener (`None`: no limit).
    pub(crate) client_connections: Option<Arc<limits::clients::ClientConnections>>,
    /// This replica's tag in the WebSocket connection ids it hands out.
    pub(crate) replica: String,
    /// This replica's open WebSocket connections.
    pub(crate) websockets: Arc<websocket::Registry>,
    /// Management calls to connections of other replicas, through Redis (when configured).
    pub(crate) relay: Option<Arc<websocket::relay::Relay>>,
}

impl Shared {
    /// The per-client connection cap and the counter of connections it refused, if configured.
    pub fn per_client(
        &self,
    ) -> Option<(
        Arc<limits::clients::ClientConnections>,
        prometheus_client::metrics::counter::Counter,
    )> {
        let clients = self.client_connections.clone()?;
        Some((clients, self.metrics.connections_refused.clone()))
    }

    /// Everything a proxy needs before its first snapshot.
    pub fn new(config: ProxyConfig) -> Self {
        let mut metrics = metrics::Metrics::new();
        let upstream = Arc::new(upstream::Upstream::new(&config));
        metrics.register_counter(
            "causeway_proxy_upstream_connect_errors",
            "Failed TCP connects to upstream endpoints (each attempt)",
            upstream.connect_errors.clone(),
        );
        let quotas = match config.redis_url.as_deref() {
            None => limits::quota::Quotas::local(),
            Some(url) => {
                limits::quota::Quotas::redis(url, config.redis_timeout).unwrap_or_else(|error| {
                    tracing::error!(%error, "quotas are counted per replica");
                    limits::quota::Quotas::local()
                })
            }
        };
        quotas.register_metrics(&mut metrics);
        let cache_metrics = cache::CacheMetrics::register(metrics.registry_mut());
        let tracer = trace::Tracer::new(&config.tracing, &mut metrics);
        let websockets = Arc::new(websocket::Registry::default());
        websockets.metrics.register(metrics.registry_mut());
        let replica = websocket::replica_tag();
        let relay = config.redis_url.as_deref().and_then(|url| {
            websocket::relay::Relay::new(url, replica.clone(), config.redis_timeout)
                .map(Arc::new)
                .map_err(|error| tracing::error!(%error, "@connections calls stay on this replica"))
                .ok()
        });
        Shared {
            replica,
            websockets,
            relay,
            caches: cache::Caches::new(cache_metrics, config.clock.clone()),
            metrics,
            upstream,
            access_log: access_log::AccessLogger::new(config.access_log.clone()),
            tracer,
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            tls_connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            client_connections: limits::clients::ClientConnections::new(
                config.max_connections_per_client,
            ),
            tables: ArcSwapOption::empty(),
            auth: auth::AuthState::new(config.clock.clone()),
            limiters: limits::Limiters::default(),
            quotas,
            usage: limits::usage::Usage::default(),
            usage_flush_started: std::sync::atomic::AtomicBool::new(false),
            gateway_throttle: config
                .gateway_throttle
                .map(|t| Arc::new(limits::TokenBucket::new(t, std::time::Instant::now()))),
            config,
        }
    }
}
