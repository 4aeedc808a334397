//! Process-level settings of the proxy: listener limits, upstream pool settings, the access-log
//! sink. Every limit is a named constant so that the CLI can show the default in `--help`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;

/// Largest request head (request line + headers) on HTTP/1.1, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest number of request headers on HTTP/1.1.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Time a client has to send the whole request head on HTTP/1.1. hyper starts this timer
/// whenever it waits for a head, so it also bounds how long an idle keep-alive connection
/// stays open.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Whether HTTP/1.1 connections are kept alive between requests.
pub const DEFAULT_KEEP_ALIVE: bool = true;
/// Interval of HTTP/2 PING frames that detect dead peers.
pub const DEFAULT_H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long an HTTP/2 PING may stay unanswered before the connection is closed.
pub const DEFAULT_H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent streams per HTTP/2 connection (hyper's default is unlimited).
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Initial HTTP/2 flow-control window per stream.
pub const DEFAULT_H2_STREAM_WINDOW: u32 = 64 * 1024;
/// Initial HTTP/2 flow-control window per connection.
pub const DEFAULT_H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Largest HTTP/2 header list (decoded), in bytes.
pub const DEFAULT_H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// Largest request body unless the Api sets `maxBodyBytes`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Open downstream connections per process; further connections wait in the accept queue.
/// Upgraded (WebSocket) tunnels count as the connections they came from.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open connections per client address (IPv6: per /64); 0 means no limit. Off by default:
/// behind a load balancer every client has the balancer's address.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 0;
/// An HTTP/2 connection with no open stream for this long is closed (GOAWAY), whether or not
/// the client sends PINGs.
pub const DEFAULT_H2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection whose responses wait this long for the client to take their next bytes (a
/// full TCP window, an HTTP/2 flow-control window left at zero) is closed (nginx's
/// `send_timeout`).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// An upgraded (WebSocket) tunnel with no byte in either direction for this long is closed
/// (API Gateway's WebSocket idle timeout).
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long in-flight requests may run after shutdown was requested.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle pooled upstream connections are closed after this.
pub const DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle pooled connections kept per upstream endpoint.
pub const DEFAULT_UPSTREAM_MAX_IDLE_PER_HOST: usize = 64;
/// Time to establish a TCP connection to an upstream endpoint (the integration timeout still
/// bounds the whole exchange).
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest request target (path and query) in bytes; longer → 414.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Longest pause between two pieces of a request body; longer → 408.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default timeout for one Redis operation (quotas).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// Connect failures, timeouts or 5xx answers in a row that eject an upstream endpoint.
pub const DEFAULT_OUTLIER_CONSECUTIVE_FAILURES: u32 = 5;
/// First ejection time of an endpoint (doubles with each ejection in a row, up to 10×).
pub const DEFAULT_OUTLIER_BASE_EJECTION: Duration = Duration::from_secs(30);

/// Share of new traces (requests without a sampled-or-not `traceparent`) that are recorded
/// and exported; a request with a valid `traceparent` follows its parent's decision.
pub const DEFAULT_TRACE_SAMPLE_RATIO: f64 = 1.0;
/// `service.name` of exported spans unless `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_TRACE_SERVICE_NAME: &str = "causeway-proxy";
/// Finished spans waiting for export; when full, new spans are dropped (and counted), never
/// waited for.
pub const DEFAULT_TRACE_QUEUE_SPANS: usize = 4096;
/// Most spans in one OTLP export request.
pub const DEFAULT_TRACE_BATCH_SPANS: usize = 512;
/// Longest time a finished span waits for its batch to fill before it is sent.
pub const DEFAULT_TRACE_BATCH_DELAY: Duration = Duration::from_secs(1);
/// Longest time one export request may take; then its spans are dropped (and counted).
pub const DEFAULT_TRACE_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How spans travel to the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies: `POST {endpoint}` (usually `…:4318/v1/traces`).
    #[default]
    HttpProtobuf,
    /// OTLP/gRPC over HTTP/2 without TLS: `TraceService/Export` at the endpoint's authority
    /// (usually `…:4317`).
    Grpc,
}

/// OpenTelemetry tracing of requests (`telemetry::trace`). Off unless an endpoint is set.
#[derive(Clone, Debug)]
pub struct TracingConfig {
    /// Where spans go: the OTLP/HTTP traces URL (`http://collector:4318/v1/traces`), or with
    /// [`OtlpProtocol::Grpc`] the collector's URL (`http://collector:4317`); `None`: no spans,
    /// no export, and a client's `traceparent` passes through unchanged.
    pub otlp_traces_endpoint: Option<String>,
    /// OTLP/HTTP (protobuf) or OTLP/gRPC.
    pub protocol: OtlpProtocol,
    /// Share (0..=1) of new traces sampled (parent-based: a `traceparent` decides for itself).
    pub sample_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Bound of the export queue, in spans.
    pub queue_spans: usize,
    /// Most spans per export request.
    pub batch_spans: usize,
    /// Longest wait before a partial batch is sent.
    pub batch_delay: Duration,
    /// Timeout of one export request.
    pub export_timeout: Duration,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_traces_endpoint: None,
            protocol: OtlpProtocol::default(),
            sample_ratio: DEFAULT_TRACE_SAMPLE_RATIO,
            service_name: DEFAULT_TRACE_SERVICE_NAME.to_string(),
            queue_spans: DEFAULT_TRACE_QUEUE_SPANS,
            batch_spans: DEFAULT_TRACE_BATCH_SPANS,
            batch_delay: DEFAULT_TRACE_BATCH_DELAY,
            export_timeout: DEFAULT_TRACE_EXPORT_TIMEOUT,
        }
    }
}

