//! Metrics with bounded labels and access-log lines with `$context` variables.

use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn byte_counters_and_the_deployment_label_are_exported() {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("POST /items", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let request = http::Request::post(proxy.url("/items"))
        .header("host", HOST)
        .header(RESPONSE_BYTES, "3000")
        .body(chunked_body(1000, None))
        .expect("request");
    let response = http1().request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body");
    let expected = [
        r#"causeway_proxy_request_bytes_total{api="pets",stage="prod",route="POST /items"} 1000"#,
        r#"causeway_proxy_response_bytes_total{api="pets",stage="prod",route="POST /items"} 3000"#,
        r#"causeway_proxy_requests_total{api="pets",stage="prod",route="POST /items",status_class="2xx",deployment="main"} 1"#,
        "causeway_proxy_upstream_connect_errors_total 0",
    ];
    // Recorded when the body ends, just after the client saw it.
    let metrics = proxy
        .wait_metrics(EVENTUALLY, |m| expected.iter().all(|e| m.contains(e)))
        .await;
    for expected in expected {
        assert!(metrics.contains(expected), "missing {expected}\n{metrics}");
    }
}

#[tokio::test]
async fn a_stage_access_log_format_fills_in_context_variables() {
    let upstream = Upstream::start("app").await;
    let mut snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pets/{id}", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    snapshot.stages[0].access_log.format = Some(
        "$context.requestId|$context.identity.sourceIp|$context.httpMethod|$context.path|\
         $context.routeKey|$context.status|$context.responseLength|$context.integration.status|\
         $context.domainName|lat=$context.responseLatency|int=$context.integrationLatency|\
         err=$context.error.message"
            .to_string(),
    );
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/7"),
        HOST,
        &[("x-request-id", "rid-1")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let logs = proxy.wait_logs(1).await;
    let line = logs.last().expect("a line");
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(
        &fields[..9],
        &[
            answer.headers["x-request-id"].to_str().unwrap_or_default(),
            "127.0.0.1",
            "GET",
            "/pets/7",
            "GET /pets/{id}",
            "200",
            "12",
            "200",
            HOST
        ],
        "{line}"
    );
    let latency: f64 = fields[9]
        .strip_prefix("lat=")
        .and_then(|v| v.parse().ok())
        .expect("latency in ms");
    assert!(latency > 0.0 && latency < 5000.0, "{line}");
    assert!(fields[10].starts_with("int="), "{line}");
    assert_eq!(fields[11], "err=-", "{line}");
}
