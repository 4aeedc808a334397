//! One test per reason `compile` emits: the object gets exactly that reason, and everything
//! else still compiles into the snapshot.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{assert_base_served, assert_refused, route_keys, status, with_base};

#[test]
fn an_api_with_a_malformed_cidr_is_rejected_as_invalid() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: walled, namespace: shop}
spec:
  policy: {denyCidrs: ["10.0.0.0/8", "not-a-cidr"]}
"#,
    );
    let message = assert_refused(&c, Kind::Api, "walled", reasons::INVALID);
    assert!(message.contains("spec.policy.denyCidrs"), "{message}");
    assert!(c.snapshot.api("shop/walled").is_none());
    assert_base_served(&c);
}

#[test]
fn a_stage_breaking_a_cel_rule_is_rejected_with_validation_rule_failed() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: undecided, namespace: shop}
spec: {apiRef: {name: pets}}
"#,
    );
    let message = assert_refused(
        &c,
        Kind::Stage,
        "undecided",
        reasons::VALIDATION_RULE_FAILED,
    );
    assert!(
        message.contains("set exactly one of deploymentId and autoDeploy"),
        "{message}"
    );
    assert_base_served(&c);
}

#[test]
fn a_route_key_in_lower_case_breaks_the_cel_rule_of_the_route() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: lower, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: get /cats
  integration: {type: MOCK}
"#,
    );
    assert_refused(&c, Kind::Route, "lower", reasons::VALIDATION_RULE_FAILED);
    assert_base_served(&c);
}

#[test]
fn a_route_key_with_a_greedy_parameter_in_the_middle_is_rejected_with_invalid_route_key() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: greedy, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /files/{path+}/meta
  integration: {type: MOCK}
"#,
    );
    let message = assert_refused(&c, Kind::Route, "greedy", reasons::INVALID_ROUTE_KEY);
    assert!(message.contains("spec.routeKey"), "{message}");
    assert_base_served(&c);
}

#[test]
fn the_newer_of_two_routes_with_the_same_key_is_rejected_with_duplicate_route_key() {
    // "a-newer" sorts before "list-pets" by name, but is younger: age wins over name.
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: a-newer, namespace: shop, creationTimestamp: "2024-06-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /pets
  integration: {type: MOCK}
"#,
    );
    assert_refused(&c, Kind::Route, "a-newer", reasons::DUPLICATE_ROUTE_KEY);
    assert!(status(&c, Kind::Route, "list-pets").is_accepted());
    assert_base_served(&c);
}

#[test]
fn a_route_whose_path_a_router_cannot_hold_beside_an_older_one_is_rejected_as_conflicting() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: by-id, namespace: shop, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /pets/{id}
  integration: {type: MOCK}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: by-name, namespace: shop, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /pets/{name}
  integration: {type: MOCK}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: any-by-name, namespace: shop, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: ANY /pets/{name}/toys
  integration: {type: MOCK}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: any-pets, namespace: shop, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: ANY /pets
  integration: {type: MOCK}
"#,
    );
    let message = assert_refused(&c, Kind::Route, "by-name", reasons::CONFLICTING_ROUTE);
    assert!(message.contains("GET /pets/{id}"), "{message}");
    // The same pattern under a method and under ANY is no conflict, and parameter names may
    // differ between routes at the same position (the table names them per route).
    assert!(status(&c, Kind::Route, "any-pets").is_accepted());
    assert!(status(&c, Kind::Route, "any-by-name").is_accepted());
    assert_eq!(
        route_keys(&c, "shop/pets/prod"),
        [
            "ANY /pets",
            "ANY /pets/{name}/toys",
            "GET /pets",
            "GET /pets/{id}"
        ]
    );
}

#[test]
fn a_template_naming_a_parameter_the_route_key_lacks_is_rejected_with_invalid_template() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: get-pet, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /pets/{id}
  integration:
    type: HTTP_PROXY
    backendRef: {name: pets, port: 80}
    path: /v1/pets/{petId}