impl TracingConfig {
    /// Checks the settings: the endpoint must be an absolute `http://` URL (the exporter
    /// speaks OTLP/HTTP or OTLP/gRPC without TLS), the ratio within 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "the trace sample ratio must be within 0 and 1, not {}",
                self.sample_ratio
            ));
        }
        if let Some(endpoint) = &self.otlp_traces_endpoint {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| format!("OTLP endpoint {endpoint:?}: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!(
                    "OTLP endpoint {endpoint:?}: only http:// URLs are supported (OTLP without TLS; \
                     send to a collector agent in the cluster)"
                ));
            }
        }
        Ok(())
    }
}

/// What the proxy does with a request header whose name contains `_` (Envoy's
/// `headers_with_underscores_action`). Backends that map header names to variables (CGI, WSGI,
/// many frameworks) read `x_user_id` as `x-user-id`, so such a header could imitate one the
/// gateway sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadersWithUnderscores {
    /// Remove the header and go on (the default).
    #[default]
    Drop,
    /// Refuse the request with 400.
    Reject,
    /// Forward it, unless it imitates a header the gateway sets (those are always removed).
    Allow,
}

/// Where access-log lines go.
#[derive(Clone, Debug, Default)]
pub enum AccessLogSink {
    /// One line per request on standard output.
    #[default]
    Stdout,
    /// Nowhere.
    Discard,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

/// WebSocket Apis: a connection with no message either way for this long is closed (AWS: 10 min).
pub const DEFAULT_WS_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// WebSocket Apis: the longest a connection lives (AWS: 2 h).
pub const DEFAULT_WS_MAX_DURATION: Duration = Duration::from_secs(2 * 60 * 60);
/// WebSocket Apis: the largest message (its frames joined), in bytes (AWS: 128 KB).
pub const DEFAULT_WS_MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// WebSocket Apis: the largest frame, in bytes (AWS: 32 KB; a larger message comes in several
/// frames). The gateway also splits what it sends into frames of at most this size.
pub const DEFAULT_WS_MAX_FRAME_BYTES: usize = 32 * 1024;
/// WebSocket Apis: new connections per second per stage on one replica, burst one second of
/// it; more are refused with 429 (AWS: 500 per second per account and Region). 0: no limit.
pub const DEFAULT_WS_NEW_CONNECTIONS_PER_SECOND: f64 = 500.0;
/// WebSocket Apis: messages per second from one client, burst one second of it; a message
/// over it is answered on the socket with `Too Many Requests` and not sent to an integration.
/// 0: no limit (AWS publishes no per-connection message rate; messages count against the
/// account's request rate there).
pub const DEFAULT_WS_MESSAGES_PER_SECOND: f64 = 0.0;
/// WebSocket Apis: messages waiting to be written to one client; a management `POST` beyond
/// it answers 429, so a client that does not read cannot make the proxy buffer without bound.
pub const DEFAULT_WS_SEND_QUEUE: usize = 32;

/// Limits of the connections of WebSocket Apis.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketLimits {
    /// No message either way for this long: closed with 1001.
    pub idle_timeout: Duration,
    /// Connections older than this are closed with 1001.
    pub max_duration: Duration,
    /// Largest frame; a larger one closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Largest message (frames joined); a larger one closes the connection with 1009.
    pub max_message_bytes: usize,
    /// Messages queued for one client before management `POST`s are refused (429).
    pub send_queue: usize,
    /// New connections per second per stage (burst one second of it); 0: no limit.
    pub new_connections_per_second: f64,
    /// Messages per second from one client (burst one second of it); 0: no limit.
    pub messages_per_second: f64,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_WS_IDLE_TIMEOUT,
            max_duration: DEFAULT_WS_MAX_DURATION,
            max_frame_bytes: DEFAULT_WS_MAX_FRAME_BYTES,
            max_message_bytes: DEFAULT_WS_MAX_MESSAGE_BYTES,
            send_queue: DEFAULT_WS_SEND_QUEUE,
            new_connections_per_second: DEFAULT_WS_NEW_CONNECTIONS_PER_SECOND,
            messages_per_second: DEFAULT_WS_MESSAGES_PER_SECOND,
        }
    }
}

