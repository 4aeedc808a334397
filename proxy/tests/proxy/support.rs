//! Test harness: the recording upstream, certificates, a proxy on ephemeral ports, snapshot
//! builders, clients, and polling against a deadline.

#![allow(dead_code)]

mod pki;
mod upstream;

pub use pki::Ca;
pub use upstream::{DELAY_MS, ECHO, RESPONSE_BYTES, Reply, Seen, Upstream, chunked_body};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway_proxy::{AccessLogSink, Clock, Proxy, ProxyConfig};
use causeway_snapshot::{
    AccessLog, ApiConfig, Backend, BasePathMapping, DeploymentConfig, GatewayResponse,
    GatewayResponseKind, HostConfig, HttpProxyIntegration, Integration, MockIntegration,
    RouteConfig, RouteMatch, RouteMethod, Snapshot, StageConfig, Template, UpstreamScheme,
};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

// ---------------------------------------------------------------- upstreams

/// A port on which nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

// ---------------------------------------------------------------- proxy

/// A proxy serving traffic and admin on ephemeral ports; stops when dropped.
pub struct TestProxy {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    /// The HTTPS listener (certificates by SNI from the snapshot).
    pub tls: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl TestProxy {
    /// A proxy with no snapshot applied.
    pub async fn start() -> Self {
        Self::start_with(ProxyConfig::default()).await
    }

    /// A proxy with these settings (its access log is always kept in memory).
    pub async fn start_with(config: ProxyConfig) -> Self {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let config = ProxyConfig {
            access_log: AccessLogSink::Memory(logs.clone()),
            drain_timeout: Duration::from_secs(1),
            ..config
        };
        let proxy = Proxy::new(config);
        let traffic = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind traffic");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind tls");
        let tls_addr = tls.local_addr().expect("addr");
        let (stop_tls, tls_stopped) = oneshot::channel::<()>();
        let p = proxy.clone();
        tokio::spawn(async move {
            let _ = p
                .serve_tls(tls, async move {
                    let _ = tls_stopped.await;
                })
                .await;
        });
        let (addr, admin_addr) = (
            traffic.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let (stop_traffic, traffic_stopped) = oneshot::channel::<()>();
        let (stop_admin, admin_stopped) = oneshot::channel::<()>();
        let p = proxy.clone();
        tokio::spawn(async move {
            let _ = p
                .serve(traffic, async move {
                    let _ = traffic_stopped.await;
                })
                .await;
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            let _ = p
                .serve_admin(admin, async move {
                    let _ = admin_stopped.await;
                })
                .await;
        });
        Self {
            proxy,
            addr,
            tls: tls_addr,
            admin: admin_addr,
            logs,
            _stop: vec![stop_traffic, stop_admin, stop_tls],
        }
    }

    /// A proxy with these settings serving `snapshot`.
    pub async fn with_config(config: ProxyConfig, snapshot: Snapshot) -> Self {
        let proxy = Self::start_with(config).await;
        proxy.proxy.apply(snapshot);
        proxy
    }

    /// A proxy serving `snapshot` on a manual clock, and the clock: the test moves it
    /// ([`Clock::advance`]) to expire TTLs, cache entries and quota windows without sleeping.
    pub async fn with_manual_clock(snapshot: Snapshot) -> (Self, Clock) {
        let clock = Clock::manual();
        let config = ProxyConfig {
            clock: clock.clone(),
            ..ProxyConfig::default()
        };
        (Self::with_config(config, snapshot).await, clock)
    }

    /// The access-log lines so far, parsed as JSON.
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn with_snapshot(snapshot: Snapshot) -> Self {
        let proxy = Self::start().await;
        proxy.proxy.apply(snapshot);
        proxy
    }

    /// `http://{proxy}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://{HOST}:{port}{path}`: for clients that resolve every name to loopback.
    pub fn host_url(&self, path: &str) -> String {
        format!("http://{HOST}:{}{path}", self.addr.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The access-log lines once there are at least `n`, or whatever is there after
    /// [`EVENTUALLY`]: a line is written when the response body ends, just after the client
    /// saw the last byte.
    pub async fn wait_logs(&self, n: usize) -> Vec<String> {
        let logs = || std::future::ready(self.logs.lock().expect("logs").clone());
        settle(EVENTUALLY, logs, |lines| lines.len() >= n).await
    }

    /// [`TestProxy::wait_logs`], parsed as JSON.
    pub async fn wait_log_json(&self, n: usize) -> Vec<serde_json::Value> {
        self.wait_logs(n).await;
        self.log_json()
    }

    /// The `/metrics` text once `done` holds for it, or the last one read after `within`:
    /// metrics are recorded when the response body ends, or by background tasks.
    pub async fn wait_metrics(&self, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let client = http1();
        let url = self.admin_url("/metrics");
        let read = || async { get(&client, &url, "admin").await.body };
        settle(within, read, |text| done(text)).await
    }

    /// Asks every listener to shut down (they drain); the proxy itself stays inspectable.
    pub fn shutdown(&mut self) {
        self._stop.clear();
    }
}

// ---------------------------------------------------------------- clients

/// Writes `request` on a fresh connection and reads until the peer closes (or 5 s pass).
/// Returns the raw answer.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

/// The status code of a raw HTTP/1.1 answer (0 when there is none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A pooled HTTP/1.1 client.
pub fn http1() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Resolves every name to 127.0.0.1, so that URLs can carry the Api's host name.
#[derive(Clone, Debug)]
pub struct Loopback;

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for Loopback {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        std::future::ready(Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter()))
    }
}

/// An HTTP/2 prior-knowledge (h2c) client; every host name resolves to 127.0.0.1 (use
/// [`TestProxy::host_url`]: with HTTP/2 the URL's authority is the request's host).
pub fn h2c() -> Client<HttpConnector<Loopback>, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new_with_resolver(Loopback))
}

