//! Status writes against a mock API server (tower-test): what is patched, and when nothing is.

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_compile::{CompileOptions, Inventory, compile};
use causeway_controller::kube::Client;
use causeway_controller::kube::client::Body;
use causeway_controller::status::Rollout;
use causeway_controller::writer::{FIELD_MANAGER, StatusWriter};
use http::{Method, Request, Response};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const YAML: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: pets, namespace: default, generation: 1}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: health, namespace: default, generation: 4}
spec:
  apiRef: {name: pets}
  routeKey: GET /health
  integration:
    type: MOCK
    statusCode: 200
    body: '{"ok":true}'
"#;

/// An inventory with one Api and one new Route, without statuses.
fn inventory() -> Inventory {
    let mut inventory = Inventory::default();
    inventory
        .add_yaml("test.yaml", YAML)
        .expect("test YAML parses");
    inventory
}

fn mock_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

fn rollout() -> Rollout {
    Rollout {
        version: "v1".into(),
        connected: 1,
        applied: 1,
        rejected: vec![],
        dropped: vec![],
    }
}

/// Answers every status patch with the object and its new status; returns the patches seen.
async fn answer_patches(mut handle: Handle, count: usize) -> Vec<(String, Value)> {
    answer_patches_on(&mut handle, count).await
}

