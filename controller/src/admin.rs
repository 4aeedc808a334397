//! The controller's admin endpoints (HTTP/1.1, port 9902): `/healthz`, `/readyz` (ready once
//! the first snapshot is published and, in a cluster, this replica leads), `/proxies` (JSON:
//! what each connected proxy runs), `/version` (the published snapshot version) and `/usage`
//! (JSON: today's usage rolled up from the proxies' reports, per plan; what `UsagePlan.status`
//! gets) and `/metrics` (Prometheus: the [`METRICS`], computed at each scrape).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::push::PushServer;

/// The metrics `/metrics` exports (the chart's dashboard and alerts use these names).
pub const METRICS: [&str; 5] = [
    "causeway_controller_leader",
    "causeway_controller_snapshot_info",
    "causeway_controller_proxies_connected",
    "causeway_controller_proxies_applied",
    "causeway_controller_push_certificate_expiry_timestamp_seconds",
];

/// What the admin endpoints show.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The push server.
    pub push: PushServer,
    /// Whether this replica should receive proxies.
    pub ready: Arc<AtomicBool>,
    /// The push server's certificate (for its expiry); `None` where there is none to report.
    pub push_cert: Option<Arc<crate::tls::ServerCert>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// The Prometheus text of the controller's metrics.
fn metrics(state: &AdminState) -> String {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let mut registry = prometheus_client::registry::Registry::default();
    let gauge = |value: i64| {
        let g = Gauge::<i64>::default();
        g.set(value);
        g
    };
    let rollout = state.push.rollout();
    registry.register(
        METRICS[0],
        "1 while this replica holds the leader Lease (and writes statuses)",
        gauge(i64::from(state.ready.load(Ordering::Relaxed))),
    );
    let info = Family::<VersionLabel, Gauge>::default();
    if !rollout.version.is_empty() {
        info.get_or_create(&VersionLabel {
            version: rollout.version.clone(),
        })
        .set(1);
    }
    registry.register(METRICS[1], "The published snapshot version (value 1)", info);
    registry.register(
        METRICS[2],
        "Proxies with an open push stream",
        gauge(i64::from(rollout.connected)),
    );
    registry.register(
        METRICS[3],
        "Connected proxies that applied the published snapshot",
        gauge(i64::from(rollout.applied)),
    );
    if let Some(cert) = &state.push_cert {
        registry.register(
            METRICS[4],
            "When the push channel's certificates expire (the earlier leaf), Unix seconds",
            gauge(cert.expires_unix()),
        );
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
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
        "/metrics" => (StatusCode::OK, metrics(state)),
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
