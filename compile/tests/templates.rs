//! REST API non-proxy integrations (issue 13): mapping templates are parsed by `compile`, a
//! syntax error rejects the Route with the template, content type, line and column; `apiType`
//! selects AWS's defaults and notes features of the other kind.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use causeway_snapshot::{GatewayResponseKind, Integration, PayloadFormat, ResponseValue};
use support::{BASE, assert_base_served, assert_refused, compile_yaml, status, with_base};

#[test]
fn a_request_template_with_a_syntax_error_rejects_the_route_naming_line_and_column() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: broken, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /pets
  integration:
    type: HTTP
    backendRef: {name: pets, port: 80}
    requestTemplates:
      application/json: |
        {
          #foreach($p in $input.path('$.pets'))
          "$p.name"
        }
"#,
    );
    let message = assert_refused(&c, Kind::Route, "broken", reasons::INVALID_MAPPING_TEMPLATE);
    assert!(
        message.contains(
            r#"spec.integration.requestTemplates["application/json"]: the template does not parse: line 2, column 3: #foreach without #end"#
        ),
        "{message}"
    );
    assert_base_served(&c);
}

#[test]
fn a_response_template_with_a_syntax_error_names_its_integration_response() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: broken, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /health
  integration:
    type: MOCK
    requestTemplates: {application/json: '{"statusCode": 200}'}
    integrationResponses:
      - statusCode: 200
        responseTemplates: {application/json: '{"ok": $input.json(''$''}'}
"#,
    );
    let message = assert_refused(&c, Kind::Route, "broken", reasons::INVALID_MAPPING_TEMPLATE);
    assert!(
        message.contains(r#"integrationResponses[0].responseTemplates["application/json"]"#)
            && message.contains("line 1, column 23: expected ',' or ')' in arguments"),
        "{message}"
    );
}

#[test]
fn a_selection_pattern_that_is_not_a_regex_rejects_the_route() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: broken, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /cats
  integration:
    type: HTTP
    backendRef: {name: pets, port: 80}
    integrationResponses:
      - {statusCode: 200}
      - {statusCode: 404, selectionPattern: "4(04"}
"#,
    );
    let message = assert_refused(
        &c,
        Kind::Route,
        "broken",
        reasons::INVALID_SELECTION_PATTERN,
    );
    assert!(
        message.contains("integrationResponses[1].selectionPattern"),
        "{message}"
    );
}

#[test]
fn valid_templates_travel_in_the_snapshot_as_source_text() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: mapped, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /health
  integration:
    type: MOCK
    requestTemplates: {Application/JSON: '{"statusCode": 200}'}
    integrationResponses:
      - statusCode: 200
        responseTemplates: {application/json: '{"stage": "$context.stage"}'}
        responseParameters: {method.response.header.X-Stage: stageVariables.color}
      - {statusCode: 500, selectionPattern: '5\d{2}'}
"#,
    );
    assert!(status(&c, Kind::Route, "mapped").is_accepted());
    let stage = c.snapshot.stage("shop/pets/prod").expect("stage served");
    let route = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "GET /health")
        .expect("the route is served");
    let Integration::Mock(mock) = &route.integration else {
        panic!("a MOCK integration");
    };
    let mapping = mock
        .mapping
        .as_ref()
        .expect("the mapping is in the snapshot");
    assert_eq!(
        mapping
            .request_templates
            .get("application/json")
            .map(String::as_str),
        Some(r#"{"statusCode": 200}"#)
    );
    let patterns: Vec<_> = mapping
        .responses
        .iter()
        .map(|r| (r.selection_pattern.as_deref(), r.status))
        .collect();
    assert_eq!(patterns, [(Some("5\\d{2}"), 500), (None, 200)]);
    assert_eq!(
        mapping.responses[1].headers.get("x-stage"),
        Some(&ResponseValue::StageVariable("color".into()))
    );
    let plain = c.snapshot.stage("shop/pets/prod").and_then(|s| {
        s.main
            .routes
            .iter()
            .find(|r| r.key == "GET /pets")
            .map(|r| r.integration.clone())
    });
    assert!(
        matches!(plain, Some(Integration::HttpProxy(h)) if h.mapping.is_none()),
        "routes without templates carry none"
    );
}

