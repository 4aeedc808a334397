//! Listeners: the accept loop shared by the traffic and admin listeners, with every hyper limit
//! set explicitly (hyper's and h2's defaults are not edge-safe), a connection cap, an optional
//! per-client cap, and graceful draining on shutdown.
//!
//! What a connection may hold, and for how long (hyper covers only part of it):
//! - Until its first request, every connection must send a complete request head within
//!   `header_read_timeout` from accept (after the TLS handshake, itself bounded by the same
//!   time). hyper's own `header_read_timeout` starts only once the HTTP/1 parser runs, not
//!   while the version is being sniffed, so a connection that sends no byte, or part of the
//!   HTTP/2 preface, is closed here. Later heads on HTTP/1.1 (keep-alive idle, a slow head) are
//!   bounded by hyper's timer.
//! - An HTTP/2 connection with no open stream for `h2_idle_timeout` is shut down gracefully
//!   (GOAWAY); PINGs do not count as activity. Open streams are counted here: a request is in
//!   flight from its head until its response body has been sent or dropped.
//! - A connection whose responses wait `send_timeout` for the client to take their next bytes
//!   is closed: a client that stops reading (a full TCP window) or holds its HTTP/2 windows
//!   at zero cannot pin streams, buffers and upstream connections. A response waiting on its
//!   backend is not waiting on the client and does not count.
//! - An upgraded (WebSocket) tunnel keeps its connection's permits, has an idle timeout, and
//!   ends when the proxy drains (`tunnel`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::body::{BoxError, ProxyBody};
use crate::config::ProxyConfig;
use crate::limits::clients::{ClientConnections, ClientSlot};
use crate::server::tunnel;

/// hyper refuses (panics on) HTTP/1 buffers smaller than this.
const MIN_HTTP1_BUF: usize = 8192;
/// Pause after a failed `accept` (for example out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// HTTP/2 streams a client may reset before being answered (rapid-reset defence).
const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// After an idle connection was asked to shut down gracefully, how long it may take before it
/// is dropped (nothing is in flight on it).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// After the drain timeout, how long connections get to notice that they must close.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// An HTTP/1.1 + h2c builder with the configured limits.
pub(crate) fn builder(config: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(config.max_header_bytes.max(MIN_HTTP1_BUF))
        .max_headers(config.max_headers)
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(config.keep_alive);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .initial_stream_window_size(config.h2_stream_window)
        .initial_connection_window_size(config.h2_connection_window)
        .max_header_list_size(config.h2_max_header_list_bytes)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .keep_alive_interval(config.h2_keep_alive_interval)
        .keep_alive_timeout(config.h2_keep_alive_timeout);
    builder
}

/// Per-listener settings of [`accept_loop`].
pub(crate) struct ListenerSettings {
    pub builder: auto::Builder<TokioExecutor>,
    /// TLS termination (the HTTPS listener); `None`: plain HTTP/1.1 + h2c.
    pub tls: Option<crate::server::tls::Acceptor>,
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Connection cap; `None`: unlimited (admin).
    pub permits: Option<Arc<Semaphore>>,
    /// Per-client-address cap, and the counter of connections it refused; `None`: no cap.
    pub per_client: Option<(Arc<ClientConnections>, Counter)>,
    /// Counts open connections.
    pub gauge: Option<Gauge>,
    pub drain_timeout: Duration,
    pub timeouts: Timeouts,
}

impl ListenerSettings {
    /// The settings every listener shares, from the config: hyper's limits, timeouts, no TLS,
    /// no caps (each listener adds its own).
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        Self {
            builder: builder(config),
            tls: None,
            handshake_timeout: config.header_read_timeout,
            permits: None,
            per_client: None,
            gauge: None,
            drain_timeout: config.drain_timeout,
            timeouts: Timeouts {
                first_request: config.header_read_timeout,
                h2_idle: config.h2_idle_timeout,
                send: config.send_timeout,
                tunnel_idle: config.tunnel_idle_timeout,
            },
        }
    }
}

