//! `causeway standalone` end to end: the real binary, the real example backend, real sockets.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use causeway_e2e::{ChildGuard, Reply, Standalone, eventually, get, petstore_backend, repo_root};

const PETSTORE_HOST: &str = "petstore.default.localhost";

/// The petstore example copied to a temp dir, pointed at a backend on `backend_port`.
fn petstore_copy(dir: &Path, backend_port: u16) {
    let src = repo_root().join("examples/petstore");
    for entry in std::fs::read_dir(&src).expect("examples/petstore") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path).expect("read example");
            let text = text.replace("9080", &backend_port.to_string());
            std::fs::write(dir.join(path.file_name().expect("name")), text).expect("write");
        }
    }
}

struct Running {
    _backend: ChildGuard,
    gateway: ChildGuard,
    traffic: SocketAddr,
    admin: SocketAddr,
}

async fn start_petstore(dir: &Path) -> Running {
    start_petstore_with(dir, &[]).await
}

/// [`start_petstore`] with more flags for the gateway.
async fn start_petstore_with(dir: &Path, more: &[&str]) -> Running {
    let (backend, backend_addr) = petstore_backend(dir).await;
    petstore_copy(dir, backend_addr.port());
    let mut flags = vec!["--poll-millis", "100"];
    flags.extend_from_slice(more);
    let gateway = Standalone::start(dir, dir, &flags).await;
    Running {
        _backend: backend,
        gateway: gateway.process,
        traffic: gateway.traffic,
        admin: gateway.admin,
    }
}

async fn get_ok(addr: SocketAddr, path: &str) -> Reply {
    // The backend may still be starting: retry briefly on a gateway error.
    eventually(Duration::from_secs(10), || async {
        let r = get(addr, PETSTORE_HOST, path).await.ok()?;
        (r.status < 500).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("GET {path} kept failing"))
}

#[tokio::test]
async fn the_petstore_example_serves_proxied_routes_with_stage_variables_and_mock_routes() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_petstore(dir.path()).await;

    let prod = get_ok(run.traffic, "/prod/pets").await;
    assert_eq!(prod.status, 200, "{}", prod.body);
    assert_eq!(
        prod.json()["version"],
        "v1",
        "prod's stage variable picks /v1: {}",
        prod.body
    );
    assert_eq!(prod.header("x-seen-stage"), Some("blue"));

    let beta = get_ok(run.traffic, "/beta/pets/2").await;
    assert_eq!(beta.status, 200, "{}", beta.body);
    assert_eq!(beta.json()["version"], "v2");
    assert_eq!(beta.json()["pet"]["type"], "cat");
    assert_eq!(beta.header("x-seen-stage"), Some("green"));

    let health = get_ok(run.traffic, "/prod/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        serde_json::json!({"status": "ok", "stage": "blue"})
    );

    let echo = get_ok(run.traffic, "/prod/echo/a/b?x=1").await;
    assert_eq!(echo.json()["echo"]["path"], "/echo/a/b", "{}", echo.body);
    assert_eq!(echo.json()["echo"]["query"], "x=1");

    let fallback = get_ok(run.traffic, "/prod/nowhere").await;
    assert_eq!(fallback.status, 404);
    assert_eq!(fallback.json()["message"], "the pet store has no such page");

    let metrics = get(run.admin, "localhost", "/metrics").await.unwrap();
    assert!(
        metrics.body.contains("causeway_proxy_requests_total"),
        "{}",
        metrics.body
    );
    // Its log goes to a pipe here, not a terminal: plain text, no colour codes.
    let log = run.gateway.stderr();
    assert!(log.contains("snapshot applied"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
    drop(run.gateway);
}

#[tokio::test]
async fn standalone_recompiles_on_change_and_keeps_the_last_good_snapshot_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_petstore(dir.path()).await;
    assert_eq!(get_ok(run.traffic, "/prod/health").await.status, 200);

    // A new route appears without a restart.
    let extra = r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: version, namespace: default}
spec:
  apiRef: {name: petstore}
  routeKey: GET /version
  integration:
    type: MOCK
    mock: {statusCode: 200, body: 'release-2'}
"#;
    std::fs::write(dir.path().join("extra.yaml"), extra).unwrap();
    let seen = eventually(Duration::from_secs(10), || async {
        let r = get(run.traffic, PETSTORE_HOST, "/prod/version")
            .await
            .ok()?;
        (r.body == "release-2").then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "new route never served; stderr:\n{}",
        run.gateway.stderr()
    );

    // A broken file is reported by name, and the last good snapshot keeps serving.
    std::fs::write(dir.path().join("broken.yaml"), "kind: Route\napiVersion: causeway.dev/v1alpha1\nmetadata: {name: broken}\nspec: [not, a, map]\n").unwrap();
    let reported = eventually(Duration::from_secs(10), || async {
        run.gateway.stderr().contains("broken.yaml").then_some(())
    })
    .await;
    assert!(
        reported.is_some(),
        "no error naming the file; stderr:\n{}",
        run.gateway.stderr()
    );
    let still = get(run.traffic, PETSTORE_HOST, "/prod/version")
        .await
        .unwrap();
    assert_eq!(still.body, "release-2");
    assert_eq!(
        get(run.traffic, PETSTORE_HOST, "/prod/health")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn several_listen_addresses_serve_ipv4_and_ipv6_clients_and_each_sees_its_own_source_ip() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("api.yaml"),
        r#"apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: dual, namespace: default}
spec:
  gatewayResponses:
    - type: MISSING_AUTHENTICATION_TOKEN
      statusCode: 404
      body: '{"ip":"$context.identity.sourceIp"}'
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: hello, namespace: default}
spec:
  apiRef: {name: dual}
  routeKey: GET /hello
  integration: {type: MOCK, mock: {body: hello}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: dual-prod, namespace: default}
spec: {apiRef: {name: dual}, stageName: prod, autoDeploy: true}
"#,
    )
    .expect("write api.yaml");
    let listen = ["--listen", "127.0.0.1:0", "--listen", "[::1]:0"];
    let gateway = Standalone::start(dir.path(), dir.path(), &listen).await;
    let traffic = gateway.process.listening_all("traffic", 2).await;
    let (v4, v6) = (traffic[0], traffic[1]);
    let host = "dual.default.localhost";
    for (listener, client) in [(v4, "127.0.0.1"), (v6, "::1")] {
        let hello = get(listener, host, "/prod/hello").await.expect("answer");
        assert_eq!(
            (hello.status, hello.body.as_str()),
            (200, "hello"),
            "{listener}"
        );
        let unknown = get(listener, host, "/prod/nope").await.expect("answer");
        assert_eq!(unknown.status, 404, "{listener}: {}", unknown.body);
        assert_eq!(unknown.json()["ip"], client, "{listener}");
    }
}

