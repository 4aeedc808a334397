//! The snapshot server (design.md §3): HTTP/2 with mutual TLS. Each proxy holds one long-lived
//! `POST /v1/snapshots/stream` whose response body carries length-prefixed [`Frame`]s: the
//! current snapshot at once (unless the proxy already has it), then every later one. Proxies
//! acknowledge each version with `POST /v1/acks`. The server counts open streams per proxy
//! and remembers what each applied or rejected; [`PushServer::rollout`] summarizes it for the
//! `Programmed` condition. Proxies also send their usage of the day with `POST /v1/usage`
//! about once a minute on the same connection; the latest report of each is kept for the
//! `UsagePlan.status` rollup ([`crate::usage`]).
//!
//! Endpoint churn is cheap: when only the backends changed since the snapshot a stream last
//! sent, the stream sends a [`Frame::Backends`] instead of the whole snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway_snapshot::Snapshot;
use causeway_snapshot::push::{
    ACK_PATH, Ack, DroppedPart, Frame, STREAM_PATH, StreamRequest, USAGE_PATH, UsageReport,
    encode_frame,
};
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::rollout::{Fleet, ProxyProgress};
use crate::status::Rollout;

/// Largest request body (stream requests and acks are small).
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest usage report (plans × at most `MAX_REPORT_KEYS` keys each).
const MAX_USAGE_BYTES: usize = 8 * 1024 * 1024;
/// Concurrent streams per HTTP/2 connection (a proxy needs 2: the stream and an ack).
const MAX_CONCURRENT_STREAMS: u32 = 16;
/// HTTP/2 PING interval to notice dead proxies.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may stay unanswered.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// The published snapshot, encoded once for every stream.
#[derive(Debug)]
struct Published {
    snapshot: Arc<Snapshot>,
    /// Its number in publish order (1, 2, …).
    number: u64,
    full: Bytes,
    /// `(base version, frame)` when only the backends changed since the previous snapshot.
    backends_delta: Option<(String, Bytes)>,
}

/// What the server knows about one proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyState {
    /// Open streams (0: disconnected).
    pub streams: u32,
    /// The last version it applied.
    pub applied: Option<String>,
    /// The last version it rejected, and why.
    pub rejected: Option<(String, String)>,
    /// Parts it left out of the version it applied (`applied`), each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<DroppedPart>,
}

struct Inner {
    current: watch::Sender<Option<Arc<Published>>>,
    proxies: Mutex<BTreeMap<String, ProxyState>>,
    /// The latest usage report of each proxy (see [`crate::usage`]); kept after a disconnect.
    usage: Mutex<BTreeMap<String, UsageReport>>,
    /// Woken when acks arrive or proxies come and go.
    changed: Arc<Notify>,
    /// Counts the same events as `changed`, for watchers that must see whether anything
    /// happened since they last looked ([`PushServer::progress`]).
    progress: watch::Sender<u64>,
    /// The number of each recently published version (a version published again gets a new
    /// number); bounded by [`NUMBERS_KEPT`] plus the versions proxies still report.
    numbers: Mutex<NumberBook>,
}

/// Published versions and their numbers.
#[derive(Debug, Default)]
struct NumberBook {
    last: u64,
    by_version: BTreeMap<String, u64>,
}

/// How many published versions keep their number beyond those the proxies report.
const NUMBERS_KEPT: usize = 64;

/// The snapshot server's state; cheap to clone.
#[derive(Clone)]
pub struct PushServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PushServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushServer").finish_non_exhaustive()
    }
}

/// Errors of the push server.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The listener failed.
    #[error("snapshot server: {0}")]
    Io(#[from] std::io::Error),
}

