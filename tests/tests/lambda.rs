//! The Lambda example end to end: `examples/lambda/handler.py` and `authorizer.py`, written with
//! Powertools for AWS Lambda (Python), behind `invoke.py` (the Runtime Interface Emulator's
//! protocol), and the real `causeway standalone` serving `examples/lambda` in front of them.
//! Real answers in both payload formats, and malformed answers → 502. And a Lambda non-proxy
//! integration (`type: aws`) imported from an OpenAPI document by the real CLI: the request
//! template builds the payload, the function's error message selects the integration response.
//!
//! Needs `python3` with `aws-lambda-powertools` (`pip install -r examples/lambda/requirements.txt`;
//! `scripts/test.sh` installs it). Without it the test fails and says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use causeway_e2e::{Standalone, invoke_py, repo_root, require_python_modules};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const HOST: &str = "shop.default.localhost";
const INTERNAL_ERROR: &str = r#"{"message":"Internal server error"}"#;

/// A function that answers what no gateway can map (payload 1.0), or fails.
const BROKEN: &str = r#"
def handler(event, context):
    case = event["pathParameters"]["case"]
    if case == "no-status":
        return {"body": "a 1.0 answer needs a statusCode"}
    if case == "bad-base64":
        return {"statusCode": 200, "body": "%%% not base64", "isBase64Encoded": True}
    if case == "body-object":
        return {"statusCode": 200, "body": {"not": "a string"}}
    raise RuntimeError("the function crashed")
"#;

/// The broken function's Service and route, added to the example.
const BROKEN_YAML: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: broken-fn, namespace: default}
spec:
  ports: [{name: http, port: 8080, targetPort: BROKEN_PORT}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: broken-fn-static
  namespace: default
  labels: {kubernetes.io/service-name: broken-fn}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"]}]
ports: [{name: http, port: BROKEN_PORT}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: broken, namespace: default}
spec:
  apiRef: {name: shop}
  routeKey: GET /broken/{case}
  integration:
    type: LAMBDA_PROXY
    backendRef: {name: broken-fn, port: 8080}
    payloadFormatVersion: "1.0"
"#;

/// Fails with the way to fix it when python3 or Powertools is missing.
fn require_powertools() {
    require_python_modules(&["aws_lambda_powertools"]);
}

/// The example's YAML in `dir`, its functions at the given ports, plus the broken function.
fn example_copy(dir: &Path, function: u16, authorizer: u16, broken: u16) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let src = repo_root().join("examples/lambda");
    for entry in std::fs::read_dir(&src).expect("examples/lambda") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path)
                .expect("read example")
                .replace("9000", &function.to_string())
                .replace("9001", &authorizer.to_string());
            std::fs::write(config.join(path.file_name().expect("name")), text).expect("write");
        }
    }
    std::fs::write(
        config.join("broken.yaml"),
        BROKEN_YAML.replace("BROKEN_PORT", &broken.to_string()),
    )
    .expect("write broken.yaml");
    config
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", HOST);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

