//! The one recording upstream of the proxy tests: a real HTTP/1.1 + h2c server on 127.0.0.1
//! (HTTPS with [`UpstreamBuilder::tls`]) that records every request it reads — method, path
//! and query, version, headers, whole body — and answers what its handler says.
//!
//! - [`Upstream::start`]: answers `{name} {path}?{query}` with `x-upstream: {name}`, steered by
//!   the request headers [`DELAY_MS`], [`ECHO`] and [`RESPONSE_BYTES`] (for backends of
//!   `HTTP_PROXY` routes);
//! - [`Upstream::with_handler`]: answers `handler(&Seen)` (Lambda functions, authorizers, JWKS
//!   servers, WebSocket backends);
//! - [`Upstream::builder`]: either of those, over TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::TestBody;

/// Request header that makes [`Upstream::start`]'s answer wait this many milliseconds.
pub const DELAY_MS: &str = "x-test-delay-ms";
/// Request header that makes [`Upstream::start`] answer with the request body.
pub const ECHO: &str = "x-test-echo";
/// Request header that makes [`Upstream::start`] answer with this many bytes (streamed).
pub const RESPONSE_BYTES: &str = "x-test-response-bytes";

/// One request as the upstream read it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The value of [`Upstream::probe`] when the first body byte arrived.
    pub probe_at_first_byte: Option<u64>,
}

impl Seen {
    /// `path?query` as the request line had it.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> u64 {
        self.body.len() as u64
    }

    /// A header's value as text; empty when absent or not text.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// What a handler answers: status, headers, body, and an optional delay before answering.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: ReplyBody,
    delay: Option<Duration>,
}

#[derive(Debug)]
enum ReplyBody {
    Full(Bytes),
    /// This many bytes, streamed in chunks.
    Streamed(u64),
}

impl Reply {
    /// 200 with `body` and no headers.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![],
            body: ReplyBody::Full(body.into()),
            delay: None,
        }
    }

    /// 200 with `body` as `content-type: application/json`.
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self::ok(body).header("content-type", "application/json")
    }

    /// 200 with `n` bytes streamed in 64 KiB chunks.
    pub fn streamed(n: u64) -> Self {
        Self {
            body: ReplyBody::Streamed(n),
            ..Self::ok(Bytes::new())
        }
    }

    /// Answers with `status` instead.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("status code");
        self
    }

    /// Adds a header (repeats allowed).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A handler: the request read, the answer to give.
pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// [`Upstream::start`]'s handler: `{name} {path}?{query}` with `status` and `x-upstream`,
/// steered by [`DELAY_MS`], [`ECHO`] and [`RESPONSE_BYTES`].
fn named(name: &str, status: StatusCode) -> Handler {
    let name = name.to_string();
    Arc::new(move |seen: &Seen| {
        let number = |h: &str| seen.header(h).parse::<u64>().ok();
        let reply = if seen.headers.contains_key(ECHO) {
            Reply::ok(seen.body.clone())
        } else if let Some(n) = number(RESPONSE_BYTES) {
            Reply::streamed(n)
        } else {
            let query = seen.query.clone().unwrap_or_default();
            Reply::ok(format!("{name} {}?{query}", seen.path))
        };
        let reply = reply.status(status.as_u16()).header("x-upstream", &name);
        match number(DELAY_MS) {
            Some(ms) => reply.after(Duration::from_millis(ms)),
            None => reply,
        }
    })
}

/// A recording upstream on an ephemeral 127.0.0.1 port; stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Sampled when a request body's first byte arrives (tests increment it while sending).
    pub probe: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// Answers every request 200 `{name} {path}?{query}` (see [`DELAY_MS`], [`ECHO`],
    /// [`RESPONSE_BYTES`]).
    pub async fn start(name: &str) -> Self {
        Self::start_with_status(name, StatusCode::OK).await
    }

    /// [`Upstream::start`], answering every request with `status`.
    pub async fn start_with_status(name: &str, status: StatusCode) -> Self {
        Self::builder().handler(named(name, status)).start().await
    }

    /// Answers each request with `handler(&request)`.
    pub async fn with_handler(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::builder().handler(Arc::new(handler)).start().await
    }

    /// An upstream to configure further (TLS).
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder {
            handler: named("upstream", StatusCode::OK),
            tls: None,
        }
    }

    /// Every request read so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// How many requests it read.
    pub fn calls(&self) -> usize {
        self.seen.lock().expect("seen lock").len()
    }

    /// `host:port`, as a backend endpoint.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Configures an [`Upstream`] before it starts.
pub struct UpstreamBuilder {
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl UpstreamBuilder {
    /// Answers with `handler` (default: [`Upstream::start`]'s, named `upstream`).
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handler = handler;
        self
    }

    /// Speaks TLS with this configuration (see [`super::pki::Leaf::server_config`]); a refused
    /// handshake records nothing.
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.tls = Some(Arc::new(config));
        self
    }

    pub async fn start(self) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let connection = Connection {
            handler: self.handler,
            seen: seen.clone(),
            probe: probe.clone(),
        };
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let (connection, acceptor) = (connection.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => connection.serve(stream).await,
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                connection.serve(tls).await;
                            }
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            seen,
            probe,
            _stop: stop,
        }
    }
}

/// What every connection of one upstream shares.
#[derive(Clone)]
struct Connection {
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
    probe: Arc<AtomicU64>,
}

impl Connection {
    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| self.clone().answer(req));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn answer(self, req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
        let (parts, body) = req.into_parts();
        let mut stream = BodyStream::new(body);
        let mut body = BytesMut::new();
        let mut probe_at_first_byte = None;
        while let Some(frame) = stream.next().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                if probe_at_first_byte.is_none() && !data.is_empty() {
                    probe_at_first_byte = Some(self.probe.load(Ordering::SeqCst));
                }
                body.extend_from_slice(data);
            }
        }
        let seen = Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            version: parts.version,
            headers: parts.headers,
            body: body.freeze(),
            probe_at_first_byte,
        };
        self.seen.lock().expect("seen lock").push(seen.clone());
        let reply = (self.handler)(&seen);
        if let Some(delay) = reply.delay {
            tokio::time::sleep(delay).await;
        }
        let body = match reply.body {
            ReplyBody::Full(bytes) => Full::new(bytes).map_err(|e| match e {}).boxed(),
            ReplyBody::Streamed(n) => chunked_body(n, None),
        };
        let mut response = Response::new(body);
        *response.status_mut() = reply.status;
        for (name, value) in reply.headers {
            response.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        Ok(response)
    }
}

/// A streamed body of `total` bytes in 64 KiB chunks; `probe` counts bytes produced so far.
pub fn chunked_body(total: u64, probe: Option<Arc<AtomicU64>>) -> TestBody {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        let probe = probe.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = CHUNK.min(total - sent);
            if let Some(p) = &probe {
                p.fetch_add(n, Ordering::SeqCst);
            }
            let frame = Frame::data(chunk.slice(..n as usize));
            Some((
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(frame),
                sent + n,
            ))
        }
    });
    BodyExt::boxed(http_body_util::StreamBody::new(stream))
}
