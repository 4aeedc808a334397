//! LAMBDA_PROXY: the events the gateway sends (checked against the official AWS event types of
//! `aws_lambda_events`), a real Lambda-style handler behind a tiny invoke endpoint, and
//! malformed answers.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use causeway_snapshot::{
    Integration, LAMBDA_INVOKE_PATH, LambdaProxyIntegration, PayloadFormat, RouteConfig, Snapshot,
};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::support::*;

const BINARY: [u8; 6] = [0, 159, 146, 150, 255, 10];

fn lambda(key: &str, format: PayloadFormat) -> RouteConfig {
    RouteConfig {
        key: key.to_string(),
        matcher: route_match(key),
        integration: Integration::LambdaProxy(LambdaProxyIntegration {
            backend: "fn".to_string(),
            path: LAMBDA_INVOKE_PATH.to_string(),
            payload_format: format,
            timeout_ms: 5_000,
        }),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    }
}

/// One Api with the given Lambda routes to `endpoint`, binary media type
/// `application/octet-stream` and stage variable `env=blue`.
fn snapshot(routes: Vec<RouteConfig>, endpoint: String) -> Snapshot {
    let mut builder = SnapshotBuilder::new().backend("fn", &[endpoint]);
    for r in routes {
        builder = builder.route(r);
    }
    let mut snapshot = builder.build();
    snapshot.apis[0].binary_media_types = vec!["application/octet-stream".to_string()];
    snapshot.stages[0].main.variables = BTreeMap::from([("env".to_string(), "blue".to_string())]);
    snapshot.seal()
}

const OK_V1: &str = r#"{"statusCode":200,"body":"ok"}"#;

