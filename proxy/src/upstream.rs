//! `HTTP_PROXY` integrations: the pooled upstream client and the request/response rewriting
//! (`Host`, `X-Forwarded-*`, path templates). What of the client's head may go on is decided
//! once, earlier, by [`forwarded`]; the path the gateway builds, by [`path`]. Bodies stream
//! both ways; nothing here buffers a whole body.

pub(crate) mod balancer;
pub(crate) mod forwarded;
pub(crate) mod origination;
pub(crate) mod path;
pub(crate) mod pool;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, SizeHint};
use prometheus_client::metrics::counter::Counter;

use causeway_snapshot::UpstreamScheme;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{BoxError, ProxyBody};
use crate::config::ProxyConfig;
use crate::error::RequestError;
use crate::upstream::balancer::Balancer;
use crate::upstream::balancer::{InflightGuard, OutlierSettings};
use crate::upstream::origination::{H2cEndpoint, TlsOrigin};
use crate::upstream::pool::{H1Body, H1Pool, SendError};

/// `X-Request-Id`, kept from the client or generated, sent upstream and back.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A backend: where to connect and how to choose the endpoint.
pub(crate) struct LiveBackend {
    pub id: String,
    pub scheme: UpstreamScheme,
    pub authority: HeaderValue,
    pub balancer: Balancer,
    /// The TLS client of an `https` backend.
    pub tls: Option<Arc<TlsOrigin>>,
    /// One h2c client per endpoint (same order as the balancer's) for a backend that speaks
    /// HTTP/2 without TLS.
    pub h2c: Option<Vec<Arc<H2cEndpoint>>>,
}

impl LiveBackend {
    /// An endpoint chosen by the backend's balancer, for calls outside the forwarding path
    /// (authorizer functions); `None` when the backend has no endpoint.
    pub fn next_endpoint(&self) -> Option<&str> {
        let i = self.balancer.pick(0)?;
        self.balancer.endpoints.get(i).map(|e| e.address.as_str())
    }
}

/// Where an HTTP integration sends a request, pre-parsed.
pub(crate) struct HttpTarget {
    pub backend: Arc<LiveBackend>,
    /// Path template (`/pets/{id}`), else the request's path after the stage.
    pub path: Option<causeway_snapshot::Template>,
    /// Method override.
    pub method: Option<http::Method>,
    /// Headers the integration adds.
    pub request_headers: HeaderMap,
    pub timeout: std::time::Duration,
}

/// The pooled HTTP/1.1 clients shared by every snapshot (pools survive swaps): plain requests
/// go through [`H1Pool`], driven in the forwarding task; WebSocket upgrades and Lambda calls
/// through hyper-util's client.
pub(crate) struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    h1: H1Pool,
    outlier: OutlierSettings,
    /// Counts failed upstream connects (`causeway_proxy_upstream_connect_errors`).
    pub connect_errors: Counter,
}

/// What the pipeline knows about the downstream request that upstream rewriting needs.
pub(crate) struct Forwarding<'a> {
    pub peer: SocketAddr,
    /// Whether the peer is a trusted hop (its forwarding headers are kept).
    pub trusted_hop: bool,
    /// `http` or `https` as the client connected.
    pub proto: &'static str,
    /// The `Host` (or `:authority`) the client sent.
    pub original_host: Option<&'a str>,
    /// The path after the base path (normalized), or the one a mapping built.
    pub stage_path: &'a str,
    pub params: &'a [(String, String)],
    pub request_id: &'a HeaderValue,
}

/// A response head from upstream, with how long it took.
pub(crate) struct UpstreamResponse {
    pub response: Response<ProxyBody>,
    pub status: u16,
}

impl Upstream {
    /// A client like [`Upstream::new`] that counts connect errors on an existing counter (a
    /// worker thread's own client).
    pub fn with_counter(config: &ProxyConfig, connect_errors: Counter) -> Self {
        Self {
            connect_errors,
            ..Self::new(config)
        }
    }

