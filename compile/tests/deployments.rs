//! Determinism, deployment ids, pinned stages, canaries and defaults.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{CompileOptions, Inventory, Kind, compile};
use causeway_snapshot::{GatewayResponseKind, Integration};
use support::{BASE, compile_yaml, inventory, status, with_base};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reorders every list of the inventory in a different way per `seed`.
fn shuffled(inventory: &Inventory, seed: usize) -> Inventory {
    fn mix<T: Clone>(items: &[T], seed: usize) -> Vec<T> {
        let mut out = items.to_vec();
        if !out.is_empty() {
            out.reverse();
            let n = out.len();
            out.rotate_left(seed % n);
        }
        out
    }
    Inventory {
        apis: mix(&inventory.apis, seed),
        routes: mix(&inventory.routes, seed + 1),
        stages: mix(&inventory.stages, seed + 2),
        usage_plans: mix(&inventory.usage_plans, seed),
        authorizers: mix(&inventory.authorizers, seed),
        vpc_links: mix(&inventory.vpc_links, seed),
        services: mix(&inventory.services, seed + 3),
        endpoint_slices: mix(&inventory.endpoint_slices, seed + 1),
        secrets: mix(&inventory.secrets, seed),
        config_maps: mix(&inventory.config_maps, seed),
        deployments: mix(&inventory.deployments, seed),
    }
}

#[test]
fn the_same_objects_in_any_order_give_a_byte_identical_snapshot() {
    for name in [
        "petstore.yaml",
        "domains_and_canary.yaml",
        "rejections.yaml",
    ] {
        let inventory = inventory(&fixture(name));
        let options = CompileOptions::default();
        let first = compile(&inventory, &options);
        let again = compile(&inventory, &options);
        assert_eq!(
            first.snapshot.to_bytes(),
            again.snapshot.to_bytes(),
            "{name}"
        );
        for seed in 0..5 {
            let other = compile(&shuffled(&inventory, seed), &options);
            assert_eq!(
                first.snapshot.to_bytes(),
                other.snapshot.to_bytes(),
                "{name} {seed}"
            );
            assert_eq!(first.snapshot.version, other.snapshot.version);
            assert_eq!(first.statuses, other.statuses, "{name} {seed}");
            assert_eq!(first.deployments, other.deployments, "{name} {seed}");
        }
        assert_eq!(first.snapshot.version, first.snapshot.content_hash());
    }
}

#[test]
fn endpoint_churn_changes_the_backends_but_not_the_deployment_id() {
    let before = compile_yaml(BASE);
    let after = compile_yaml(&BASE.replace("10.0.0.1", "10.0.0.9"));
    assert_eq!(
        before.snapshot.backends["svc/shop/pets:80"].endpoints,
        ["10.0.0.1:8080"]
    );
    assert_eq!(
        after.snapshot.backends["svc/shop/pets:80"].endpoints,
        ["10.0.0.9:8080"]
    );
    assert_ne!(before.snapshot.version, after.snapshot.version);
    assert_eq!(before.deployments, after.deployments);
    assert_eq!(before.deployments[0].id.len(), 10);
}

#[test]
fn a_stage_pinned_to_an_old_deployment_keeps_serving_it_after_a_route_changes() {
    let v1 = compile_yaml(BASE);
    let old = v1.deployments[0].clone();
    let pinned = format!(
        r#"{}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {{name: pinned, namespace: shop}}
spec: {{apiRef: {{name: pets}}, deploymentId: "{}"}}
"#,
        BASE.replace("routeKey: GET /pets", "routeKey: GET /animals"),
        old.id
    );
    let mut inventory = inventory(&pinned);
    inventory.deployments = vec![old.clone()];
    let v2 = compile(&inventory, &CompileOptions::default());
    assert_ne!(v2.deployments[0].id, old.id);

    let pinned_stage = v2
        .snapshot
        .stage("shop/pets/pinned")
        .expect("pinned served");
    assert_eq!(pinned_stage.main.deployment_id, old.id);
    assert_eq!(pinned_stage.main.routes[0].key, "GET /pets");
    let auto = v2.snapshot.stage("shop/pets/prod").expect("prod served");
    assert_eq!(auto.main.deployment_id, v2.deployments[0].id);
    assert_eq!(auto.main.routes[0].key, "GET /animals");
    // The old deployment still resolves its backend against today's endpoints.
    assert!(v2.snapshot.backends.contains_key("svc/shop/pets:80"));

    // Without the record in the history the pinned stage cannot be served.
    inventory.deployments.clear();
    let v3 = compile(&inventory, &CompileOptions::default());
    assert!(v3.snapshot.stage("shop/pets/pinned").is_none());
    assert!(!status(&v3, Kind::Stage, "pinned").is_accepted());
}

