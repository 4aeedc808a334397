//! The OTLP trace exporter: finished spans go into a bounded queue ([`Exporter::submit`] never
//! waits: a full queue drops the span and counts it), and one background task sends them in
//! batches as `ExportTraceServiceRequest` protobufs — over OTLP/HTTP (`POST {endpoint}`,
//! `Content-Type: application/x-protobuf`) or OTLP/gRPC (`TraceService/Export` over HTTP/2
//! without TLS) — on a hyper client of its own: a batch leaves when it is full or
//! its oldest span has waited the batch delay, and everything queued is sent when the proxy
//! stops serving ([`Exporter::flush`]). Export runs one request at a time,
//! each within a timeout; a collector that is down or slow only makes spans drop — a request
//! of a client is never delayed by it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;
use crate::config::{OtlpProtocol, TracingConfig};

/// The instrumentation scope of every span.
const SCOPE: &str = "causeway-proxy";

/// Why spans were not exported (bounded label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    /// `queue_full` (the request path found the queue full) or `export_failed` (the collector
    /// refused, failed or timed out).
    reason: &'static str,
}

/// The exporter's counters (`causeway_proxy_trace_spans_*`).
#[derive(Clone)]
pub(crate) struct ExportCounters {
    exported: Counter,
    dropped: Family<DroppedLabels, Counter>,
}

impl ExportCounters {
    pub fn register(metrics: &mut Metrics) -> Self {
        let counters = Self {
            exported: Counter::default(),
            dropped: Family::default(),
        };
        let registry = metrics.registry_mut();
        registry.register(
            "causeway_proxy_trace_spans_exported",
            "Spans the OTLP collector accepted",
            counters.exported.clone(),
        );
        registry.register(
            "causeway_proxy_trace_spans_dropped",
            "Spans not exported, by reason: queue_full (never waited for) or export_failed",
            counters.dropped.clone(),
        );
        for reason in ["queue_full", "export_failed"] {
            drop(counters.dropped.get_or_create(&DroppedLabels { reason }));
        }
        counters
    }

    fn dropped(&self, reason: &'static str, n: usize) {
        self.dropped
            .get_or_create(&DroppedLabels { reason })
            .inc_by(n as u64);
    }
}

/// The queue's sending side and, until the task starts, its receiving side.
pub(crate) struct Exporter {
    queue: mpsc::Sender<Span>,
    flush: mpsc::UnboundedSender<oneshot::Sender<()>>,
    pending: Mutex<Option<Batcher>>,
    started: AtomicBool,
    counters: ExportCounters,
}

impl Exporter {
    /// An exporter to `endpoint` (validated by [`TracingConfig::validate`]); nothing is sent
    /// until [`Exporter::start`].
    pub fn new(endpoint: &str, config: &TracingConfig, counters: ExportCounters) -> Self {
        let (queue, spans) = mpsc::channel(config.queue_spans.max(1));
        let (flush, flushes) = mpsc::unbounded_channel();
        let batcher = Batcher {
            protocol: config.protocol,
            spans,
            flushes,
            endpoint: export_uri(endpoint, config.protocol),
            resource: resource(&config.service_name),
            batch: config.batch_spans.max(1),
            delay: config.batch_delay,
            timeout: config.export_timeout,
            counters: counters.clone(),
        };
        Self {
            queue,
            flush,
            pending: Mutex::new(Some(batcher)),
            started: AtomicBool::new(false),
            counters,
        }
    }

    /// Queues a finished span; a full queue drops it (counted), it never waits.
    pub fn submit(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.counters.dropped("queue_full", 1);
        }
    }

    /// Spawns the export task on the current runtime, once. It ends when the proxy (the
    /// queue's sender) is gone, after sending what was queued.
    pub fn start(&self) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let batcher = self.pending.lock().ok().and_then(|mut p| p.take());
        if let Some(batcher) = batcher {
            tokio::spawn(batcher.run());
        }
    }

    /// Sends every span queued so far (at shutdown), waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        let (done, flushed) = oneshot::channel();
        if self.flush.send(done).is_ok() {
            let _ = tokio::time::timeout(within, flushed).await;
        }
    }
}

/// The export task's state.
struct Batcher {
    protocol: OtlpProtocol,
    spans: mpsc::Receiver<Span>,
    /// Requests to send everything queued now (answered when done).
    flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    endpoint: Uri,
    resource: Resource,
    batch: usize,
    delay: Duration,
    timeout: Duration,
    counters: ExportCounters,
}