    pub fn new(config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.upstream_pool_idle_timeout)
            .pool_max_idle_per_host(config.upstream_max_idle_per_host)
            .http1_max_buf_size(config.max_header_bytes.max(8192))
            .set_host(false)
            .build(connector);
        let h1 = H1Pool::new(
            config.upstream_connect_timeout,
            config.upstream_pool_idle_timeout,
            config.upstream_max_idle_per_host,
            config.max_header_bytes.max(8192),
        );
        Self {
            client,
            h1,
            outlier: OutlierSettings {
                consecutive_failures: config.outlier_consecutive_failures,
                base_ejection: config.outlier_base_ejection,
            },
            connect_errors: Counter::default(),
        }
    }

    /// The pooled client, for integrations that build their own requests (Lambda proxy).
    pub fn client(&self) -> &Client<HttpConnector, ProxyBody> {
        &self.client
    }

    /// Forwards the request and returns the upstream response head (the body streams on).
    /// `started` is set when the request first leaves for the backend. The request's headers
    /// have been through `forwarded::strip_client_headers`; the gateway's own (`Host`,
    /// forwarding headers, `X-Request-Id`, the integration's headers) are set here, after it.
    ///
    /// The endpoint is chosen by the backend's balancer. When connecting fails (nothing of the
    /// request was sent), another endpoint is tried, up to [`MAX_ATTEMPTS`] in all and within
    /// the integration timeout; any other failure is final. Connect failures, other exchange
    /// failures and 5xx answers count towards the endpoint's outlier ejection.
    pub async fn forward(
        &self,
        integration: &HttpTarget,
        mut request: Request<ProxyBody>,
        fwd: &Forwarding<'_>,
        started: &mut Option<Instant>,
    ) -> Result<UpstreamResponse, RequestError> {
        let backend = &integration.backend;
        if backend.scheme == UpstreamScheme::Https && backend.tls.is_none() {
            return Err(RequestError::UnsupportedScheme(backend.id.clone()));
        }
        let balancer = &backend.balancer;
        if balancer.endpoints.is_empty() {
            return Err(RequestError::NoEndpoints(backend.id.clone()));
        }
        let path = match &integration.path {
            Some(template) => path::render_template(template, fwd.params)?,
            None => fwd.stage_path.to_string(),
        };
        let mut path_and_query = String::with_capacity(path.len() + 64);
        if !path.starts_with('/') {
            path_and_query.push('/');
        }
        path_and_query.push_str(&path);
        if let Some(q) = request.uri().query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        *request.version_mut() = Version::HTTP_11;
        if let Some(method) = &integration.method {
            *request.method_mut() = method.clone();
        }
        // Only a WebSocket upgrade passes, and only to an HTTP/1.1 backend: the client's
        // `Upgrade` was recorded (websocket only) and removed with the hop-by-hop headers before
        // any gateway header was added (`forwarded::strip_client_headers`); anything else (h2c,
        // TLS, custom) was dropped and the request goes as plain HTTP/1.1. When the backend
        // answers 101, its side of the upgrade stays in the response and the server turns the
        // connection into a tunnel.
        let websocket = backend.h2c.is_none()
            && request
                .extensions()
                .get::<forwarded::ClientUpgrade>()
                .is_some();
        let headers = request.headers_mut();
        if websocket {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        headers.insert(header::HOST, backend.authority.clone());
        crate::hygiene::set_forwarding_headers(
            headers,
            fwd.peer,
            fwd.trusted_hop,
            fwd.proto,
            fwd.original_host,
        );
        headers.insert(X_REQUEST_ID, fwd.request_id.clone());
        for (name, value) in &integration.request_headers {
            headers.insert(name.clone(), value.clone());
        }

        *started = Some(Instant::now());
        let timeout_error = || RequestError::UpstreamTimeout {
            backend: backend.id.clone(),
            timeout_ms: u32::try_from(integration.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let attempt = self.attempts(backend, request, &path_and_query, websocket);
        let result = match tokio::time::timeout(integration.timeout, attempt).await {
            Ok(done) => done,
            Err(_) => return Err(timeout_error()),
        };
        let response = match result {
            Ok(response) => response,
            Err(Attempt::Timeout) => return Err(timeout_error()),
            Err(Attempt::Connect(address, source)) => {
                return Err(RequestError::UpstreamConnect {
                    backend: backend.id.clone(),
                    endpoint: address,
                    source,
                });
            }
            Err(Attempt::Failed(source)) => {
                return Err(RequestError::UpstreamFailed {
                    backend: backend.id.clone(),
                    source,
                });
            }
            Err(Attempt::Build(e)) => return Err(RequestError::BuildRequest(e)),
        };
        Ok(response)
    }

    /// Sends to one endpoint after another until one accepts the connection.
    async fn attempts(
        &self,
        backend: &LiveBackend,
        request: Request<ProxyBody>,
        path_and_query: &str,
        websocket: bool,
    ) -> Result<UpstreamResponse, Attempt> {
        let balancer = &backend.balancer;
        let max = balancer.endpoints.len().min(MAX_ATTEMPTS);
        let (mut parts, body) = request.into_parts();
        // Only a request that may be retried pays for keeping its body reclaimable.
        let (mut body, mut slot) = if max > 1 {
            let (b, s) = Reclaimable::new(body);
            (Some(b.boxed_unsync()), Some(s))
        } else {
            (Some(body), None)
        };
        let mut tried = 0u64;
        let mut last = None;
        for attempt in 0..max {
            let Some(i) = balancer.pick(tried) else { break };
            tried |= 1 << (i % 64);
            let address = &balancer.endpoints[i].address;
            let scheme = match backend.scheme {
                UpstreamScheme::Http => "http",
                UpstreamScheme::Https => "https",
            };
            let Some(this_body) = body.take() else { break };
            let this_parts = if attempt + 1 < max {
                clone_head(&parts)
            } else {
                std::mem::replace(&mut parts, Request::new(()).into_parts().0)
            };
            let mut request = Request::from_parts(this_parts, this_body);
            let guard = balancer.start(i);
            let h2c = backend.h2c.as_ref().and_then(|c| c.get(i));
            let sent = match (&backend.tls, h2c) {
                (None, None) if !websocket => {
                    // Origin-form: this client writes the URI as it is.
                    match Uri::try_from(path_and_query) {
                        Ok(uri) => *request.uri_mut() = uri,
                        Err(e) => return Err(Attempt::Build(format!("upstream uri: {e}"))),
                    }
                    match self.h1.send(address, request).await {
                        Ok(response) => Ok(response.map(Inner::InTask)),
                        Err(SendError::Connect(e)) => Err(Failure::Connect(e)),
                        Err(SendError::Failed(e)) => Err(Failure::Exchange(Box::new(e))),
                    }
                }
                (tls, h2c) => {
                    let uri = format!("{scheme}://{address}{path_and_query}");
                    match uri.parse() {
                        Ok(u) => *request.uri_mut() = u,
                        Err(e) => return Err(Attempt::Build(format!("upstream uri: {e}"))),
                    }
                    let sent = match (tls, h2c) {
                        (Some(tls), _) => tls.client.request(request).await,
                        (None, Some(h2c)) => {
                            // HTTP/2 names the host in `:authority` (from the URI), not in
                            // `Host`; the client's connector dials the endpoint whatever the
                            // URI says.
                            request.headers_mut().remove(header::HOST);
                            *request.version_mut() = Version::HTTP_2;
                            let authority = backend.authority.to_str().unwrap_or_default();
                            match format!("http://{authority}{path_and_query}").parse() {
                                Ok(uri) => *request.uri_mut() = uri,
                                Err(e) => {
                                    return Err(Attempt::Build(format!("upstream uri: {e}")));
                                }
                            }
                            h2c.client.request(request).await
                        }
                        (None, None) => self.client.request(request).await,
                    };
                    match sent {
                        Ok(response) => Ok(response.map(Inner::Pooled)),
                        Err(e) if e.is_connect() => Err(Failure::Connect(Box::new(e))),
                        Err(e) => Err(Failure::Exchange(Box::new(e))),
                    }
                }
            };
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    if status >= 500 || (switching && !websocket) {
                        balancer.failed(i, self.outlier);
                    } else {
                        balancer.succeeded(i);
                    }
                    if switching && !websocket {
                        return Err(Attempt::Failed(
                            "the backend switched protocols unasked".into(),
                        ));
                    }
                    let (mut parts, body) = response.into_parts();
                    forwarded::remove_hop_by_hop(&mut parts.headers);
                    if switching {
                        parts
                            .headers
                            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                        parts
                            .headers
                            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                    }
                    let body = UpstreamBody {
                        inner: body,
                        _guard: guard,
                    }
                    .boxed_unsync();
                    return Ok(UpstreamResponse {
                        response: Response::from_parts(parts, body),
                        status,
                    });
                }
                Err(Failure::Connect(e)) => {
                    self.connect_errors.inc();
                    balancer.failed(i, self.outlier);
                    tracing::debug!(endpoint = %address, error = %e, "connect failed");
                    // Nothing was sent: the body is still ours if it was never polled.
                    body = slot.as_mut().and_then(|s| s.reclaim());
                    last = Some(Attempt::Connect(address.clone(), e));
                }
                Err(Failure::Exchange(e)) => {
                    // A client whose body is malformed, too large or stalled must not be able
                    // to eject a healthy endpoint.
                    if !crate::body::client_body_caused(&*e) {
                        balancer.failed(i, self.outlier);
                    }
                    return Err(Attempt::Failed(e));
                }
            }
        }
        Err(last.unwrap_or(Attempt::Timeout))
    }
}