#[test]
fn a_canary_serves_another_deployment_with_its_variable_overrides() {
    let v1 = compile_yaml(BASE);
    let old = v1.deployments[0].clone();
    let text = format!(
        r#"{}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: hello, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /hello/{{name}}
  integration:
    type: MOCK
    mock: {{body: 'hello {{name}} from ${{stageVariables.color}}${{stageVariables.unset}}'}}
"#,
        BASE.replace(
            "spec: {apiRef: {name: pets}, autoDeploy: true}",
            &format!(
                "spec: {{apiRef: {{name: pets}}, autoDeploy: true, variables: {{color: blue}}, canary: {{deploymentId: \"{}\", percentTraffic: 5, stageVariableOverrides: {{color: green}}}}}}",
                old.id
            ),
        )
    );
    let mut inv = inventory(&text);
    inv.deployments = vec![old.clone()];
    let c = compile(&inv, &CompileOptions::default());
    let stage = c.snapshot.stage("shop/pets/prod").expect("prod served");
    let canary = stage.canary.as_ref().expect("canary");
    assert_eq!(canary.percent, 5.0);
    assert_eq!(canary.deployment.deployment_id, old.id);
    assert_eq!(canary.deployment.variables["color"], "green");
    assert_eq!(canary.deployment.routes.len(), 1);
    let hello = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "GET /hello/{name}")
        .unwrap();
    let Integration::Mock(mock) = &hello.integration else {
        panic!("mock expected");
    };
    // A stage variable the stage does not define becomes the empty string.
    assert_eq!(mock.body.to_string(), "hello {name} from blue");
    let detail = &status(&c, Kind::Stage, "prod").detail;
    assert!(format!("{detail:?}").contains(&old.id));
}

#[test]
fn every_gateway_response_kind_has_a_response_with_api_gateway_defaults() {
    let c = compile_yaml(BASE);
    let api = c.snapshot.api("shop/pets").expect("api");
    assert_eq!(api.gateway_responses.len(), 21);
    let missing = &api.gateway_responses[&GatewayResponseKind::MissingAuthenticationToken];
    assert_eq!(missing.status, 403);
    assert_eq!(
        missing.body,
        r#"{"message":"Missing Authentication Token"}"#
    );
    assert_eq!(
        api.gateway_responses[&GatewayResponseKind::Throttled].status,
        429
    );
    assert_eq!(
        api.gateway_responses[&GatewayResponseKind::IntegrationTimeout].status,
        504
    );
    assert!(
        api.gateway_responses
            .values()
            .all(|r| r.content_type == "application/json")
    );
}

#[test]
fn a_default_4xx_override_restyles_every_4xx_but_keeps_their_status_codes() {
    let c = compile_yaml(&BASE.replace(
        "metadata: {name: pets, namespace: shop}\nspec: {}",
        "metadata: {name: pets, namespace: shop}\nspec:\n  gatewayResponses:\n    - {type: DEFAULT_4XX, statusCode: 418, body: oops, contentType: text/plain}",
    ));
    let api = c.snapshot.api("shop/pets").expect("api");
    let throttled = &api.gateway_responses[&GatewayResponseKind::Throttled];
    assert_eq!((throttled.status, throttled.body.as_str()), (429, "oops"));
    assert_eq!(
        api.gateway_responses[&GatewayResponseKind::Default4xx].status,
        418
    );
    let timeout = &api.gateway_responses[&GatewayResponseKind::IntegrationTimeout];
    assert_eq!(timeout.content_type, "application/json");
}

#[test]
fn the_default_endpoint_maps_each_stage_by_name_unless_the_api_turns_it_off() {
    let c = compile_yaml(BASE);
    assert_eq!(c.snapshot.hosts.len(), 1);
    assert_eq!(c.snapshot.hosts[0].hostname, "pets.shop.localhost");
    assert_eq!(c.snapshot.hosts[0].mappings[0].base_path, "prod");
    let off = compile_yaml(&BASE.replace(
        "metadata: {name: pets, namespace: shop}\nspec: {}",
        "metadata: {name: pets, namespace: shop}\nspec: {executeApiEndpoint: false}",
    ));
    assert!(off.snapshot.hosts.is_empty());
    assert!(off.snapshot.stage("shop/pets/prod").is_some());
}

#[test]
fn an_api_without_routes_is_accepted_and_its_stage_serves_nothing() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: empty, namespace: shop}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: empty, namespace: shop}
spec: {apiRef: {name: empty}, autoDeploy: true}
"#,
    );
    assert!(status(&c, Kind::Api, "empty").is_accepted());
    let stage = c.snapshot.stage("shop/empty/empty").expect("stage served");
    assert!(stage.main.routes.is_empty());
}

#[test]
fn statuses_carry_the_generation_and_come_sorted_by_kind_namespace_and_name() {
    let c = compile_yaml(&BASE.replace(
        "metadata: {name: pets, namespace: shop}\nspec: {}",
        "metadata: {name: pets, namespace: shop, generation: 7}\nspec: {}",
    ));
    let api = status(&c, Kind::Api, "pets");
    assert_eq!(api.generation, Some(7));
    assert!(
        api.conditions
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
    let keys: Vec<_> = c
        .statuses
        .iter()
        .map(|s| (s.kind, s.namespace.clone(), s.name.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}