"#,
    );
    let message = assert_refused(&c, Kind::Route, "get-pet", reasons::INVALID_TEMPLATE);
    assert!(message.contains("{petId}"), "{message}");
    assert_base_served(&c);
}

#[test]
fn a_route_naming_a_missing_authorizer_is_not_served_and_gets_authorizer_not_found() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: private, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /private
  authorizerRef: {name: jwt}
  integration: {type: MOCK}
"#,
    );
    assert_refused(&c, Kind::Route, "private", reasons::AUTHORIZER_NOT_FOUND);
    assert_eq!(route_keys(&c, "shop/pets/prod"), ["GET /pets"]);
}

#[test]
fn the_newer_of_two_stages_with_the_same_name_is_rejected_with_duplicate_stage_name() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: also-prod, namespace: shop, creationTimestamp: "2024-05-01T00:00:00Z"}
spec: {apiRef: {name: pets}, stageName: prod, autoDeploy: true}
"#,
    );
    assert_refused(&c, Kind::Stage, "also-prod", reasons::DUPLICATE_STAGE);
    assert_eq!(c.snapshot.stages.len(), 1);
    assert_base_served(&c);
}

#[test]
fn a_stage_claiming_a_host_and_base_path_another_stage_owns_is_rejected_as_conflicting_domain() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: a, namespace: shop, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  domains: [{hostname: pets.example.com, basePath: v1}]
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: b, namespace: shop, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  domains: [{hostname: pets.example.com, basePath: /v1/}]
"#,
    );
    let message = assert_refused(&c, Kind::Stage, "b", reasons::CONFLICTING_DOMAIN);
    assert!(message.contains("shop/pets/a"), "{message}");
    assert!(status(&c, Kind::Stage, "a").is_accepted());
    assert!(c.snapshot.stage("shop/pets/b").is_none());
    assert_base_served(&c);
}

#[test]
fn objects_naming_a_missing_api_are_rejected_with_api_not_found() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: stray, namespace: shop}
spec:
  apiRef: {name: cats}
  routeKey: GET /cats
  integration: {type: MOCK}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: stray, namespace: shop}
spec: {apiRef: {name: cats}, autoDeploy: true}
---
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: stray, namespace: shop}
spec:
  apiRef: {name: cats}
  type: JWT
  jwt: {issuer: "https://issuer.example.com", audiences: [cats]}
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {name: stray, namespace: shop}
spec:
  apiStages: [{api: cats, stage: prod}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: pets-in-other-namespace, namespace: zoo}
spec:
  apiRef: {name: pets}
  routeKey: GET /other
  integration: {type: MOCK}
"#,
    );
    for kind in [Kind::Route, Kind::Stage, Kind::Authorizer, Kind::UsagePlan] {
        assert_refused(&c, kind, "stray", reasons::API_NOT_FOUND);
    }
    assert_refused(
        &c,
        Kind::Route,
        "pets-in-other-namespace",
        reasons::API_NOT_FOUND,
    );
    assert_base_served(&c);
}

#[test]
fn a_route_naming_a_missing_service_is_rejected_with_backend_not_found() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: cats, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /cats
  integration: {type: HTTP_PROXY, backendRef: {name: cats, port: 80}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: wrong-port, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /dogs
  integration: {type: HTTP_PROXY, uri: "http://pets.shop:9999/dogs"}
"#,
    );
    assert_refused(&c, Kind::Route, "cats", reasons::BACKEND_NOT_FOUND);
    let message = assert_refused(&c, Kind::Route, "wrong-port", reasons::BACKEND_NOT_FOUND);
    assert!(message.contains("no port 9999"), "{message}");
    assert_base_served(&c);
}

const FINANCE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: finance}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: finance}
spec:
  ports: [{port: 80}]
