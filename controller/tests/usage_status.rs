//! The usage rollup in `UsagePlan.status`, against a mock API server (tower-test): the leader
//! patches `counting`, `usage` and `QuotaStoreAvailable` from the proxies' reports, and writes
//! nothing when the rollup did not change or when there is none yet.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use causeway_compile::{CompileOptions, Inventory, compile};
use causeway_controller::kube::Client;
use causeway_controller::kube::client::Body;
use causeway_controller::status::Rollout;
use causeway_controller::usage;
use causeway_controller::writer::StatusWriter;
use causeway_snapshot::push::{KeyCount, PlanUsage, UsageReport};
use http::{Method, Request, Response};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const DAY: u64 = 20_413; // 2025-11-21

const YAML: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: shop, namespace: default, generation: 1}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: orders, namespace: default, generation: 1}
spec:
  apiRef: {name: shop}
  routeKey: GET /orders
  apiKeyRequired: true
  integration: {type: MOCK, mock: {body: orders}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: prod, namespace: default, generation: 1}
spec:
  apiRef: {name: shop}
  autoDeploy: true
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: default}
stringData: {alice: alice-0123456789abcdefghij, bob: bob-0123456789abcdefghijkl}
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {name: gold, namespace: default, generation: 3}
spec:
  apiStages: [{api: shop, stage: prod}]
  quota: {limit: 1000, period: DAY}
  failMode: FAIL_OPEN
  apiKeys:
    - {id: alice, secretRef: {name: keys, key: alice}}
    - {id: bob, secretRef: {name: keys, key: bob}}
"#;

fn inventory() -> Inventory {
    let mut inventory = Inventory::default();
    inventory.add_yaml("shop.yaml", YAML).expect("YAML parses");
    inventory
}

fn rollout() -> Rollout {
    Rollout {
        version: "v1".into(),
        connected: 2,
        applied: 2,
        rejected: vec![],
        dropped: vec![],
    }
}

/// Two proxies counting in Redis; `p-2` could not reach it since its last report.
fn reports() -> Vec<UsageReport> {
    let report = |proxy: &str, available: bool, keys: &[(&str, u64, u64)]| UsageReport {
        proxy_id: proxy.into(),
        day: DAY,
        shared: true,
        store_available: available,
        plans: vec![PlanUsage {
            plan: "default/gold".into(),
            admitted: keys.iter().map(|k| k.1).sum(),
            throttled: keys.iter().map(|k| k.2).sum(),
            keys: keys
                .iter()
                .map(|(id, a, t)| KeyCount {
                    id: (*id).into(),
                    admitted: *a,
                    throttled: *t,
                })
                .collect(),
        }],
    };
    vec![
        report("p-1", true, &[("alice", 600, 10), ("bob", 40, 0)]),
        report("p-2", false, &[("alice", 400, 90)]),
    ]
}

fn rolled_up() -> BTreeMap<String, usage::PlanRollup> {
    usage::rollup(&reports(), &["default/gold".to_string()], DAY)
}

/// Every object of the inventory as JSON, by `plural/name`, to answer patches with.
fn objects(inventory: &Inventory) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for o in &inventory.apis {
        out.insert(
            format!("apis/{}", o.metadata.name.clone().unwrap_or_default()),
            json!(o),
        );
    }
    for o in &inventory.routes {
        out.insert(
            format!("routes/{}", o.metadata.name.clone().unwrap_or_default()),
            json!(o),
        );
    }
    for o in &inventory.stages {
        out.insert(
            format!("stages/{}", o.metadata.name.clone().unwrap_or_default()),
            json!(o),
        );
    }
    for o in &inventory.usage_plans {
        out.insert(
            format!("usageplans/{}", o.metadata.name.clone().unwrap_or_default()),
            json!(o),
        );
    }
    out
}

/// Answers status patches (echoing the object with the patched status) until none comes for a
/// while; returns `(plural/name, patch)` of each.
async fn answer_patches(
    mut handle: Handle,
    objects: HashMap<String, Value>,
) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    while let Ok(Some((request, send))) =
        tokio::time::timeout(Duration::from_millis(500), handle.next_request()).await
    {
        assert_eq!(request.method(), Method::PATCH);
        let path = request.uri().path().to_string();
        let parts: Vec<&str> = path.split('/').collect();
        // /apis/causeway.dev/v1alpha1/namespaces/default/{plural}/{name}/status
        let key = format!("{}/{}", parts[6], parts[7]);
        let patch: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                .expect("JSON patch");
        let mut object = objects.get(&key).cloned().expect("a known object");
        object["status"] = patch["status"].clone();
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&object).expect("object")))
                .expect("response"),
        );
        seen.push((key, patch));
    }
    seen
}

