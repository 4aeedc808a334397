//! OpenTelemetry tracing against a real OTLP/HTTP receiver: `fixtures/otlp_receiver.py`
//! decodes what the proxy exports with the official protobufs of PyPI's `opentelemetry-proto`
//! (tests/requirements.txt) and writes the spans as JSON lines, which these tests read.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_proxy::{ProxyConfig, TracingConfig};
use causeway_snapshot::{
    AuthorizerSettings, FunctionSettings, Integration, LAMBDA_INVOKE_PATH, LambdaProxyIntegration,
    PayloadFormat, ResponseFormat, RouteCache, RouteConfig, Snapshot, StageCache,
};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const SERVER: i64 = 2;
const CLIENT: i64 = 3;
const INTERNAL: i64 = 1;

/// How long a test waits for spans to arrive.
const DEADLINE: Duration = Duration::from_secs(15);

/// The receiver process and the file it writes; killed when dropped.
struct Collector {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// An OTLP/HTTP receiver.
    fn start() -> Self {
        Self::start_speaking(None)
    }

    /// An OTLP/gRPC receiver (grpcio).
    fn start_grpc() -> Self {
        Self::start_speaking(Some("grpc"))
    }

    fn start_speaking(protocol: Option<&str>) -> Self {
        let module = match protocol {
            Some(_) => "opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc",
            None => "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
        };
        let has = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has,
            "python3 with opentelemetry-proto (and grpcio for gRPC) is needed: python3 -m pip \
             install -r tests/requirements.txt (scripts/test.sh does this)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("spans.jsonl");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proxy/fixtures/otlp_receiver.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .args(protocol)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the receiver prints its port");
        let port = line.trim().parse().expect("a port");
        Self {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every span received so far (a line that records a decoding error fails the test).
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let spans: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        if let Some(error) = spans.iter().find(|s| s.get("error").is_some()) {
            panic!("the receiver refused an export: {error}");
        }
        spans
    }

