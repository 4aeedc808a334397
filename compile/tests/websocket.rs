//! WebSocket Apis: route selection, route keys, two-way routes, the `@connections`
//! authorizer, and what is refused (by name, in the object's own status).

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use causeway_snapshot::RouteMatch;
use support::{assert_base_served, assert_refused, route_keys, status, with_base};

const CHAT: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: iam, namespace: shop}
stringData: {AKID1: secret-one}
---
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: chat, namespace: shop}
spec:
  protocol: WEBSOCKET
  routeSelectionExpression: $request.body.msg.kind
  connectionsAuthorizerRef: {name: iam}
---
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: iam, namespace: shop}
spec:
  apiRef: {name: chat}
  type: SIGV4
  sigv4: {credentialsSecretRef: {name: iam}, region: eu-west-1}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: connect, namespace: shop}
spec:
  apiRef: {name: chat}
  routeKey: $connect
  apiKeyRequired: false
  integration: {type: MOCK, mock: {statusCode: 200}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: send, namespace: shop}
spec:
  apiRef: {name: chat}
  routeKey: sendmessage
  routeResponseSelectionExpression: $default
  integration: {type: HTTP_PROXY, backendRef: {name: pets, port: 80}, path: /messages}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fallback, namespace: shop}
spec:
  apiRef: {name: chat}
  routeKey: $default
  integration: {type: HTTP_PROXY, uri: "http://pets.shop:80/default"}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: live, namespace: shop}
spec: {apiRef: {name: chat}, autoDeploy: true}
"#;

#[test]
fn a_websocket_api_compiles_its_selection_path_routes_and_connections_authorizer() {
    let c = with_base(CHAT);
    assert!(status(&c, Kind::Api, "chat").is_accepted());
    for route in ["connect", "send", "fallback"] {
        assert!(status(&c, Kind::Route, route).is_accepted(), "{route}");
    }
    let api = c.snapshot.api("shop/chat").expect("the Api is served");
    let ws = api.websocket.as_ref().expect("websocket settings");
    assert_eq!(ws.route_selection, ["msg", "kind"]);
    assert_eq!(
        ws.connections_authorization
            .as_ref()
            .map(|a| a.authorizer.as_str()),
        Some("shop/iam")
    );
    assert_eq!(
        route_keys(&c, "shop/chat/live"),
        ["$connect", "$default", "sendmessage"]
    );
    let stage = c.snapshot.stage("shop/chat/live").expect("stage");
    let send = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "sendmessage")
        .unwrap();
    assert!(send.two_way);
    assert_eq!(send.matcher, RouteMatch::Key);
    let default = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "$default")
        .unwrap();
    assert!(!default.two_way);
    assert_eq!(default.matcher, RouteMatch::Default);
    assert_base_served(&c);
}

#[test]
fn the_default_route_selection_expression_is_the_body_action() {
    let c = with_base(&CHAT.replace("  routeSelectionExpression: $request.body.msg.kind\n", ""));
    let ws = c
        .snapshot
        .api("shop/chat")
        .unwrap()
        .websocket
        .clone()
        .unwrap();
    assert_eq!(ws.route_selection, ["action"]);
}

#[test]
fn a_route_selection_expression_outside_the_body_is_refused_on_the_api() {
    let c = with_base(&CHAT.replace("$request.body.msg.kind", "$request.header.x-route"));
    let message = assert_refused(&c, Kind::Api, "chat", reasons::INVALID);
    assert!(message.contains("routeSelectionExpression"), "{message}");
    assert_base_served(&c);
}

#[test]
fn a_connections_authorizer_that_is_not_sigv4_refuses_the_api() {
    let c = with_base(&CHAT.replace(
        "connectionsAuthorizerRef: {name: iam}",
        "connectionsAuthorizerRef: {name: ghost}",
    ));
    assert_refused(&c, Kind::Api, "chat", reasons::AUTHORIZER_NOT_FOUND);
    assert_base_served(&c);
}

#[test]
fn http_route_keys_and_authorizers_off_connect_are_refused_on_websocket_routes() {
    let c = with_base(&CHAT.replace("routeKey: sendmessage", "routeKey: POST /send"));
    assert_refused(&c, Kind::Route, "send", reasons::INVALID_ROUTE_KEY);
    let c = with_base(&CHAT.replace(
        "routeKey: sendmessage",
        "routeKey: sendmessage\n  apiKeyRequired: true",
    ));
    let message = assert_refused(&c, Kind::Route, "send", reasons::INVALID);
    assert!(message.contains("$connect"), "{message}");
    let c = with_base(&CHAT.replace(
        "routeResponseSelectionExpression: $default",
        "routeResponseSelectionExpression: $request.body.status",
    ));
    assert_refused(&c, Kind::Route, "send", reasons::UNSUPPORTED_FEATURE);
    assert!(status(&c, Kind::Route, "connect").is_accepted());
}

#[test]
fn websocket_fields_on_an_http_api_are_refused_rather_than_ignored() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: plain, namespace: shop}
spec: {routeSelectionExpression: $request.body.action}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: two-way, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /two-way
  routeResponseSelectionExpression: $default
  integration: {type: MOCK}
"#,
    );
    assert_refused(&c, Kind::Api, "plain", reasons::INVALID);
    assert_refused(&c, Kind::Route, "two-way", reasons::INVALID);
    assert_base_served(&c);
}

#[test]
fn a_response_cache_on_a_websocket_stage_is_refused_with_the_reason() {
    let c = with_base(&CHAT.replace(
        "spec: {apiRef: {name: chat}, autoDeploy: true}",
        "spec: {apiRef: {name: chat}, autoDeploy: true, cache: {enabled: true}}",
    ));
    let message = assert_refused(&c, Kind::Stage, "live", reasons::UNSUPPORTED_FEATURE);
    assert!(message.contains("spec.cache"), "{message}");
    assert!(c.snapshot.stage("shop/chat/live").is_none());
    let c = with_base(&CHAT.replace(
        "spec: {apiRef: {name: chat}, autoDeploy: true}",
        "spec: {apiRef: {name: chat}, autoDeploy: true, routeSettings: [{routeKey: sendmessage, cachingEnabled: true}]}",
    ));
    let message = assert_refused(&c, Kind::Stage, "live", reasons::UNSUPPORTED_FEATURE);
    assert!(message.contains("spec.routeSettings[0]"), "{message}");
    // Without the cache the same stage is served, and the base Api is untouched either way.
    let c = with_base(CHAT);
    assert!(status(&c, Kind::Stage, "live").is_accepted());
    assert!(c.snapshot.stage("shop/chat/live").is_some());
    assert_base_served(&c);
}