/// [`answer_patches`] on a borrowed handle.
async fn answer_patches_on(handle: &mut Handle, count: usize) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for _ in 0..count {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(
            request.headers()["content-type"],
            "application/merge-patch+json"
        );
        let uri = request.uri().to_string();
        assert!(
            uri.contains(&format!("fieldManager={FIELD_MANAGER}")),
            "no field manager in {uri}"
        );
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                .expect("JSON patch");
        let name = uri.split('/').rev().nth(1).unwrap_or_default().to_string();
        let kind = if uri.contains("/routes/") {
            "Route"
        } else {
            "Api"
        };
        let inventory = inventory();
        let spec = if kind == "Route" {
            serde_json::to_value(&inventory.routes[0].spec)
        } else {
            serde_json::to_value(&inventory.apis[0].spec)
        }
        .expect("spec");
        let object = json!({
            "apiVersion": "causeway.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
            "status": body["status"],
        });
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&object).expect("object")))
                .expect("response"),
        );
        seen.push((uri, body));
    }
    seen
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_new_route_gets_a_status_patch_with_its_conditions_and_observed_generation() {
    let (client, handle) = mock_client();
    let inventory = inventory();
    let compiled = compile(&inventory, &CompileOptions::default());
    let server = tokio::spawn(answer_patches(handle, 2));
    let mut writer = StatusWriter::new(client, None);
    let report = writer
        .write(
            &inventory,
            &compiled.statuses,
            &rollout(),
            &BTreeMap::new(),
            "2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(report.patched, 2, "the Api and the Route are patched");
    let patches = server.await.expect("mock server");
    let (uri, patch) = patches
        .iter()
        .find(|(uri, _)| uri.contains("/routes/health/status"))
        .expect("a patch of the Route's status subresource");
    assert!(uri.starts_with("/apis/causeway.dev/v1alpha1/namespaces/default/routes/health/status"));
    let status = &patch["status"];
    assert_eq!(status["observedGeneration"], 4);
    for type_ in ["Accepted", "ResolvedRefs", "Programmed", "Ready"] {
        let c = condition(status, type_);
        assert_eq!(c["status"], "True", "{type_}: {c}");
        assert_eq!(c["observedGeneration"], 4, "{type_}: {c}");
        assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }
}

#[tokio::test]
async fn an_unchanged_compile_produces_no_patch() {
    // First pass: learn the statuses the writer wants, as the API server would store them.
    let (client, handle) = mock_client();
    let mut inventory = inventory();
    let compiled = compile(&inventory, &CompileOptions::default());
    let server = tokio::spawn(answer_patches(handle, 2));
    let mut writer = StatusWriter::new(client, None);
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
    for (uri, patch) in patches {
        let status = patch["status"].clone();
        if uri.contains("/routes/") {
            inventory.routes[0].status = Some(serde_json::from_value(status).expect("RouteStatus"));
        } else {
            inventory.apis[0].status = Some(serde_json::from_value(status).expect("ApiStatus"));
        }
    }

    // Second pass, by a fresh writer (no memory of the first), later in time: nothing to write.
    let (client, mut handle) = mock_client();
    let mut writer = StatusWriter::new(client, None);
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
    assert_eq!(report.patched, 0);
    let request = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(request.is_err(), "no request reaches the API server");
}

#[tokio::test]
async fn a_rollout_in_progress_is_written_as_programmed_unknown() {
    let (client, handle) = mock_client();
    let inventory = inventory();
    let compiled = compile(&inventory, &CompileOptions::default());
    let server = tokio::spawn(answer_patches(handle, 2));
    let mut writer = StatusWriter::new(client, None);
    let halfway = Rollout {
        applied: 0,
        ..rollout()
    };
    writer
        .write(
            &inventory,
            &compiled.statuses,
            &halfway,
            &BTreeMap::new(),
            "T1",
        )
        .await;
    let patches = server.await.expect("mock server");
    let (_, patch) = patches
        .iter()
        .find(|(uri, _)| uri.contains("/routes/"))
        .expect("route patch");
    assert_eq!(
        condition(&patch["status"], "Programmed")["status"],
        "Unknown"
    );
    assert_eq!(
        condition(&patch["status"], "Programmed")["reason"],
        "Pending"
    );
}

#[tokio::test]
async fn a_replica_that_does_not_lead_compiles_and_publishes_but_writes_nothing() {
    use causeway_controller::Reconciler;
    use causeway_controller::push::PushServer;

    let (client, mut handle) = mock_client();
    let push = PushServer::new(std::sync::Arc::new(tokio::sync::Notify::new()));
    let mut reconciler = Reconciler {
        client: client.clone(),
        compile: causeway_compile::Compiler::new(CompileOptions::default()),
        cluster_keys: None,
        push: push.clone(),
        status_writer: StatusWriter::new(client.clone(), None).spawn(push.clone(), Duration::ZERO),
        history: causeway_controller::history::HistoryTask::spawn(client, Default::default()),
        records: Default::default(),
    };
    let outcome = reconciler.reconcile(inventory(), &[], false, "T1").await;
    assert!(outcome.published, "the snapshot is published");
    assert_eq!(push.version(), Some(outcome.version.clone()));
    let request = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(
        request.is_err(),
        "a follower sends nothing to the API server"
    );

    // The same replica once it leads: the deployment ConfigMap and the statuses are written.
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some((request, send))) =
            tokio::time::timeout(Duration::from_secs(2), handle.next_request()).await
        {
            seen.push((request.method().clone(), request.uri().path().to_string()));
            let body = request.into_body().collect_bytes().await.expect("body");
            // Echo the object back with kind and apiVersion filled in, as the server would.
            let mut object: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            if object.get("metadata").is_none() {
                object = json!({"metadata": {"name": "x", "namespace": "default"}});
            }
            send.send_response(
                Response::builder()
                    .status(if seen.last().is_some_and(|(m, _)| m == Method::POST) {
                        201
                    } else {
                        200
                    })
                    .body(Body::from(serde_json::to_vec(&object).expect("json")))
                    .expect("response"),
            );
        }
        seen
    });
    let outcome = reconciler.reconcile(inventory(), &[], true, "T2").await;
    assert!(!outcome.published, "same version: nothing new to publish");
    let seen = server.await.expect("mock server");
    assert!(
        seen.iter()
            .any(|(m, p)| m == Method::POST && p.ends_with("/configmaps")),
        "the deployment is recorded: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(m, p)| m == Method::PATCH && p.ends_with("/routes/health/status")),
        "statuses are written: {seen:?}"
    );
}