fn mock_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

#[tokio::test]
async fn the_leader_writes_the_usage_rollup_into_the_plan_status_and_nothing_when_it_is_unchanged()
{
    let (client, handle) = mock_client();
    let mut inventory = inventory();
    let compiled = compile(&inventory, &CompileOptions::default());
    let server = tokio::spawn(answer_patches(handle, objects(&inventory)));
    let mut writer = StatusWriter::new(client, None);
    writer.set_usage(rolled_up());
    writer
        .write(
            &inventory,
            &compiled.statuses,
            &rollout(),
            &BTreeMap::new(),
            "T1",
        )
        .await;
    let patches = server.await.expect("mock server");
    let (_, patch) = patches
        .iter()
        .find(|(key, _)| key == "usageplans/gold")
        .expect("the plan's status is patched");
    let status = &patch["status"];
    assert_eq!(status["counting"], "Shared");
    assert_eq!(
        status["usage"],
        json!({
            "periodStart": "2025-11-21T00:00:00Z",
            "admitted": 1040,
            "throttled": 100,
            "topKeys": [
                {"id": "alice", "admitted": 1000, "throttled": 100},
                {"id": "bob", "admitted": 40, "throttled": 0},
            ],
        })
    );
    let store = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "QuotaStoreAvailable"))
        .expect("a QuotaStoreAvailable condition");
    assert_eq!(store["status"], "False");
    assert_eq!(store["reason"], "StoreUnavailableFailOpen");
    assert_eq!(store["observedGeneration"], 3);
    assert!(
        store["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 of 2 proxies cannot reach Redis (p-2)")),
        "{store}"
    );
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(
        ready["status"], "True",
        "the store does not make the plan unready"
    );

    // Store what the server has, as the watch would.
    for (key, patch) in &patches {
        let status = patch["status"].clone();
        match key.split('/').next() {
            Some("usageplans") => {
                inventory.usage_plans[0].status = Some(serde_json::from_value(status).unwrap());
            }
            Some("apis") => {
                inventory.apis[0].status = Some(serde_json::from_value(status).unwrap())
            }
            Some("routes") => {
                inventory.routes[0].status = Some(serde_json::from_value(status).unwrap());
            }
            Some("stages") => {
                inventory.stages[0].status = Some(serde_json::from_value(status).unwrap());
            }
            _ => {}
        }
    }

    // The same rollup a minute later: no write. A new leader with no rollup yet: no write
    // either (it keeps what the previous leader wrote rather than erasing it).
    for set in [true, false] {
        let (client, mut handle) = mock_client();
        let mut writer = StatusWriter::new(client, None);
        if set {
            writer.set_usage(rolled_up());
        }
        let compiled = compile(&inventory, &CompileOptions::default());
        let report = writer
            .write(
                &inventory,
                &compiled.statuses,
                &rollout(),
                &BTreeMap::new(),
                "T2",
            )
            .await;
        assert_eq!(report.patched, 0, "rollup set: {set}");
        let request = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
        assert!(request.is_err(), "no request reaches the API server");
    }

    // More traffic: one patch of the plan, with the new totals.
    let mut more = reports();
    more[0].plans[0].keys[1].admitted += 5;
    more[0].plans[0].admitted += 5;
    let (client, handle) = mock_client();
    let server = tokio::spawn(answer_patches(handle, objects(&inventory)));
    let mut writer = StatusWriter::new(client, None);
    writer.set_usage(usage::rollup(&more, &["default/gold".to_string()], DAY));
    let compiled = compile(&inventory, &CompileOptions::default());
    let report = writer
        .write(
            &inventory,
            &compiled.statuses,
            &rollout(),
            &BTreeMap::new(),
            "T3",
        )
        .await;
    assert_eq!(report.patched, 1);
    let patches = server.await.expect("mock server");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].0, "usageplans/gold");
    assert_eq!(patches[0].1["status"]["usage"]["admitted"], 1045);
}
