//! The operator commands against a mock API server (tower-test): the exact merge patch each
//! mutating command sends, on which URL, and that `--dry-run` sends none.

use causeway::ops;
use causeway_controller::kube::Client;
use causeway_controller::kube::client::Body;
use http::{Method, Request, Response};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const STAGE_URL: &str = "/apis/causeway.dev/v1alpha1/namespaces/default/stages/pets-prod";

/// One request the mock server saw.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: String,
    content_type: Option<String>,
    body: Option<Value>,
}

/// The cluster the mock server answers for: the Api `pets` with three deployments (`d3` newest)
/// and the Stage `pets-prod` (stage name `prod`) given by the test.
struct Cluster {
    stage: Value,
}

impl Cluster {
    fn api() -> Value {
        json!({
            "apiVersion": "causeway.dev/v1alpha1",
            "kind": "Api",
            "metadata": {"name": "pets", "namespace": "default"},
            "spec": {},
            "status": {
                "latestDeploymentId": "d3",
                "deployments": [
                    {"id": "d3", "createdAt": "2026-01-03T00:00:00Z", "description": "third"},
                    {"id": "d2", "createdAt": "2026-01-02T00:00:00Z", "description": "second"},
                    {"id": "d1", "createdAt": "2026-01-01T00:00:00Z", "description": "first"}
                ]
            }
        })
    }

    fn config_map(id: &str, created: &str, routes: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": format!("causeway-deploy-pets-{id}"),
                "namespace": "default",
                "labels": {"causeway.dev/api": "pets", "causeway.dev/deployment-id": id},
                "annotations": {"causeway.dev/created-at": created, "causeway.dev/description": format!("deployment {id}")}
            },
            "data": {"definition.json": json!({"format": 1, "routes": routes}).to_string()}
        })
    }

    fn config_maps() -> Vec<Value> {
        vec![
            Self::config_map(
                "d1",
                "2026-01-01T00:00:00Z",
                json!([{"key": "GET /pets", "integration": {"type": "MOCK", "statusCode": 200}}]),
            ),
            Self::config_map(
                "d2",
                "2026-01-02T00:00:00Z",
                json!([
                    {"key": "GET /pets", "integration": {"type": "MOCK", "statusCode": 200}},
                    {"key": "GET /health", "integration": {"type": "MOCK", "statusCode": 200}}
                ]),
            ),
            Self::config_map(
                "d3",
                "2026-01-03T00:00:00Z",
                json!([{"key": "GET /pets", "integration": {"type": "MOCK", "statusCode": 201}, "apiKeyRequired": true}]),
            ),
        ]
    }

    fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items})
    }

    /// The answer to a request, by method and path.
    fn answer(&self, method: &Method, uri: &str, body: Option<&Value>) -> (u16, Value) {
        let path = uri.split('?').next().unwrap_or_default();
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
        match (method.as_str(), path) {
            ("GET", "/apis/causeway.dev/v1alpha1/namespaces/default/apis/pets") => {
                (200, Self::api())
            }
            ("GET", "/apis/causeway.dev/v1alpha1/namespaces/default/apis") => {
                (200, Self::list("ApiList", vec![Self::api()]))
            }
            ("GET", "/apis/causeway.dev/v1alpha1/namespaces/default/stages") => {
                (200, Self::list("StageList", vec![self.stage.clone()]))
            }
            ("GET", "/apis/causeway.dev/v1alpha1/namespaces/default/routes") => {
                let route = json!({
                    "apiVersion": "causeway.dev/v1alpha1", "kind": "Route",
                    "metadata": {"name": "broken", "namespace": "default"},
                    "spec": {"apiRef": {"name": "pets"}, "routeKey": "GET /broken", "integration": {"type": "MOCK", "statusCode": 200}},
                    "status": {"conditions": [{"type": "Accepted", "status": "False", "reason": "AuthorizerNotFound", "message": "Route default/broken names Authorizer nope, which does not exist"}]}
                });
                (200, Self::list("RouteList", vec![route]))
            }
            ("GET", "/apis/causeway.dev/v1alpha1/namespaces/default/authorizers") => {
                (200, Self::list("AuthorizerList", vec![]))
            }
            ("GET", "/api/v1/namespaces/default/configmaps") => {
                (200, Self::list("ConfigMapList", Self::config_maps()))
            }
            ("GET", p) if p.starts_with("/api/v1/namespaces/default/configmaps/") => {
                let name = p.rsplit('/').next().unwrap_or_default();
                match Self::config_maps()
                    .into_iter()
                    .find(|cm| cm["metadata"]["name"] == name)
                {
                    Some(cm) => (200, cm),
                    None => (404, not_found),
                }
            }
            ("PATCH", STAGE_URL) => {
                let mut stage = self.stage.clone();
                json_patch_merge(&mut stage, body.unwrap_or(&Value::Null));
                (200, stage)
            }
            _ => (404, not_found),
        }
    }
}