pub fn empty_body() -> TestBody {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

/// A finished exchange.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends `method url` with `Host: host` and reads the whole answer.
pub async fn send<C>(
    client: &Client<C, TestBody>,
    method: Method,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Answer
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let raw = exchange_with(client, method, url, host, headers, Bytes::new()).await;
    Answer {
        body: raw.text(),
        status: raw.status,
        headers: raw.headers,
    }
}

pub async fn get<C>(client: &Client<C, TestBody>, url: &str, host: &str) -> Answer
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    send(client, Method::GET, url, host, &[]).await
}

/// A finished exchange with the raw body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawAnswer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// Sends `method url` with `Host: host`, the headers (repeats allowed) and the body, on a
/// fresh HTTP/1.1 client.
pub async fn exchange(
    method: Method,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> RawAnswer {
    exchange_with(&http1(), method, url, host, headers, body).await
}

/// [`exchange`] on `client`.
pub async fn exchange_with<C>(
    client: &Client<C, TestBody>,
    method: Method,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> RawAnswer
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut builder = Request::builder()
        .method(method)
        .uri(url)
        .header("host", host);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let body: TestBody = Full::new(body.into()).map_err(|e| match e {}).boxed();
    let response = client
        .request(builder.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    RawAnswer {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------- waiting

/// How long [`eventually`] waits unless told otherwise.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Polls `check` every 10 ms until it returns `Some`, and returns that; panics naming `what`
/// once `within` has passed. For effects that land after the answer (access-log lines,
/// metrics, a background task), instead of a fixed sleep before the assertion.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `read()` every 10 ms until `done` holds for the value or `within` passes, and returns
/// the last value read: the test then asserts on it as it would have without waiting.
pub async fn settle<T, F, Fut>(within: Duration, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = read().await;
        if done(&value) || std::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`eventually`] for a plain condition.
pub async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    eventually(what, within, || std::future::ready(check().then_some(()))).await
}

// ---------------------------------------------------------------- snapshot builders

pub const HOST: &str = "api.test";
pub const API: &str = "default/pets";
pub const STAGE: &str = "default/pets/prod";

/// `GET /pets/{proxy+}` → the route match (`{proxy+}` becomes `{*proxy}`), `$default` too.
pub fn route_match(key: &str) -> RouteMatch {
    if key == "$default" {
        return RouteMatch::Default;
    }
    if !key.contains(' ') {
        // A WebSocket route key (`$connect`, `sendmessage`).
        return RouteMatch::Key;
    }
    let (method, path) = key.split_once(' ').expect("route key has a method");
    RouteMatch::Path {
        method: RouteMethod::parse(method).expect("known method"),
        pattern: path.replace("{proxy+}", "{*proxy}"),
    }
}

/// A MOCK route answering 200 with `body` (a template of path parameters).
pub fn mock(key: &str, body: &str) -> RouteConfig {
    RouteConfig {
        key: key.to_string(),
        matcher: route_match(key),
        integration: Integration::Mock(MockIntegration {
            status: 200,
            headers: BTreeMap::new(),
            body: Template::parse(body),
            mapping: None,
        }),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    }
}

/// An HTTP_PROXY route to `backend`.
pub fn proxy_to(key: &str, backend: &str) -> ProxyRoute {
    ProxyRoute(RouteConfig {
        key: key.to_string(),
        matcher: route_match(key),
        integration: Integration::HttpProxy(HttpProxyIntegration {
            backend: backend.to_string(),
            path: None,
            method: None,
            request_headers: BTreeMap::new(),
            timeout_ms: 5_000,
            request_parameters: vec![],
            response_parameters: vec![],
            mapping: None,
        }),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    })
}

/// Builder for an HTTP_PROXY route.
pub struct ProxyRoute(RouteConfig);

impl ProxyRoute {
    fn http(&mut self) -> &mut HttpProxyIntegration {
        match &mut self.0.integration {
            Integration::HttpProxy(h) => h,
            _ => unreachable!("built as HTTP_PROXY"),
        }
    }
    pub fn path(mut self, template: &str) -> Self {
        self.http().path = Some(Template::parse(template));
        self
    }
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.http().timeout_ms = ms;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.http()
            .request_headers
            .insert(name.to_string(), value.to_string());
        self
    }
    pub fn build(self) -> RouteConfig {
        self.0
    }
}

impl From<ProxyRoute> for RouteConfig {
    fn from(r: ProxyRoute) -> Self {
        r.0
    }
}

/// The gateway responses compile fills in (API Gateway's defaults), for the kinds tests use.
pub fn default_gateway_responses() -> BTreeMap<GatewayResponseKind, GatewayResponse> {
    use GatewayResponseKind as K;
    [
        (K::Default4xx, 400),
        (K::Default5xx, 500),
        (K::MissingAuthenticationToken, 403),
        (K::RequestTooLarge, 413),
        (K::IntegrationTimeout, 504),
        (K::IntegrationFailure, 502),
        (K::Unauthorized, 401),
        (K::AccessDenied, 403),
        (K::InvalidApiKey, 403),
        (K::InvalidSignature, 403),
        (K::ExpiredToken, 403),
        (K::WafFiltered, 403),
        (K::AuthorizerFailure, 500),
        (K::AuthorizerConfigurationError, 500),
    ]
    .into_iter()
    .map(|(kind, status)| {
        let response = GatewayResponse {
            status,
            headers: BTreeMap::new(),
            body: r#"{"message":$context.error.messageString}"#.to_string(),
            content_type: "application/json".to_string(),
        };
        (kind, response)
    })
    .collect()
}

/// Builds a one-Api, one-stage snapshot on [`HOST`]; sealed by [`SnapshotBuilder::build`].
pub struct SnapshotBuilder {
    routes: Vec<RouteConfig>,
    canary: Option<causeway_snapshot::CanaryConfig>,
    backends: BTreeMap<String, Backend>,
    base_path: String,
    max_body_bytes: Option<u64>,
    deployment_id: String,
}

impl SnapshotBuilder {
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            canary: None,
            backends: BTreeMap::new(),
            base_path: String::new(),
            max_body_bytes: None,
            deployment_id: "d1".to_string(),
        }
    }
    pub fn route(mut self, route: impl Into<RouteConfig>) -> Self {
        self.routes.push(route.into());
        self
    }
    pub fn backend(mut self, id: &str, endpoints: &[String]) -> Self {
        self.backends.insert(
            id.to_string(),
            Backend {
                scheme: UpstreamScheme::Http,
                authority: format!("{id}.default.svc"),
                endpoints: endpoints.to_vec(),
                load_balancing: Default::default(),
                http2: false,
                tls: None,
            },
        );
        self
    }
    pub fn base_path(mut self, base: &str) -> Self {
        self.base_path = base.to_string();
        self
    }
    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = Some(n);
        self
    }
    pub fn deployment(mut self, id: &str) -> Self {
        self.deployment_id = id.to_string();
        self
    }
    pub fn canary(mut self, percent: f64, routes: Vec<RouteConfig>) -> Self {
        self.canary = Some(causeway_snapshot::CanaryConfig {
            percent,
            deployment: DeploymentConfig {
                deployment_id: "canary".to_string(),
                variables: BTreeMap::new(),
                routes,
            },
            sticky: None,
            use_stage_cache: false,
        });
        self
    }
    pub fn build(self) -> Snapshot {
        let mut routes = self.routes;
        routes.sort_by(|a, b| a.key.cmp(&b.key));
        Snapshot {
            version: String::new(),
            apis: vec![ApiConfig {
                id: API.to_string(),
                gateway_responses: default_gateway_responses(),
                max_body_bytes: self.max_body_bytes,
                ..ApiConfig::default()
            }],
            stages: vec![StageConfig {
                id: STAGE.to_string(),
                api: API.to_string(),
                api_name: "pets".to_string(),
                name: "prod".to_string(),
                main: DeploymentConfig {
                    deployment_id: self.deployment_id,
                    variables: BTreeMap::new(),
                    routes,
                },
                canary: self.canary,
                throttle: None,
                access_log: AccessLog::default(),
                cache: None,
            }],
            hosts: vec![HostConfig {
                hostname: HOST.to_string(),
                rules: vec![],
                mappings: vec![BasePathMapping {
                    base_path: self.base_path,
                    stage: STAGE.to_string(),
                }],
                redirect_to_https: false,
            }],
            backends: self.backends,
            ..Snapshot::default()
        }
        .seal()
    }
}