impl Batcher {
    async fn run(mut self) {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.timeout));
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(1)
            .http2_only(self.protocol == OtlpProtocol::Grpc)
            .build(connector);
        let mut batch = Vec::with_capacity(self.batch);
        // When the oldest span of a partial batch must be sent at the latest.
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                span = self.spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.batch {
                            self.send(&client, &mut batch).await;
                            due = None;
                        } else if due.is_none() {
                            due = Some(tokio::time::Instant::now() + self.delay);
                        }
                    }
                    None => {
                        self.send(&client, &mut batch).await;
                        return;
                    }
                },
                Some(done) = self.flushes.recv() => {
                    // Everything queued so far, in batches, then say so.
                    loop {
                        while batch.len() < self.batch {
                            match self.spans.try_recv() {
                                Ok(span) => batch.push(span),
                                Err(_) => break,
                            }
                        }
                        if batch.is_empty() {
                            break;
                        }
                        self.send(&client, &mut batch).await;
                    }
                    due = None;
                    let _ = done.send(());
                }
                () = sleep_until(due), if due.is_some() => {
                    self.send(&client, &mut batch).await;
                    due = None;
                }
            }
        }
    }

    /// Exports and empties `batch`, counting the outcome.
    async fn send(&self, client: &Client<HttpConnector, Full<Bytes>>, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        match self.export(client, std::mem::take(batch)).await {
            Ok(()) => {
                self.counters.exported.inc_by(n as u64);
            }
            Err(error) => {
                self.counters.dropped("export_failed", n);
                tracing::debug!(%error, spans = n, "trace export failed; spans dropped");
            }
        }
    }

    async fn export(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        spans: Vec<Span>,
    ) -> Result<(), String> {
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec();
        let grpc = self.protocol == OtlpProtocol::Grpc;
        let request = if grpc {
            // A gRPC message: uncompressed flag, 4-byte big-endian length, the protobuf.
            let mut framed = Vec::with_capacity(body.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
            framed.extend_from_slice(&body);
            Request::post(self.endpoint.clone())
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers")
                .body(Full::new(Bytes::from(framed)))
        } else {
            Request::post(self.endpoint.clone())
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Full::new(Bytes::from(body)))
        }
        .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            // Read the answer whole (so the connection can be reused; gRPC's status is in
            // the trailers, or in the head of a trailers-only answer).
            let trailers = body
                .collect()
                .await
                .ok()
                .and_then(|c| c.trailers().cloned());
            if !parts.status.is_success() {
                return Err(format!("the collector answered {}", parts.status));
            }
            if grpc {
                let field = |name: &str| {
                    trailers
                        .as_ref()
                        .and_then(|t| t.get(name))
                        .or_else(|| parts.headers.get(name))
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                match field("grpc-status").as_deref() {
                    Some("0") => {}
                    status => {
                        return Err(format!(
                            "grpc-status {}: {}",
                            status.unwrap_or("missing"),
                            field("grpc-message").unwrap_or_default()
                        ));
                    }
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

/// Where export requests go: the endpoint as given for OTLP/HTTP; for OTLP/gRPC the
/// `TraceService/Export` method at the endpoint's scheme and authority.
fn export_uri(endpoint: &str, protocol: OtlpProtocol) -> Uri {
    let uri: Uri = endpoint.parse().unwrap_or_default();
    match protocol {
        OtlpProtocol::HttpProtobuf => uri,
        OtlpProtocol::Grpc => {
            let authority = uri.authority().map_or("", |a| a.as_str());
            format!("http://{authority}{GRPC_EXPORT}")
                .parse()
                .unwrap_or_default()
        }
    }
}

/// The gRPC method that takes an `ExportTraceServiceRequest`.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sleeps until `due` (never, without one).
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The resource every span belongs to: `service.name` and the SDK-style attributes a backend
/// shows.
fn resource(service_name: &str) -> Resource {
    let text = |key: &str, value: &str| KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    };
    Resource {
        attributes: vec![
            text("service.name", service_name),
            text("service.version", env!("CARGO_PKG_VERSION")),
            text("telemetry.sdk.name", "causeway"),
            text("telemetry.sdk.language", "rust"),
        ],
        ..Resource::default()
    }
}