/// A mock API server holding one Lease (GET / POST / PATCH merge its `spec`) that answers
/// status patches and ConfigMap creations, counting the status patches. `steal` hands the Lease
/// to another holder for an hour, as a replica that took over would.
#[derive(Default)]
struct LeaseServer {
    lease: Option<Value>,
    stolen: bool,
    status_patches: Vec<String>,
}

async fn serve_lease(mut handle: Handle, state: std::sync::Arc<std::sync::Mutex<LeaseServer>>) {
    let not_found = || {
        Response::builder()
            .status(404)
            .body(Body::from(
                serde_json::to_vec(
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not found"}),
                )
                .expect("json"),
            ))
            .expect("response")
    };
    let ok = |status: u16, object: &Value| {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(object).expect("json")))
            .expect("response")
    };
    while let Some((request, send)) = handle.next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let uri = request.uri().to_string();
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                .unwrap_or(json!({}));
        let mut state = state.lock().expect("state");
        let response = if path.ends_with("/leases/causeway-controller") {
            if method == Method::PATCH {
                let stolen = state.stolen;
                if let Some(lease) = state.lease.as_mut() {
                    for (k, v) in body["spec"].as_object().into_iter().flatten() {
                        lease["spec"][k] = v.clone();
                    }
                    if stolen {
                        lease["spec"]["holderIdentity"] = json!("controller-b");
                        lease["spec"]["leaseDurationSeconds"] = json!(3600);
                    }
                }
            }
            match &state.lease {
                Some(lease) => ok(200, lease),
                None => not_found(),
            }
        } else if path.ends_with("/leases") && method == Method::POST {
            let mut lease = body.clone();
            lease["spec"] = json!({});
            state.lease = Some(lease.clone());
            ok(201, &lease)
        } else if path.ends_with("/status") && method == Method::PATCH {
            state.status_patches.push(uri.clone());
            let echo = echo_status(&uri, &body);
            ok(200, &echo)
        } else if path.ends_with("/configmaps") && method == Method::POST {
            ok(201, &body)
        } else {
            not_found()
        };
        send.send_response(response);
    }
}

/// The object a status patch returns: the test inventory's spec and the patched status.
fn echo_status(uri: &str, body: &Value) -> Value {
    let name = uri.split('/').rev().nth(1).unwrap_or_default().to_string();
    let inventory = inventory();
    let (kind, spec) = if uri.contains("/routes/") {
        ("Route", serde_json::to_value(&inventory.routes[0].spec))
    } else {
        ("Api", serde_json::to_value(&inventory.apis[0].spec))
    };
    json!({
        "apiVersion": "causeway.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec.expect("spec"),
        "status": body["status"],
    })
}

/// The inventory behind a lock, so the test can bump a Route's generation between passes.
struct Scripted(std::sync::Mutex<Inventory>);

impl causeway_controller::Objects for Scripted {
    fn inventory(&self) -> Inventory {
        self.0.lock().expect("inventory").clone()
    }
    fn deployment_config_maps(&self) -> Vec<std::sync::Arc<k8s_openapi::api::core::v1::ConfigMap>> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_stops_status_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use causeway_controller::push::PushServer;
    use causeway_controller::{Loop, Reconciler, leader};

    let (client, handle) = mock_client();
    let server = Arc::new(Mutex::new(LeaseServer::default()));
    tokio::spawn(serve_lease(handle, Arc::clone(&server)));
    let patches = || server.lock().expect("state").status_patches.len();