#[tokio::test]
async fn the_powertools_lambda_example_answers_correctly_through_causeway_in_both_formats() {
    require_powertools();
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let example = repo_root().join("examples/lambda");
    let (_function, function_port) = invoke_py(&example, "handler.handler", logs).await;
    let (_authorizer, authorizer_port) = invoke_py(&example, "authorizer.handler", logs).await;
    // The broken function runs from a copy of invoke.py next to broken.py.
    let broken_dir = dir.path().join("broken");
    std::fs::create_dir_all(&broken_dir).expect("broken dir");
    std::fs::copy(example.join("invoke.py"), broken_dir.join("invoke.py")).expect("copy");
    std::fs::write(broken_dir.join("broken.py"), BROKEN).expect("broken.py");
    let (_broken, broken_port) = invoke_py(&broken_dir, "broken.handler", logs).await;

    let config = example_copy(dir.path(), function_port, authorizer_port, broken_port);
    let gateway = Standalone::start(&config, logs, &[]).await;
    let traffic = gateway.traffic;
    let ada = [("x-customer", "ada")];

    // 2.0 (APIGatewayHttpResolver): path parameter, repeated query string, stage variable,
    // the authorizer's context, the request id; then the same answer from the stage cache.
    let path = "/prod/orders/7?expand=items&expand=shipping";
    let order = call(traffic, "GET", path, &ada, "").await;
    assert_eq!(order.status, 200, "{}", order.text());
    assert_eq!(order.header("content-type"), Some("application/json"));
    assert_eq!(order.header("x-cache"), Some("Miss"));
    let request_id = order.header("x-request-id").expect("x-request-id");
    assert_eq!(
        order.json(),
        json!({
            "id": "7",
            "customer": "ada",
            "tier": "gold",
            "region": "eu-west-1",
            "expand": ["items", "shipping"],
            "requestId": request_id,
        })
    );
    let cached = call(traffic, "GET", path, &ada, "").await;
    assert_eq!(cached.header("x-cache"), Some("Hit"));
    assert_eq!(cached.json()["id"], "7");

    // 2.0: cookies in (`cookies`) and out (`Set-Cookie`), another customer's context.
    let me = call(
        traffic,
        "GET",
        "/prod/me",
        &[
            ("x-customer", "grace"),
            ("cookie", "session=s1; theme=dark"),
        ],
        "",
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(
        me.json(),
        json!({"customer": "grace", "tier": "silver", "theme": "dark"})
    );
    let set_cookie = me.header("set-cookie").unwrap_or_default();
    assert!(
        set_cookie.starts_with("theme=dark;") && set_cookie.contains("Max-Age=86400"),
        "{set_cookie}"
    );

    // 1.0 (APIGatewayRestResolver): a JSON body, validated at the gateway first.
    let json_body = [("x-customer", "ada"), ("content-type", "application/json")];
    let created = call(
        traffic,
        "POST",
        "/prod/orders",
        &json_body,
        r#"{"item":"tea","quantity":2}"#,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("location"), Some("/orders/tea-2"));
    assert_eq!(
        created.json(),
        json!({"id": "tea-2", "created": {"item": "tea", "quantity": 2}, "by": "ada", "tier": "gold"})
    );
    let invalid = call(
        traffic,
        "POST",
        "/prod/orders",
        &json_body,
        r#"{"item":"tea","quantity":0}"#,
    )
    .await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());

    // 1.0: repeated query strings arrive in multiValueQueryStringParameters.
    let listed = call(
        traffic,
        "GET",
        "/prod/orders?status=open&status=shipped&limit=5",
        &ada,
        "",
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(
        listed.json(),
        json!({"statuses": ["open", "shipped"], "limit": 5, "customer": "ada"})
    );

    // 1.0: a binary answer (base64 from Powertools) reaches the client as bytes.
    let label = call(traffic, "GET", "/prod/orders/ab/label", &ada, "").await;
    assert_eq!(label.status, 200, "{}", label.text());
    assert_eq!(label.header("content-type"), Some("image/png"));
    assert!(
        label.body.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{:?}",
        label.body
    );
    assert_eq!(
        &label.body[16..24],
        &[0, 0, 0, 16, 0, 0, 0, 8],
        "a 16x8 image (8 pixels per character of the id)"
    );

    // The authorizer (also Powertools) decides first: unknown customer 403, none 401.
    let stranger = call(traffic, "GET", "/prod/me", &[("x-customer", "eve")], "").await;
    assert_eq!(stranger.status, 403, "{}", stranger.text());
    let anonymous = call(traffic, "GET", "/prod/me", &[], "").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());

    // Malformed answers and a crashed function are 502 with the gateway response.
    for case in ["no-status", "bad-base64", "body-object", "crash"] {
        let failed = call(traffic, "GET", &format!("/prod/broken/{case}"), &[], "").await;
        assert_eq!(failed.status, 502, "{case}: {}", failed.text());
        assert_eq!(failed.text(), INTERNAL_ERROR, "{case}");
    }
}

async fn call_calc(addr: SocketAddr, method: &str, path: &str, content_type: &str) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", causeway_e2e::CALC_HOST)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from_static(b"a=1")))
        .expect("request");
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

#[tokio::test]
async fn an_imported_lambda_non_proxy_integration_maps_the_payload_and_selects_responses_by_error_message()
 {
    require_powertools();
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let (_function, function_port) = causeway_e2e::calc_function(dir.path(), logs).await;
    let crs = causeway_e2e::import_calc(dir.path(), function_port);
    let (gateway, traffic) = causeway_e2e::standalone(&crs, logs).await;

    // No error: the default integration response (200), its template over the function's
    // result, its literal header; the payload came from the request template (query string
    // and `$context.requestId`, which the client sees as x-request-id).
    let sum = call_calc(traffic, "GET", "/prod/sum?a=2&b=40", "application/json").await;
    assert_eq!(sum.status, 200, "{}\n{}", sum.text(), gateway.stderr());
    assert_eq!(sum.header("content-type"), Some("application/json"));
    assert_eq!(sum.header("x-calc-op"), Some("sum"));
    let request_id = sum
        .header("x-request-id")
        .expect("x-request-id")
        .to_string();
    assert_eq!(sum.json(), json!({"sum": 42, "requestId": request_id}));

    // A function error whose message matches `Invalid input.*`: the 400 response, its template
    // reading `$input.path('$.errorMessage')`, its header from the error object's errorType.
    let invalid = call_calc(traffic, "GET", "/prod/sum?a=two&b=40", "application/json").await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    assert_eq!(invalid.header("x-error-type"), Some("InvalidInput"));
    assert_eq!(
        invalid.json(),
        json!({"message": "Invalid input: a must be an integer, not \"two\""})
    );
    assert!(invalid.header("x-calc-op").is_none());

    // A request without Content-Type is mapped as application/json; one of another type is
    // refused with 415 (passthroughBehavior WHEN_NO_TEMPLATES, and the route has templates),
    // without calling the function.
    let unsupported = call_calc(traffic, "GET", "/prod/sum?a=1&b=2", "text/plain").await;
    assert_eq!(unsupported.status, 415, "{}", unsupported.text());
    drop(gateway);
}
