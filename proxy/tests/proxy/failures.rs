use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn a_slow_backend_gets_a_504_when_its_timeout_expires() {
    let upstream = Upstream::start("slow").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /slow", "slow").timeout_ms(200))
        .backend("slow", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let started = Instant::now();
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/slow"),
        HOST,
        &[(DELAY_MS, "3000")],
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.body, r#"{"message":"Endpoint request timed out"}"#);
    assert!(
        elapsed >= Duration::from_millis(200),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_closed_backend_port_is_a_502() {
    let closed = closed_port().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /down", "down"))
        .backend("down", &[closed.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = get(&http1(), &proxy.url("/down"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(answer.body.contains("message"), "{}", answer.body);
    let log = proxy.logs.lock().expect("logs").join("\n");
    assert!(log.contains("cannot connect to backend down"), "{log}");
}

#[tokio::test]
async fn a_backend_without_endpoints_is_a_503() {
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /none", "none"))
        .backend("none", &[])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = get(&http1(), &proxy.url("/none"), HOST).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body, r#"{"message":"Service Unavailable"}"#);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_the_backend_is_called() {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("POST /pets", "pets"))
        .backend("pets", &[upstream.endpoint()])
        .max_body_bytes(1024)
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let request = http::Request::post(proxy.url("/pets"))
        .header("host", HOST)
        .header("content-length", "4096")
        .body(chunked_body(4096, None))
        .expect("request");
    let response = http1().request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn dot_segments_in_the_path_are_a_bad_request() {
    let proxy =
        TestProxy::with_snapshot(SnapshotBuilder::new().route(mock("$default", "x")).build()).await;
    for path in ["/public/../admin", "/public/%2e%2E/admin"] {
        let answer = get(&http1(), &proxy.url(path), HOST).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn a_stage_whose_routes_conflict_is_dropped_and_reported_not_served_half_built() {
    let good = SnapshotBuilder::new().route(mock("GET /a", "a")).build();
    let proxy = TestProxy::with_snapshot(good.clone()).await;
    let bad = SnapshotBuilder::new()
        .route(mock("GET /a/{x}", "1"))
        .route(mock("GET /a/{y}", "2"))
        .build();
    let applied = proxy.proxy.apply(bad.clone());
    assert_eq!(applied.dropped.len(), 1, "{:?}", applied.dropped);
    assert_eq!(applied.dropped[0].kind, "stage");
    assert_eq!(applied.dropped[0].id, STAGE);
    assert_eq!(proxy.proxy.version(), Some(bad.version));
    let answer = get(&http1(), &proxy.url("/a/1"), HOST).await;
    assert!(!["1", "2"].contains(&answer.body.as_str()), "{answer:?}");
}
