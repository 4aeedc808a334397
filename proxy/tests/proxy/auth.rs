//! Authorization: resource policy, API keys, JWT, REQUEST/TOKEN functions, SigV4 — each against
//! real servers on 127.0.0.1.

mod api_keys;
mod function;
mod jwt;
mod policy;
mod service_account;
pub(crate) mod sigv4;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use causeway_snapshot::{
    AuthorizerConfig, AuthorizerSettings, Backend, RouteAuthorization, RouteConfig, Snapshot,
    UpstreamScheme,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What a [`TestServer`] saw: method, path and query, headers, body.
#[derive(Clone, Debug)]
pub struct Received {
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A handler: request in, (status, body) out, maybe after a delay.
pub type Handler =
    Arc<dyn Fn(&Received) -> (StatusCode, String, Option<std::time::Duration>) + Send + Sync>;

/// A small HTTP/1.1 server that counts and records what it gets.
pub struct TestServer {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicU64>,
    pub received: Arc<Mutex<Vec<Received>>>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(AtomicU64::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (c, r) = (calls.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => break,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (c, r, h) = (c.clone(), r.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (c, r, h) = (c.clone(), r.clone(), h.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Received {
                                path_and_query: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            c.fetch_add(1, Ordering::SeqCst);
                            r.lock().expect("lock").push(seen.clone());
                            let (status, text, delay) = h(&seen);
                            if let Some(d) = delay {
                                tokio::time::sleep(d).await;
                            }
                            let mut response = Response::new(Full::new(Bytes::from(text)));
                            *response.status_mut() = status;
                            response
                                .headers_mut()
                                .insert("content-type", "application/json".parse().expect("hv"));
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            calls,
            received,
            _stop: stop,
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Adds an authorizer to a route.
pub fn with_authorizer(mut route: RouteConfig, authorizer: &str, scopes: &[&str]) -> RouteConfig {
    route.authorization = Some(RouteAuthorization {
        authorizer: authorizer.to_string(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    });
    route
}

/// An authorizer entry for the snapshot.
pub fn authorizer(
    id: &str,
    identity_source: &[&str],
    forward: &[(&str, &str)],
    settings: AuthorizerSettings,
) -> AuthorizerConfig {
    AuthorizerConfig {
        id: id.to_string(),
        api: crate::support::API.to_string(),
        identity_source: identity_source.iter().map(|s| s.to_string()).collect(),
        forward_headers: forward
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        settings,
    }
}

/// Adds authorizers (and backends) to a built snapshot and seals it again.
pub fn add_authorizers(
    mut snapshot: Snapshot,
    authorizers: Vec<AuthorizerConfig>,
    backends: &[(&str, SocketAddr)],
) -> Snapshot {
    for a in authorizers {
        snapshot.authorizers.insert(a.id.clone(), a);
    }
    for (id, addr) in backends {
        snapshot.backends.insert(
            id.to_string(),
            Backend {
                scheme: UpstreamScheme::Http,
                authority: format!("{id}.default.svc"),
                endpoints: vec![addr.to_string()],
                load_balancing: Default::default(),
                http2: false,
                tls: None,
            },
        );
    }
    snapshot.seal()
}