#[test]
fn mapping_fields_on_a_proxy_integration_are_invalid() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: confused, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /cats
  integration:
    type: HTTP_PROXY
    backendRef: {name: pets, port: 80}
    passthroughBehavior: NEVER
"#,
    );
    let message = assert_refused(&c, Kind::Route, "confused", reasons::INVALID);
    assert!(
        message.contains("HTTP_PROXY integrations pass requests"),
        "{message}"
    );
}

#[test]
fn a_lambda_non_proxy_route_with_a_broken_template_is_refused_naming_it() {
    let bad = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /orders
  integration:
    type: LAMBDA
    backendRef: {name: pets, port: 80}
    requestTemplates: {application/json: '#if('}
"#,
    );
    assert_refused(&bad, Kind::Route, "fn", reasons::INVALID_MAPPING_TEMPLATE);
    assert_base_served(&bad);
    let mapped = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /orders
  integration:
    type: LAMBDA
    backendRef: {name: pets, port: 80}
    requestParameters: {"overwrite:header.x-id": "$request.header.x-id"}
"#,
    );
    let message = assert_refused(&mapped, Kind::Route, "fn", reasons::INVALID_MAPPING);
    assert!(
        message.contains("LAMBDA integrations take their input from the request template"),
        "{message}"
    );
}

/// A Lambda non-proxy route as AWS's developer guide shows them: a request template that
/// builds the payload, a default 200 and an error-message pattern to a 400 with a template
/// reading `errorMessage` and a header from the error object.
const LAMBDA_NON_PROXY: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /add/{a}
  integration:
    type: LAMBDA
    backendRef: {name: pets, port: 80}
    timeoutMillis: 5000
    passthroughBehavior: WHEN_NO_TEMPLATES
    requestTemplates:
      application/json: '{"a": "$input.params(''a'')", "b": "$input.params(''b'')"}'
    integrationResponses:
      - statusCode: 200
        responseParameters: {method.response.header.x-op: "'add'"}
      - statusCode: 400
        selectionPattern: "Invalid.*"
        responseParameters: {method.response.header.x-error-type: integration.response.body.errorType}
        responseTemplates:
          application/json: '{"error": "$input.path(''$.errorMessage'')"}'
"#;

#[test]
fn a_lambda_non_proxy_route_compiles_to_an_invocation_with_its_mapping() {
    let c = with_base(LAMBDA_NON_PROXY);
    assert!(
        status(&c, Kind::Route, "fn").is_accepted(),
        "{:?}",
        status(&c, Kind::Route, "fn").problem()
    );
    assert_base_served(&c);
    let stage = c.snapshot.stage("shop/pets/prod").expect("prod served");
    let route = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "GET /add/{a}")
        .expect("the Lambda route is served");
    let Integration::Lambda(lambda) = &route.integration else {
        panic!("not a LAMBDA integration: {:?}", route.integration);
    };
    // The patterned response comes first, the default last; the default invoke path is the
    // Runtime Interface Emulator's.
    insta::assert_json_snapshot!("lambda_non_proxy_integration", lambda);
}

fn with_api_type(api_type: &str, route: &str) -> causeway_compile::Compiled {
    let base = BASE.replace(
        "metadata: {name: pets, namespace: shop}\nspec: {}",
        &format!("metadata: {{name: pets, namespace: shop}}\nspec: {{apiType: {api_type}}}"),
    );
    compile_yaml(&format!("{base}\n---\n{route}"))
}

const LAMBDA_ROUTE: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /orders
  integration: {type: LAMBDA_PROXY, backendRef: {name: pets, port: 80}}
"#;

fn unknown_route_status(c: &causeway_compile::Compiled) -> (u16, String) {
    let api = c.snapshot.api("shop/pets").expect("the Api is served");
    let r = &api.gateway_responses[&GatewayResponseKind::MissingAuthenticationToken];
    (r.status, r.body.clone())
}

