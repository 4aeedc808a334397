//! The proxy's Prometheus metrics (`causeway_proxy_*`), in a registry owned by the [`Proxy`]
//! (no global registry). Labels are bounded: api and stage names come from the snapshot, the
//! route label is the route key (`$none` when no route matched), never a raw path.
//!
//! [`Proxy`]: crate::Proxy

use std::sync::OnceLock;
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
    pub status_class: &'static str,
    /// `main` or `canary`: which deployment of the stage answered.
    pub deployment: &'static str,
}

/// The metric handles of one route of one deployment, per status class, created on first use:
/// the request path then touches no label strings, hashes or family locks.
pub(crate) struct RouteMetrics {
    labels: RequestLabels,
    slots: [OnceLock<RouteHandles>; 6],
}

/// Metric handles for one label set.
pub(crate) struct RouteHandles {
    requests: Counter,
    duration: Histogram,
    integration: Histogram,
    response_bytes: Counter,
}

impl RouteMetrics {
    pub fn new(api: &str, stage: &str, route: &str, deployment: &'static str) -> Self {
        Self {
            labels: RequestLabels {
                api: api.to_string(),
                stage: stage.to_string(),
                route: route.to_string(),
                status_class: "",
                deployment,
            },
            slots: Default::default(),
        }
    }
}

/// Labels of the byte counters (no status: request bytes are counted while they stream in).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByteLabels {
    pub api: String,
    pub stage: String,
    pub route: String,
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
    snapshot_dropped: Family<DroppedLabels, Gauge>,
    /// Request body bytes received from clients (proxied routes).
    pub request_bytes: Family<ByteLabels, Counter>,
    /// Response body bytes sent to clients.
    pub response_bytes: Family<ByteLabels, Counter>,
    /// Open downstream connections on the traffic listener.
    pub active_connections: Gauge,
    /// Connections closed at accept because their client had too many open.
    pub connections_refused: Counter,
    /// Requests refused by a throttle or a quota, by reason.
    throttled: Family<ThrottledLabels, Counter>,
}

/// Labels of refused (throttled) requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottledLabels {
    api: String,
    stage: String,
    /// `throttle` (a gateway, stage or route bucket), `usage_plan` (the API key's buckets),
    /// `quota` (the key's quota is spent), `quota_unavailable` (the quota store is down and
    /// the plan fails closed: 503), `websocket_connect` (a stage's new-connection rate) or
    /// `websocket_message` (a WebSocket message over its connection's rate or a throttle).
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyResultLabels {
    result: &'static str,
}

/// The kind of a dropped snapshot part: `stage`, `backend`, `host`, `authorizer`, `key` or
/// `certificate` (bounded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    kind: String,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let integration_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let snapshot_info = Family::<VersionLabels, Gauge>::default();
        let snapshot_applies = Family::<ApplyResultLabels, Counter>::default();
        let snapshot_dropped = Family::<DroppedLabels, Gauge>::default();
        let active_connections = Gauge::default();
        let connections_refused = Counter::default();
        let request_bytes = Family::<ByteLabels, Counter>::default();
        let response_bytes = Family::<ByteLabels, Counter>::default();
        let throttled = Family::<ThrottledLabels, Counter>::default();
        registry.register(
            "causeway_proxy_throttled_requests",
            "Requests refused by throttling or quotas (429; 503 when the quota store is down and the plan fails closed), by api, stage and reason: throttle, usage_plan, quota, quota_unavailable",
            throttled.clone(),
        );
        registry.register(
            "causeway_proxy_request_bytes",
            "Request body bytes received from clients, by api, stage and route key",
            request_bytes.clone(),
        );
        registry.register(
            "causeway_proxy_response_bytes",
            "Response body bytes sent to clients, by api, stage and route key",
            response_bytes.clone(),
        );
        registry.register(
            "causeway_proxy_requests",
            "Requests answered, by api, stage, route key, status class and deployment (main or canary)",
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
            "causeway_proxy_snapshot_dropped_parts",
            "Parts of the applied snapshot left out because they could not be built, by kind",
            snapshot_dropped.clone(),
        );
        registry.register(
            "causeway_proxy_active_connections",
            "Open downstream connections on the traffic listener",
            active_connections.clone(),
        );
        registry.register(
            "causeway_proxy_connections_refused",
            "Connections closed at accept because their client address had max_connections_per_client open",
            connections_refused.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            integration_duration,
            snapshot_info,
            snapshot_applies,
            snapshot_dropped,
            request_bytes,
            response_bytes,
            active_connections,
            connections_refused,
            throttled,
        }
    }

    /// Counts a request refused by a throttle or a quota (`reason`: see [`ThrottledLabels`]).
    pub fn throttled(&self, api: &str, stage: &str, reason: &'static str) {
        self.throttled
            .get_or_create(&ThrottledLabels {
                api: api.to_string(),
                stage: stage.to_string(),
                reason,
            })
            .inc();
    }

    /// The registry, for components that register their own metrics (the response cache).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Registers a counter owned by another component.
    pub fn register_counter(&mut self, name: &str, help: &str, counter: Counter) {
        self.registry.register(name, help, counter);
    }

    /// Registers a gauge owned by another component.
    pub fn register_gauge(&mut self, name: &str, help: &str, gauge: Gauge) {
        self.registry.register(name, help, gauge);
    }

    /// Records one finished request of a known route through its cached handles.
    pub fn observe_route(
        &self,
        route: &RouteMetrics,
        status: u16,
        duration: Duration,
        integration: Option<Duration>,
        bytes: u64,
    ) {
        let class = usize::from(status / 100).min(5);
        let handles = route.slots[class].get_or_init(|| {
            let labels = RequestLabels {
                status_class: status_class(status),
                ..route.labels.clone()
            };
            let byte_labels = ByteLabels {
                api: labels.api.clone(),
                stage: labels.stage.clone(),
                route: labels.route.clone(),
            };
            RouteHandles {
                requests: self.requests.get_or_create(&labels).clone(),
                duration: self.request_duration.get_or_create(&labels).clone(),
                integration: self.integration_duration.get_or_create(&labels).clone(),
                response_bytes: self.response_bytes.get_or_create(&byte_labels).clone(),
            }
        });
        handles.requests.inc();
        handles.duration.observe(duration.as_secs_f64());
        if let Some(integration) = integration {
            handles.integration.observe(integration.as_secs_f64());
        }
        if bytes > 0 {
            handles.response_bytes.inc_by(bytes);
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

    /// Sets the dropped-parts gauge to what the applied snapshot left out (0 for each kind
    /// when nothing was).
    pub fn snapshot_dropped(&self, dropped: &[causeway_snapshot::push::DroppedPart]) {
        for kind in [
            "stage",
            "backend",
            "host",
            "authorizer",
            "key",
            "certificate",
        ] {
            let count = dropped.iter().filter(|d| d.kind == kind).count();
            self.snapshot_dropped
                .get_or_create(&DroppedLabels {
                    kind: kind.to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
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
pub(crate) fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