/// Most endpoints one request is sent to (only after connect failures).
pub const MAX_ATTEMPTS: usize = 3;

/// How one send failed.
enum Failure {
    /// No connection: nothing was sent.
    Connect(BoxError),
    /// The exchange failed after the request started to leave.
    Exchange(BoxError),
}

/// How one attempt ended, when it did not end with a response.
enum Attempt {
    Connect(String, BoxError),
    Failed(BoxError),
    Timeout,
    Build(String),
}

/// A copy of a request head (for a retry on another endpoint).
fn clone_head(parts: &http::request::Parts) -> http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

/// A body whose inner body can be taken back as long as nobody polled it.
struct Reclaimable {
    slot: Arc<Mutex<Option<ProxyBody>>>,
    inner: Option<ProxyBody>,
    hint: SizeHint,
    end: bool,
}

/// The other half of [`Reclaimable`].
struct ReclaimSlot(Arc<Mutex<Option<ProxyBody>>>);

impl ReclaimSlot {
    /// The body, unless it has been polled (then it is gone with its request).
    fn reclaim(&mut self) -> Option<ProxyBody> {
        let body = self.0.lock().ok()?.take()?;
        let (wrapped, slot) = Reclaimable::new(body);
        *self = slot;
        Some(wrapped.boxed_unsync())
    }
}

impl Reclaimable {
    fn new(body: ProxyBody) -> (Self, ReclaimSlot) {
        let hint = body.size_hint();
        let end = body.is_end_stream();
        let slot = Arc::new(Mutex::new(Some(body)));
        (
            Self {
                slot: Arc::clone(&slot),
                inner: None,
                hint,
                end,
            },
            ReclaimSlot(slot),
        )
    }
}

impl http_body::Body for Reclaimable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if self.inner.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut s| s.take());
            match taken {
                Some(body) => self.inner = Some(body),
                None => return Poll::Ready(None),
            }
        }
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => self.hint,
        }
    }
}

/// The upstream response body: errors boxed, the endpoint's in-flight count held until it ends.
struct UpstreamBody {
    inner: Inner,
    _guard: InflightGuard,
}

/// Which client the body comes from.
enum Inner {
    Pooled(Incoming),
    InTask(H1Body),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Pooled(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| -> BoxError { Box::new(e) }),
            Inner::InTask(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Pooled(body) => body.is_end_stream(),
            Inner::InTask(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Pooled(body) => body.size_hint(),
            Inner::InTask(body) => body.size_hint(),
        }
    }
}