---
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: billing-only, namespace: finance}
spec: {allowedNamespaces: [shop], services: [billing]}
"#;

#[test]
fn a_backend_in_another_namespace_without_a_granting_vpc_link_is_rejected_with_ref_not_permitted() {
    let c = with_base(&format!(
        r#"{FINANCE}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: pay, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: POST /pay
  integration: {{type: HTTP_PROXY, backendRef: {{name: billing, namespace: finance, port: 80}}}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: books, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /books
  integration: {{type: HTTP_PROXY, backendRef: {{name: ledger, namespace: finance, port: 80}}}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: books-by-url, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /books/url
  integration: {{type: HTTP_PROXY, uri: "http://ledger.finance.svc.cluster.local/books"}}
"#
    ));
    assert!(status(&c, Kind::Route, "pay").is_accepted());
    assert_refused(&c, Kind::Route, "books", reasons::REF_NOT_PERMITTED);
    assert_refused(&c, Kind::Route, "books-by-url", reasons::REF_NOT_PERMITTED);
    assert!(c.snapshot.backends.contains_key("svc/finance/billing:80"));
    assert_base_served(&c);
}

#[test]
fn a_route_naming_a_missing_vpc_link_is_rejected_with_vpc_link_not_found() {
    let c = with_base(&format!(
        r#"{FINANCE}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: pay, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: POST /pay
  integration:
    type: HTTP_PROXY
    backendRef: {{name: billing, namespace: finance, port: 80}}
    vpcLinkRef: {{name: nope}}
"#
    ));
    assert_refused(&c, Kind::Route, "pay", reasons::VPC_LINK_NOT_FOUND);
    assert_base_served(&c);
}

#[test]
fn a_stage_pinned_to_an_unknown_deployment_is_rejected_with_deployment_not_found() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: old, namespace: shop}
spec: {apiRef: {name: pets}, deploymentId: "abcdef0123"}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bad-canary, namespace: shop}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  canary: {deploymentId: "abcdef0123", percentTraffic: 10}
"#,
    );
    assert_refused(&c, Kind::Stage, "old", reasons::DEPLOYMENT_NOT_FOUND);
    assert_refused(&c, Kind::Stage, "bad-canary", reasons::DEPLOYMENT_NOT_FOUND);
    assert_base_served(&c);
}

#[test]
fn a_stage_whose_variables_make_an_integration_uri_invalid_is_rejected_with_invalid_template() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: hosts, namespace: shop}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: by-variable, namespace: shop}
spec:
  apiRef: {name: hosts}
  routeKey: GET /x
  integration: {type: HTTP_PROXY, uri: "http://${stageVariables.host}:8080"}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: unset, namespace: shop}
spec: {apiRef: {name: hosts}, autoDeploy: true}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: set, namespace: shop}
spec: {apiRef: {name: hosts}, autoDeploy: true, variables: {host: example.org}}
"#,
    );
    let message = assert_refused(&c, Kind::Stage, "unset", reasons::INVALID_TEMPLATE);
    assert!(message.contains("has no host"), "{message}");
    assert!(status(&c, Kind::Stage, "set").is_accepted());
    assert!(
        c.snapshot
            .backends
            .contains_key("url/http://example.org:8080")
    );
    assert_base_served(&c);
}

#[test]
fn a_websocket_api_asking_for_keys_from_an_authorizer_is_rejected_as_unsupported() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: chat, namespace: shop}
spec: {protocol: WEBSOCKET, apiKeySelectionExpression: $context.authorizer.usageIdentifierKey}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: chat, namespace: shop}
spec: {apiRef: {name: chat}, autoDeploy: true}
"#,
    );
    assert_refused(&c, Kind::Api, "chat", reasons::UNSUPPORTED_FEATURE);
    let message = assert_refused(&c, Kind::Stage, "chat", reasons::API_NOT_FOUND);
    assert!(message.contains("not accepted"), "{message}");
    assert_base_served(&c);
}
