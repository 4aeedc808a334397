use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_snapshots_under_load_loses_no_request() {
    let upstream = Upstream::start("blue").await;
    let blue = SnapshotBuilder::new()
        .deployment("blue")
        .route(proxy_to("GET /color", "blue"))
        .backend("blue", &[upstream.endpoint()])
        .build();
    let green = SnapshotBuilder::new()
        .deployment("green")
        .route(mock("GET /color", "green"))
        .build();
    assert_ne!(blue.version, green.version);
    let proxy = TestProxy::with_snapshot(blue.clone()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (proxy, stop) = (proxy.proxy.clone(), stop.clone());
        let (blue, green) = (blue.clone(), green.clone());
        tokio::spawn(async move {
            let mut swaps = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let next = if swaps.is_multiple_of(2) {
                    &green
                } else {
                    &blue
                };
                proxy.apply(next.clone());
                swaps += 1;
                tokio::task::yield_now().await;
            }
            swaps
        })
    };
    let mut clients = Vec::new();
    for _ in 0..8 {
        let url = proxy.url("/color");
        clients.push(tokio::spawn(async move {
            let client = http1();
            let mut bodies = Vec::new();
            for _ in 0..40 {
                let answer = get(&client, &url, HOST).await;
                bodies.push((answer.status, answer.body));
            }
            bodies
        }));
    }
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.expect("client task"));
    }
    stop.store(true, Ordering::SeqCst);
    let swaps = swapper.await.expect("swapper");
    assert!(swaps > 10, "only {swaps} swaps happened");
    assert_eq!(answers.len(), 320);
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert!(
            body == "green" || body == "blue /color?",
            "unexpected body {body:?}"
        );
    }
    assert!(answers.iter().any(|(_, b)| b == "green"));
    assert!(answers.iter().any(|(_, b)| b != "green"));
}

#[tokio::test]
async fn a_canary_at_full_percent_serves_every_request_and_marks_it() {
    let snapshot = SnapshotBuilder::new()
        .route(mock("GET /v", "main"))
        .canary(100.0, vec![mock("GET /v", "canary")])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = get(&http1(), &proxy.url("/v"), HOST).await;
    assert_eq!(answer.body, "canary");
    assert_eq!(answer.headers["x-causeway-canary"], "true");
}

#[tokio::test]
async fn a_canary_at_zero_percent_serves_nothing() {
    let snapshot = SnapshotBuilder::new()
        .route(mock("GET /v", "main"))
        .canary(0.0, vec![mock("GET /v", "canary")])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = get(&http1(), &proxy.url("/v"), HOST).await;
    assert_eq!(answer.body, "main");
    assert!(!answer.headers.contains_key("x-causeway-canary"));
}
