use causeway_snapshot::{ApiKeyConfig, PlanStage, Snapshot, UsagePlanConfig};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::support::*;

const ALICE: &str = "alice-raw-key-0123456789abcdef";
const BOB: &str = "bob-raw-key-0123456789abcdef00";

fn key(id: &str, value: &str, enabled: bool) -> ApiKeyConfig {
    ApiKeyConfig {
        id: id.to_string(),
        sha256: hex::encode(Sha256::digest(value.as_bytes())),
        enabled,
        throttle: None,
        quota: None,
    }
}

/// `GET /private` needs a key, `GET /public` does not; plan `gold` binds alice (enabled) and
/// bob (disabled) to the stage.
fn keyed_snapshot() -> Snapshot {
    let mut private = mock("GET /private", "secret stuff");
    private.api_key_required = true;
    let mut snapshot = SnapshotBuilder::new()
        .route(private)
        .route(mock("GET /public", "hello"))
        .build();
    snapshot.usage_plans = vec![UsagePlanConfig {
        id: "default/gold".into(),
        stages: vec![PlanStage {
            stage: STAGE.into(),
            route_throttles: Default::default(),
        }],
        throttle: None,
        quota: None,
        fail_closed: true,
        rate_limit_headers: false,
        keys: vec![key("alice", ALICE, true), key("bob", BOB, false)],
    }];
    snapshot.seal()
}

async fn with_key(proxy: &TestProxy, path: &str, key: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    send(&http1(), Method::GET, &proxy.url(path), HOST, &headers).await
}

#[tokio::test]
async fn a_route_that_requires_a_key_refuses_missing_unknown_and_disabled_keys_with_403() {
    let proxy = TestProxy::with_snapshot(keyed_snapshot()).await;
    for key in [None, Some("not-a-key-of-any-plan-000000"), Some(BOB)] {
        let answer = with_key(&proxy, "/private", key).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "key {key:?}");
        assert_eq!(answer.body, r#"{"message":"Forbidden"}"#, "key {key:?}");
    }
    let ok = with_key(&proxy, "/private", Some(ALICE)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, "secret stuff");
    assert_eq!(
        with_key(&proxy, "/public", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_key_id_reaches_the_access_log_and_the_raw_key_does_not() {
    let proxy = TestProxy::with_snapshot(keyed_snapshot()).await;
    assert_eq!(
        with_key(&proxy, "/private", Some(ALICE)).await.status,
        StatusCode::OK
    );
    let line = proxy.wait_logs(1).await.last().cloned().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(json["apiKeyId"], "alice");
    assert!(!line.contains(ALICE), "raw key in log: {line}");
}

#[tokio::test]
async fn only_key_hashes_appear_in_the_snapshot_bytes_and_in_config_dump() {
    let snapshot = keyed_snapshot();
    let bytes = String::from_utf8(snapshot.to_bytes()).expect("utf-8");
    for raw in [ALICE, BOB] {
        assert!(!bytes.contains(raw), "raw key in snapshot bytes");
    }
    assert!(bytes.contains(&hex::encode(Sha256::digest(ALICE.as_bytes()))));
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let dump = get(&http1(), &proxy.admin_url("/config_dump"), "admin")
        .await
        .body;
    assert!(!dump.contains(ALICE) && !dump.contains(BOB));
    assert!(dump.contains(&hex::encode(Sha256::digest(BOB.as_bytes()))));
}

#[tokio::test]
async fn a_key_of_a_plan_bound_to_another_stage_is_refused() {
    let mut snapshot = keyed_snapshot();
    snapshot.usage_plans[0].stages[0].stage = "default/pets/beta".into();
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;
    let answer = with_key(&proxy, "/private", Some(ALICE)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}
