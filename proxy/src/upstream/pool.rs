//! Plain HTTP/1.1 upstream connections driven by the task that forwards the request, not by a
//! task of their own (pingora's design). hyper-util's pooled client gives each connection a
//! task, hands every request to it through a channel, wakes it to write, wakes the request's
//! task with the answer, and spawns one more task per request to put the connection back. Here
//! the forwarding task polls the connection itself while it waits for the answer's head, and
//! the answer's body polls it while the server streams the body out; the connection goes back
//! to the pool when the body ends.
//!
//! An idle connection is not polled while it waits in the pool: a connection the backend
//! closed meanwhile is found at checkout (its driver reads the end of stream, or the sender is
//! not ready) and dropped, and a sweep that runs while the pool holds connections (every half
//! idle timeout, at most every 10 s) drops the ones that expired or that the backend closed, so
//! that they do not sit in `CLOSE_WAIT` until the next request to their endpoint. A request
//! sent on a reused connection that the backend had already closed, and that hyper hands back
//! unsent, is sent again on another connection.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::{BoxError, ProxyBody};

type Driver = http1::Connection<TokioIo<TcpStream>, ProxyBody>;

/// One upstream connection: the handle requests are sent on, and the state machine that does
/// the reading and writing when polled.
struct Conn {
    sender: http1::SendRequest<ProxyBody>,
    driver: Driver,
}

impl Conn {
    /// Whether a pooled connection can take a request now: lets the driver notice a close or
    /// finish the last exchange, without waiting.
    fn usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if Pin::new(&mut self.driver)
            .poll_without_shutdown(&mut cx)
            .is_ready()
        {
            return false;
        }
        matches!(self.sender.poll_ready(&mut cx), Poll::Ready(Ok(())))
    }
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The idle connections of one worker (or of the shared runtime), per endpoint address.
pub(crate) struct H1Pool {
    shared: Arc<Shared>,
    connect_timeout: Duration,
    max_buf_size: usize,
}

struct Shared {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    /// Whether a sweep task is running (it stops when the pool is empty).
    sweeping: AtomicBool,
}

/// The longest a connection the backend closed waits for the sweep.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Why a request got no answer.
pub(crate) enum SendError {
    /// No connection could be made; nothing was sent.
    Connect(BoxError),
    /// The exchange failed (the request may have been sent, in part or whole).
    Failed(hyper::Error),
}

impl H1Pool {
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle_per_host: usize,
        max_buf_size: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                idle: Mutex::new(HashMap::new()),
                max_idle_per_host,
                idle_timeout,
                sweeping: AtomicBool::new(false),
            }),
            connect_timeout,
            max_buf_size,
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `address` and returns the answer's
    /// head; its body drives the connection and returns it to the pool when it ends.
    pub async fn send(
        &self,
        address: &str,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<H1Body>, SendError> {
        loop {
            let (mut conn, reused) = match self.shared.checkout(address) {
                Some(conn) => (conn, true),
                None => match self.connect(address).await {
                    Ok(conn) => (conn, false),
                    Err(e) => return Err(SendError::Connect(e)),
                },
            };
            let mut answer = std::pin::pin!(conn.sender.try_send_request(request));
            let mut driver_done = false;
            let result = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                if !driver_done {
                    if Pin::new(&mut conn.driver)
                        .poll_without_shutdown(cx)
                        .is_pending()
                    {
                        return Poll::Pending;
                    }
                    driver_done = true;
                    // The driver has settled the request's fate: poll for it once more.
                    return answer.as_mut().poll(cx);
                }
                Poll::Pending
            })
            .await;
            match result {
                Ok(response) => {
                    let (parts, incoming) = response.into_parts();
                    let conn = (!driver_done).then_some(conn);
                    let body = H1Body {
                        inner: incoming,
                        conn,
                        pool: Arc::clone(&self.shared),
                        address: address.to_owned(),
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // A pooled connection the backend had closed: the request never left.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Failed(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self, address: &str) -> Result<Box<Conn>, BoxError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| -> BoxError {
                format!(
                    "connect to {address} timed out after {:?}",
                    self.connect_timeout
                )
                .into()
            })??;
        stream.set_nodelay(true)?;
        let (sender, driver) = http1::Builder::new()
            .max_buf_size(self.max_buf_size)
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Box::new(Conn { sender, driver }))
    }
}

impl Shared {
    fn checkout(&self, address: &str) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(address)?;
        let now = Instant::now();
        // Newest last: the warmest connection is reused first, and the ones below an expired
        // entry are older still.
        while let Some(Idle { mut conn, since }) = list.pop() {
            if now.duration_since(since) > self.idle_timeout {
                list.clear();
                return None;
            }
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, address: String, conn: Box<Conn>) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        let list = idle.entry(address).or_default();
        // Expired entries are at the front.
        let expired = list
            .iter()
            .take_while(|i| now.duration_since(i.since) > self.idle_timeout)
            .count();
        list.drain(..expired);
        if list.len() < self.max_idle_per_host {
            list.push(Idle { conn, since: now });
            drop(idle);
            self.start_sweeping();
        }
    }

    /// Starts the sweep on the current runtime (the one the connections are registered with)
    /// unless it runs already.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let interval = (self.idle_timeout / 2).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL);
        runtime.spawn(sweep(Arc::downgrade(self), interval));
    }

    /// Drops the connections that expired or can no longer take a request; returns whether
    /// any are left.
    fn sweep(&self) -> bool {
        let Ok(mut idle) = self.idle.lock() else {
            return false;
        };
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain_mut(|i| {
                now.duration_since(i.since) <= self.idle_timeout && i.conn.usable()
            });
            !list.is_empty()
        });
        !idle.is_empty()
    }
}

/// Sweeps the pool every `interval` while it holds connections and exists.
async fn sweep(pool: Weak<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if !pool.sweep() {
            pool.sweeping.store(false, Ordering::Release);
            // A check-in between the sweep and the store saw `sweeping` still set: look again.
            if !pool.sweep() || pool.sweeping.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// The answer's body. Polling it drives the connection; when it ends, the connection goes back
/// to the pool (dropped early, the connection is closed with it).
pub(crate) struct H1Body {
    inner: Incoming,
    /// Boxed: the connection's state machine is large, and the body moves.
    conn: Option<Box<Conn>>,
    pool: Arc<Shared>,
    address: String,
}

impl H1Body {
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(std::mem::take(&mut self.address), conn);
        }
    }
}

impl H1Body {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
                    self.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.conn = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        // A body nobody read to the end (an empty one is never polled) goes back only when
        // nothing of it is left on the connection.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = this.poll_inner(cx) {
            return Poll::Ready(frame);
        }
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Pending;
        };
        if Pin::new(&mut conn.driver)
            .poll_without_shutdown(cx)
            .is_ready()
        {
            // Closed or failed: the body's sender is gone with it, so the body ends or errs.
            this.conn = None;
        }
        // The driver may have filled the body.
        this.poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
