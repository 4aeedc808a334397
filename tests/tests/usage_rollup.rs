//! Usage reports end to end: two `causeway proxy` processes report what they counted to a
//! `causeway controller` (file mode) over the push connection, and the controller's rollup
//! (what it writes into `UsagePlan.status` when it leads in a cluster) adds them up.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use causeway_e2e::processes::{Controller, Proxy};
use causeway_e2e::{ChildGuard, eventually, get};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const HOST: &str = "shop.default.localhost";
const ALICE: &str = "alice-0123456789abcdefghij";
const BOB: &str = "bob-0123456789abcdefghijkl";

/// A plan whose keys get 5 requests per proxy (burst 5, next to no refill).
const YAML: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: shop, namespace: default}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: orders, namespace: default}
spec:
  apiRef: {name: shop}
  routeKey: GET /orders
  apiKeyRequired: true
  integration: {type: MOCK, mock: {body: orders}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: prod, namespace: default}
spec:
  apiRef: {name: shop}
  autoDeploy: true
  accessLog: {enabled: false}
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: default}
stringData: {alice: alice-0123456789abcdefghij, bob: bob-0123456789abcdefghijkl}
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {name: gold, namespace: default}
spec:
  apiStages: [{api: shop, stage: prod}]
  throttle: {rateLimit: 0.001, burstLimit: 5}
  apiKeys:
    - {id: alice, secretRef: {name: keys, key: alice}}
    - {id: bob, secretRef: {name: keys, key: bob}}
"#;

/// A proxy fed by `push` that reports its usage every 200 ms, once it applied a snapshot.
async fn proxy(work: &Path, id: &str, push: SocketAddr) -> (ChildGuard, SocketAddr) {
    let more = ["--access-log", "off", "--usage-report-millis", "200"];
    let proxy = Proxy::start(work, id, push, &work.join("tls/proxy"), &more, WAIT).await;
    proxy.wait_ready().await;
    (proxy.process, proxy.traffic)
}

async fn keyed(traffic: SocketAddr, key: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{traffic}/prod/orders"))
        .header("host", HOST)
        .header("x-api-key", key)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    client
        .request(req)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_adds_up_the_usage_both_proxies_report_and_says_counting_is_per_replica() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("shop.yaml"), YAML).expect("write");
    let tls = work.path().join("tls");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    let (push, admin) = (controller.push, controller.admin);
    let (_a, a) = proxy(work.path(), "a", push).await;
    let (_b, b) = proxy(work.path(), "b", push).await;

    // Each proxy throttles each key alone (burst 5): alice gets 5 of 8 on each, bob 2 of 2.
    let mut statuses = Vec::new();
    for traffic in [a, b] {
        for _ in 0..8 {
            statuses.push(keyed(traffic, ALICE).await);
        }
    }
    for _ in 0..2 {
        statuses.push(keyed(a, BOB).await);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, throttled), (12, 6), "{statuses:?}");

    let want = json!({
        "proxies": 2,
        "shared": 0,
        "admitted": 12,
        "throttled": 6,
        "topKeys": [
            {"id": "alice", "admitted": 10, "throttled": 6},
            {"id": "bob", "admitted": 2, "throttled": 0},
        ],
    });
    let last = std::sync::Mutex::new(Value::Null);
    let rolled = eventually(WAIT, || async {
        let r = get(admin, "localhost", "/usage").await.ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        *last.lock().unwrap() = v.clone();
        let gold = v.get("default/gold")?;
        let got = json!({
            "proxies": gold["proxies"],
            "shared": gold["shared"],
            "admitted": gold["admitted"],
            "throttled": gold["throttled"],
            "topKeys": gold["topKeys"],
        });
        (got == want).then_some(())
    })
    .await;
    let last = last.lock().unwrap().clone();
    assert!(
        rolled.is_some(),
        "the controller's rollup never matched {want}; last: {last}; stderr:\n{}",
        controller.process.stderr()
    );
}
