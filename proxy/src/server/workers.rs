//! Thread-per-core serving (`ProxyConfig::workers` ≥ 1), the way nginx runs workers: N OS
//! threads, each with its own single-threaded tokio runtime, accepting on the same listening
//! socket and owning its own upstream connection pool (handed to the pipeline with each
//! request). A request then lives on one thread from
//! accept to upstream and back: no work stealing, no cross-thread wake-ups between the client
//! connection's task and the upstream connection's task (in the benchmark those wake-ups —
//! futex calls and context switches — were the largest cost after the kernel's TCP work).
//!
//! Everything else stays shared: the runtime tables (`ArcSwap`), metrics (atomics), the
//! connection cap (one semaphore), TLS-origination clients.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::pipeline;
use crate::server::accept;
use crate::state::Shared;
use crate::upstream::Upstream;

/// What a listener serves: plain HTTP/1.1 and h2c, or TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    Tls,
}

/// Serves `listener` on `workers` threads until `shutdown` completes, then lets every worker
/// drain.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    workers: usize,
    kind: Kind,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut finished = Vec::with_capacity(workers);
    for index in 0..workers {
        let listener = listener.try_clone()?;
        let shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(match kind {
                Kind::Plain => format!("causeway-worker-{index}"),
                Kind::Tls => format!("causeway-tls-{index}"),
            })
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = TcpListener::from_std(listener)?;
                            let upstream = Arc::new(Upstream::with_counter(
                                &shared.config,
                                shared.upstream.connect_errors.clone(),
                            ));
                            let stopped = async move {
                                let _ = stop.wait_for(|s| *s).await;
                            };
                            // As a task, not as the `block_on` future: wake-ups of the
                            // `block_on` future go through the driver's eventfd.
                            tokio::spawn(serve_one(shared, upstream, listener, stopped, kind))
                                .await
                                .map_err(std::io::Error::other)?
                        })
                    });
                let _ = done_tx.send(result);
            })?;
        finished.push(done_rx);
    }
    drop(listener);
    let all = futures_util::future::join_all(finished);
    tokio::pin!(all);
    tokio::select! {
        _ = shutdown => {
            let _ = stop_tx.send(true);
            for result in all.await {
                result.map_err(std::io::Error::other)??;
            }
        }
        results = &mut all => {
            // Workers only stop early on an error; report the first.
            for result in results {
                result.map_err(std::io::Error::other)??;
            }
        }
    }
    Ok(())
}

/// One worker's accept loop (the same as the single-runtime one).
async fn serve_one(
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    kind: Kind,
) -> std::io::Result<()> {
    let settings = listener_settings(&shared, kind);
    let scheme = match kind {
        Kind::Plain => "http",
        Kind::Tls => "https",
    };
    let handler_shared = Arc::clone(&shared);
    accept::accept_loop(listener, shutdown, settings, move |request, peer| {
        pipeline::handle(
            Arc::clone(&handler_shared),
            Arc::clone(&upstream),
            request,
            peer,
            scheme,
        )
    })
    .await
}

/// The accept settings of a traffic listener: its connection cap (plain and TLS have one
/// each), the per-client cap, the gauge, and TLS termination for [`Kind::Tls`].
pub(crate) fn listener_settings(shared: &Arc<Shared>, kind: Kind) -> accept::ListenerSettings {
    let (tls, permits) = match kind {
        Kind::Plain => (None, Arc::clone(&shared.connections)),
        Kind::Tls => (
            Some(crate::server::tls::Acceptor::new(Arc::clone(shared))),
            Arc::clone(&shared.tls_connections),
        ),
    };
    accept::ListenerSettings {
        tls,
        permits: Some(permits),
        per_client: shared.per_client(),
        gauge: Some(shared.metrics.active_connections.clone()),
        ..accept::ListenerSettings::new(&shared.config)
    }
}
