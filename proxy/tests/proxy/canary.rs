//! Canary splits: accuracy, the exact ends, and stickiness.

use std::sync::Arc;

use causeway_snapshot::Sticky;
use http::Method;

use crate::support::*;

/// Sends `n` requests over `conns` connections; returns how many the canary served.
async fn canary_share(
    proxy: &TestProxy,
    n: usize,
    conns: usize,
    headers: Vec<(String, String)>,
) -> usize {
    let url = Arc::new(proxy.url("/v"));
    let headers = Arc::new(headers);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let (url, headers) = (url.clone(), headers.clone());
        let count = n / conns + usize::from(c < n % conns);
        tasks.spawn(async move {
            let client = http1();
            let mut canary = 0;
            for _ in 0..count {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let answer = send(&client, Method::GET, &url, HOST, &h).await;
                assert_eq!(answer.status, 200);
                if answer.body == "canary" {
                    assert_eq!(answer.headers["x-causeway-canary"], "true");
                    canary += 1;
                } else {
                    assert_eq!(answer.body, "main");
                    assert!(answer.headers.get("x-causeway-canary").is_none());
                }
            }
            canary
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("client task");
    }
    total
}

async fn proxy_with_canary(percent: f64, sticky: Option<Sticky>) -> TestProxy {
    let mut snapshot = SnapshotBuilder::new()
        .route(mock("GET /v", "main"))
        .canary(percent, vec![mock("GET /v", "canary")])
        .build();
    if let Some(c) = snapshot.stages[0].canary.as_mut() {
        c.sticky = sticky;
    }
    TestProxy::with_snapshot(snapshot.seal()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_twenty_thousand_requests_at_ten_percent_send_ten_percent_plus_minus_one_to_the_canary()
 {
    let proxy = proxy_with_canary(10.0, None).await;
    let n = 20_000;
    let canary = canary_share(&proxy, n, 16, vec![]).await;
    let share = canary as f64 / n as f64 * 100.0;
    assert!((9.0..=11.0).contains(&share), "canary share {share:.2} %");
}

#[tokio::test]
async fn zero_percent_sends_none_and_one_hundred_percent_sends_all() {
    let none = proxy_with_canary(0.0, None).await;
    assert_eq!(canary_share(&none, 500, 4, vec![]).await, 0);
    let all = proxy_with_canary(100.0, None).await;
    assert_eq!(canary_share(&all, 500, 4, vec![]).await, 500);
}

#[tokio::test]
async fn a_sticky_header_keeps_each_client_on_one_side_and_clients_spread_over_both() {
    let proxy = proxy_with_canary(50.0, Some(Sticky::Header("x-user".into()))).await;
    let mut sides = Vec::new();
    for user in 0..40 {
        let header = vec![("x-user".to_string(), format!("user-{user}"))];
        let canary = canary_share(&proxy, 10, 1, header).await;
        assert!(
            canary == 0 || canary == 10,
            "user-{user} was split: {canary} of 10 on the canary"
        );
        sides.push(canary == 10);
    }
    let on_canary = sides.iter().filter(|s| **s).count();
    assert!(
        (8..=32).contains(&on_canary),
        "{on_canary} of 40 users on the canary"
    );
}

#[tokio::test]
async fn a_sticky_cookie_keeps_a_client_on_one_side() {
    let proxy = proxy_with_canary(50.0, Some(Sticky::Cookie("session".into()))).await;
    for user in 0..10 {
        let header = vec![("cookie".to_string(), format!("theme=dark; session=s{user}"))];
        let canary = canary_share(&proxy, 8, 1, header).await;
        assert!(
            canary == 0 || canary == 8,
            "session s{user} was split: {canary} of 8"
        );
    }
}
