//! Listeners: the accept loop shared by the traffic and admin listeners, with every hyper limit
//! set explicitly (hyper's and h2's defaults are not edge-safe), a connection cap, and graceful
//! draining on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::body::ProxyBody;
use crate::config::ProxyConfig;

/// hyper refuses (panics on) HTTP/1 buffers smaller than this.
const MIN_HTTP1_BUF: usize = 8192;
/// Pause after a failed `accept` (for example out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// HTTP/2 streams a client may reset before being answered (rapid-reset defence).
const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

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
    /// Counts open connections.
    pub gauge: Option<Gauge>,
    pub drain_timeout: Duration,
}

/// Decrements the connection gauge when a connection ends.
struct ConnectionGuard(Option<Gauge>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// Accepts connections until `shutdown` completes, then lets open connections finish their
/// requests for up to the drain timeout.
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
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        if let Some(g) = &settings.gauge {
            g.inc();
        }
        let guard = ConnectionGuard(settings.gauge.clone());
        let handler = handler.clone();
        // Every request of a connection carries what its TLS handshake established.
        let service = move |tls_info: Option<crate::context::TlsInfo>| {
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                let handler = handler.clone();
                if let Some(info) = &tls_info {
                    request.extensions_mut().insert(info.clone());
                }
                async move { Ok::<_, Infallible>(handler(request, peer).await) }
            })
        };
        let builder = settings.builder.clone();
        let watcher = graceful.watcher();
        let tls = settings.tls.clone();
        let handshake_timeout = settings.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _guard = guard;
            let result = match tls {
                None => {
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service(None))
                        .into_owned();
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let (stream, info) = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(accepted)) => accepted,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service(Some(info)))
                        .into_owned();
                    watcher.watch(connection).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
        }
    }
    Ok(())
}
