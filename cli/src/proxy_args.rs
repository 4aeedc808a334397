//! Proxy settings shared by every command that runs a proxy (`standalone` and `proxy`): limits,
//! trust, TLS, workers, throttling and quota counting, access log. Each flag has an environment
//! variable and shows its default from the proxy's named constant.

use std::time::Duration;

use causeway_proxy::{self as proxy, ProxyConfig};
use clap::Args;

/// Edge limits and trusted hops of the proxy.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyArgs {
    /// Threads serving each traffic listener (HTTP and HTTPS), each with its own runtime and
    /// upstream pool (thread per core); 0: one per CPU.
    #[arg(long, env = "CAUSEWAY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// HTTPS listener address (TLS 1.2+, ALPN h2 and http/1.1, certificates by SNI from the
    /// Stages' `domains[].tlsSecretRef`); off unless given. Port 0: a free port, logged as
    /// `listening role=https`.
    #[arg(long, env = "CAUSEWAY_HTTPS_LISTEN")]
    pub https_listen: Option<String>,
    /// Largest request head (request line + headers), bytes; larger → 431.
    #[arg(long, env = "CAUSEWAY_MAX_HEADER_BYTES", default_value_t = proxy::DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Most request headers; more → 431.
    #[arg(long, env = "CAUSEWAY_MAX_HEADERS", default_value_t = proxy::DEFAULT_MAX_HEADERS)]
    pub max_headers: usize,
    /// Longest request target (path + query), bytes; longer → 414.
    #[arg(long, env = "CAUSEWAY_MAX_URI_BYTES", default_value_t = proxy::DEFAULT_MAX_URI_BYTES)]
    pub max_uri_bytes: usize,
    /// Largest request body unless the Api sets `maxBodyBytes`, bytes; larger → 413.
    #[arg(long, env = "CAUSEWAY_MAX_BODY_BYTES", default_value_t = proxy::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Time to receive a request head, ms: from accept (after TLS, whose handshake it also
    /// bounds) to the first request on any connection, and the idle time of an HTTP/1.1
    /// keep-alive connection.
    #[arg(long, env = "CAUSEWAY_HEADER_READ_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_HEADER_READ_TIMEOUT))]
    pub header_read_timeout_ms: u64,
    /// An HTTP/2 connection with no open stream for this long is closed (GOAWAY), even while
    /// the client sends PINGs, ms.
    #[arg(long, env = "CAUSEWAY_H2_IDLE_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_H2_IDLE_TIMEOUT))]
    pub h2_idle_timeout_ms: u64,
    /// A connection whose responses wait this long for the client to read their next bytes
    /// (a full TCP window, an HTTP/2 window held at zero) is closed, ms.
    #[arg(long, env = "CAUSEWAY_SEND_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_SEND_TIMEOUT))]
    pub send_timeout_ms: u64,
    /// An upgraded (WebSocket) connection with no byte in either direction for this long is
    /// closed, ms.
    #[arg(long, env = "CAUSEWAY_TUNNEL_IDLE_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_TUNNEL_IDLE_TIMEOUT))]
    pub tunnel_idle_timeout_ms: u64,
    /// WebSocket Apis: a connection with no message either way for this long is closed with
    /// 1001 Going Away, ms.
    #[arg(long, env = "CAUSEWAY_WS_IDLE_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_WS_IDLE_TIMEOUT))]
    pub ws_idle_timeout_ms: u64,
    /// WebSocket Apis: the longest a connection lives, ms.
    #[arg(long, env = "CAUSEWAY_WS_MAX_DURATION_MS", default_value_t = millis(proxy::DEFAULT_WS_MAX_DURATION))]
    pub ws_max_duration_ms: u64,
    /// WebSocket Apis: largest message (its frames joined), bytes; larger closes the
    /// connection with 1009 (AWS: 128 KB).
    #[arg(long, env = "CAUSEWAY_WS_MAX_MESSAGE_BYTES", default_value_t = proxy::DEFAULT_WS_MAX_MESSAGE_BYTES)]
    pub ws_max_message_bytes: usize,
    /// WebSocket Apis: largest frame, bytes; larger closes the connection with 1009, and the
    /// gateway sends larger messages in frames of this size (AWS: 32 KB).
    #[arg(long, env = "CAUSEWAY_WS_MAX_FRAME_BYTES", default_value_t = proxy::DEFAULT_WS_MAX_FRAME_BYTES)]
    pub ws_max_frame_bytes: usize,
    /// WebSocket Apis: new connections per second per stage on this replica (burst: one
    /// second of it); more are refused with 429 (AWS: 500 per account and Region). 0: no limit.
    #[arg(long, env = "CAUSEWAY_WS_NEW_CONNECTIONS_PER_SECOND", default_value_t = proxy::DEFAULT_WS_NEW_CONNECTIONS_PER_SECOND)]
    pub ws_new_connections_per_second: f64,
    /// WebSocket Apis: messages per second from one client (burst: one second of it); a
    /// message over it is answered `Too Many Requests` on the socket and not sent on. 0: no
    /// limit (AWS publishes none per connection).
    #[arg(long, env = "CAUSEWAY_WS_MESSAGES_PER_SECOND", default_value_t = proxy::DEFAULT_WS_MESSAGES_PER_SECOND)]
    pub ws_messages_per_second: f64,
    /// WebSocket Apis: messages queued for one client before `@connections` POSTs answer 429.
    #[arg(long, env = "CAUSEWAY_WS_SEND_QUEUE", default_value_t = proxy::DEFAULT_WS_SEND_QUEUE)]
    pub ws_send_queue: usize,
    /// Longest pause inside a request body, ms; longer → 408.
    #[arg(long, env = "CAUSEWAY_BODY_IDLE_TIMEOUT_MS", default_value_t = millis(proxy::DEFAULT_BODY_IDLE_TIMEOUT))]
    pub body_idle_timeout_ms: u64,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, env = "CAUSEWAY_H2_MAX_CONCURRENT_STREAMS", default_value_t = proxy::DEFAULT_H2_MAX_CONCURRENT_STREAMS)]
    pub h2_max_concurrent_streams: u32,
    /// Initial HTTP/2 stream window, bytes.
    #[arg(long, env = "CAUSEWAY_H2_STREAM_WINDOW", default_value_t = proxy::DEFAULT_H2_STREAM_WINDOW)]
    pub h2_stream_window: u32,
    /// Initial HTTP/2 connection window, bytes.
    #[arg(long, env = "CAUSEWAY_H2_CONNECTION_WINDOW", default_value_t = proxy::DEFAULT_H2_CONNECTION_WINDOW)]
    pub h2_connection_window: u32,
    /// Open client connections per process (upgraded WebSocket connections count); more wait
    /// in the accept queue.
    #[arg(long, env = "CAUSEWAY_MAX_CONNECTIONS", default_value_t = proxy::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64); more are closed at once and
    /// counted in `causeway_proxy_connections_refused_total`. 0: no limit (behind a load
    /// balancer every client has its address).
    #[arg(long, env = "CAUSEWAY_MAX_CONNECTIONS_PER_CLIENT", default_value_t = proxy::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Connect failures or 5xx answers in a row that eject an upstream endpoint; 0: never.
    #[arg(long, env = "CAUSEWAY_OUTLIER_CONSECUTIVE_FAILURES", default_value_t = proxy::DEFAULT_OUTLIER_CONSECUTIVE_FAILURES)]
    pub outlier_consecutive_failures: u32,
    /// First ejection time of an upstream endpoint, ms (doubles per ejection in a row, up to 10×).
    #[arg(long, env = "CAUSEWAY_OUTLIER_BASE_EJECTION_MS", default_value_t = millis(proxy::DEFAULT_OUTLIER_BASE_EJECTION))]
    pub outlier_base_ejection_ms: u64,
    /// CIDRs of load balancers in front of the proxy whose `Forwarded`/`X-Forwarded-*` headers
    /// are kept (comma-separated); from anyone else they are replaced.
    #[arg(long, env = "CAUSEWAY_TRUSTED_HOPS", value_delimiter = ',')]
    pub trusted_hops: Vec<ipnet::IpNet>,
    /// Gateway-wide throttle: steady requests per second over all Apis of this proxy (API
    /// Gateway's account-level limit); unset means no gateway-wide limit.
    #[arg(long, env = "CAUSEWAY_GATEWAY_RATE", requires = "gateway_burst")]
    pub gateway_rate: Option<f64>,
    /// Gateway-wide throttle: burst size (with --gateway-rate).
    #[arg(long, env = "CAUSEWAY_GATEWAY_BURST", requires = "gateway_rate")]
    pub gateway_burst: Option<u32>,
    /// Redis shared by every replica for exact quotas, fleet-wide usage and WebSocket
    /// `@connections` calls to the replica holding the connection
    /// (`redis://127.0.0.1:6379/`); unset: each replica counts alone, and a management call
    /// reaches only the connections of the replica it lands on.
    #[arg(long, env = "CAUSEWAY_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Access log destination: `stdout` or `off`.
    #[arg(long, env = "CAUSEWAY_ACCESS_LOG", default_value = "stdout")]
    pub access_log: String,
    /// Request headers whose names contain `_`: `drop` them, `reject` the request with 400, or
    /// `allow` them (Envoy's `headers_with_underscores_action`). Even with `allow`, one that
    /// imitates a header the gateway sets (`x_user_id` for `x-user-id`) is removed.
    #[arg(long, env = "CAUSEWAY_HEADERS_WITH_UNDERSCORES", value_enum, default_value_t = Underscores::Drop)]
    pub headers_with_underscores: Underscores,
    /// OpenTelemetry tracing.
    #[command(flatten)]
    pub tracing: crate::tracing_args::TracingArgs,
}

