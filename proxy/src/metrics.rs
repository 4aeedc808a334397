//! The proxy's Prometheus metrics (`causeway_proxy_*`), in a registry owned by the [`Proxy`]
//! (no global registry). Labels are bounded: api and stage names come from the snapshot, the
//! route label is the route key (`$none` when no route matched), never a raw path.
//!
//! [`Proxy`]: crate::Proxy

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label value when a request never reached an api, stage or route.
pub const NONE_LABEL: &str = "$none";

/// Labels of the per-request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub api: String,
    pub stage: String,
    pub route: String,
    pub status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s: covers the 29 s default integration timeout.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Every metric of the proxy.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily,
    integration_duration: HistogramFamily,
    snapshot_info: Family<VersionLabels, Gauge>,
    snapshot_applies: Family<ApplyResultLabels, Counter>,
    /// Open downstream connections on the traffic listener.
    pub active_connections: Gauge,
    /// Response cache hits, misses, evictions and size.
    pub cache: crate::cache::CacheMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyResultLabels {
    result: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let integration_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let snapshot_info = Family::<VersionLabels, Gauge>::default();
        let snapshot_applies = Family::<ApplyResultLabels, Counter>::default();
        let active_connections = Gauge::default();
        registry.register(
            "causeway_proxy_requests",
            "Requests answered, by api, stage, route key and status class",
            requests.clone(),
        );
        registry.register(
            "causeway_proxy_request_duration_seconds",
            "Time from the request head to the end of the response body",
            request_duration.clone(),
        );
        registry.register(
            "causeway_proxy_integration_duration_seconds",
            "Time from sending the upstream request to its response head",
            integration_duration.clone(),
        );
        registry.register(
            "causeway_proxy_snapshot_info",
            "The applied snapshot version (value 1)",
            snapshot_info.clone(),
        );
        registry.register(
            "causeway_proxy_snapshot_applies",
            "Snapshot apply attempts by result",
            snapshot_applies.clone(),
        );
        registry.register(
            "causeway_proxy_active_connections",
            "Open downstream connections on the traffic listener",
            active_connections.clone(),
        );
        let cache = crate::cache::CacheMetrics::register(&mut registry);
        Self {
            cache,
            registry,
            requests,
            request_duration,
            integration_duration,
            snapshot_info,
            snapshot_applies,
            active_connections,
        }
    }

    /// Records one finished request.
    pub fn observe_request(
        &self,
        labels: &RequestLabels,
        duration: Duration,
        integration: Option<Duration>,
    ) {
        self.requests.get_or_create(labels).inc();
        self.request_duration
            .get_or_create(labels)
            .observe(duration.as_secs_f64());
        if let Some(integration) = integration {
            self.integration_duration
                .get_or_create(labels)
                .observe(integration.as_secs_f64());
        }
    }

    /// Records an apply attempt; on success the version gauge moves to `version`.
    pub fn snapshot_applied(&self, version: Option<&str>) {
        match version {
            Some(version) => {
                self.snapshot_info.clear();
                self.snapshot_info
                    .get_or_create(&VersionLabels {
                        version: version.to_string(),
                    })
                    .set(1);
                self.snapshot_applies
                    .get_or_create(&ApplyResultLabels { result: "applied" })
                    .inc();
            }
            None => {
                self.snapshot_applies
                    .get_or_create(&ApplyResultLabels { result: "rejected" })
                    .inc();
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `2xx`, `4xx`, ... for a status code.
pub(crate) fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}