    let (leading, _election) = leader::elect_with(client.clone(), "default", "controller-a", 2, 1)
        .await
        .expect("election starts");
    let wake = Arc::new(tokio::sync::Notify::new());
    let ready = Arc::new(AtomicBool::new(false));
    let objects = Arc::new(Scripted(Mutex::new(inventory())));
    let bump = |generation: i64| {
        objects.0.lock().expect("inventory").routes[0]
            .metadata
            .generation = Some(generation);
        wake.notify_one();
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = {
        let (wake, ready, objects) = (Arc::clone(&wake), Arc::clone(&ready), Arc::clone(&objects));
        let push = PushServer::new(Arc::clone(&wake));
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
            let control = Loop {
                leading,
                wake: &wake,
                ready: &ready,
                debounce: Duration::from_millis(20),
                usage_rollup_every: Duration::from_secs(60),
                identity: "controller-a",
                own_writes: None,
            };
            control
                .drive(&mut reconciler, objects.as_ref(), async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let until = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Holding the Lease: statuses are written, and a new generation is written too.
    until("leading and writing", &|| {
        ready.load(Ordering::Relaxed) && patches() > 0
    });
    let before = patches();
    bump(5);
    until("a write for generation 5", &|| patches() > before);

    // Another replica takes the Lease: this one stops being ready and writes nothing more,
    // even though a Route changed.
    server.lock().expect("state").stolen = true;
    until("the loss of the Lease", &|| !ready.load(Ordering::Relaxed));
    let after_loss = patches();
    bump(6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        patches(),
        after_loss,
        "a replica without the Lease wrote statuses: {:?}",
        &server.lock().expect("state").status_patches[after_loss..]
    );

    let _ = stop.send(());
    driver
        .await
        .expect("driver task")
        .expect("the loop ends on shutdown");
}

#[tokio::test]
async fn in_apply_mode_the_whole_status_is_sent_as_a_forced_server_side_apply() {
    use causeway_controller::writer::PatchMode;
    let (client, mut handle) = mock_client();
    let objects = inventory();
    let compiled = compile(&objects, &CompileOptions::default());
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let uri = request.uri().to_string();
            let body: Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                    .expect("JSON body");
            // The API server answers with the whole object.
            let objects = inventory();
            let mut object = body.clone();
            object["spec"] = if uri.contains("/routes/") {
                serde_json::to_value(&objects.routes[0].spec)
            } else {
                serde_json::to_value(&objects.apis[0].spec)
            }
            .expect("spec");
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&object).expect("object")))
                    .expect("response"),
            );
            seen.push((uri, body));
        }
        seen
    });
    let mut writer = StatusWriter::new(client, None).with_mode(PatchMode::Apply);
    let report = writer
        .write(
            &objects,
            &compiled.statuses,
            &rollout(),
            &BTreeMap::new(),
            "2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(report.patched, 2);
    let applies = server.await.expect("mock server");
    let (uri, body) = applies
        .iter()
        .find(|(uri, _)| uri.contains("/routes/health/status"))
        .expect("an apply of the Route's status");
    assert!(
        uri.contains(&format!("fieldManager={FIELD_MANAGER}")),
        "{uri}"
    );
    assert!(uri.contains("force=true"), "{uri}");
    assert_eq!(body["apiVersion"], "causeway.dev/v1alpha1");
    assert_eq!(body["kind"], "Route");
    assert_eq!(body["metadata"]["name"], "health");
    assert!(
        body.get("spec").is_none(),
        "no spec field in a status apply: {body}"
    );
    assert_eq!(body["status"]["observedGeneration"], 4);
    assert_eq!(condition(&body["status"], "Accepted")["status"], "True");
}

