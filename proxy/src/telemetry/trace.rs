//! OpenTelemetry spans of requests: one server span per request (a child of the client's
//! `traceparent`, or the root of a new trace), and child spans for the authorizer call, the
//! cache lookup and the integration call. Sampling is parent-based: a valid `traceparent`
//! decides by its `sampled` flag; a new trace is sampled by its trace id against the configured
//! ratio (OpenTelemetry's `parentbased_traceidratio`).
//!
//! Cost: with tracing off ([`Tracer::server_span`] gives `None`) nothing here runs on the request path. With
//! tracing on, an unsampled request gets span ids (it still propagates a `traceparent`) but no
//! attribute, no record and no export; a sampled one builds its span records when each span
//! ends and hands them to the exporter's bounded queue ([`super::otlp`]), which drops rather
//! than waits when full.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, Status, status::StatusCode};

use super::metrics::Metrics;
use super::otlp::Exporter;
use crate::config::TracingConfig;
use crate::context::{RequestContext, TraceContext, new_span_id, new_trace_id};

/// Longest wait for the last spans at shutdown.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The proxy's tracer: off, or sampling and exporting.
pub(crate) struct Tracer {
    active: Option<Active>,
}

struct Active {
    /// A new trace is sampled when the low 63 bits of its trace id are below this.
    threshold: u64,
    exporter: Exporter,
}

impl Tracer {
    /// A tracer for these settings: off without an endpoint (or with one that does not
    /// validate, which is logged); registers the exporter's metrics either way, so dashboards
    /// see zeros rather than gaps.
    pub fn new(config: &TracingConfig, metrics: &mut Metrics) -> Self {
        let counters = super::otlp::ExportCounters::register(metrics);
        let Some(endpoint) = &config.otlp_traces_endpoint else {
            return Self { active: None };
        };
        if let Err(error) = config.validate() {
            tracing::error!(%error, "tracing is off");
            return Self { active: None };
        }
        let ratio = config.sample_ratio.clamp(0.0, 1.0);
        // `ratio * 2^63` as an integer; 1.0 saturates to u64::MAX (every id is below it).
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * (1u64 << 63) as f64) as u64
        };
        tracing::info!(%endpoint, ratio, "tracing requests: spans exported over OTLP/HTTP");
        Self {
            active: Some(Active {
                threshold,
                exporter: Exporter::new(endpoint, config, counters),
            }),
        }
    }

    /// Starts the export task on the current tokio runtime (once; later calls do nothing).
    pub fn start_export(&self) {
        if let Some(active) = &self.active {
            active.exporter.start();
        }
    }

    /// Sends the spans still queued, waiting at most [`FLUSH_TIMEOUT`] (when the proxy stops
    /// serving).
    pub async fn flush(&self) {
        if let Some(active) = &self.active {
            active.exporter.flush(FLUSH_TIMEOUT).await;
        }
    }

    /// The server span of a request that carried `incoming` (its valid `traceparent`, if
    /// any); `None` when tracing is off.
    pub fn server_span(&self, incoming: Option<&TraceContext>) -> Option<Span> {
        let active = self.active.as_ref()?;
        let (context, parent) = match incoming {
            Some(parent) => (parent.child(), Some(parent.span_id)),
            None => {
                let trace_id = new_trace_id();
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                let sampled = (u64::from_be_bytes(low) >> 1) < active.threshold;
                let context = TraceContext {
                    trace_id,
                    span_id: new_span_id(),
                    sampled,
                    state: None,
                    gateway: true,
                };
                (context, None)
            }
        };
        Some(Span::start("", SpanKind::Server, context, parent))
    }

    /// Ends `span`: when it is sampled, `describe` names it and gives its attributes and its
    /// error (if it failed), and the record goes to the export queue.
    pub fn end(&self, span: Span, describe: impl FnOnce(&mut SpanRecord)) {
        let Some(active) = &self.active else { return };
        if !span.context.sampled {
            return;
        }
        let mut record = SpanRecord {
            name: span.name.to_string(),
            attributes: Vec::new(),
            error: None,
        };
        describe(&mut record);
        let end = span.start + span.started.elapsed();
        let proto = ProtoSpan {
            trace_id: span.context.trace_id.to_vec(),
            span_id: span.context.span_id.to_vec(),
            trace_state: span
                .context
                .state
                .as_ref()
                .and_then(|s| s.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            parent_span_id: span.parent.map(|p| p.to_vec()).unwrap_or_default(),
            // Bits 8 and 9: whether the parent is known to be remote (W3C `traceparent`).
            flags: 0x01 | 0x100 | if span.remote_parent { 0x200 } else { 0 },
            name: record.name,
            kind: span.kind as i32,
            start_time_unix_nano: unix_nanos(span.start),
            end_time_unix_nano: unix_nanos(end),
            attributes: record.attributes,
            status: record.error.map(|message| Status {
                message,
                code: StatusCode::Error as i32,
            }),
            ..ProtoSpan::default()
        };
        active.exporter.submit(proto);
    }
}

/// An open span: where it is in its trace and when it began. Holds no attributes: they are
/// gathered when it ends, and only if it is sampled.
#[derive(Debug)]
pub(crate) struct Span {
    pub context: TraceContext,
    parent: Option<[u8; 8]>,
    remote_parent: bool,
    kind: SpanKind,
    name: &'static str,
    start: SystemTime,
    started: Instant,
}

impl Span {
    fn start(
        name: &'static str,
        kind: SpanKind,
        context: TraceContext,
        parent: Option<[u8; 8]>,
    ) -> Self {
        Self {
            remote_parent: parent.is_some(),
            context,
            parent,
            kind,
            name,
            start: SystemTime::now(),
            started: Instant::now(),
        }
    }