/// How long a connection may hold the proxy without a request in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// From accept (after TLS) to the first request's complete head.
    pub first_request: Duration,
    /// HTTP/2 with no open stream.
    pub h2_idle: Duration,
    /// Responses waiting for the client to read.
    pub send: Duration,
    /// An upgraded tunnel with no byte either way.
    pub tunnel_idle: Duration,
}

/// Where the listener is in its life; every connection and tunnel watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Serving,
    /// Finish what is in flight, take no more requests; tunnels end.
    Draining,
    /// The drain timeout passed: close now.
    Closed,
}

/// What one connection holds while it is open (its upgraded tunnel holds it too): a permit of
/// the connection cap, its client's slot, and its place in the gauge.
pub(super) struct Lease {
    _permit: Option<OwnedSemaphorePermit>,
    _client: Option<ClientSlot>,
    gauge: Option<Gauge>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last request in flight ended.
    idle_since_ms: AtomicU64,
    /// Whether a request has arrived (then the first-request timeout no longer applies).
    served: AtomicBool,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    h2: AtomicBool,
    /// Response heads and frames handed to hyper that it has not come back for yet (it polls
    /// a body again only once the client has taken the bytes or opened its window).
    sending: AtomicUsize,
    /// How many of those hyper came back for: the connection's send progress.
    taken: AtomicU64,
    /// Woken when the last request in flight ends.
    idle: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            sending: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            idle: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>, version: http::Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if version == http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.served.store(true, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// A head or frame went to hyper: it now waits on the client.
    fn frame_out(&self) {
        self.sending.fetch_add(1, Ordering::Relaxed);
    }

    /// hyper came back for more (the client took the bytes), or the body ended.
    fn frame_taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.sending.fetch_sub(1, Ordering::Relaxed);
    }

    /// The send progress to compare at the next check: `Some(taken)` while something waits on
    /// the client, `None` when nothing does.
    fn send_mark(&self) -> Option<u64> {
        (self.sending.load(Ordering::Relaxed) > 0).then(|| self.taken.load(Ordering::Relaxed))
    }

    /// When the connection is idle too long, if nothing starts before; `None`: no limit now
    /// (a request in flight, or HTTP/1.1 after its first request, where hyper's header
    /// timeout bounds the keep-alive idle).
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let limit = if !self.served.load(Ordering::SeqCst) {
            timeouts.first_request
        } else if self.h2.load(Ordering::Relaxed) {
            timeouts.h2_idle
        } else {
            return None;
        };
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.opened + since + limit)
    }
}