#[tokio::test]
async fn a_change_to_one_route_rewrites_its_status_and_not_the_other_routes() {
    use causeway_controller::rollout::{Changes, Fleet, ProxyProgress, Tracked};

    let route = |name: &str, generation: i64, body: &str| {
        format!(
            "---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}, namespace: default, generation: {generation}}}\nspec:\n  apiRef: {{name: pets}}\n  routeKey: GET /{name}\n  integration: {{type: MOCK, mock: {{statusCode: 200, body: '{body}'}}}}\n"
        )
    };
    let api = "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {name: pets, namespace: default, generation: 1}\nspec: {}\n";
    let inventory_of = |b_generation: i64, b_body: &str| {
        let mut inventory = Inventory::default();
        let yaml = format!(
            "{api}{}{}",
            route("a", 1, "a"),
            route("b", b_generation, b_body)
        );
        inventory.add_yaml("t.yaml", &yaml).expect("YAML parses");
        inventory
    };
    let fleet = |number: u64| Fleet {
        current: number,
        current_version: format!("v{number}"),
        proxies: vec![ProxyProgress {
            id: "p1".into(),
            applied: number,
            ..ProxyProgress::default()
        }],
    };

    // First pass: every object gets its status; the store then holds what was written.
    let (client, handle) = mock_client();
    let mut inventory = inventory_of(1, "b");
    let compiled = compile(&inventory, &CompileOptions::default());
    let mut changes = Changes::default();
    changes.observe(&compiled.statuses, 1, "v1");
    let server = tokio::spawn(answer_patches(handle, 3));
    let mut writer = StatusWriter::new(client, None);
    let first = fleet(1);
    let tracked = Tracked {
        fleet: &first,
        changes: &changes,
    };
    let report = writer
        .write(
            &inventory,
            &compiled.statuses,
            &tracked,
            &BTreeMap::new(),
            "T1",
        )
        .await;
    assert_eq!(report.patched, 3, "the Api and both Routes");
    let written = server.await.expect("mock server");
    let stored = |inventory: &mut Inventory, written: &[(String, Value)]| {
        for (uri, patch) in written {
            let status = patch["status"].clone();
            if let Some(r) = inventory.routes.iter_mut().find(|r| {
                uri.contains(&format!(
                    "/routes/{}/",
                    r.metadata.name.as_deref().unwrap_or("")
                ))
            }) {
                r.status = Some(serde_json::from_value(status).expect("RouteStatus"));
            } else {
                inventory.apis[0].status = Some(serde_json::from_value(status).expect("ApiStatus"));
            }
        }
    };
    stored(&mut inventory, &written);

    // Route b changes (new generation, new body) and the proxy applies snapshot 2.
    let mut changed = inventory_of(2, "b2");
    changed.apis[0].status = inventory.apis[0].status.clone();
    changed.routes[0].status = inventory.routes[0].status.clone();
    changed.routes[1].status = inventory.routes[1].status.clone();
    let compiled = compile(&changed, &CompileOptions::default());
    changes.observe(&compiled.statuses, 2, "v2");
    let (client, mut handle) = mock_client();
    writer = StatusWriter::new(client, None);
    let second = fleet(2);
    let tracked = Tracked {
        fleet: &second,
        changes: &changes,
    };
    let server = tokio::spawn(async move {
        let seen = answer_patches_on(&mut handle, 2).await;
        let more = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
        (seen, more.is_ok())
    });
    let report = writer
        .write(
            &changed,
            &compiled.statuses,
            &tracked,
            &BTreeMap::new(),
            "T2",
        )
        .await;
    let (seen, more) = server.await.expect("mock server");
    assert!(!more, "no third status write");
    assert_eq!(report.patched, 2);
    let uris: Vec<&str> = seen.iter().map(|(uri, _)| uri.as_str()).collect();
    assert!(
        uris.iter().any(|u| u.contains("/routes/b/status")),
        "{uris:?}"
    );
    assert!(
        !uris.iter().any(|u| u.contains("/routes/a/status")),
        "route a did not change and keeps its status: {uris:?}"
    );
    let (_, b) = seen
        .iter()
        .find(|(uri, _)| uri.contains("/routes/b/status"))
        .expect("route b");
    assert_eq!(b["status"]["observedGeneration"], 2);
    assert_eq!(condition(&b["status"], "Programmed")["status"], "True");
}
