//! Request validation: required parameters and draft-04 models; the backend's request counter
//! proves refused requests never reach it; a remote `$ref` never makes the proxy fetch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use causeway_snapshot::{
    GatewayResponse, GatewayResponseKind, Model, RequestValidation, RouteConfig, Snapshot,
};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::*;

/// API Gateway's draft-04 example model, with an enum, a pattern and a nested object.
fn pet_model() -> serde_json::Value {
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "Pet",
        "type": "object",
        "required": ["name", "type", "price"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "type": {"type": "string", "enum": ["dog", "cat", "fish"]},
            "price": {"type": "number", "minimum": 0, "maximum": 1000, "exclusiveMinimum": true},
            "tag": {"type": "string", "pattern": "^[a-z]{2,8}$"},
            "owner": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}},
            },
        },
    })
}

fn validated(route: impl Into<RouteConfig>, validation: RequestValidation) -> RouteConfig {
    let mut route = route.into();
    route.validation = Some(validation);
    route
}

fn body_validation() -> RequestValidation {
    RequestValidation {
        body_models: BTreeMap::from([(
            "application/json".to_string(),
            Model {
                name: "Pet".to_string(),
                schema: pet_model(),
            },
        )]),
        ..RequestValidation::default()
    }
}

fn snapshot(upstream: &Upstream) -> Snapshot {
    let mut snapshot = SnapshotBuilder::new()
        .route(validated(proxy_to("POST /pets", "up"), body_validation()))
        .route(validated(
            proxy_to("GET /search", "up"),
            RequestValidation {
                required_query_strings: vec!["q".into(), "page".into()],
                required_headers: vec!["x-client".into()],
                ..RequestValidation::default()
            },
        ))
        .backend("up", &[upstream.endpoint()])
        .build();
    // As compile writes it: the default body is literal JSON with the fixed message.
    snapshot.apis[0].gateway_responses.insert(
        GatewayResponseKind::BadRequestParameters,
        GatewayResponse {
            status: 400,
            headers: BTreeMap::new(),
            body: r#"{"message":"Missing required request parameters"}"#.into(),
            content_type: "application/json".into(),
        },
    );
    // The override shows the validation detail, as `$context.error.validationErrorString` does
    // in API Gateway.
    snapshot.apis[0].gateway_responses.insert(
        GatewayResponseKind::BadRequestBody,
        GatewayResponse {
            status: 400,
            headers: BTreeMap::new(),
            body: r#"{"message":$context.error.messageString,"detail":"$context.error.validationErrorString"}"#.into(),
            content_type: "application/json".into(),
        },
    );
    snapshot.seal()
}

#[tokio::test]
async fn bodies_are_checked_against_the_draft_04_model_and_invalid_ones_never_reach_the_backend() {
    let upstream = Upstream::start("up").await;
    let proxy = TestProxy::with_snapshot(snapshot(&upstream)).await;
    let valid = [
        json!({"name": "rex", "type": "dog", "price": 10}),
        json!({"name": "tom", "type": "cat", "price": 0.5, "tag": "tabby"}),
        json!({"name": "n", "type": "fish", "price": 1000, "owner": {"email": "a@b.c"}}),
    ];
    let invalid = [
        ("wrong type", json!({"name": 5, "type": "dog", "price": 10})),
        ("missing required", json!({"name": "rex", "type": "dog"})),
        (
            "not in the enum",
            json!({"name": "rex", "type": "cow", "price": 10}),
        ),
        (
            "pattern",
            json!({"name": "rex", "type": "dog", "price": 10, "tag": "NO!"}),
        ),
        (
            "nested required",
            json!({"name": "rex", "type": "dog", "price": 10, "owner": {}}),
        ),
        (
            "nested pattern",
            json!({"name": "rex", "type": "dog", "price": 10, "owner": {"email": "nope"}}),
        ),
        (
            "draft-04 exclusiveMinimum",
            json!({"name": "rex", "type": "dog", "price": 0}),
        ),
        ("not an object", json!([1, 2])),
    ];
    for body in &valid {
        let answer = exchange(
            Method::POST,
            &proxy.url("/pets"),
            HOST,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.text());
    }
    assert_eq!(upstream.seen().len(), valid.len());
    assert_eq!(
        upstream.seen()[0].body_len(),
        valid[0].to_string().len() as u64,
        "a validated body is forwarded whole"
    );
    for (why, body) in &invalid {
        let answer = exchange(
            Method::POST,
            &proxy.url("/pets"),
            HOST,
            &[("content-type", "application/json; charset=utf-8")],
            body.to_string(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}");
        let text = answer.text();
        assert!(
            text.starts_with(r#"{"message":"Invalid request body","detail":"["#),
            "{why}: {text}"
        );
        assert!(
            text.len() > 60,
            "{why}: the detail names the problem: {text}"
        );
    }
    let not_json = exchange(
        Method::POST,
        &proxy.url("/pets"),
        HOST,
        &[("content-type", "application/json")],
        "{nope",
    )
    .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        upstream.seen().len(),
        valid.len(),
        "no invalid request reached the backend"
    );
}

#[tokio::test]
async fn missing_required_query_strings_and_headers_are_named_in_a_400() {
    let upstream = Upstream::start("up").await;
    let proxy = TestProxy::with_snapshot(snapshot(&upstream)).await;
    let client = http1();
    let missing = send(
        &client,
        Method::GET,
        &proxy.url("/search?q=cats"),
        HOST,
        &[],
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.body,
        r#"{"message":"Missing required request parameters: [page, x-client]"}"#
    );
    let complete = send(
        &client,
        Method::GET,
        &proxy.url("/search?q=cats&page=2"),
        HOST,
        &[("x-client", "web")],
    )
    .await;
    assert_eq!(complete.status, StatusCode::OK, "{}", complete.body);
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the complete request got through"
    );
}

#[tokio::test]
async fn a_schema_with_a_remote_ref_is_refused_and_fetches_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let upstream = Upstream::start("up").await;
    let remote = RequestValidation {
        body_models: BTreeMap::from([(
            "application/json".to_string(),
            Model {
                name: "Remote".to_string(),
                schema: json!({"$ref": format!("http://127.0.0.1:{port}/pet.json")}),
            },
        )]),
        ..RequestValidation::default()
    };
    let snapshot = SnapshotBuilder::new()
        .route(validated(proxy_to("POST /pets", "up"), remote))
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::start().await;
    let applied = proxy.proxy.apply(snapshot);
    let reasons: Vec<&str> = applied.dropped.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("Remote")),
        "a remote $ref cannot be compiled: {reasons:?}"
    );
    // Schemas compile inside `apply`, so a fetch would already be queued on the listener. A
    // connection of our own goes after it: once the listener took ours, it took any before.
    let _barrier = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    until("the listener accepts our connection", EVENTUALLY, || {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        accepted.load(Ordering::SeqCst) - 1,
        0,
        "nothing was fetched"
    );
}
