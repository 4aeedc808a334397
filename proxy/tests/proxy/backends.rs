//! Backends: retries after refused connections, outlier ejection, load-balancing policies.

use std::time::Duration;

use causeway_proxy::ProxyConfig;
use http::{Method, StatusCode};

use crate::support::*;

fn ejecting_after(failures: u32) -> ProxyConfig {
    ProxyConfig {
        outlier_consecutive_failures: failures,
        outlier_base_ejection: Duration::from_secs(60),
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let good = Upstream::start("good").await;
    let closed = closed_port().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("POST /items", "app"))
        .backend("app", &[closed.to_string(), good.endpoint()])
        .build();
    let proxy = TestProxy::with_config(ejecting_after(0), snapshot).await;
    let client = http1();
    for _ in 0..4 {
        let request = http::Request::post(proxy.url("/items"))
            .header("host", HOST)
            .body(chunked_body(1000, None))
            .expect("request");
        let response = client.request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Every request reached the good endpoint once, with its whole body.
    let seen = good.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.body_len() == 1000), "{seen:?}");
    // Ejection is off here, so round robin offers the refusing endpoint first each time.
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin").await;
    assert!(
        metrics
            .body
            .contains("causeway_proxy_upstream_connect_errors_total 4"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn an_endpoint_answering_5xx_in_a_row_is_ejected_and_stops_receiving_traffic() {
    let bad = Upstream::start_with_status("bad", StatusCode::INTERNAL_SERVER_ERROR).await;
    let good = Upstream::start("good").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "app"))
        .backend("app", &[bad.endpoint(), good.endpoint()])
        .build();
    let proxy = TestProxy::with_config(ejecting_after(2), snapshot).await;
    let client = http1();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&client, &proxy.url("/x"), HOST).await.status);
    }
    assert_eq!(bad.seen().len(), 2, "ejected after two 5xx in a row");
    assert_eq!(good.seen().len(), 18);
    assert!(
        statuses[4..].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_last_endpoint_is_never_ejected_so_the_backend_answer_is_seen() {
    let bad = Upstream::start_with_status("bad", StatusCode::SERVICE_UNAVAILABLE).await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "app"))
        .backend("app", &[bad.endpoint()])
        .build();
    let proxy = TestProxy::with_config(ejecting_after(1), snapshot).await;
    for _ in 0..5 {
        let answer = get(&http1(), &proxy.url("/x"), HOST).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(bad.seen().len(), 5);
}

