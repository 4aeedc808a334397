use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;

use crate::support::*;

const FIFTY_MB: u64 = 50 * 1024 * 1024;

#[tokio::test]
async fn fifty_megabytes_stream_to_the_upstream_and_back_without_being_buffered() {
    let upstream = Upstream::start("store").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("POST /upload", "store"))
        .backend("store", &[upstream.endpoint()])
        .max_body_bytes(2 * FIFTY_MB)
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;

    // The upstream samples this counter when the first body byte arrives: if the proxy
    // buffered the request, the client would have produced everything by then.
    let produced = upstream.probe.clone();
    let started = Instant::now();
    let request = Request::post(proxy.url("/upload"))
        .header("host", HOST)
        .header(RESPONSE_BYTES, FIFTY_MB.to_string())
        .body(chunked_body(FIFTY_MB, Some(produced)))
        .expect("request");
    let response = http1().request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("frame").data_ref() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, FIFTY_MB, "response bytes");
    let seen = upstream.seen();
    assert_eq!(
        seen[0].body_len(),
        FIFTY_MB,
        "request bytes at the upstream"
    );
    let at_first_byte = seen[0].probe_at_first_byte.expect("body arrived");
    assert!(
        at_first_byte < FIFTY_MB / 4,
        "the upstream saw its first byte only after {at_first_byte} bytes were produced"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_are_set() {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .route(
            proxy_to("GET /pets/{id}", "pets")
                .path("/v2/pets/{id}")
                .header("x-api-version", "2"),
        )
        .backend("pets", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let headers = [
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "secret"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("te", "trailers"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-request-id", "req-123"),
        ("x-end-to-end", "kept"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/5?q=1"),
        "api.test:8080",
        &headers,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "pets /v2/pets/5?q=1");
    // A client that is not a trusted hop cannot choose its request id.
    let request_id = answer.headers["x-request-id"].clone();
    assert_ne!(request_id, "req-123");

    let seen = upstream.seen();
    let h = &seen[0].headers;
    for gone in ["x-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(!h.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    // The client is not a trusted hop: its X-Forwarded-For is replaced, not extended.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.test:8080");
    assert_eq!(h["host"], "pets.default.svc");
    assert_eq!(h["x-request-id"], request_id);
    assert_eq!(h["x-api-version"], "2");
    assert_eq!(
        h["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "W3C trace context is propagated"
    );
}

#[tokio::test]
async fn requests_are_spread_round_robin_over_the_endpoints() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "svc"))
        .backend("svc", &[a.endpoint(), b.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let client = http1();
    for _ in 0..4 {
        assert_eq!(
            get(&client, &proxy.url("/x"), HOST).await.status,
            StatusCode::OK
        );
    }
    assert_eq!((a.seen().len(), b.seen().len()), (2, 2));
}

#[tokio::test]
async fn a_generated_request_id_is_returned_and_sent_upstream() {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "pets"))
        .backend("pets", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = get(&http1(), &proxy.url("/x"), HOST).await;
    let id = answer.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(upstream.seen()[0].headers["x-request-id"], id.as_str());
}

#[tokio::test]
async fn worker_threads_serve_and_forward_like_the_single_runtime() {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pets/{id}", "pets"))
        .backend("pets", &[upstream.endpoint()])
        .build();
    let config = causeway_proxy::ProxyConfig {
        workers: 2,
        ..causeway_proxy::ProxyConfig::default()
    };
    let proxy = TestProxy::with_config(config, snapshot).await;
    // Separate connections, so that both workers get some.
    let answers = futures_util::future::join_all((0..8).map(|i| {
        let url = proxy.url(&format!("/pets/{i}"));
        async move { get(&http1(), &url, HOST).await }
    }))
    .await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(upstream.seen().len(), 8);
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin")
        .await
        .body;
    assert!(
        metrics.contains(r#"route="GET /pets/{id}",status_class="2xx",deployment="main"} 8"#),
        "{metrics}"
    );
}
