//! REST API non-proxy integrations (issue 13): mapping templates are parsed by `compile`, a
//! syntax error rejects the Route with the template, content type, line and column; `apiType`
//! selects AWS's defaults and notes features of the other kind.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use causeway_snapshot::{GatewayResponseKind, Integration, PayloadFormat};
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
fn valid_templates_are_left_out_until_the_proxy_evaluates_them() {
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
    requestTemplates: {application/json: '{"statusCode": 200}'}
    integrationResponses:
      - statusCode: 200
        responseTemplates: {application/json: '{"stage": "$context.stage"}'}
"#,
    );
    let message = assert_refused(&c, Kind::Route, "mapped", reasons::UNSUPPORTED_FEATURE);
    assert!(message.contains("does not evaluate them yet"), "{message}");
    assert_base_served(&c);
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
fn a_lambda_non_proxy_route_is_checked_then_reported_as_not_served() {
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
    let good = with_base(
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
    integrationResponses:
      - {statusCode: 200}
      - {statusCode: 400, selectionPattern: ".*Invalid.*"}
"#,
    );
    assert_refused(&good, Kind::Route, "fn", reasons::UNSUPPORTED_INTEGRATION);
    assert_base_served(&good);
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
