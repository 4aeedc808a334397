//! Test harness: a recording upstream, a proxy on ephemeral ports, snapshot builders, clients.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway_proxy::{AccessLogSink, Proxy, ProxyConfig};
use causeway_snapshot::{
    AccessLog, ApiConfig, Backend, BasePathMapping, DeploymentConfig, GatewayResponse,
    GatewayResponseKind, HostConfig, HttpProxyIntegration, Integration, MockIntegration,
    RouteConfig, RouteMatch, RouteMethod, Snapshot, StageConfig, Template, UpstreamScheme,
};
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Request header that makes the test upstream wait before answering.
pub const DELAY_MS: &str = "x-test-delay-ms";
/// Request header that makes the test upstream answer with the request body.
pub const ECHO: &str = "x-test-echo";
/// Request header that makes the test upstream answer with this many bytes (streamed).
pub const RESPONSE_BYTES: &str = "x-test-response-bytes";

// ---------------------------------------------------------------- upstream

/// What the upstream received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body_len: u64,
    /// The value of the upstream's probe when the first body byte arrived.
    pub probe_at_first_byte: Option<u64>,
}

/// An HTTP/1.1 + h2c server that records requests. It answers `{name} {path}?{query}` unless
/// told otherwise by [`DELAY_MS`] / [`RESPONSE_BYTES`]; it always reads the whole request body.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Sampled when a request body's first byte arrives (tests increment it while sending).
    pub probe: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_with_status(name, StatusCode::OK).await
    }

    /// An upstream that answers every request with `status`.
    pub async fn start_with_status(name: &str, status: StatusCode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (seen2, probe2, name) = (seen.clone(), probe.clone(), name.to_string());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let (seen, probe, name) = (seen2.clone(), probe2.clone(), name.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, name.clone(), seen.clone(), probe.clone(), status)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            probe,
            _stop: stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }
}

async fn answer(
    req: Request<Incoming>,
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    probe: Arc<AtomicU64>,
    status: StatusCode,
) -> Result<Response<TestBody>, Infallible> {
    let header_num = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let delay = header_num(DELAY_MS);
    let response_bytes = header_num(RESPONSE_BYTES);
    let echo = req.headers().contains_key(ECHO);
    let mut echoed = Vec::new();
    let (parts, body) = req.into_parts();
    let mut stream = BodyStream::new(body);
    let mut body_len = 0u64;
    let mut probe_at_first_byte = None;
    while let Some(frame) = stream.next().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            if probe_at_first_byte.is_none() && !data.is_empty() {
                probe_at_first_byte = Some(probe.load(Ordering::SeqCst));
            }
            body_len += data.len() as u64;
            if echo {
                echoed.extend_from_slice(data);
            }
        }
    }
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let text = format!("{name} {path}?{}", query.clone().unwrap_or_default());
    seen.lock().expect("seen lock").push(Seen {
        method: parts.method,
        path,
        query,
        version: parts.version,
        headers: parts.headers,
        body_len,
        probe_at_first_byte,
    });
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body: TestBody = match response_bytes {
        _ if echo => Full::new(Bytes::from(echoed))
            .map_err(|e| match e {})
            .boxed(),
        Some(n) => chunked_body(n, None),
        None => Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("x-upstream", name.parse().expect("header value"));
    Ok(response)
}

/// A streamed body of `total` bytes in 64 KiB chunks; `probe` counts bytes produced so far.
pub fn chunked_body(total: u64, probe: Option<Arc<AtomicU64>>) -> TestBody {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        let probe = probe.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = CHUNK.min(total - sent);
            if let Some(p) = &probe {
                p.fetch_add(n, Ordering::SeqCst);
            }
            let frame = Frame::data(chunk.slice(..n as usize));
            Some((
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(frame),
                sent + n,
            ))
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

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
        proxy.proxy.apply(snapshot).expect("snapshot applies");
        proxy
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
        proxy.proxy.apply(snapshot).expect("snapshot applies");
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
    let mut builder = Request::builder()
        .method(method)
        .uri(url)
        .header("host", host);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(empty_body()).expect("request");
    let response = client.request(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).to_string(),
    }
}

pub async fn get<C>(client: &Client<C, TestBody>, url: &str, host: &str) -> Answer
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    send(client, Method::GET, url, host, &[]).await
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

/// An HTTPS server for `name` (certificate signed by a fresh CA) that answers every request
/// 200 with the JSON `answer` and counts the requests it read; for Lambda functions and
/// authorizers reached over TLS.
pub struct TlsFunction {
    pub addr: SocketAddr,
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: String,
    pub calls: Arc<AtomicU64>,
}

impl TlsFunction {
    pub async fn start(name: &str, answer: &'static str) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "function CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("leaf");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let counted = Arc::clone(&counted);
                        async move {
                            let _ = req.into_body().collect().await;
                            counted.fetch_add(1, Ordering::SeqCst);
                            let mut response = Response::new(Full::new(Bytes::from(answer)));
                            response.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem: ca.pem(),
            calls,
        }
    }

    /// Requests the server read to the end (a refused handshake never gets here).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
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