/// RFC 7386 merge, enough for the mock's answer.
fn json_patch_merge(target: &mut Value, patch: &Value) {
    if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// Serves requests until the client is dropped; returns what it saw.
async fn serve(mut handle: Handle, cluster: Cluster) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let (code, answer) = cluster.answer(&method, &uri, body.as_ref());
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&answer).expect("answer")))
                .expect("response"),
        );
        seen.push(Seen {
            method,
            uri,
            content_type,
            body,
        });
    }
    seen
}

/// Runs `command` against a mock cluster holding `stage`; returns its output, its result and
/// the requests seen.
async fn run<F, Fut>(stage: Value, command: F) -> (String, Result<(), ops::OpsError>, Vec<Seen>)
where
    F: FnOnce(Client, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = (Result<(), ops::OpsError>, Vec<u8>)>,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let server = tokio::spawn(serve(handle, Cluster { stage }));
    let (result, out) = command(client, Vec::new()).await;
    let seen = server.await.expect("mock server");
    (String::from_utf8(out).expect("utf-8 output"), result, seen)
}

fn stage(spec: Value) -> Value {
    json!({
        "apiVersion": "causeway.dev/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pets-prod", "namespace": "default"},
        "spec": spec,
        "status": {"deploymentId": "d2", "urls": ["http://pets.default.localhost/prod/"],
                   "proxies": {"connected": 2, "applied": 2},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""},
                                  {"type": "Programmed", "status": "False", "reason": "Pending", "message": "1 of 2 proxies applied the snapshot"}]}
    })
}

fn canaried_stage() -> Value {
    stage(json!({
        "apiRef": {"name": "pets"}, "stageName": "prod", "deploymentId": "d2",
        "variables": {"backend": "v2", "color": "blue"},
        "canary": {"deploymentId": "d3", "percentTraffic": 10.0, "stageVariableOverrides": {"backend": "v3"}}
    }))
}

fn patches(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == Method::PATCH).collect()
}

/// The one PATCH: its URL is the Stage's, a merge patch by the CLI's field manager; returns it.
fn the_patch(seen: &[Seen]) -> Value {
    let patches = patches(seen);
    assert_eq!(patches.len(), 1, "exactly one PATCH: {seen:?}");
    let p = patches[0];
    assert!(p.uri.starts_with(STAGE_URL), "patched {}", p.uri);
    assert!(
        p.uri
            .contains(&format!("fieldManager={}", ops::FIELD_MANAGER)),
        "{}",
        p.uri
    );
    assert_eq!(
        p.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    p.body.clone().expect("a JSON body")
}

#[tokio::test]
async fn promote_sends_the_canary_deployment_its_overrides_and_removes_the_canary() {
    let (out, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::promote(&client, "default", "pets", "prod", false, &mut out).await;
        (r, out)
    })
    .await;
    result.expect("promote succeeds");
    let expected =
        json!({"spec": {"deploymentId": "d3", "variables": {"backend": "v3"}, "canary": null}});
    assert_eq!(the_patch(&seen), expected);
    assert!(out.contains(&expected.to_string()), "{out}");
    println!("{out}");
}

#[tokio::test]
async fn promote_with_dry_run_prints_the_patch_and_sends_no_patch() {
    let (out, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::promote(&client, "default", "pets", "prod", true, &mut out).await;
        (r, out)
    })
    .await;
    result.expect("promote --dry-run succeeds");
    assert!(patches(&seen).is_empty(), "{seen:?}");
    assert!(
        out.contains(
            r#"{"spec":{"canary":null,"deploymentId":"d3","variables":{"backend":"v3"}}}"#
        ),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    println!("{out}");
}

#[tokio::test]
async fn promote_without_a_canary_is_refused_and_sends_no_patch() {
    let plain =
        stage(json!({"apiRef": {"name": "pets"}, "stageName": "prod", "deploymentId": "d2"}));
    let (_, result, seen) = run(plain, |client, mut out| async move {
        let r = ops::promote(&client, "default", "pets", "prod", false, &mut out).await;
        (r, out)
    })
    .await;
    let err = result.expect_err("nothing to promote");
    assert!(err.to_string().contains("no canary"), "{err}");
    assert!(patches(&seen).is_empty());
}

#[tokio::test]
async fn rollback_goes_to_the_deployment_before_the_current_one() {
    let (out, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::rollback(&client, "default", "pets", "prod", None, false, &mut out).await;
        (r, out)
    })
    .await;
    result.expect("rollback succeeds");
    assert_eq!(the_patch(&seen), json!({"spec": {"deploymentId": "d1"}}));
    println!("{out}");
}

#[tokio::test]
async fn rollback_to_a_named_deployment_of_an_auto_deploy_stage_also_removes_auto_deploy() {
    let auto = stage(json!({"apiRef": {"name": "pets"}, "stageName": "prod", "autoDeploy": true}));
    let (out, result, seen) = run(auto, |client, mut out| async move {
        let r = ops::rollback(
            &client,
            "default",
            "pets",
            "prod",
            Some("d1"),
            false,
            &mut out,
        )
        .await;
        (r, out)
    })
    .await;
    result.expect("rollback succeeds");
    assert_eq!(
        the_patch(&seen),
        json!({"spec": {"deploymentId": "d1", "autoDeploy": null}})
    );
    println!("{out}");
}

