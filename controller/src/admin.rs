//! The controller's admin endpoints (HTTP/1.1, port 9902): `/healthz`, `/readyz` (ready once
//! the first snapshot is published and, in a cluster, this replica leads), `/proxies` (JSON:
//! what each connected proxy runs), `/version` (the published snapshot version) and `/usage`
//! (JSON: today's usage rolled up from the proxies' reports, per plan; what `UsagePlan.status`
//! gets).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::push::PushServer;

/// What the admin endpoints show.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The push server.
    pub push: PushServer,
    /// Whether this replica should receive proxies.
    pub ready: Arc<AtomicBool>,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, request.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn handle(state: &AdminState, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" if state.ready.load(Ordering::Relaxed) => (StatusCode::OK, "ready\n".into()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "/proxies" => (
            StatusCode::OK,
            serde_json::to_string_pretty(&serde_json::json!({
                "version": state.push.version(),
                "proxies": state.push.proxies(),
            }))
            .unwrap_or_default(),
        ),
        "/version" => (StatusCode::OK, state.push.version().unwrap_or_default()),
        "/usage" => {
            let reports = state.push.usage_reports();
            let mut plans: Vec<String> = reports
                .iter()
                .flat_map(|r| r.plans.iter().map(|p| p.plan.clone()))
                .collect();
            plans.sort();
            plans.dedup();
            let rollup = crate::usage::rollup(&reports, &plans, crate::usage::today());
            (
                StatusCode::OK,
                serde_json::to_string_pretty(&rollup).unwrap_or_default(),
            )
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".into()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