/// Sends the reference request (repeated query string and header, cookies, path parameter)
/// and returns the event the function got, with the request id the client saw.
async fn reference_event(format: PayloadFormat) -> (Value, String, Upstream) {
    let function = Upstream::with_handler(|_| Reply::ok(OK_V1)).await;
    let proxy = TestProxy::with_snapshot(snapshot(
        vec![lambda("GET /items/{id}", format)],
        function.endpoint(),
    ))
    .await;
    let answer = exchange(
        Method::GET,
        &proxy.url("/items/42?tag=a&tag=b&name=x%20y"),
        HOST,
        &[
            ("cookie", "a=1; b=2"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("user-agent", "causeway-test"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let seen = function.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, LAMBDA_INVOKE_PATH);
    let event: Value = serde_json::from_slice(&seen[0].body).expect("event is JSON");
    let request_id = answer.header("x-request-id").expect("request id");
    (event, request_id, function)
}

#[tokio::test]
async fn the_1_0_event_is_an_aws_api_gateway_proxy_request_with_the_right_values() {
    let (raw, request_id, _f) = reference_event(PayloadFormat::V1).await;
    let event: ApiGatewayProxyRequest =
        serde_json::from_value(raw.clone()).expect("deserializes into ApiGatewayProxyRequest");
    assert_eq!(event.http_method, Method::GET);
    assert_eq!(event.resource.as_deref(), Some("/items/{id}"));
    assert_eq!(event.path.as_deref(), Some("/items/42"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        event.multi_value_query_string_parameters.all("tag"),
        Some(vec!["a", "b"])
    );
    assert_eq!(event.query_string_parameters.first("name"), Some("x y"));
    assert_eq!(
        event.multi_value_headers.get_all("x-multi").iter().count(),
        2
    );
    assert_eq!(
        event.headers.get("cookie").map(|v| v.as_bytes()),
        Some(&b"a=1; b=2"[..])
    );
    assert_eq!(
        event.stage_variables.get("env").map(String::as_str),
        Some("blue")
    );
    let ctx = &event.request_context;
    assert_eq!(ctx.stage.as_deref(), Some("prod"));
    assert_eq!(ctx.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(ctx.resource_path.as_deref(), Some("/items/{id}"));
    assert_eq!(ctx.http_method, Method::GET);
    assert_eq!(ctx.identity.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(ctx.identity.user_agent.as_deref(), Some("causeway-test"));
    assert_eq!(ctx.domain_name.as_deref(), Some(HOST));
    assert_eq!(ctx.apiid.as_deref(), Some(API));
    assert!(ctx.request_time_epoch > 1_600_000_000_000, "epoch in ms");
    assert!(!event.is_base64_encoded);
    assert_eq!(event.body, None);
    assert_eq!(raw["body"], Value::Null);
}

#[tokio::test]
async fn the_2_0_event_is_an_aws_api_gateway_v2_http_request_with_the_right_values() {
    let (raw, request_id, _f) = reference_event(PayloadFormat::V2).await;
    let event: ApiGatewayV2httpRequest =
        serde_json::from_value(raw.clone()).expect("deserializes into ApiGatewayV2httpRequest");
    assert_eq!(event.version.as_deref(), Some("2.0"));
    assert_eq!(event.route_key.as_deref(), Some("GET /items/{id}"));
    assert_eq!(event.raw_path.as_deref(), Some("/items/42"));
    assert_eq!(
        event.raw_query_string.as_deref(),
        Some("tag=a&tag=b&name=x%20y")
    );
    assert_eq!(
        event.cookies,
        Some(vec!["a=1".to_string(), "b=2".to_string()])
    );
    assert_eq!(
        event.headers.get("x-multi").map(|v| v.as_bytes()),
        Some(&b"1,2"[..]),
        "repeated headers are comma-joined"
    );
    assert!(
        event.headers.get("cookie").is_none(),
        "cookies move out of headers"
    );
    assert_eq!(raw["queryStringParameters"]["tag"], "a,b");
    assert_eq!(event.query_string_parameters.first("name"), Some("x y"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        event.stage_variables.get("env").map(String::as_str),
        Some("blue")
    );
    let ctx = &event.request_context;
    assert_eq!(ctx.route_key.as_deref(), Some("GET /items/{id}"));
    assert_eq!(ctx.stage.as_deref(), Some("prod"));
    assert_eq!(ctx.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(ctx.apiid.as_deref(), Some(API));
    assert_eq!(ctx.domain_name.as_deref(), Some(HOST));
    assert!(ctx.time_epoch > 1_600_000_000_000);
    assert!(
        ctx.time.as_deref().is_some_and(|t| t.contains('/')),
        "CLF time"
    );
    assert_eq!(ctx.http.method, Method::GET);
    assert_eq!(ctx.http.path.as_deref(), Some("/items/42"));
    assert_eq!(ctx.http.protocol.as_deref(), Some("HTTP/1.1"));
    assert_eq!(ctx.http.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(ctx.http.user_agent.as_deref(), Some("causeway-test"));
    assert!(!event.is_base64_encoded);
}

#[tokio::test]
async fn binary_bodies_travel_base64_and_text_bodies_as_text_in_both_formats() {
    let function = Upstream::with_handler(|_| Reply::ok(OK_V1)).await;
    let proxy = TestProxy::with_snapshot(snapshot(
        vec![
            lambda("POST /v1", PayloadFormat::V1),
            lambda("POST /v2", PayloadFormat::V2),
        ],
        function.endpoint(),
    ))
    .await;
    for path in ["/v1", "/v2"] {
        for (content_type, body) in [
            (
                "application/octet-stream",
                &b"plain but declared binary"[..],
            ),
            ("text/plain", &BINARY[..]),
            ("text/plain", &b"hello text"[..]),
        ] {
            let answer = exchange(
                Method::POST,
                &proxy.url(path),
                HOST,
                &[("content-type", content_type)],
                body.to_vec(),
            )
            .await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        }
    }
    let seen = function.seen();
    assert_eq!(seen.len(), 6);
    for (i, recorded) in seen.iter().enumerate() {
        let (is_b64, body) = if i < 3 {
            let e: ApiGatewayProxyRequest = serde_json::from_slice(&recorded.body).expect("v1");
            (e.is_base64_encoded, e.body.unwrap_or_default())
        } else {
            let e: ApiGatewayV2httpRequest = serde_json::from_slice(&recorded.body).expect("v2");
            (e.is_base64_encoded, e.body.unwrap_or_default())
        };
        match i % 3 {
            0 => {
                assert!(is_b64, "a binary media type is base64 ({i})");
                assert_eq!(
                    BASE64.decode(body).expect("base64"),
                    b"plain but declared binary"
                );
            }
            1 => {
                assert!(is_b64, "a body that is not UTF-8 is base64 ({i})");
                assert_eq!(BASE64.decode(body).expect("base64"), BINARY);
            }
            _ => {
                assert!(!is_b64, "text stays text ({i})");
                assert_eq!(body, "hello text");
            }
        }
    }
}

#[tokio::test]
async fn malformed_answers_and_failed_invocations_become_502_with_the_gateway_response() {
    let function = Upstream::with_handler(|r| {
        let event: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let path = event["path"]
            .as_str()
            .or(event["rawPath"].as_str())
            .unwrap_or_default()
            .to_string();
        match path.as_str() {
            "/not-json" => Reply::ok("<html>oops</html>"),
            "/no-status" => Reply::ok(r#"{"body":"x"}"#),
            "/bad-status" => Reply::ok(r#"{"statusCode":"teapot"}"#),
            "/endpoint-500" => Reply::ok("{}").status(500),
            "/function-error" => Reply::ok(r#"{"errorMessage":"boom","errorType":"Exception"}"#)
                .header("x-amz-function-error", "Unhandled"),
            _ => Reply::ok(OK_V1),
        }
    })
    .await;
    let proxy = TestProxy::with_snapshot(snapshot(
        vec![
            lambda("GET /not-json", PayloadFormat::V2),
            lambda("GET /no-status", PayloadFormat::V1),
            lambda("GET /bad-status", PayloadFormat::V2),
            lambda("GET /endpoint-500", PayloadFormat::V2),
            lambda("GET /function-error", PayloadFormat::V2),
            lambda("GET /fine", PayloadFormat::V1),
        ],
        function.endpoint(),
    ))
    .await;
    let client = http1();
    for path in [
        "/not-json",
        "/no-status",
        "/bad-status",
        "/endpoint-500",
        "/function-error",
    ] {
        let answer = get(&client, &proxy.url(path), HOST).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{path}");
        assert_eq!(
            answer.body, r#"{"message":"Internal server error"}"#,
            "{path}"
        );
    }
    let fine = get(&client, &proxy.url("/fine"), HOST).await;
    assert_eq!((fine.status, fine.body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(function.calls(), 6, "every route invoked the function once");
}

// ---------------------------------------------------------------- a real handler

/// A Lambda-style handler `(event, context) -> response` behind a tiny invoke endpoint that
/// speaks the Runtime Interface Emulator's protocol (POST the event, 200 with the result, or
/// 200 with `X-Amz-Function-Error` when the handler raises).
const HANDLER: &str = r#"
import base64, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Context:
    function_name = "causeway-test"
    aws_request_id = "local"

def handler(event, context):
    if event.get("version") == "2.0":
        key = event["routeKey"]
        if key == "GET /hello/{name}":
            who = event["pathParameters"]["name"]
            q = (event.get("queryStringParameters") or {}).get("greeting", "hello")
            return {
                "statusCode": 201,
                "headers": {"content-type": "text/plain", "x-stage": event["requestContext"]["stage"]},
                "cookies": ["session=abc; Path=/", "theme=dark"],
                "body": f"{q} {who} from {context.function_name} ({event['stageVariables']['env']})",
            }
        if key == "GET /bare":
            return {"bare": True, "path": event["rawPath"], "cookies": event.get("cookies")}
        if key == "GET /crash":
            raise ValueError("the handler failed")
        if key == "GET /garbage":
            return "RAW-NOT-JSON"
    else:
        if event["resource"] == "/echo":
            raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
            return {
                "statusCode": 200,
                "multiValueHeaders": {"x-tag": event["multiValueQueryStringParameters"]["tag"]},
                "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(raw[::-1]).decode(),
                "isBase64Encoded": True,
            }
    return {"statusCode": 404, "body": "no such route"}

class Invoke(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.path != "/2015-03-31/functions/function/invocations":
            self.send_response(404); self.end_headers(); return
        event = json.loads(self.rfile.read(int(self.headers["content-length"])))
        try:
            result = handler(event, Context())
            body = b"RAW-NOT-JSON" if result == "RAW-NOT-JSON" else json.dumps(result).encode()
            self.send_response(200)
        except Exception as e:
            body = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}).encode()
            self.send_response(200)
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = ThreadingHTTPServer(("127.0.0.1", 0), Invoke)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The Python invoke endpoint; killed when dropped.
struct PythonFunction {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PythonFunction {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("invoke.py");
        std::fs::write(&script, HANDLER).expect("write handler");
        let mut child = Command::new("python3")
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (Debian's python3 is a test dependency)");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await
        .expect("reader")
        .expect("port line");
        let port = line.trim().parse().expect("port number");
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PythonFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_python_lambda_handler_answers_correctly_through_causeway() {
    let function = PythonFunction::start().await;
    let proxy = TestProxy::with_snapshot(snapshot(
        vec![
            lambda("GET /hello/{name}", PayloadFormat::V2),
            lambda("GET /bare", PayloadFormat::V2),
            lambda("GET /crash", PayloadFormat::V2),
            lambda("GET /garbage", PayloadFormat::V2),
            lambda("POST /echo", PayloadFormat::V1),
        ],
        format!("127.0.0.1:{}", function.port),
    ))
    .await;

    let hello = exchange(
        Method::GET,
        &proxy.url("/hello/ada?greeting=hi"),
        HOST,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(hello.status, StatusCode::CREATED, "{}", hello.text());
    assert_eq!(hello.text(), "hi ada from causeway-test (blue)");
    assert_eq!(hello.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(hello.header("x-stage").as_deref(), Some("prod"));
    let cookies: Vec<_> = hello
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(cookies, ["session=abc; Path=/", "theme=dark"]);

    let bare = exchange(
        Method::GET,
        &proxy.url("/bare"),
        HOST,
        &[("cookie", "k=v")],
        Vec::new(),
    )
    .await;
    assert_eq!(bare.status, StatusCode::OK);
    assert_eq!(
        bare.header("content-type").as_deref(),
        Some("application/json")
    );
    let json: Value = serde_json::from_slice(&bare.body).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"bare": true, "path": "/bare", "cookies": ["k=v"]})
    );

    let echo = exchange(
        Method::POST,
        &proxy.url("/echo?tag=x&tag=y"),
        HOST,
        &[("content-type", "application/octet-stream")],
        BINARY.to_vec(),
    )
    .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    let mut reversed = BINARY.to_vec();
    reversed.reverse();
    assert_eq!(&echo.body[..], &reversed[..], "binary in and out");
    let tags: Vec<_> = echo.headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["x", "y"]);

    for path in ["/crash", "/garbage"] {
        let failed = exchange(Method::GET, &proxy.url(path), HOST, &[], Vec::new()).await;
        assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{path}");
        assert_eq!(failed.text(), r#"{"message":"Internal server error"}"#);
    }
}

#[tokio::test]
async fn the_authorizer_context_reaches_the_function_in_both_formats() {
    use crate::auth::{add_authorizers, authorizer, with_authorizer};
    use causeway_snapshot::{AuthorizerSettings, FunctionSettings, ResponseFormat};
    let authz = Upstream::with_handler(|_: &Seen| {
        Reply::json(
            serde_json::json!({"isAuthorized": true, "context": {"tier": "silver"}}).to_string(),
        )
    })
    .await;
    let function = Upstream::with_handler(|_| Reply::ok(OK_V1)).await;
    let base = snapshot(
        vec![
            with_authorizer(lambda("GET /v1", PayloadFormat::V1), "default/fn", &[]),
            with_authorizer(lambda("GET /v2", PayloadFormat::V2), "default/fn", &[]),
        ],
        function.endpoint(),
    );
    let settings = AuthorizerSettings::Request(FunctionSettings {
        backend: "authz".into(),
        path: LAMBDA_INVOKE_PATH.into(),
        timeout_ms: 1_000,
        ttl_seconds: 0,
        identity_validation: None,
        response_format: ResponseFormat::Any,
    });
    let snapshot = add_authorizers(
        base,
        vec![authorizer("default/fn", &["header.x-token"], &[], settings)],
        &[("authz", authz.addr)],
    );
    let proxy = TestProxy::with_snapshot(snapshot).await;
    for path in ["/v1", "/v2"] {
        let answer = exchange(
            Method::GET,
            &proxy.url(path),
            HOST,
            &[("x-token", "t")],
            Vec::new(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    }
    let asked = authz.seen();
    assert!(
        asked.iter().all(|r| r.headers.contains_key("content-type")),
        "the authorizer was invoked with a JSON event"
    );
    let seen = function.seen();
    assert_eq!(seen.len(), 2);
    let v1: Value = serde_json::from_slice(&seen[0].body).expect("v1");
    assert_eq!(v1["requestContext"]["authorizer"]["tier"], "silver");
    let v2: ApiGatewayV2httpRequest = serde_json::from_slice(&seen[1].body).expect("v2");
    let fields = v2
        .request_context
        .authorizer
        .map(|a| a.fields)
        .unwrap_or_default();
    assert_eq!(fields.get("tier"), Some(&serde_json::json!("silver")));
}

// ---------------------------------------------------------------- over https

#[tokio::test]
async fn a_function_over_https_is_invoked_over_tls_verified_against_its_ca() {
    let (function, function_ca) = tls_function("orders-fn.internal", OK_V1).await;
    let plain = snapshot(
        vec![
            lambda("GET /v1", PayloadFormat::V1),
            lambda("GET /v2", PayloadFormat::V2),
        ],
        function.endpoint(),
    );
    let proxy =
        TestProxy::with_snapshot(over_https(plain, "fn", &function_ca, "orders-fn.internal")).await;
    let client = http1();
    for path in ["/v1", "/v2"] {
        let answer = get(&client, &proxy.url(path), HOST).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "ok"),
            "{path}"
        );
    }
    assert_eq!(function.calls(), 2);
}

#[tokio::test]
async fn a_function_over_https_with_an_untrusted_certificate_is_a_502_and_never_invoked() {
    let (function, function_ca) = tls_function("orders-fn.internal", OK_V1).await;
    let (_stranger, stranger_ca) = tls_function("orders-fn.internal", OK_V1).await;
    let plain = snapshot(
        vec![lambda("GET /v2", PayloadFormat::V2)],
        function.endpoint(),
    );
    // Trusts another CA: the handshake fails and nothing is sent.
    let proxy =
        TestProxy::with_snapshot(over_https(plain, "fn", &stranger_ca, "orders-fn.internal")).await;
    let answer = get(&http1(), &proxy.url("/v2"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    assert_eq!(function.calls(), 0);

    // The right CA but the wrong server name fails the same way.
    let plain = snapshot(
        vec![lambda("GET /v2", PayloadFormat::V2)],
        function.endpoint(),
    );
    let proxy =
        TestProxy::with_snapshot(over_https(plain, "fn", &function_ca, "elsewhere.internal")).await;
    let answer = get(&http1(), &proxy.url("/v2"), HOST).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    assert_eq!(function.calls(), 0);
}
