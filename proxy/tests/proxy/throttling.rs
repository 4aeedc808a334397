use causeway_snapshot::{Snapshot, Throttle};
use http::{Method, StatusCode};

use crate::support::*;

/// A snapshot with `GET /limited` proxied to `upstream` and a mock `GET /other`, with a stage
/// throttle and a route throttle on `/limited`.
fn throttled(upstream: &Upstream, stage: Throttle, route: Throttle, other_body: &str) -> Snapshot {
    let mut limited = proxy_to("GET /limited", "up").build();
    limited.throttle = Some(route);
    let mut snapshot = SnapshotBuilder::new()
        .route(limited)
        .route(mock("GET /other", other_body))
        .backend("up", &[upstream.endpoint()])
        .build();
    snapshot.stages[0].throttle = Some(stage);
    snapshot.seal()
}

async fn statuses(proxy: &TestProxy, path: &str, n: usize) -> Vec<Answer> {
    let client = http1();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(&client, Method::GET, &proxy.url(path), HOST, &[]).await);
    }
    out
}

#[tokio::test]
async fn a_route_over_its_burst_gets_429_with_retry_after_and_the_backend_never_sees_it() {
    let upstream = Upstream::start("up").await;
    let route = Throttle {
        rate: 0.5,
        burst: 3,
    };
    let stage = Throttle {
        rate: 1000.0,
        burst: 1000,
    };
    let proxy = TestProxy::with_snapshot(throttled(&upstream, stage, route, "o")).await;
    let answers = statuses(&proxy, "/limited", 5).await;
    let codes: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    let refused = &answers[3];
    assert_eq!(refused.body, r#"{"message":"Too Many Requests"}"#);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    assert_eq!(
        upstream.seen().len(),
        3,
        "refused requests never reach the backend"
    );
    // Another route of the stage is not limited by /limited's bucket.
    assert_eq!(
        statuses(&proxy, "/other", 1).await[0].status,
        StatusCode::OK
    );
    // Each refusal is counted by reason.
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin")
        .await
        .body;
    assert!(
        metrics.contains(
            r#"causeway_proxy_throttled_requests_total{api="pets",stage="prod",reason="throttle"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_stage_throttle_covers_every_route_and_the_strictest_level_applies() {
    let upstream = Upstream::start("up").await;
    let stage = Throttle {
        rate: 0.0,
        burst: 4,
    };
    let route = Throttle {
        rate: 0.0,
        burst: 100,
    };
    let proxy = TestProxy::with_snapshot(throttled(&upstream, stage, route, "o")).await;
    let a = statuses(&proxy, "/limited", 2).await;
    let b = statuses(&proxy, "/other", 3).await;
    let codes: Vec<u16> = a.iter().chain(&b).map(|x| x.status.as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn a_swap_that_changes_an_unrelated_route_keeps_every_bucket_count() {
    let upstream = Upstream::start("up").await;
    let route = Throttle {
        rate: 0.0,
        burst: 3,
    };
    let stage = Throttle {
        rate: 0.0,
        burst: 1000,
    };
    let proxy = TestProxy::with_snapshot(throttled(&upstream, stage, route, "v1")).await;
    let before = statuses(&proxy, "/limited", 2).await;
    assert!(before.iter().all(|a| a.status == StatusCode::OK));
    // The mock route changes; throttle settings do not.
    proxy.proxy.apply(throttled(&upstream, stage, route, "v2"));
    assert_eq!(statuses(&proxy, "/other", 1).await[0].body, "v2");
    let after = statuses(&proxy, "/limited", 2).await;
    let codes: Vec<u16> = after.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(
        codes,
        [200, 429],
        "one token left after the swap, not a fresh bucket of 3"
    );
    // Changing the route's settings does start a fresh bucket.
    let fresh = Throttle {
        rate: 0.0,
        burst: 2,
    };
    proxy.proxy.apply(throttled(&upstream, stage, fresh, "v2"));
    let codes: Vec<u16> = statuses(&proxy, "/limited", 3)
        .await
        .iter()
        .map(|a| a.status.as_u16())
        .collect();
    assert_eq!(codes, [200, 200, 429]);
}
