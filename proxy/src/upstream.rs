//! `HTTP_PROXY` integrations: the pooled upstream client and the request/response rewriting
//! (hop-by-hop headers, `Host`, `X-Forwarded-*`, path templates). Bodies stream both ways;
//! nothing here buffers a whole body.

use std::net::SocketAddr;
use std::time::Instant;

use causeway_snapshot::UpstreamScheme;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{BoxError, ProxyBody};
use crate::config::ProxyConfig;
use crate::gateway_response::RequestError;
use crate::runtime::HttpProxyRuntime;

/// `X-Request-Id`, kept from the client or generated, sent upstream and back.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1), besides those
/// named in `Connection`.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The pooled HTTP/1.1 client shared by every snapshot (pools survive swaps).
pub(crate) struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
}

/// What the pipeline knows about the downstream request that upstream rewriting needs.
pub(crate) struct Forwarding<'a> {
    pub peer: SocketAddr,
    /// `http` or `https` as the client connected.
    pub proto: &'static str,
    /// The `Host` (or `:authority`) the client sent.
    pub original_host: Option<&'a str>,
    /// The path after the base path.
    pub stage_path: &'a str,
    pub params: &'a [(String, String)],
    pub request_id: &'a HeaderValue,
}

/// A response head from upstream, with how long it took.
pub(crate) struct UpstreamResponse {
    pub response: Response<ProxyBody>,
    pub status: u16,
}

impl Upstream {
    pub fn new(config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.upstream_pool_idle_timeout)
            .pool_max_idle_per_host(config.upstream_max_idle_per_host)
            .http1_max_buf_size(config.max_header_bytes.max(8192))
            .set_host(false)
            .build(connector);
        Self { client }
    }

    /// The pooled client, for integrations that build their own requests (Lambda proxy).
    pub fn client(&self) -> &Client<HttpConnector, ProxyBody> {
        &self.client
    }

    /// Forwards the request and returns the upstream response head (the body streams on).
    /// `started` is set when the request leaves for the backend.
    pub async fn forward(
        &self,
        integration: &HttpProxyRuntime,
        mut request: Request<ProxyBody>,
        fwd: &Forwarding<'_>,
        started: &mut Option<Instant>,
    ) -> Result<UpstreamResponse, RequestError> {
        let backend = &integration.backend;
        if backend.scheme == UpstreamScheme::Https {
            return Err(RequestError::UnsupportedScheme(backend.id.clone()));
        }
        let endpoint = backend
            .next_endpoint()
            .ok_or_else(|| RequestError::NoEndpoints(backend.id.clone()))?
            .to_string();
        let path = match &integration.path {
            Some(template) => template.render(|name| {
                fwd.params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            }),
            None => fwd.stage_path.to_string(),
        };
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let uri = match request.uri().query() {
            Some(q) => format!("http://{endpoint}{path}?{q}"),
            None => format!("http://{endpoint}{path}"),
        };
        let uri: Uri = uri
            .parse()
            .map_err(|e| RequestError::BuildRequest(format!("upstream uri: {e}")))?;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        if let Some(method) = &integration.method {
            *request.method_mut() = method.clone();
        }
        let headers = request.headers_mut();
        remove_hop_by_hop(headers);
        headers.insert(header::HOST, backend.authority.clone());
        append_forwarded_for(headers, fwd.peer);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto));
        if let Some(host) = fwd
            .original_host
            .and_then(|h| HeaderValue::from_str(h).ok())
        {
            headers.insert(X_FORWARDED_HOST, host);
        }
        headers.insert(X_REQUEST_ID, fwd.request_id.clone());
        for (name, value) in &integration.request_headers {
            headers.insert(name.clone(), value.clone());
        }

        *started = Some(Instant::now());
        let sent = tokio::time::timeout(integration.timeout, self.client.request(request)).await;
        let response = match sent {
            Err(_) => {
                return Err(RequestError::UpstreamTimeout {
                    backend: backend.id.clone(),
                    timeout_ms: u32::try_from(integration.timeout.as_millis()).unwrap_or(u32::MAX),
                });
            }
            Ok(Err(e)) if e.is_connect() => {
                return Err(RequestError::UpstreamConnect {
                    backend: backend.id.clone(),
                    endpoint,
                    source: e.into(),
                });
            }
            Ok(Err(e)) => {
                return Err(RequestError::UpstreamFailed {
                    backend: backend.id.clone(),
                    source: e.into(),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let body = body_from_upstream(body);
        Ok(UpstreamResponse {
            response: Response::from_parts(parts, body),
            status,
        })
    }
}

fn body_from_upstream(body: Incoming) -> ProxyBody {
    body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    // `Proxy-*` as a family (Proxy-Connection and friends), not only the two standard ones.
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let prior: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if prior.is_empty() {
        ip
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["x-kept"]
        );
    }
}