/// One request in flight; ends when its response body is sent or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let since = u64::try_from(a.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.store(since, Ordering::SeqCst);
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            a.idle.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until it is done, and tells the
/// connection when it waits on the client (see [`Activity::sending`]).
struct TrackedBody {
    inner: ProxyBody,
    in_flight: InFlight,
    /// The head or a frame was handed out and hyper has not come back for the next frame
    /// (HTTP/2 polls the body only once the client's window has room).
    waiting_on_client: bool,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.waiting_on_client {
            self.in_flight.0.frame_taken();
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        let this = &mut *self;
        if std::mem::take(&mut this.waiting_on_client) {
            this.in_flight.0.frame_taken();
        }
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(_))) = &polled {
            this.waiting_on_client = true;
            this.in_flight.0.frame_out();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections until `shutdown` completes, then lets open connections finish their
/// requests for up to the drain timeout, and closes the rest.
pub(crate) async fn accept_loop<H, F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    settings: ListenerSettings,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = match &settings.permits {
            Some(permits) => tokio::select! {
                _ = &mut shutdown => break,
                permit = Arc::clone(permits).acquire_owned() => {
                    Some(permit.map_err(std::io::Error::other)?)
                }
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let client = match &settings.per_client {
            None => None,
            Some((clients, refused)) => match clients.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    refused.inc();
                    tracing::debug!(%peer, "connection refused: client has too many open");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Some(g) = &settings.gauge {
            g.inc();
        }
        let lease = Arc::new(Lease {
            _permit: permit,
            _client: client,
            gauge: settings.gauge.clone(),
        });
        let conn = Conn {
            builder: settings.builder.clone(),
            handler: handler.clone(),
            peer,
            lease,
            timeouts: settings.timeouts,
            phase: phase_rx.clone(),
        };
        let tls = settings.tls.clone();
        let handshake_timeout = settings.handshake_timeout;
        tokio::spawn(async move {
            let result = match tls {
                None => conn.serve(stream, None).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok((stream, info))) => conn.serve(stream, Some(info)).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(phase_rx);
    let _ = phase_tx.send(Phase::Draining);
    tokio::select! {
        _ = phase_tx.closed() => {}
        _ = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            let _ = phase_tx.send(Phase::Closed);
            let _ = tokio::time::timeout(CLOSE_WAIT, phase_tx.closed()).await;
        }
    }
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Conn<H> {
    builder: auto::Builder<TokioExecutor>,
    handler: H,
    peer: SocketAddr,
    lease: Arc<Lease>,
    timeouts: Timeouts,
    phase: watch::Receiver<Phase>,
}

impl<H, F> Conn<H>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    /// Serves HTTP on `io` until the client closes, the connection is idle too long, or the
    /// listener drains.
    async fn serve<I>(
        self,
        io: I,
        tls_info: Option<crate::context::TlsInfo>,
    ) -> Result<(), BoxError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            builder,
            handler,
            peer,
            lease,
            timeouts,
            mut phase,
        } = self;
        let activity = Arc::new(Activity::new());
        let tracked = Arc::clone(&activity);
        let tunnel_phase = phase.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let in_flight = tracked.begin(request.version());
            // Every request of a connection carries what its TLS handshake established.
            if let Some(info) = &tls_info {
                request.extensions_mut().insert(info.clone());
            }
            // The client's side of an upgrade stays here: only the connection may turn into a
            // tunnel, and only when the integration brings the backend's side (`tunnel`).
            let client_upgrade = (request.version() == http::Version::HTTP_11
                && request.headers().contains_key(http::header::UPGRADE))
            .then(|| hyper::upgrade::on(&mut request));
            let handler = handler.clone();
            let lease = Arc::clone(&lease);
            let phase = tunnel_phase.clone();
            async move {
                let response = handler(request, peer).await;
                let response = tunnel::start_if_switching(
                    response,
                    client_upgrade,
                    tunnel::Hold {
                        lease,
                        idle: timeouts.tunnel_idle,
                        phase,
                        peer,
                    },
                );
                // The head goes out now; the body waits on the client until hyper polls it.
                in_flight.0.frame_out();
                Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                    inner,
                    in_flight,
                    waiting_on_client: true,
                }))
            }
        });
        // Requests framed by both Content-Length and Transfer-Encoding are refused (`framing`).
        let io = crate::server::framing::Guard::new(io);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        let mut close_by: Option<Instant> = None;
        // Every `send`, the send progress is compared with the last check's: a connection on
        // which something waited on the client at both checks, with nothing taken between,
        // is stalled (found within two periods, with no clock read or wake-up per request).
        let mut send_check = Instant::now() + timeouts.send;
        let mut send_mark = None;
        loop {
            let deadline = if closing {
                None
            } else {
                activity.deadline(&timeouts)
            };
            tokio::select! {
                result = connection.as_mut() => return result,
                changed = phase.changed() => {
                    let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closed };
                    match now {
                        Phase::Serving => {}
                        Phase::Draining if !closing => {
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        Phase::Draining => {}
                        Phase::Closed => return Ok(()),
                    }
                }
                _ = activity.idle.notified(), if !closing => {}
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if activity.deadline(&timeouts).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(%peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                        close_by = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    }
                }
                _ = tokio::time::sleep_until(close_by.unwrap_or_else(Instant::now)), if close_by.is_some() => {
                    return Ok(());
                }
                _ = tokio::time::sleep_until(send_check) => {
                    let mark = activity.send_mark();
                    if mark.is_some() && mark == send_mark {
                        tracing::debug!(%peer, "client stopped reading; connection closed");
                        return Ok(());
                    }
                    send_mark = mark;
                    send_check = Instant::now() + timeouts.send;
                }
            }
        }
    }
}
