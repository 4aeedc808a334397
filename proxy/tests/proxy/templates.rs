//! REST API non-proxy integrations with mapping templates (issue 13), on real sockets: MOCK with
//! templates, HTTP with request templates, passthrough behaviors and integration responses, and
//! LAMBDA (non-proxy) with responses selected by the function's error message.

use std::collections::BTreeMap;

use causeway_snapshot::{
    Integration, IntegrationMapping, IntegrationResponse, LAMBDA_INVOKE_PATH, LambdaIntegration,
    PassthroughBehavior, ResponseValue, RouteConfig,
};
use http::Method;

use crate::support::*;

fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn response(pattern: Option<&str>, status: u16, template: Option<&str>) -> IntegrationResponse {
    IntegrationResponse {
        selection_pattern: pattern.map(str::to_string),
        status,
        headers: BTreeMap::new(),
        templates: template
            .map(|t| templates(&[("application/json", t)]))
            .unwrap_or_default(),
        content_handling: None,
    }
}

fn with_mapping(mut route: RouteConfig, mapping: IntegrationMapping) -> RouteConfig {
    match &mut route.integration {
        Integration::HttpProxy(h) => h.mapping = Some(mapping),
        Integration::Mock(m) => m.mapping = Some(mapping),
        Integration::Lambda(l) => l.mapping = mapping,
        Integration::LambdaProxy(_) => unreachable!("no mapping on LAMBDA_PROXY"),
    }
    route
}

