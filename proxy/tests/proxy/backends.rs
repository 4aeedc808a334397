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
    assert!(seen.iter().all(|s| s.body_len == 1000), "{seen:?}");
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
    proxy.proxy.apply(build("d2")).expect("applies");
    for _ in 0..4 {
        assert_eq!(
            get(&http1(), &proxy.url("/x"), HOST).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(bad.seen().len(), 1, "still ejected after the swap");
}

/// An HTTPS backend with a certificate for `name` signed by a fresh CA; returns its address and
/// the CA (PEM). It answers `secure {path}`.
async fn tls_backend(name: &str) -> (std::net::SocketAddr, String) {
    tls_backend_requiring(name, None).await
}

/// A CA: its certificate (PEM) and an issuer for leaves.
fn test_ca(cn: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    (ca.pem(), rcgen::Issuer::new(ca_params, ca_key))
}

/// A client certificate for `cn` from `issuer`: (chain PEM, key PEM).
fn client_cert(cn: &str, issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).expect("client cert");
    (cert.pem(), key.serialize_pem())
}

/// [`tls_backend`] that, with `client_ca` (PEM), requires a client certificate from that CA.
async fn tls_backend_requiring(
    name: &str,
    client_ca: Option<&str>,
) -> (std::net::SocketAddr, String) {
    use std::sync::Arc;
    let (ca_pem, issuer) = test_ca("backend CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.expect("ca pem")).expect("root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let body = format!("secure {}", req.uri().path());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_pem)
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
    let (addr, ca) = tls_backend("billing.internal").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pay", "secure"))
        .backend("secure", &[addr.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(https_backend(snapshot, Some(ca))).await;
    let answer = get(&http1(), &proxy.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "secure /pay");
}

#[tokio::test]
async fn an_https_backend_with_an_untrusted_certificate_is_a_502() {
    let (addr, _ca) = tls_backend("billing.internal").await;
    let (_, other_ca) = tls_backend("billing.internal").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pay", "secure"))
        .backend("secure", &[addr.to_string()])
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
    let (client_ca, client_issuer) = test_ca("gateway clients");
    let (addr, ca) = tls_backend_requiring("billing.internal", Some(&client_ca)).await;
    let cert = client_cert("causeway-gateway", &client_issuer);
    let proxy = TestProxy::with_snapshot(mtls_snapshot(addr, ca, Some(cert))).await;
    let answer = get(&http1(), &proxy.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "secure /pay");
}

#[tokio::test]
async fn a_backend_that_requires_a_client_certificate_refuses_none_or_another_cas_with_a_502() {
    let (client_ca, _) = test_ca("gateway clients");
    let (_, stranger_issuer) = test_ca("someone else");
    let (addr, ca) = tls_backend_requiring("billing.internal", Some(&client_ca)).await;
    let without = TestProxy::with_snapshot(mtls_snapshot(addr, ca.clone(), None)).await;
    let answer = get(&http1(), &without.url("/pay"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let stranger = client_cert("causeway-gateway", &stranger_issuer);
    let wrong = TestProxy::with_snapshot(mtls_snapshot(addr, ca, Some(stranger))).await;
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