/// `--headers-with-underscores`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underscores {
    /// Remove such headers.
    Drop,
    /// Refuse the request with 400.
    Reject,
    /// Forward them.
    Allow,
}

impl From<Underscores> for proxy::HeadersWithUnderscores {
    fn from(u: Underscores) -> Self {
        match u {
            Underscores::Drop => Self::Drop,
            Underscores::Reject => Self::Reject,
            Underscores::Allow => Self::Allow,
        }
    }
}

const fn millis(d: Duration) -> u64 {
    d.as_secs() * 1000 + d.subsec_millis() as u64
}

impl ProxyArgs {
    /// The whole proxy configuration these flags describe; `https_port` is the port the HTTPS
    /// listener really got (for redirects).
    pub fn proxy_config(&self, https_port: u16) -> anyhow::Result<ProxyConfig> {
        let access_log = match self.access_log.as_str() {
            "stdout" => proxy::AccessLogSink::Stdout,
            "off" => proxy::AccessLogSink::Discard,
            other => anyhow::bail!("--access-log must be `stdout` or `off`, not {other:?}"),
        };
        let gateway_throttle = match (self.gateway_rate, self.gateway_burst) {
            (Some(rate), Some(burst)) if rate >= 0.0 => {
                Some(causeway_snapshot::Throttle { rate, burst })
            }
            (Some(rate), _) => anyhow::bail!("--gateway-rate must be 0 or more, not {rate}"),
            _ => None,
        };
        self.tracing.check()?;
        Ok(self.config(ProxyConfig {
            access_log,
            https_port,
            gateway_throttle,
            redis_url: self.redis_url.clone(),
            ..ProxyConfig::default()
        }))
    }