#[tokio::test]
async fn rollback_with_dry_run_sends_no_patch() {
    let (out, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::rollback(&client, "default", "pets", "prod", None, true, &mut out).await;
        (r, out)
    })
    .await;
    result.expect("rollback --dry-run succeeds");
    assert!(patches(&seen).is_empty(), "{seen:?}");
    assert!(out.contains(r#"{"spec":{"deploymentId":"d1"}}"#), "{out}");
}

#[tokio::test]
async fn rollback_to_an_unknown_deployment_is_refused() {
    let (_, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::rollback(
            &client,
            "default",
            "pets",
            "prod",
            Some("zz"),
            false,
            &mut out,
        )
        .await;
        (r, out)
    })
    .await;
    assert!(result.is_err());
    assert!(patches(&seen).is_empty());
}

#[tokio::test]
async fn deploy_pins_the_stage_to_the_newest_deployment_and_removes_auto_deploy() {
    let auto = stage(json!({"apiRef": {"name": "pets"}, "stageName": "prod", "autoDeploy": true}));
    let (out, result, seen) = run(auto, |client, mut out| async move {
        let r = ops::deploy(&client, "default", "pets", "prod", None, false, &mut out).await;
        (r, out)
    })
    .await;
    result.expect("deploy succeeds");
    assert_eq!(
        the_patch(&seen),
        json!({"spec": {"deploymentId": "d3", "autoDeploy": null}})
    );
    println!("{out}");
}

#[tokio::test]
async fn canary_sends_the_share_to_the_newest_deployment_by_default() {
    let plain =
        stage(json!({"apiRef": {"name": "pets"}, "stageName": "prod", "deploymentId": "d2"}));
    let (out, result, seen) = run(plain, |client, mut out| async move {
        let r = ops::canary(
            &client, "default", "pets", "prod", 12.5, None, false, &mut out,
        )
        .await;
        (r, out)
    })
    .await;
    result.expect("canary succeeds");
    assert_eq!(
        the_patch(&seen),
        json!({"spec": {"canary": {"deploymentId": "d3", "percentTraffic": 12.5}}})
    );
    println!("{out}");
}

#[tokio::test]
async fn canary_above_one_hundred_percent_is_refused_before_any_request() {
    let plain =
        stage(json!({"apiRef": {"name": "pets"}, "stageName": "prod", "deploymentId": "d2"}));
    let (_, result, seen) = run(plain, |client, mut out| async move {
        let r = ops::canary(
            &client, "default", "pets", "prod", 150.0, None, false, &mut out,
        )
        .await;
        (r, out)
    })
    .await;
    assert!(result.is_err());
    assert!(seen.is_empty());
}

#[tokio::test]
async fn an_unknown_stage_names_the_stages_that_exist() {
    let (_, result, _) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::promote(&client, "default", "pets", "staging", false, &mut out).await;
        (r, out)
    })
    .await;
    let err = result.expect_err("no such stage").to_string();
    assert_eq!(err, "Api default/pets has no stage staging (stages: prod)");
}

#[tokio::test]
async fn history_lists_deployments_newest_first_with_the_stages_serving_them() {
    let (out, result, seen) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::history(&client, "default", "pets", &mut out).await;
        (r, out)
    })
    .await;
    result.expect("history succeeds");
    assert!(patches(&seen).is_empty());
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[2].starts_with("d3") && lines[2].contains("prod (canary 10%)"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("d2") && lines[3].contains("prod"),
        "{out}"
    );
    assert!(lines[4].starts_with("d1"), "{out}");
    println!("{out}");
}

#[tokio::test]
async fn status_shows_the_stage_its_canary_proxies_conditions_and_rejected_objects() {
    let (out, result, _) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::status(&client, "default", Some("pets"), &mut out).await;
        (r, out)
    })
    .await;
    result.expect("status succeeds");
    for needle in [
        "stage prod: deployment d2",
        "canary: 10% to d3",
        "url: http://pets.default.localhost/prod/",
        "proxies: 2/2 applied",
        "Programmed: False (Pending: 1 of 2 proxies applied the snapshot)",
        "Route/broken: Accepted=False AuthorizerNotFound",
    ] {
        assert!(out.contains(needle), "no {needle:?} in\n{out}");
    }
    println!("{out}");
}

#[tokio::test]
async fn get_url_prints_the_stage_urls() {
    let (out, result, _) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::get_url(&client, "default", "pets", "prod", &mut out).await;
        (r, out)
    })
    .await;
    result.expect("get-url succeeds");
    assert_eq!(out, "http://pets.default.localhost/prod/\n");
}

#[tokio::test]
async fn diff_lists_routes_added_removed_and_changed() {
    let (out, result, _) = run(canaried_stage(), |client, mut out| async move {
        let r = ops::diff(&client, "default", "pets", "d2", "d3", &mut out).await;
        (r, out)
    })
    .await;
    result.expect("diff succeeds");
    assert!(out.contains("~ GET /pets"), "{out}");
    assert!(out.contains("- GET /health"), "{out}");
    assert!(out.contains("apiKeyRequired: (none) -> true"), "{out}");
    println!("{out}");
}