fn payload_format(c: &causeway_compile::Compiled) -> Option<PayloadFormat> {
    let stage = c.snapshot.stage("shop/pets/prod")?;
    stage.main.routes.iter().find_map(|r| match &r.integration {
        Integration::LambdaProxy(l) => Some(l.payload_format),
        _ => None,
    })
}

#[test]
fn a_rest_api_answers_unknown_routes_with_403_and_defaults_lambda_payloads_to_1_0() {
    let c = with_api_type("REST", LAMBDA_ROUTE);
    assert_eq!(
        unknown_route_status(&c),
        (
            403,
            r#"{"message":"Missing Authentication Token"}"#.to_string()
        )
    );
    assert_eq!(payload_format(&c), Some(PayloadFormat::V1));
}

#[test]
fn an_http_api_answers_unknown_routes_with_404_and_defaults_lambda_payloads_to_2_0() {
    let c = with_api_type("HTTP", LAMBDA_ROUTE);
    assert_eq!(
        unknown_route_status(&c),
        (404, r#"{"message":"Not Found"}"#.to_string())
    );
    assert_eq!(payload_format(&c), Some(PayloadFormat::V2));
}

#[test]
fn an_api_without_api_type_keeps_the_403_and_payload_2_0() {
    let c = with_base(LAMBDA_ROUTE);
    assert_eq!(unknown_route_status(&c).0, 403);
    assert_eq!(payload_format(&c), Some(PayloadFormat::V2));
}

#[test]
fn a_rest_only_feature_on_an_http_api_is_served_and_noted_in_status() {
    let c = with_api_type(
        "HTTP",
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: health, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /health
  apiKeyRequired: false
  integration: {type: MOCK, mock: {body: ok}}
"#,
    );
    let s = status(&c, Kind::Route, "health");
    assert!(s.is_accepted());
    let message = &s.conditions[0].message;
    assert!(
        message.contains(
            "MOCK integrations are a REST API feature on AWS; this Api is of apiType HTTP"
        ),
        "{message}"
    );
    let plain = status(&c, Kind::Route, "list-pets");
    assert_eq!(plain.conditions[0].message, "Route shop/list-pets is valid");
}

#[test]
fn payload_format_2_0_on_a_rest_api_is_noted_in_status() {
    let c = with_api_type(
        "REST",
        &LAMBDA_ROUTE.replace(
            "LAMBDA_PROXY,",
            "LAMBDA_PROXY, payloadFormatVersion: \"2.0\",",
        ),
    );
    let message = &status(&c, Kind::Route, "fn").conditions[0].message;
    assert!(
        message.contains("payload format 2.0 is an HTTP API feature"),
        "{message}"
    );
    assert_eq!(payload_format(&c), Some(PayloadFormat::V2));
}

#[test]
fn method_responses_are_declarations_and_an_undeclared_integration_status_is_noted() {
    let route = LAMBDA_NON_PROXY.to_string()
        + r#"  method:
    operationName: addNumbers
    requestParameters: {method.request.path.a: true, method.request.querystring.b: true}
    responses:
      - statusCode: 200
        description: the sum
        responseParameters: {method.response.header.x-op: false}
        responseModels: {application/json: Sum}
"#;
    let c = with_base(&route);
    let s = status(&c, Kind::Route, "fn");
    assert!(s.is_accepted(), "{:?}", s.problem());
    let message = &s.conditions[0].message;
    assert!(
        message.contains(
            "spec.integration.integrationResponses[1].statusCode 400 has no method response in spec.method.responses"
        ),
        "{message}"
    );
    assert!(
        message.contains(r#"spec.method.responses[0].responseModels["application/json"]: "Sum" is not a model of the Api"#),
        "{message}"
    );
    // The declarations change nothing that is served: the same snapshot as without them.
    let without = with_base(LAMBDA_NON_PROXY);
    assert_eq!(
        serde_json::to_value(&c.snapshot.stages).expect("json"),
        serde_json::to_value(&without.snapshot.stages).expect("json")
    );
}