    /// The proxy settings these flags describe, on top of `base`.
    pub fn config(&self, base: ProxyConfig) -> ProxyConfig {
        ProxyConfig {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_uri_bytes: self.max_uri_bytes,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            body_idle_timeout: Duration::from_millis(self.body_idle_timeout_ms.max(1)),
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            h2_stream_window: self.h2_stream_window,
            h2_connection_window: self.h2_connection_window,
            max_connections: self.max_connections.max(1),
            max_connections_per_client: self.max_connections_per_client,
            h2_idle_timeout: Duration::from_millis(self.h2_idle_timeout_ms.max(1)),
            send_timeout: Duration::from_millis(self.send_timeout_ms.max(1)),
            tunnel_idle_timeout: Duration::from_millis(self.tunnel_idle_timeout_ms.max(1)),
            websocket: proxy::WebSocketLimits {
                idle_timeout: Duration::from_millis(self.ws_idle_timeout_ms.max(1)),
                max_duration: Duration::from_millis(self.ws_max_duration_ms.max(1)),
                max_frame_bytes: self.ws_max_frame_bytes.max(1),
                max_message_bytes: self.ws_max_message_bytes.max(1),
                send_queue: self.ws_send_queue.max(1),
                new_connections_per_second: self.ws_new_connections_per_second.max(0.0),
                messages_per_second: self.ws_messages_per_second.max(0.0),
            },
            trusted_hops: self.trusted_hops.clone(),
            workers: match self.workers {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            outlier_consecutive_failures: self.outlier_consecutive_failures,
            outlier_base_ejection: Duration::from_millis(self.outlier_base_ejection_ms),
            headers_with_underscores: self.headers_with_underscores.into(),
            tracing: self.tracing.config(),
            ..base
        }
    }
}