impl PushServer {
    /// A server with no snapshot yet; `changed` is woken on acks and (dis)connections.
    pub fn new(changed: Arc<Notify>) -> Self {
        let (current, _) = watch::channel(None);
        let (progress, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                current,
                proxies: Mutex::new(BTreeMap::new()),
                usage: Mutex::new(BTreeMap::new()),
                changed,
                progress,
                numbers: Mutex::new(NumberBook::default()),
            }),
        }
    }

    /// Publishes a snapshot to every stream; does nothing if the version is already current.
    /// Returns whether it was new.
    pub fn publish(&self, snapshot: &Snapshot) -> bool {
        let previous = self.inner.current.borrow().clone();
        if previous
            .as_ref()
            .is_some_and(|p| p.snapshot.version == snapshot.version)
        {
            return false;
        }
        let backends_delta = previous
            .as_ref()
            .filter(|p| p.snapshot.same_except_backends(snapshot))
            .map(|p| {
                let frame = Frame::Backends {
                    base_version: p.snapshot.version.clone(),
                    version: snapshot.version.clone(),
                    backends: snapshot.backends.clone(),
                };
                (
                    p.snapshot.version.clone(),
                    Bytes::from(encode_frame(&frame)),
                )
            });
        let full = Bytes::from(encode_frame(&Frame::Snapshot {
            snapshot: Box::new(snapshot.clone()),
        }));
        let number = self.number_version(&snapshot.version);
        info!(version = %snapshot.version, number, delta = backends_delta.is_some(), "snapshot published");
        self.inner.current.send_replace(Some(Arc::new(Published {
            snapshot: Arc::new(snapshot.clone()),
            number,
            full,
            backends_delta,
        })));
        true
    }

    /// Gives `version` the next number, and forgets old numbers no proxy reports any more.
    fn number_version(&self, version: &str) -> u64 {
        let reported: std::collections::BTreeSet<String> = self
            .proxies()
            .into_values()
            .flat_map(|p| p.applied.into_iter().chain(p.rejected.map(|(v, _)| v)))
            .collect();
        let Ok(mut book) = self.inner.numbers.lock() else {
            return 0;
        };
        book.last += 1;
        let number = book.last;
        book.by_version.insert(version.to_string(), number);
        if book.by_version.len() > NUMBERS_KEPT + reported.len() {
            let oldest_kept = number.saturating_sub(NUMBERS_KEPT as u64);
            book.by_version
                .retain(|v, n| *n > oldest_kept || reported.contains(v));
        }
        number
    }

    /// The number of the snapshot published now (0: none yet).
    pub fn number(&self) -> u64 {
        self.inner.current.borrow().as_ref().map_or(0, |p| p.number)
    }

    /// Where every connected proxy is, by snapshot number: the input of per-object
    /// `Programmed` conditions ([`crate::rollout`]). A version the server did not publish (a
    /// proxy's snapshot from before a restart of the controller) counts as number 0.
    pub fn fleet(&self) -> Fleet {
        let (current, current_version) = match self.inner.current.borrow().as_ref() {
            Some(p) => (p.number, p.snapshot.version.clone()),
            None => (0, String::new()),
        };
        let proxies = self.proxies();
        let Ok(book) = self.inner.numbers.lock() else {
            return Fleet::default();
        };
        let number = |v: &str| book.by_version.get(v).copied().unwrap_or(0);
        Fleet {
            current,
            current_version,
            proxies: proxies
                .into_iter()
                .filter(|(_, p)| p.streams > 0)
                .map(|(id, p)| {
                    let applied = p.applied.as_deref().map_or(0, number);
                    ProxyProgress {
                        id,
                        applied,
                        rejected: p
                            .rejected
                            .map(|(v, reason)| (number(&v), reason))
                            .filter(|(n, _)| *n > applied),
                        dropped: p.dropped,
                    }
                })
                .collect(),
        }
    }

    /// Changes whenever a proxy acknowledges a snapshot, connects or disconnects.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.inner.progress.subscribe()
    }

    /// The version published now, if any.
    pub fn version(&self) -> Option<String> {
        self.inner
            .current
            .borrow()
            .as_ref()
            .map(|p| p.snapshot.version.clone())
    }

    /// What every known proxy has (disconnected ones included, with `streams: 0`).
    pub fn proxies(&self) -> BTreeMap<String, ProxyState> {
        self.inner
            .proxies
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// How far the current version has rolled out among connected proxies.
    pub fn rollout(&self) -> Rollout {
        let version = self.version().unwrap_or_default();
        let proxies = self.proxies();
        let connected: Vec<_> = proxies.iter().filter(|(_, p)| p.streams > 0).collect();
        Rollout {
            connected: u32::try_from(connected.len()).unwrap_or(u32::MAX),
            applied: u32::try_from(
                connected
                    .iter()
                    .filter(|(_, p)| p.applied.as_deref() == Some(version.as_str()))
                    .count(),
            )
            .unwrap_or(u32::MAX),
            rejected: connected
                .iter()
                .filter_map(|(id, p)| match &p.rejected {
                    Some((v, reason)) if *v == version => Some(((*id).clone(), reason.clone())),
                    _ => None,
                })
                .collect(),
            dropped: connected
                .iter()
                .filter(|(_, p)| p.applied.as_deref() == Some(version.as_str()))
                .flat_map(|(id, p)| p.dropped.iter().map(|d| ((*id).clone(), d.clone())))
                .collect(),
            version,
        }
    }

    /// The latest usage report of every proxy that sent one.
    pub fn usage_reports(&self) -> Vec<UsageReport> {
        self.inner
            .usage
            .lock()
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Records a usage report (as `POST /v1/usage` does). Does not wake the reconciler: the
    /// rollup runs on its own interval.
    pub fn record_usage(&self, report: UsageReport) {
        if let Ok(mut usage) = self.inner.usage.lock() {
            crate::usage::keep(&mut usage, report);
        }
    }

    fn update(&self, proxy: &str, f: impl FnOnce(&mut ProxyState)) {
        if let Ok(mut proxies) = self.inner.proxies.lock() {
            f(proxies.entry(proxy.to_string()).or_default());
        }
        self.inner.changed.notify_one();
        self.inner.progress.send_modify(|n| *n += 1);
    }

    /// Serves HTTP/2 over TLS on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), PushError> {
        let acceptor = TlsAcceptor::from(tls);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => return Ok(()),
            };
            let acceptor = acceptor.clone();
            let server = self.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        debug!(%peer, "push: TLS handshake refused: {e}");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "push: TLS handshake timed out");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(request, peer).await) }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                    .max_header_list_size(16 * 1024)
                    .keep_alive_interval(KEEP_ALIVE_INTERVAL)
                    .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
                if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                    debug!(%peer, "push: connection ended: {e}");
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let limit = if parts.uri.path() == USAGE_PATH {
            MAX_USAGE_BYTES
        } else {
            MAX_REQUEST_BYTES
        };
        let body = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        };
        match (&parts.method, parts.uri.path()) {
            (&Method::POST, STREAM_PATH) => match serde_json::from_slice::<StreamRequest>(&body) {
                Ok(req) => self.stream(req, peer),
                Err(e) => plain(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid stream request: {e}"),
                ),
            },
            (&Method::POST, ACK_PATH) => match serde_json::from_slice::<Ack>(&body) {
                Ok(ack) => {
                    if ack.applied {
                        debug!(proxy = %ack.proxy_id, version = %ack.version, "proxy applied snapshot");
                        for part in &ack.dropped {
                            warn!(proxy = %ack.proxy_id, version = %ack.version, kind = %part.kind, id = %part.id, reason = %part.reason, "proxy left a part out of the snapshot");
                        }
                    } else {
                        warn!(proxy = %ack.proxy_id, version = %ack.version, reason = ack.reason.as_deref().unwrap_or(""), "proxy rejected snapshot");
                    }
                    self.update(&ack.proxy_id, |p| {
                        if ack.applied {
                            p.applied = Some(ack.version.clone());
                            p.rejected = None;
                            p.dropped.clone_from(&ack.dropped);
                        } else {
                            p.rejected =
                                Some((ack.version.clone(), ack.reason.clone().unwrap_or_default()));
                        }
                    });
                    plain(StatusCode::NO_CONTENT, "")
                }
                Err(e) => plain(StatusCode::BAD_REQUEST, &format!("invalid ack: {e}")),
            },
            (&Method::POST, USAGE_PATH) => match serde_json::from_slice::<UsageReport>(&body) {
                Ok(report) => {
                    debug!(proxy = %report.proxy_id, plans = report.plans.len(), "usage report");
                    self.record_usage(report);
                    plain(StatusCode::NO_CONTENT, "")
                }
                Err(e) => plain(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid usage report: {e}"),
                ),
            },
            _ => plain(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn stream(&self, req: StreamRequest, peer: SocketAddr) -> Response<Body> {
        info!(proxy = %req.proxy_id, %peer, version = req.version.as_deref().unwrap_or("-"), "proxy connected");
        self.update(&req.proxy_id, |p| {
            p.streams += 1;
            if req.version.is_some() {
                p.applied.clone_from(&req.version);
            }
        });
        let guard = StreamGuard {
            server: self.clone(),
            proxy: req.proxy_id.clone(),
        };
        let mut rx = self.inner.current.subscribe();
        rx.mark_changed();
        let state = (rx, guard, req.version);
        let frames = futures_util::stream::unfold(state, |(mut rx, guard, mut sent)| async move {
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                let Some(published) = rx.borrow_and_update().clone() else {
                    continue;
                };
                if sent.as_deref() == Some(published.snapshot.version.as_str()) {
                    continue;
                }
                let bytes = match &published.backends_delta {
                    Some((base, delta)) if sent.as_deref() == Some(base.as_str()) => delta.clone(),
                    _ => published.full.clone(),
                };
                sent = Some(published.snapshot.version.clone());
                return Some((Ok(BodyFrame::data(bytes)), (rx, guard, sent)));
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/x-causeway-frames")
            .body(BodyExt::boxed_unsync(StreamBody::new(frames.boxed())))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
    }
}

/// Counts a stream as open while its response body lives.
struct StreamGuard {
    server: PushServer,
    proxy: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        info!(proxy = %self.proxy, "proxy disconnected");
        if let Ok(mut proxies) = self.server.inner.proxies.lock() {
            let gone = proxies.get_mut(&self.proxy).is_some_and(|p| {
                p.streams = p.streams.saturating_sub(1);
                p.streams == 0
            });
            // A proxy that is gone no longer counts (pods come and go; the map stays bounded).
            if gone {
                proxies.remove(&self.proxy);
            }
        }
        self.server.inner.changed.notify_one();
        self.server.inner.progress.send_modify(|n| *n += 1);
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(
        text.to_string(),
    ))));
    *response.status_mut() = status;
    response
}