/// Settings of one proxy process. Per-Api and per-stage settings come from the snapshot.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where access-log lines go.
    pub access_log: AccessLogSink,
    /// Gateway-wide throttle over every request of this proxy (API Gateway's account level);
    /// `None`: no gateway-wide limit.
    pub gateway_throttle: Option<causeway_snapshot::Throttle>,
    /// Redis for quotas and usage shared by every replica (`redis://host:port/`); `None`: each
    /// replica counts alone.
    pub redis_url: Option<String>,
    /// Longest wait for one Redis operation before the plan's fail mode applies.
    pub redis_timeout: Duration,
    /// Largest HTTP/1.1 request head in bytes (hyper's `max_buf_size`).
    pub max_header_bytes: usize,
    /// Largest number of HTTP/1.1 request headers.
    pub max_headers: usize,
    /// Time to receive a request head: from accept (after the TLS handshake) to the first
    /// request's head on any connection (so also a connection that sends no byte, or only
    /// part of the HTTP/2 preface), and for each later head on HTTP/1.1 (keep-alive idle).
    /// Also bounds the TLS handshake.
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no open stream for this long is closed gracefully.
    pub h2_idle_timeout: Duration,
    /// A connection whose responses make no progress towards the client for this long is
    /// closed (the client does not read, or keeps its HTTP/2 window at zero).
    pub send_timeout: Duration,
    /// An upgraded tunnel with no byte in either direction for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Keep HTTP/1.1 connections alive.
    pub keep_alive: bool,
    /// HTTP/2 PING interval.
    pub h2_keep_alive_interval: Duration,
    /// HTTP/2 PING timeout.
    pub h2_keep_alive_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    /// Initial HTTP/2 stream window.
    pub h2_stream_window: u32,
    /// Initial HTTP/2 connection window.
    pub h2_connection_window: u32,
    /// Largest HTTP/2 header list.
    pub h2_max_header_list_bytes: u32,
    /// Largest request body, unless the Api overrides it.
    pub max_body_bytes: u64,
    /// Longest request target (path + query), bytes.
    pub max_uri_bytes: usize,
    /// Longest pause while a request body streams in.
    pub body_idle_timeout: Duration,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are trusted (load balancers in front
    /// of the proxy); from anyone else those headers are replaced.
    pub trusted_hops: Vec<ipnet::IpNet>,
    /// Threads serving each traffic listener (plain and TLS), each with its own
    /// single-threaded runtime and upstream pool (thread per core); 0: on the runtime that
    /// calls `serve` / `serve_tls` (embedding, tests).
    pub workers: usize,
    /// Failures in a row that eject an upstream endpoint; 0: never eject.
    pub outlier_consecutive_failures: u32,
    /// First ejection time.
    pub outlier_base_ejection: Duration,
    /// Port named in HTTP→HTTPS redirects (`Location` omits it when 443).
    pub https_port: u16,
    /// Open downstream connections per process (traffic listener); tunnels count.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64), over every listener; 0: no
    /// limit. A connection over it is closed at once and counted in
    /// `causeway_proxy_connections_refused`.
    pub max_connections_per_client: usize,
    /// Grace period for in-flight requests on shutdown.
    pub drain_timeout: Duration,
    /// Idle timeout of pooled upstream connections.
    pub upstream_pool_idle_timeout: Duration,
    /// Idle pooled connections per upstream endpoint.
    pub upstream_max_idle_per_host: usize,
    /// Upstream TCP connect timeout.
    pub upstream_connect_timeout: Duration,
    /// What happens to request headers whose names contain `_`.
    pub headers_with_underscores: HeadersWithUnderscores,
    /// OpenTelemetry tracing (off by default).
    pub tracing: TracingConfig,
    /// Limits of WebSocket connections.
    pub websocket: WebSocketLimits,
    /// Where TTLs, cache ages and quota windows read the time (the system clock; tests
    /// inject [`Clock::manual`]).
    pub clock: Clock,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            access_log: AccessLogSink::default(),
            gateway_throttle: None,
            redis_url: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            h2_idle_timeout: DEFAULT_H2_IDLE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            tunnel_idle_timeout: DEFAULT_TUNNEL_IDLE_TIMEOUT,
            keep_alive: DEFAULT_KEEP_ALIVE,
            h2_keep_alive_interval: DEFAULT_H2_KEEP_ALIVE_INTERVAL,
            h2_keep_alive_timeout: DEFAULT_H2_KEEP_ALIVE_TIMEOUT,
            h2_max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            h2_stream_window: DEFAULT_H2_STREAM_WINDOW,
            h2_connection_window: DEFAULT_H2_CONNECTION_WINDOW,
            h2_max_header_list_bytes: DEFAULT_H2_MAX_HEADER_LIST_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            trusted_hops: Vec::new(),
            https_port: 443,
            workers: 0,
            outlier_consecutive_failures: DEFAULT_OUTLIER_CONSECUTIVE_FAILURES,
            outlier_base_ejection: DEFAULT_OUTLIER_BASE_EJECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            upstream_pool_idle_timeout: DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT,
            upstream_max_idle_per_host: DEFAULT_UPSTREAM_MAX_IDLE_PER_HOST,
            upstream_connect_timeout: DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            headers_with_underscores: HeadersWithUnderscores::default(),
            tracing: TracingConfig::default(),
            websocket: WebSocketLimits::default(),
            clock: Clock::system(),
        }
    }
}