    /// The spans of `trace`, once at least `n` of them are in (polled up to [`DEADLINE`]).
    async fn trace(&self, trace: &str, n: usize) -> Vec<Value> {
        let of_trace = || {
            let spans = self.spans().into_iter();
            std::future::ready(spans.filter(|s| s["traceId"] == trace).collect::<Vec<_>>())
        };
        let spans = settle(DEADLINE, of_trace, |spans| spans.len() >= n).await;
        assert!(
            spans.len() >= n,
            "{} of {n} spans of trace {trace} arrived: {spans:#?}",
            spans.len()
        );
        spans
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tracing_to(endpoint: String, ratio: f64) -> ProxyConfig {
    ProxyConfig {
        tracing: TracingConfig {
            otlp_traces_endpoint: Some(endpoint),
            sample_ratio: ratio,
            service_name: "gateway-under-test".into(),
            batch_delay: Duration::from_millis(20),
            ..TracingConfig::default()
        },
        ..ProxyConfig::default()
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

/// `traceparent` of a recorded request: (trace id, parent id, flags).
fn traceparent(value: Option<&str>) -> (String, String, String) {
    let value = value.expect("a traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// `GET /pets/{id}` behind a REQUEST authorizer (a function at `function`), cached by the
/// stage, forwarded to `upstream`; `POST /fn` invokes a Lambda-style function.
fn snapshot(upstream: &Upstream, function: &Upstream, lambda: &Upstream) -> Snapshot {
    let mut pets = with_authorizer(
        proxy_to("GET /pets/{id}", "pets").build(),
        "default/fn",
        &[],
    );
    pets.cache = Some(RouteCache {
        ttl_seconds: 60,
        key_parameters: vec![],
        invalidation: Default::default(),
    });
    let invoke = RouteConfig {
        key: "POST /fn".into(),
        matcher: route_match("POST /fn"),
        integration: Integration::LambdaProxy(LambdaProxyIntegration {
            backend: "lambda".into(),
            path: LAMBDA_INVOKE_PATH.into(),
            payload_format: PayloadFormat::V2,
            timeout_ms: 5_000,
        }),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    };
    let mut snapshot = SnapshotBuilder::new()
        .backend("pets", &[upstream.endpoint()])
        .backend("lambda", &[lambda.endpoint()])
        .route(pets)
        .route(invoke)
        .build();
    snapshot.stages[0].cache = Some(StageCache {
        capacity_bytes: 1 << 20,
        status_header: true,
        share_across_principals: false,
    });
    let settings = FunctionSettings {
        backend: "authz".into(),
        path: "/authorize".into(),
        timeout_ms: 2_000,
        ttl_seconds: 0,
        identity_validation: None,
        response_format: ResponseFormat::Any,
    };
    add_authorizers(
        snapshot,
        vec![authorizer(
            "default/fn",
            &["header.x-token"],
            &[],
            AuthorizerSettings::Request(settings),
        )],
        &[("authz", function.addr)],
    )
    .seal()
}

/// The servers behind [`snapshot`]: the pets upstream, an authorizer function that allows
/// every caller, and a Lambda-style function that answers `lambda_answer`.
struct Backends {
    upstream: Upstream,
    function: Upstream,
    lambda: Upstream,
}

impl Backends {
    async fn start(lambda_answer: &'static str) -> Self {
        Self {
            upstream: Upstream::start("pets").await,
            function: Upstream::with_handler(|_: &Seen| {
                Reply::json(json!({"isAuthorized": true}).to_string())
            })
            .await,
            lambda: Upstream::with_handler(move |_: &Seen| Reply::ok(lambda_answer)).await,
        }
    }

    /// A proxy with `config` serving [`snapshot`] of these servers.
    async fn proxy(&self, config: ProxyConfig) -> TestProxy {
        let snapshot = snapshot(&self.upstream, &self.function, &self.lambda);
        TestProxy::with_config(config, snapshot).await
    }
}

#[tokio::test]
async fn tracing_a_request_gives_a_server_span_under_the_client_parent_with_authorizer_cache_and_integration_children()
 {
    let collector = Collector::start();
    let backends = Backends::start(r#"{"statusCode":200,"body":"ok"}"#).await;
    let proxy = backends.proxy(tracing_to(collector.endpoint(), 1.0)).await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/7"),
        HOST,
        &[
            ("traceparent", &parent),
            ("tracestate", "vendor=opaque"),
            ("x-token", "t"),
            ("user-agent", "trace-test"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let spans = collector.trace(CLIENT_TRACE, 4).await;
    let server = named(&spans, "GET /pets/{id}");
    assert_eq!(server["parentSpanId"], CLIENT_SPAN, "child of the client");
    assert_eq!(server["kind"], SERVER);
    assert_eq!(server["traceState"], "vendor=opaque");
    assert_eq!(server["resource"]["service.name"], "gateway-under-test");
    let attributes = &server["attributes"];
    for (key, want) in [
        ("http.request.method", json!("GET")),
        ("http.route", json!("/pets/{id}")),
        ("http.response.status_code", json!(200)),
        ("url.path", json!("/pets/7")),
        ("url.scheme", json!("http")),
        ("server.address", json!(HOST)),
        ("client.address", json!("127.0.0.1")),
        ("user_agent.original", json!("trace-test")),
        ("causeway.api", json!(API)),
        ("causeway.stage", json!("prod")),
        ("causeway.route", json!("GET /pets/{id}")),
    ] {
        assert_eq!(attributes[key], want, "{key} in {attributes:#}");
    }
    let server_id = server["spanId"].as_str().expect("span id");
    for (name, kind) in [
        ("authorizer", CLIENT),
        ("cache", INTERNAL),
        ("integration", CLIENT),
    ] {
        let child = named(&spans, name);
        assert_eq!(
            child["parentSpanId"], server_id,
            "{name} is the server's child"
        );
        assert_eq!(child["kind"], kind, "{name}");
        assert!(
            child["start"].as_u64() >= server["start"].as_u64(),
            "{name}"
        );
        assert!(child["end"].as_u64() <= server["end"].as_u64(), "{name}");
    }
    assert_eq!(
        named(&spans, "cache")["attributes"]["causeway.cache.hit"],
        false
    );
    let integration = named(&spans, "integration");
    assert_eq!(integration["attributes"]["http.response.status_code"], 200);
    assert_eq!(
        integration["attributes"]["causeway.integration"],
        "HTTP_PROXY"
    );

    // The backend's parent is the gateway's integration span, with the client's tracestate.
    let seen = backends.upstream.seen();
    let backend = &seen.last().expect("forwarded").headers;
    let (trace, parent_id, flags) =
        traceparent(backend.get("traceparent").and_then(|v| v.to_str().ok()));
    assert_eq!(
        (trace.as_str(), parent_id.as_str(), flags.as_str()),
        (
            CLIENT_TRACE,
            integration["spanId"].as_str().expect("id"),
            "01"
        )
    );
    assert_eq!(
        backend.get("tracestate").expect("tracestate"),
        "vendor=opaque"
    );

    // The authorizer is called under its span, and its event shows the same context.
    let authorizer_id = named(&spans, "authorizer")["spanId"].clone();
    let call = backends.function.seen()[0].clone();
    let (_, parent_id, _) = traceparent(
        call.headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    assert_eq!(parent_id, authorizer_id.as_str().expect("id"));
    let event: Value = serde_json::from_slice(&call.body).expect("event");
    let (_, parent_id, _) = traceparent(event["headers"]["traceparent"].as_str());
    assert_eq!(parent_id, authorizer_id.as_str().expect("id"));

    // The access log names the trace.
    assert_eq!(first_log_line(&proxy).await["traceId"], CLIENT_TRACE);
}

#[tokio::test]
async fn tracing_a_lambda_event_carries_the_integration_span_as_its_parent() {
    let collector = Collector::start();
    let backends = Backends::start(r#"{"statusCode":200,"body":"ok"}"#).await;
    let proxy = backends.proxy(tracing_to(collector.endpoint(), 1.0)).await;
    // No traceparent: a new trace, sampled at ratio 1, its id in the access log.
    let answer = send(&http1(), Method::POST, &proxy.url("/fn"), HOST, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let trace = first_log_line(&proxy).await["traceId"]
        .as_str()
        .expect("a trace id")
        .to_string();
    let spans = collector.trace(&trace, 2).await;
    let server = named(&spans, "POST /fn");
    assert_eq!(server["parentSpanId"], "", "a root span");
    let integration = named(&spans, "integration");
    assert_eq!(
        integration["attributes"]["causeway.integration"],
        "LAMBDA_PROXY"
    );
    let event: Value =
        serde_json::from_slice(&backends.lambda.seen()[0].body).expect("the event is JSON");
    let (event_trace, parent_id, flags) = traceparent(event["headers"]["traceparent"].as_str());
    assert_eq!(
        (event_trace.as_str(), parent_id.as_str(), flags.as_str()),
        (
            trace.as_str(),
            integration["spanId"].as_str().expect("id"),
            "01"
        )
    );
}

#[tokio::test]
async fn tracing_at_ratio_zero_exports_nothing_yet_still_propagates_a_trace_context() {
    let collector = Collector::start();
    let backends = Backends::start("{}").await;
    let proxy = backends.proxy(tracing_to(collector.endpoint(), 0.0)).await;
    let unsampled = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/1"),
        HOST,
        &[("x-token", "t")],
    )
    .await;
    assert_eq!(unsampled.status, StatusCode::OK);
    let seen = backends.upstream.seen();
    let (trace, _, flags) = traceparent(
        seen[0]
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    assert_eq!(flags, "00", "propagated as not sampled");
    assert_eq!(first_log_line(&proxy).await["traceId"], trace.as_str());

    // A client's sampled parent still wins; once its spans are in, the earlier ones would be
    // too (one queue, exported in order).
    let marker = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/2"),
        HOST,
        &[("x-token", "t"), ("traceparent", &marker)],
    )
    .await;
    collector.trace(CLIENT_TRACE, 4).await;
    let spans = collector.spans();
    assert!(
        spans.iter().all(|s| s["traceId"] == CLIENT_TRACE),
        "only the sampled trace is exported: {spans:#?}"
    );
}

/// Sends `n` requests one after another; each must be answered within `within`.
async fn quick_requests(proxy: &TestProxy, n: usize, within: Duration) {
    let client = http1();
    for i in 0..n {
        let started = Instant::now();
        let answer = send(
            &client,
            Method::GET,
            &proxy.url(&format!("/pets/{i}")),
            HOST,
            &[("x-token", "t")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(
            started.elapsed() < within,
            "request {i} took {:?}",
            started.elapsed()
        );
    }
}

/// The first access-log line, once it is written.
async fn first_log_line(proxy: &TestProxy) -> Value {
    let lines = proxy.wait_log_json(1).await;
    lines.first().cloned().expect("no access-log line")
}

/// The value of `causeway_proxy_trace_spans_dropped_total{reason}` on the admin endpoint,
/// once it is at least 1 (polled up to [`DEADLINE`]).
async fn dropped(proxy: &TestProxy, reason: &str) -> u64 {
    let prefix = format!("causeway_proxy_trace_spans_dropped_total{{reason=\"{reason}\"}} ");
    let count = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let text = proxy.wait_metrics(DEADLINE, |text| count(text) > 0).await;
    let n = count(&text);
    assert!(n > 0, "nothing dropped for {reason}:\n{text}");
    n
}

#[tokio::test]
async fn tracing_to_a_down_or_stalled_collector_never_delays_or_fails_a_request() {
    let backends = Backends::start("{}").await;

    // Down: nothing listens; every export fails and its spans are counted.
    let down = closed_port().await;
    let proxy = backends
        .proxy(tracing_to(format!("http://{down}/v1/traces"), 1.0))
        .await;
    quick_requests(&proxy, 10, Duration::from_secs(1)).await;
    assert!(dropped(&proxy, "export_failed").await >= 1);

    // Stalled: accepts connections and never answers; a small queue fills and drops.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stalled_addr = stalled.local_addr().expect("addr");
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            held.push(socket);
        }
    });
    let mut config = tracing_to(format!("http://{stalled_addr}/v1/traces"), 1.0);
    config.tracing.queue_spans = 8;
    config.tracing.batch_spans = 4;
    config.tracing.export_timeout = Duration::from_secs(60);
    let proxy = backends.proxy(config).await;
    quick_requests(&proxy, 20, Duration::from_secs(1)).await;
    assert!(dropped(&proxy, "queue_full").await >= 1);
}

#[tokio::test]
async fn without_tracing_a_client_traceparent_passes_unchanged_and_names_the_trace_in_the_log() {
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(
        SnapshotBuilder::new()
            .backend("pets", &[upstream.endpoint()])
            .route(proxy_to("GET /pets/{id}", "pets").build())
            .build(),
    )
    .await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/1"),
        HOST,
        &[("traceparent", &parent), ("tracestate", "a=b")],
    )
    .await;
    let seen = upstream.seen();
    assert_eq!(
        seen[0].headers.get("traceparent").expect("kept"),
        parent.as_str()
    );
    assert_eq!(seen[0].headers.get("tracestate").expect("kept"), "a=b");
    assert_eq!(first_log_line(&proxy).await["traceId"], CLIENT_TRACE);
}

#[tokio::test]
async fn tracing_sends_the_spans_still_queued_when_the_proxy_stops_serving() {
    let collector = Collector::start();
    let backends = Backends::start("{}").await;
    let mut config = tracing_to(collector.endpoint(), 1.0);
    // No batch would leave on its own during the test.
    config.tracing.batch_delay = Duration::from_secs(600);
    let mut proxy = backends.proxy(config).await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/3"),
        HOST,
        &[("x-token", "t"), ("traceparent", &parent)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    first_log_line(&proxy).await;
    assert!(collector.spans().is_empty(), "the batch is still waiting");
    proxy.shutdown();
    let spans = collector.trace(CLIENT_TRACE, 4).await;
    named(&spans, "GET /pets/{id}");
}

#[tokio::test]
async fn tracing_exports_over_otlp_grpc_too() {
    let collector = Collector::start_grpc();
    let backends = Backends::start("{}").await;
    let mut config = tracing_to(format!("http://127.0.0.1:{}", collector.port), 1.0);
    config.tracing.protocol = causeway_proxy::OtlpProtocol::Grpc;
    let proxy = backends.proxy(config).await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/pets/5"),
        HOST,
        &[("x-token", "t"), ("traceparent", &parent)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let spans = collector.trace(CLIENT_TRACE, 4).await;
    let server = named(&spans, "GET /pets/{id}");
    assert_eq!(server["parentSpanId"], CLIENT_SPAN);
    assert_eq!(server["resource"]["service.name"], "gateway-under-test");
    // The collector's answer (grpc-status 0 in the trailers) counts the spans as exported.
    const EXPORTED: &str = "causeway_proxy_trace_spans_exported_total 4";
    let metrics = proxy.wait_metrics(DEADLINE, |m| m.contains(EXPORTED)).await;
    assert!(metrics.contains(EXPORTED), "{metrics}");
}
