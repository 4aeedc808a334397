//! The reconcile loop's debounce: a change after a quiet spell is compiled at once, and a burst
//! of changes right after a pass is folded into one pass at the end of the debounce period.
//! Tokio's clock is paused (it moves only when every task waits), so the times asserted are the
//! loop's own decisions, not how fast the machine is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use causeway_compile::{CompileOptions, Inventory};
use causeway_controller::kube::Client;
use causeway_controller::kube::client::Body;
use causeway_controller::push::PushServer;
use causeway_controller::writer::StatusWriter;
use causeway_controller::{Loop, Objects, Reconciler};
use http::{Request, Response};

const YAML: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: pets, namespace: default, generation: 1}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: health, namespace: default, generation: 1}
spec:
  apiRef: {name: pets}
  routeKey: GET /health
  integration: {type: MOCK}
"#;

/// The objects, and when each pass read them.
struct Recorded {
    inventory: Inventory,
    passes: Mutex<Vec<Instant>>,
}

impl Recorded {
    fn passes(&self) -> Vec<Instant> {
        self.passes.lock().expect("passes").clone()
    }
}

impl Objects for Recorded {
    fn inventory(&self) -> Inventory {
        self.passes.lock().expect("passes").push(Instant::now());
        self.inventory.clone()
    }
    fn deployment_config_maps(&self) -> Vec<Arc<k8s_openapi::api::core::v1::ConfigMap>> {
        Vec::new()
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_after_a_quiet_spell_compiles_at_once_and_a_burst_once_per_period() {
    const DEBOUNCE: Duration = Duration::from_millis(800);
    let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut inventory = Inventory::default();
    inventory.add_yaml("test.yaml", YAML).expect("test YAML");
    let objects = Arc::new(Recorded {
        inventory,
        passes: Mutex::new(Vec::new()),
    });
    let wake = Arc::new(tokio::sync::Notify::new());
    // Not leading: nothing is written, so the mock API server is never asked anything.
    let (_leading_tx, leading) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = {
        let (wake, objects) = (Arc::clone(&wake), Arc::clone(&objects));
        let push = PushServer::new(Arc::new(tokio::sync::Notify::new()));
        let mut reconciler = Reconciler {
            client: client.clone(),
            compile: causeway_compile::Compiler::new(CompileOptions::default()),
            cluster_keys: None,
            push: push.clone(),
            status_writer: StatusWriter::new(client.clone(), None).spawn(push, Duration::ZERO),
            history: causeway_controller::history::HistoryTask::spawn(client, Default::default()),
            records: Default::default(),
        };
        tokio::spawn(async move {
            let ready = std::sync::atomic::AtomicBool::new(false);
            let control = Loop {
                leading,
                wake: &wake,
                ready: &ready,
                debounce: DEBOUNCE,
                usage_rollup_every: Duration::from_secs(3600),
                identity: "test",
                own_writes: None,
            };
            control
                .drive(&mut reconciler, objects.as_ref(), async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    until("the first pass", || objects.passes().len() == 1).await;
    // A quiet spell longer than the debounce, then one change: compiled without waiting.
    tokio::time::sleep(DEBOUNCE + Duration::from_millis(200)).await;
    let changed = Instant::now();
    wake.notify_one();
    until("the pass of the change", || objects.passes().len() == 2).await;
    let waited = objects.passes()[1] - changed;
    assert!(
        waited < Duration::from_millis(5),
        "a change after a quiet spell waited {waited:?} (debounce {DEBOUNCE:?})"
    );

    // A burst right after that pass: one more pass, a debounce after the previous one.
    for _ in 0..5 {
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until("the pass of the burst", || objects.passes().len() == 3).await;
    tokio::time::sleep(DEBOUNCE + Duration::from_millis(300)).await;
    let passes = objects.passes();
    assert_eq!(passes.len(), 3, "the burst was not folded into one pass");
    assert!(
        passes[2] - passes[1] >= DEBOUNCE,
        "passes {:?} apart, debounce {DEBOUNCE:?}",
        passes[2] - passes[1]
    );

    let _ = stop.send(());
    driver
        .await
        .expect("driver task")
        .expect("the loop ends on shutdown");
}
