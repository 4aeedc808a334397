//! Usage plans at work: per-key throttles (plan-wide and per route), quotas, and the usage
//! report — through real sockets, keyed by real API keys.

use causeway_snapshot::{
    ApiKeyConfig, PlanStage, Quota, QuotaPeriod, Snapshot, Throttle, UsagePlanConfig,
};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::support::*;

const ALICE: &str = "alice-raw-key-0123456789abcdef";
const CAROL: &str = "carol-raw-key-0123456789abcdef";

fn key(id: &str, value: &str) -> ApiKeyConfig {
    ApiKeyConfig {
        id: id.to_string(),
        sha256: hex::encode(Sha256::digest(value.as_bytes())),
        enabled: true,
        throttle: None,
        quota: None,
    }
}

/// Plan `default/gold`: a quota of `quota` per day for each key, a per-key throttle of burst
/// `burst`, and `GET /slow` limited to one request per key (no refill).
fn plan_snapshot(quota: u64, burst: u32) -> Snapshot {
    let mut fast = mock("GET /fast", "fast");
    fast.api_key_required = true;
    let mut slow = mock("GET /slow", "slow");
    slow.api_key_required = true;
    let mut snapshot = SnapshotBuilder::new().route(fast).route(slow).build();
    snapshot.usage_plans = vec![UsagePlanConfig {
        id: "default/gold".into(),
        stages: vec![PlanStage {
            stage: STAGE.into(),
            route_throttles: [(
                "GET /slow".to_string(),
                Throttle {
                    rate: 0.0,
                    burst: 1,
                },
            )]
            .into(),
        }],
        throttle: Some(Throttle { rate: 0.0, burst }),
        quota: Some(Quota {
            limit: quota,
            period: QuotaPeriod::Day,
            offset: 0,
        }),
        fail_closed: true,
        rate_limit_headers: false,
        keys: vec![key("alice", ALICE), key("carol", CAROL)],
    }];
    snapshot.seal()
}

async fn call(proxy: &TestProxy, path: &str, key: &str) -> Answer {
    send(
        &http1(),
        Method::GET,
        &proxy.url(path),
        HOST,
        &[("x-api-key", key)],
    )
    .await
}

#[tokio::test]
async fn a_key_gets_exactly_its_quota_then_429_limit_exceeded_until_the_next_day() {
    let (proxy, clock) = TestProxy::with_manual_clock(plan_snapshot(5, 1000)).await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(call(&proxy, "/fast", ALICE).await.status.as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    let refused = call(&proxy, "/fast", ALICE).await;
    assert_eq!(refused.body, r#"{"message":"Limit Exceeded"}"#);
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "retry-after {retry}");
    // Each key has its own quota.
    assert_eq!(call(&proxy, "/fast", CAROL).await.status, StatusCode::OK);
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin")
        .await
        .body;
    assert!(
        metrics.contains(
            r#"causeway_proxy_throttled_requests_total{api="pets",stage="prod",reason="quota"} 4"#
        ),
        "{metrics}"
    );
    // The next day (UTC) is a new quota period.
    clock.advance(std::time::Duration::from_secs(86_400));
    assert_eq!(call(&proxy, "/fast", ALICE).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_plan_throttle_applies_per_key_and_a_plan_route_throttle_per_key_and_route() {
    let proxy = TestProxy::with_snapshot(plan_snapshot(1000, 3)).await;
    let alice: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(call(&proxy, "/fast", ALICE).await.status.as_u16());
        }
        v
    };
    assert_eq!(alice, [200, 200, 200, 429]);
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin")
        .await
        .body;
    assert!(
        metrics.contains(
            r#"causeway_proxy_throttled_requests_total{api="pets",stage="prod",reason="usage_plan"} 1"#
        ),
        "{metrics}"
    );
    let throttled = call(&proxy, "/fast", ALICE).await;
    assert_eq!(throttled.body, r#"{"message":"Too Many Requests"}"#);
    // Carol's bucket is her own; /slow allows one request per key.
    assert_eq!(call(&proxy, "/slow", CAROL).await.status, StatusCode::OK);
    assert_eq!(
        call(&proxy, "/slow", CAROL).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Carol's burst is 3: /slow took one; the refused /slow gave its plan-wide token back, so
    // two are left.
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(call(&proxy, "/fast", CAROL).await.status.as_u16());
    }
    assert_eq!(codes, [200, 200, 429]);
}

#[tokio::test]
async fn the_usage_report_counts_admitted_and_throttled_requests_per_key() {
    let proxy = TestProxy::with_snapshot(plan_snapshot(4, 1000)).await;
    for _ in 0..6 {
        call(&proxy, "/fast", ALICE).await;
    }
    call(&proxy, "/fast", CAROL).await;
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.admin_url("/usage?plan=default/gold"),
        HOST,
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let report: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let today = report["startDate"].as_str().unwrap().to_string();
    assert_eq!(
        report["items"]["alice"][&today],
        serde_json::json!({"admitted": 4, "throttled": 2})
    );
    assert_eq!(
        report["items"]["carol"][&today],
        serde_json::json!({"admitted": 1, "throttled": 0})
    );
    let bad = send(&http1(), Method::GET, &proxy.admin_url("/usage"), HOST, &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_swap_that_changes_an_unrelated_route_keeps_each_keys_quota_count() {
    let proxy = TestProxy::with_snapshot(plan_snapshot(3, 1000)).await;
    for _ in 0..2 {
        assert_eq!(call(&proxy, "/fast", ALICE).await.status, StatusCode::OK);
    }
    let mut changed = plan_snapshot(3, 1000);
    changed.stages[0].main.routes.push(mock("GET /new", "new"));
    changed.stages[0]
        .main
        .routes
        .sort_by(|a, b| a.key.cmp(&b.key));
    proxy.proxy.apply(changed.seal());
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(call(&proxy, "/fast", ALICE).await.status.as_u16());
        }
        v
    };
    assert_eq!(
        codes,
        [200, 429],
        "one request of the quota was left, not a fresh quota"
    );
}

#[tokio::test]
async fn a_plan_with_rate_limit_headers_tells_each_key_its_limit_remaining_and_reset() {
    let mut snapshot = plan_snapshot(1000, 3);
    snapshot.usage_plans[0].rate_limit_headers = true;
    snapshot.usage_plans[0].throttle = Some(Throttle {
        rate: 1.0,
        burst: 3,
    });
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;
    let header =
        |a: &Answer, name: &str| -> u64 { a.headers[name].to_str().unwrap().parse().unwrap() };
    let first = call(&proxy, "/fast", ALICE).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(header(&first, "ratelimit-limit"), 3);
    assert_eq!(header(&first, "ratelimit-remaining"), 2);
    assert!((1..=2).contains(&header(&first, "ratelimit-reset")));
    call(&proxy, "/fast", ALICE).await;
    call(&proxy, "/fast", ALICE).await;
    let refused = call(&proxy, "/fast", ALICE).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    // Without the plan's flag, no headers.
    let plain = TestProxy::with_snapshot(plan_snapshot(1000, 3)).await;
    assert!(
        call(&plain, "/fast", ALICE)
            .await
            .headers
            .get("ratelimit-limit")
            .is_none()
    );
}