#[tokio::test]
async fn every_endpoint_refusing_is_a_502_with_the_api_gateway_response() {
    let a = closed_port().await;
    let b = closed_port().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "app"))
        .backend("app", &[a.to_string(), b.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = send(&http1(), Method::GET, &proxy.url("/x"), HOST, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.body, r#"{"message":"Bad Gateway"}"#);
}

#[tokio::test]
async fn an_ejection_survives_a_snapshot_swap_for_the_same_endpoint() {
    let bad = Upstream::start_with_status("bad", StatusCode::INTERNAL_SERVER_ERROR).await;
    let good = Upstream::start("good").await;
    let build = |deployment: &str| {
        SnapshotBuilder::new()
            .deployment(deployment)
            .route(proxy_to("GET /x", "app"))
            .backend("app", &[bad.endpoint(), good.endpoint()])
            .build()
    };
    let proxy = TestProxy::with_config(ejecting_after(1), build("d1")).await;
    for _ in 0..3 {
        get(&http1(), &proxy.url("/x"), HOST).await;
    }
    assert_eq!(bad.seen().len(), 1);
    proxy.proxy.apply(build("d2"));
    for _ in 0..4 {
        assert_eq!(
            get(&http1(), &proxy.url("/x"), HOST).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(bad.seen().len(), 1, "still ejected after the swap");
}

/// An HTTPS backend with a certificate for `name` signed by a fresh CA; returns it and the CA
/// (PEM). It answers `secure {path}`.
async fn tls_backend(name: &str) -> (Upstream, String) {
    tls_backend_requiring(name, None).await
}

/// [`tls_backend`] that, with `client_ca` (PEM), requires a client certificate from that CA.
async fn tls_backend_requiring(name: &str, client_ca: Option<&str>) -> (Upstream, String) {
    let ca = Ca::new("backend CA");
    let backend = Upstream::builder()
        .handler(std::sync::Arc::new(|seen: &Seen| {
            Reply::ok(format!("secure {}", seen.path))
        }))
        .tls(ca.leaf(name).server_config(client_ca, &[]))
        .start()
        .await;
    (backend, ca.pem().to_string())
}

fn https_backend(
    mut snapshot: causeway_snapshot::Snapshot,
    ca: Option<String>,
) -> causeway_snapshot::Snapshot {
    let backend = snapshot.backends.get_mut("secure").expect("backend");
    backend.scheme = causeway_snapshot::UpstreamScheme::Https;
    backend.tls = Some(causeway_snapshot::UpstreamTls {
        ca_pem: ca,
        server_name: Some("billing.internal".to_string()),
        ..causeway_snapshot::UpstreamTls::default()
    });
    snapshot.seal()
}

#[tokio::test]
async fn an_https_backend_is_reached_over_tls_verified_against_its_ca() {
    let (backend, ca) = tls_backend("billing.internal").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pay", "secure"))
        .backend("secure", &[backend.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(https_backend(snapshot, Some(ca))).await;
    let answer = get(&http1(), &proxy.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "secure /pay");
}

#[tokio::test]
async fn an_https_backend_with_an_untrusted_certificate_is_a_502() {
    let (backend, _ca) = tls_backend("billing.internal").await;
    let (_other, other_ca) = tls_backend("billing.internal").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pay", "secure"))
        .backend("secure", &[backend.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(https_backend(snapshot, Some(other_ca))).await;
    let answer = get(&http1(), &proxy.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
}

/// A snapshot whose backend `secure` at `addr` is https, trusting `ca`, presenting `client`.
fn mtls_snapshot(
    addr: std::net::SocketAddr,
    ca: String,
    client: Option<(String, String)>,
) -> causeway_snapshot::Snapshot {
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pay", "secure"))
        .backend("secure", &[addr.to_string()])
        .build();
    let mut snapshot = https_backend(snapshot, Some(ca));
    if let Some(tls) = snapshot
        .backends
        .get_mut("secure")
        .and_then(|b| b.tls.as_mut())
    {
        (tls.client_cert_pem, tls.client_key_pem) = client.unzip();
    }
    snapshot.seal()
}

#[tokio::test]
async fn a_backend_that_requires_a_client_certificate_gets_the_vpc_links_and_answers() {
    let clients = Ca::new("gateway clients");
    let (backend, ca) = tls_backend_requiring("billing.internal", Some(clients.pem())).await;
    let cert = clients.leaf("causeway-gateway").pem_pair();
    let proxy = TestProxy::with_snapshot(mtls_snapshot(backend.addr, ca, Some(cert))).await;
    let answer = get(&http1(), &proxy.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "secure /pay");
}

#[tokio::test]
async fn a_backend_that_requires_a_client_certificate_refuses_none_or_another_cas_with_a_502() {
    let clients = Ca::new("gateway clients");
    let strangers = Ca::new("someone else");
    let (backend, ca) = tls_backend_requiring("billing.internal", Some(clients.pem())).await;
    let without = TestProxy::with_snapshot(mtls_snapshot(backend.addr, ca.clone(), None)).await;
    let answer = get(&http1(), &without.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let stranger = strangers.leaf("causeway-gateway").pem_pair();
    let wrong = TestProxy::with_snapshot(mtls_snapshot(backend.addr, ca, Some(stranger))).await;
    let answer = get(&http1(), &wrong.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
}

#[tokio::test]
async fn an_h2c_backend_is_spoken_to_over_http2_with_its_host_as_authority() {
    let upstream = Upstream::start("grpcish").await;
    let mut snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /h2", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    snapshot.backends.get_mut("app").expect("backend").http2 = true;
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;
    for _ in 0..3 {
        let answer = get(&http1(), &proxy.url("/h2"), HOST).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, "grpcish /h2?");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{seen:?}"
    );
}