/// The proxy's OTLP receiver (`proxy/tests/proxy/fixtures/otlp_receiver.py`, the official
/// protobufs of PyPI's `opentelemetry-proto`), writing the spans it decodes to `out`.
fn otlp_receiver(out: &Path) -> (ChildGuard, u16) {
    use std::io::BufRead;
    let has = std::process::Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "python3 with opentelemetry-proto is needed: python3 -m pip install -r \
         tests/requirements.txt (scripts/test.sh does this)"
    );
    let mut child = std::process::Command::new("python3")
        .arg(repo_root().join("proxy/tests/proxy/fixtures/otlp_receiver.py"))
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the receiver");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the receiver prints its port");
    let port = line.trim().parse().expect("a port");
    (
        ChildGuard {
            child,
            stderr_path: None,
        },
        port,
    )
}

#[tokio::test]
async fn standalone_exports_request_spans_to_the_otlp_endpoint_its_flags_name() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let (_receiver, port) = otlp_receiver(&spans);
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = start_petstore_with(
        dir.path(),
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otel-service-name",
            "petstore-gateway",
            "--trace-sample-ratio",
            "1",
        ],
    )
    .await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let traced = |path: &str| {
        http::Request::get(format!("http://{}{path}", run.traffic))
            .header("host", PETSTORE_HOST)
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .body(http_body_util::Empty::new())
            .expect("request")
    };
    // The backend may still be starting: retry briefly on a gateway error.
    let status = eventually(Duration::from_secs(10), || async {
        let status = client.request(traced("/prod/pets")).await.ok()?.status();
        (status.as_u16() < 500).then_some(status)
    })
    .await;
    assert_eq!(status.map(|s| s.as_u16()), Some(200));
    let server = eventually(Duration::from_secs(15), || async {
        let text = std::fs::read_to_string(&spans).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|s| s["traceId"] == trace && s["kind"] == 2)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no server span of trace {trace} reached the receiver; gateway stderr:\n{}",
            run.gateway.stderr()
        )
    });
    assert_eq!(server["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(server["resource"]["service.name"], "petstore-gateway");
    assert_eq!(server["attributes"]["http.route"], "/pets");
    assert_eq!(server["attributes"]["causeway.stage"], "prod");
}