#[tokio::test]
async fn a_mock_request_template_selects_the_integration_response_by_status_code() {
    let mut ok = response(
        None,
        200,
        Some(r#"{"pet": "$input.params('id')", "stage": "$context.stage"}"#),
    );
    ok.headers
        .insert("x-source".into(), ResponseValue::Literal("mock".into()));
    let mapping = IntegrationMapping {
        request_templates: templates(&[(
            "application/json",
            "#if($input.params('id') == '0'){\"statusCode\": 404}#else{\"statusCode\": 200}#end",
        )]),
        responses: vec![
            response(
                Some("4\\d{2}"),
                404,
                Some(r#"{"message": "no pet $input.params('id')"}"#),
            ),
            ok,
        ],
        ..IntegrationMapping::default()
    };
    let route = with_mapping(mock("GET /pets/{id}", "unused"), mapping);
    let proxy = TestProxy::with_snapshot(SnapshotBuilder::new().route(route).build()).await;

    let found = exchange(Method::GET, &proxy.url("/pets/7"), HOST, &[], Vec::new()).await;
    assert_eq!(found.status.as_u16(), 200);
    assert_eq!(found.text(), r#"{"pet": "7", "stage": "prod"}"#);
    assert_eq!(found.header("x-source").as_deref(), Some("mock"));
    assert_eq!(
        found.header("content-type").as_deref(),
        Some("application/json")
    );

    let missing = exchange(Method::GET, &proxy.url("/pets/0"), HOST, &[], Vec::new()).await;
    assert_eq!(missing.status.as_u16(), 404);
    assert_eq!(missing.text(), r#"{"message": "no pet 0"}"#);
}

#[tokio::test]
async fn an_http_request_template_rewrites_the_body_and_the_response_template_the_answer() {
    let upstream = Upstream::with_handler(|r| {
        if r.path.ends_with("/missing") {
            Reply::ok(r#"{"error": "not here"}"#).status(404)
        } else {
            Reply::ok(r#"{"items": [{"id": 1, "type": "dog", "price": 249.99}, {"id": 2, "type": "cat", "price": 124.99}]}"#)
                .header("x-backend", "b1")
        }
    })
    .await;
    let mut ok = response(
        None,
        200,
        Some(
            "[\n#foreach($e in $input.path('$.items'))\n  {\"description\": \"Item $e.id is a $e.type.\", \"askingPrice\": $e.price}#if($foreach.hasNext),#end\n#end\n]",
        ),
    );
    ok.headers.insert(
        "x-from".into(),
        ResponseValue::IntegrationHeader("x-backend".into()),
    );
    ok.headers.insert(
        "x-first".into(),
        ResponseValue::IntegrationBodyPath("$.items[0].type".into()),
    );
    let mapping = IntegrationMapping {
        request_templates: templates(&[(
            "application/json",
            r#"{"name": $input.json('$.name'), "owner": "$input.params('owner')", "id": "$input.params('id')"}"#,
        )]),
        passthrough_behavior: PassthroughBehavior::Never,
        responses: vec![
            response(
                Some("404"),
                404,
                Some(r#"{"message": "$input.path('$.error')"}"#),
            ),
            ok,
        ],
        ..IntegrationMapping::default()
    };
    let route = with_mapping(proxy_to("POST /pets/{id}", "up").build(), mapping);
    let snapshot = SnapshotBuilder::new()
        .route(route)
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;

    let answer = exchange(
        Method::POST,
        &proxy.url("/pets/5?owner=ann"),
        HOST,
        &[("content-type", "application/json; charset=utf-8")],
        r#"{"name": "Rex", "ignored": true}"#,
    )
    .await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text());
    let body: serde_json::Value = serde_json::from_str(&answer.text()).expect("JSON answer");
    assert_eq!(
        body,
        serde_json::json!([
            {"description": "Item 1 is a dog.", "askingPrice": 249.99},
            {"description": "Item 2 is a cat.", "askingPrice": 124.99}
        ])
    );
    assert_eq!(answer.header("x-from").as_deref(), Some("b1"));
    assert_eq!(answer.header("x-first").as_deref(), Some("dog"));
    let seen = upstream.seen();
    assert_eq!(
        String::from_utf8_lossy(&seen[0].body),
        r#"{"name": "Rex", "owner": "ann", "id": "5"}"#
    );
    assert_eq!(
        seen[0].headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );

    let missing = exchange(
        Method::POST,
        &proxy.url("/pets/missing"),
        HOST,
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(missing.status.as_u16(), 404);
    assert_eq!(missing.text(), r#"{"message": "not here"}"#);
}

#[tokio::test]
async fn passthrough_never_refuses_an_unmapped_content_type_with_415() {
    let upstream = Upstream::with_handler(|_| Reply::ok("never called")).await;
    let mapping = IntegrationMapping {
        request_templates: templates(&[("application/json", "{}")]),
        passthrough_behavior: PassthroughBehavior::Never,
        responses: vec![response(None, 200, None)],
        ..IntegrationMapping::default()
    };
    let route = with_mapping(proxy_to("POST /pets", "up").build(), mapping);
    let snapshot = SnapshotBuilder::new()
        .route(route)
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = exchange(
        Method::POST,
        &proxy.url("/pets"),
        HOST,
        &[("content-type", "application/xml")],
        "<pet/>",
    )
    .await;
    assert_eq!(answer.status.as_u16(), 415);
    assert!(
        answer.text().contains("Unsupported Media Type"),
        "{}",
        answer.text()
    );
    assert_eq!(upstream.calls(), 0, "the backend is never called");
}

#[tokio::test]
async fn passthrough_when_no_match_sends_the_body_unmapped_and_passes_the_answer_through() {
    let upstream =
        Upstream::with_handler(|_| Reply::ok("<ok/>").header("content-type", "application/xml"))
            .await;
    let mapping = IntegrationMapping {
        request_templates: templates(&[("application/json", "{\"mapped\": true}")]),
        responses: vec![response(None, 201, None)],
        ..IntegrationMapping::default()
    };
    let route = with_mapping(proxy_to("POST /pets", "up").build(), mapping);
    let snapshot = SnapshotBuilder::new()
        .route(route)
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = exchange(
        Method::POST,
        &proxy.url("/pets"),
        HOST,
        &[("content-type", "application/xml")],
        "<pet/>",
    )
    .await;
    assert_eq!(answer.status.as_u16(), 201);
    assert_eq!(answer.text(), "<ok/>");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/xml")
    );
    assert_eq!(String::from_utf8_lossy(&upstream.seen()[0].body), "<pet/>");
}

#[tokio::test]
async fn a_status_no_integration_response_selects_is_a_500_and_a_runaway_template_too() {
    let upstream = Upstream::with_handler(|_| Reply::ok("x").status(503)).await;
    let mapping = IntegrationMapping {
        responses: vec![response(Some("2\\d{2}"), 200, None)],
        ..IntegrationMapping::default()
    };
    let route = with_mapping(proxy_to("GET /pets", "up").build(), mapping);
    let runaway = IntegrationMapping {
        request_templates: templates(&[(
            "application/json",
            "#set($r = [1..1000])#foreach($a in $r)#foreach($b in $r)#foreach($c in $r)x#end#end#end",
        )]),
        responses: vec![response(None, 200, None)],
        ..IntegrationMapping::default()
    };
    let snapshot = SnapshotBuilder::new()
        .route(route)
        .route(with_mapping(mock("GET /spin", "unused"), runaway))
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = exchange(Method::GET, &proxy.url("/pets"), HOST, &[], Vec::new()).await;
    assert_eq!(answer.status.as_u16(), 500);
    let started = std::time::Instant::now();
    let spin = exchange(Method::GET, &proxy.url("/spin"), HOST, &[], Vec::new()).await;
    assert_eq!(spin.status.as_u16(), 500);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A LAMBDA (non-proxy) route to backend `fn` with a mapping.
fn lambda(key: &str, mapping: IntegrationMapping) -> RouteConfig {
    RouteConfig {
        key: key.to_string(),
        matcher: route_match(key),
        integration: Integration::Lambda(LambdaIntegration {
            backend: "fn".to_string(),
            path: LAMBDA_INVOKE_PATH.to_string(),
            timeout_ms: 5_000,
            mapping,
        }),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    }
}

/// A function behind an invoke endpoint: `{"fail": "MESSAGE"}` fails with that message (as the
/// Runtime Interface Emulator reports it), `{"down": true}` is a 500 of the endpoint itself,
/// anything else succeeds with `{"echo": PAYLOAD}`.
async fn function() -> Upstream {
    Upstream::with_handler(|seen| {
        let payload: serde_json::Value =
            serde_json::from_slice(&seen.body).unwrap_or(serde_json::Value::Null);
        if let Some(message) = payload.get("fail").and_then(|m| m.as_str()) {
            let error = serde_json::json!({"errorMessage": message, "errorType": "ValueError"});
            return Reply::ok(error.to_string()).header("x-amz-function-error", "Unhandled");
        }
        if payload.get("down").is_some() {
            return Reply::ok("the emulator broke").status(500);
        }
        Reply::ok(serde_json::json!({"echo": payload}).to_string())
            .header("content-type", "application/json")
    })
    .await
}

#[tokio::test]
async fn a_lambda_request_template_is_the_payload_and_the_error_message_selects_the_response() {
    let f = function().await;
    let mut invalid = response(
        Some("Invalid.*"),
        400,
        Some(r#"{"message": "$input.path('$.errorMessage')"}"#),
    );
    invalid.headers.insert(
        "x-error-type".into(),
        ResponseValue::IntegrationBodyPath("$.errorType".into()),
    );
    let mapping = IntegrationMapping {
        request_templates: templates(&[(
            "application/json",
            r#"#if($input.params('mode') == 'ok'){"id": "$input.params('id')"}#elseif($input.params('mode') == 'down'){"down": true}#else{"fail": "$input.params('mode') input"}#end"#,
        )]),
        responses: vec![invalid, response(None, 200, None)],
        ..IntegrationMapping::default()
    };
    let snapshot = SnapshotBuilder::new()
        .route(lambda("GET /items/{id}", mapping))
        .route(lambda("POST /raw", IntegrationMapping::default()))
        .backend("fn", &[f.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;

    // Success: the default response, the function's result passed through; the payload is the
    // template's output, POSTed to the invoke path.
    let ok = exchange(
        Method::GET,
        &proxy.url("/items/7?mode=ok"),
        HOST,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    assert_eq!(ok.text(), r#"{"echo":{"id":"7"}}"#);
    assert_eq!(
        ok.header("content-type").as_deref(),
        Some("application/json")
    );
    let seen = f.seen();
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, LAMBDA_INVOKE_PATH);
    assert_eq!(&seen[0].body[..], br#"{"id": "7"}"#);

    // A function error whose whole message matches the pattern: the 400, its template and
    // its header from the error object.
    let bad = exchange(
        Method::GET,
        &proxy.url("/items/7?mode=Invalid"),
        HOST,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(bad.status.as_u16(), 400, "{}", bad.text());
    assert_eq!(bad.text(), r#"{"message": "Invalid input"}"#);
    assert_eq!(bad.header("x-error-type").as_deref(), Some("ValueError"));

    // An error no pattern matches takes the default response, as on AWS (the pattern must
    // match the whole message: "Not Invalid input" does not match `Invalid.*`).
    let other = exchange(
        Method::GET,
        &proxy.url("/items/7?mode=Not%20Invalid"),
        HOST,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(other.status.as_u16(), 200, "{}", other.text());
    assert!(
        other
            .text()
            .contains(r#""errorMessage":"Not Invalid input""#),
        "{}",
        other.text()
    );

    // The invoke endpoint failing (the function never ran) is the gateway's 502.
    let down = exchange(
        Method::GET,
        &proxy.url("/items/7?mode=down"),
        HOST,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(down.status.as_u16(), 502, "{}", down.text());

    // Without templates the body is the payload as it came; without a default integration
    // response a successful invocation has nothing to answer with: 500, as on AWS.
    let raw = exchange(
        Method::POST,
        &proxy.url("/raw"),
        HOST,
        &[("content-type", "application/json")],
        br#"{"n": 1}"#.to_vec(),
    )
    .await;
    assert_eq!(raw.status.as_u16(), 500, "{}", raw.text());
    assert_eq!(&f.seen().last().expect("invoked").body[..], br#"{"n": 1}"#);
}