    /// A child span of this one, starting now.
    pub fn child(&self, name: &'static str, kind: ChildKind) -> Self {
        let kind = match kind {
            ChildKind::Internal => SpanKind::Internal,
            ChildKind::Client => SpanKind::Client,
        };
        let mut child = Self::start(name, kind, self.context.child(), Some(self.context.span_id));
        child.remote_parent = false;
        child
    }
}

/// What a child span is, in OpenTelemetry's terms.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChildKind {
    /// Work inside the gateway (cache lookup, a local authorizer).
    Internal,
    /// A call to another service (integration, authorizer function).
    Client,
}

/// What a sampled span says about itself when it ends.
pub(crate) struct SpanRecord {
    /// The span's name (a server span is named `{method} {route}` once it ends).
    pub name: String,
    attributes: Vec<KeyValue>,
    /// Sets the span's status to `ERROR` with this description.
    pub error: Option<String>,
}

impl SpanRecord {
    /// A string attribute.
    pub fn text(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.push(key, any_value::Value::StringValue(value.into()))
    }

    /// A string attribute, when there is a value.
    pub fn text_opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.text(key, v);
        }
        self
    }

    /// An integer attribute.
    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.push(key, any_value::Value::IntValue(value))
    }

    /// A boolean attribute.
    pub fn flag(&mut self, key: &str, value: bool) -> &mut Self {
        self.push(key, any_value::Value::BoolValue(value))
    }

    fn push(&mut self, key: &str, value: any_value::Value) -> &mut Self {
        self.attributes.push(KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
        self
    }
}

/// The server span's name and attributes (OpenTelemetry HTTP semantic conventions, plus
/// `causeway.*`): named `{method} {route template}` (or `{method}` when no route matched);
/// a 5xx answer is an error.
pub(crate) fn describe_server(r: &mut SpanRecord, ctx: &RequestContext, status: u16) {
    let route = ctx.resource_path();
    r.name = match route {
        Some(route) => format!("{} {route}", ctx.method),
        None => ctx.method.clone(),
    };
    r.text("http.request.method", ctx.method.as_str())
        .text_opt("http.route", route)
        .int("http.response.status_code", i64::from(status))
        .text("url.path", ctx.path.as_str())
        .text("url.scheme", ctx.scheme)
        .text_opt("server.address", ctx.domain_name.as_deref())
        .text("client.address", ctx.source_ip.to_string())
        .text("network.peer.address", ctx.peer.ip().to_string())
        .text(
            "network.protocol.version",
            match ctx.protocol {
                "HTTP/2.0" => "2",
                "HTTP/1.0" => "1.0",
                _ => "1.1",
            },
        )
        .text_opt(
            "user_agent.original",
            (!ctx.user_agent.is_empty()).then_some(ctx.user_agent.as_str()),
        )
        .text("causeway.request_id", ctx.request_id.as_str())
        .text_opt("causeway.api", ctx.api_id.as_deref())
        .text_opt("causeway.stage", ctx.stage.as_deref())
        .text_opt("causeway.route", ctx.route_key.as_deref())
        .text_opt("causeway.deployment", ctx.deployment_id.as_deref());
    if ctx.canary {
        r.flag("causeway.canary", true);
    }
    if let Some(error) = &ctx.error {
        r.text("causeway.error.response_type", error.response_type.as_str());
    }
    if status >= 500 {
        r.text("error.type", status.to_string());
        r.error = Some(
            ctx.error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        );
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64) -> Tracer {
        let config = TracingConfig {
            otlp_traces_endpoint: Some("http://127.0.0.1:4318/v1/traces".into()),
            sample_ratio: ratio,
            ..TracingConfig::default()
        };
        Tracer::new(&config, &mut Metrics::new())
    }

    fn sampled_share(tracer: &Tracer) -> f64 {
        let n = 4000;
        let hits = (0..n)
            .filter(|_| tracer.server_span(None).is_some_and(|s| s.context.sampled))
            .count();
        hits as f64 / f64::from(n)
    }

    #[test]
    fn new_traces_are_sampled_by_the_ratio_and_children_follow_their_parent() {
        assert_eq!(sampled_share(&tracer(1.0)), 1.0);
        assert_eq!(sampled_share(&tracer(0.0)), 0.0);
        let quarter = sampled_share(&tracer(0.25));
        assert!((0.2..0.3).contains(&quarter), "{quarter}");

        let never = tracer(0.0);
        let parent = TraceContext {
            trace_id: [7; 16],
            span_id: [9; 8],
            sampled: true,
            state: None,
            gateway: false,
        };
        let span = never.server_span(Some(&parent)).expect("on");
        assert!(span.context.sampled, "a sampled parent wins over ratio 0");
        assert_eq!(span.context.trace_id, parent.trace_id);
        assert_eq!(span.parent, Some(parent.span_id));
        let unsampled = TraceContext {
            sampled: false,
            ..parent
        };
        let always = tracer(1.0);
        let span = always.server_span(Some(&unsampled)).expect("on");
        assert!(
            !span.context.sampled,
            "an unsampled parent wins over ratio 1"
        );
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_or_with_one_that_is_not_http() {
        let off = Tracer::new(&TracingConfig::default(), &mut Metrics::new());
        assert!(off.server_span(None).is_none());
        let https = TracingConfig {
            otlp_traces_endpoint: Some("https://collector:4318/v1/traces".into()),
            ..TracingConfig::default()
        };
        assert!(
            Tracer::new(&https, &mut Metrics::new())
                .server_span(None)
                .is_none()
        );
    }
}
