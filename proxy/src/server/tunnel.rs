//! Upgraded connections (WebSocket passthrough): when an integration answers `101 Switching
//! Protocols` and hands over the backend's side of the upgrade (hyper's `OnUpgrade` in the
//! response's extensions), the client's connection becomes a tunnel to it. A tunnel keeps its
//! connection's lease (it counts against the connection caps), ends after `tunnel_idle_timeout`
//! without a byte in either direction, and ends as soon as the listener drains.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{ProxyBody, full};
use crate::server::accept::{Lease, Phase};

/// What a tunnel holds on to and obeys.
pub(super) struct Hold {
    pub lease: Arc<Lease>,
    pub idle: Duration,
    pub phase: watch::Receiver<Phase>,
    pub peer: SocketAddr,
}

/// Starts the tunnel when `response` switches protocols with both sides at hand, and returns
/// the response to send. A 101 without the backend's side (a MOCK or Lambda answer, an HTTP/2
/// request) or for a client that asked for no upgrade would leave the client's connection
/// hanging in a protocol nobody speaks: it becomes a 502.
pub(super) fn start_if_switching(
    mut response: Response<ProxyBody>,
    client: Option<OnUpgrade>,
    hold: Hold,
) -> Response<ProxyBody> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    // A WebSocket Api's upgrade: the gateway holds the socket itself.
    if let Some(session) = response
        .extensions_mut()
        .remove::<crate::websocket::Session>()
    {
        if let (Some(client), Some(run)) = (client, session.take()) {
            tokio::spawn(hold_session(client, run, hold));
            return response;
        }
        let mut refused = Response::new(full(r#"{"message":"Bad Gateway"}"#));
        *refused.status_mut() = StatusCode::BAD_GATEWAY;
        return refused;
    }
    match (client, response.extensions_mut().remove::<OnUpgrade>()) {
        (Some(client), Some(backend)) => {
            tokio::spawn(run(client, backend, hold));
            response
        }
        _ => {
            tracing::debug!(peer = %hold.peer, "101 without both sides of an upgrade; answered 502");
            let mut refused = Response::new(full(r#"{"message":"Bad Gateway"}"#));
            *refused.status_mut() = StatusCode::BAD_GATEWAY;
            refused
        }
    }
}

/// Runs a WebSocket session on the client's upgraded connection; it keeps the connection's
/// lease and is told when the listener drains (it then closes with 1001 Going Away).
async fn hold_session(client: OnUpgrade, run: crate::websocket::SessionFn, hold: Hold) {
    let upgraded = match client.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(peer = %hold.peer, %error, "upgrade failed");
            return;
        }
    };
    let mut phase = hold.phase.clone();
    let drain = Box::pin(async move {
        loop {
            if *phase.borrow_and_update() != Phase::Serving {
                return;
            }
            if phase.changed().await.is_err() {
                return;
            }
        }
    });
    run(TokioIo::new(upgraded), drain).await;
    drop(hold.lease);
}

/// Copies bytes both ways until either side closes, nothing moves for the idle timeout, or
/// the listener drains.
async fn run(client: OnUpgrade, backend: OnUpgrade, mut hold: Hold) {
    let peer = hold.peer;
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%peer, %error, "upgrade failed");
            return;
        }
    };
    let opened = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Touched::new(TokioIo::new(client), opened, &last);
    let mut backend = Touched::new(TokioIo::new(backend), opened, &last);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    let mut copy = std::pin::pin!(copy);
    loop {
        let deadline = opened + Duration::from_millis(last.load(Ordering::Relaxed)) + hold.idle;
        tokio::select! {
            done = copy.as_mut() => {
                if let Err(error) = done {
                    tracing::debug!(%peer, %error, "tunnel ended with an error");
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let last_byte = opened + Duration::from_millis(last.load(Ordering::Relaxed));
                if last_byte + hold.idle <= Instant::now() {
                    tracing::debug!(%peer, "idle tunnel closed");
                    break;
                }
            }
            changed = hold.phase.changed() => {
                if changed.is_err() || *hold.phase.borrow_and_update() != Phase::Serving {
                    tracing::debug!(%peer, "tunnel closed: the proxy drains");
                    break;
                }
            }
        }
    }
    drop(hold.lease);
}

/// An IO that notes when it last read a byte (milliseconds after `opened`).
struct Touched<T> {
    inner: T,
    opened: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Touched<T> {
    fn new(inner: T, opened: Instant, last: &Arc<AtomicU64>) -> Self {
        Self {
            inner,
            opened,
            last: Arc::clone(last),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Touched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(now, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Touched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
