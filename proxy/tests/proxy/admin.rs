use http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn metrics_count_requests_by_api_stage_route_and_status_class() {
    let proxy = TestProxy::with_snapshot(
        SnapshotBuilder::new()
            .route(mock("GET /pets/{id}", "{id}"))
            .build(),
    )
    .await;
    let client = http1();
    assert_eq!(
        get(&client, &proxy.url("/pets/1"), HOST).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&client, &proxy.url("/nope"), HOST).await.status,
        StatusCode::FORBIDDEN
    );

    let expected = [
        r#"causeway_proxy_requests_total{api="pets",stage="prod",route="GET /pets/{id}",status_class="2xx",deployment="main"} 1"#,
        r#"causeway_proxy_requests_total{api="pets",stage="prod",route="$none",status_class="4xx",deployment="main"} 1"#,
        r#"causeway_proxy_request_duration_seconds_count{api="pets",stage="prod",route="GET /pets/{id}",status_class="2xx",deployment="main"} 1"#,
        "causeway_proxy_snapshot_info{version=",
        "causeway_proxy_active_connections",
    ];
    // Metrics are recorded when the response body ends.
    let text = proxy
        .wait_metrics(EVENTUALLY, |m| expected.iter().all(|e| m.contains(e)))
        .await;
    for line in expected {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn config_dump_returns_the_applied_snapshot_with_its_version() {
    let snapshot = SnapshotBuilder::new().route(mock("GET /pets", "x")).build();
    let proxy = TestProxy::with_snapshot(snapshot.clone()).await;
    let answer = get(&http1(), &proxy.admin_url("/config_dump"), "admin").await;
    assert_eq!(answer.status, StatusCode::OK);
    let dump: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(dump["version"], snapshot.version.as_str());
    assert_eq!(proxy.proxy.version(), Some(snapshot.version));
}

#[tokio::test]
async fn every_request_writes_one_json_access_log_line() {
    let proxy = TestProxy::with_snapshot(
        SnapshotBuilder::new()
            .route(mock("GET /pets/{id}", "{id}"))
            .build(),
    )
    .await;
    let answer = send(
        &http1(),
        http::Method::GET,
        &proxy.url("/pets/42"),
        HOST,
        &[("x-request-id", "log-1")],
    )
    .await;
    assert_eq!(answer.body, "42");
    let lines = proxy.wait_logs(1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("json line");
    // Not a trusted hop: the client's id is replaced, and the log shows the one it got back.
    assert_ne!(line["requestId"], "log-1");
    assert_eq!(
        line["requestId"],
        answer.headers["x-request-id"].to_str().unwrap_or_default()
    );
    assert_eq!(line["ip"], "127.0.0.1");
    assert_eq!(line["httpMethod"], "GET");
    assert_eq!(line["path"], "/pets/42");
    assert_eq!(line["routeKey"], "GET /pets/{id}");
    assert_eq!(line["status"], 200);
    assert_eq!(line["responseLength"], 2);
    assert_eq!(line["api"], "pets");
    assert_eq!(line["stage"], "prod");
    assert_eq!(line["deploymentId"], "d1");
}