// ---------------------------------------------------------------- https functions

/// An HTTPS [`Upstream`] for `name` (its certificate signed by a fresh CA) that answers every
/// request 200 with the JSON `answer`, for Lambda functions and authorizers reached over TLS:
/// the upstream and the CA certificate (PEM). A refused handshake records nothing.
pub async fn tls_function(name: &str, answer: &'static str) -> (Upstream, String) {
    let ca = Ca::new("function CA");
    let upstream = Upstream::builder()
        .handler(Arc::new(move |_: &Seen| Reply::json(answer)))
        .tls(ca.leaf(name).server_config(None, &[]))
        .start()
        .await;
    (upstream, ca.pem().to_string())
}

/// Makes backend `id` of a built snapshot `https`, trusting `ca_pem` and expecting the server
/// name `server_name`, and seals the snapshot again.
pub fn over_https(mut snapshot: Snapshot, id: &str, ca_pem: &str, server_name: &str) -> Snapshot {
    let backend = snapshot.backends.get_mut(id).expect("backend");
    backend.scheme = UpstreamScheme::Https;
    backend.tls = Some(causeway_snapshot::UpstreamTls {
        ca_pem: Some(ca_pem.to_string()),
        server_name: Some(server_name.to_string()),
        ..causeway_snapshot::UpstreamTls::default()
    });
    snapshot.seal()
}
