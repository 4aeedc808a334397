//! The stages of WebSocket Apis. After the resource policy (step 5) a request to such a stage
//! is one of:
//!
//! | request | steps | may answer |
//! |---|---|---|
//! | `POST`/`GET`/`DELETE /@connections/{id}` | the client-controlled removal, the Api's `connectionsAuthorizerRef` (SigV4), then the call on this replica or, through Redis, on the owner | 200, 204, 403, 410, 429, 503 |
//! | a WebSocket upgrade | the stage's new-connection rate, canary choice, `$connect` route, throttles, client headers, `$connect`'s authorizer and API key, usage plan, the `$connect` integration (a non-2xx refuses the upgrade; its `Sec-WebSocket-Protocol` is the client's) | 101, 4xx (429 over a rate), 5xx |
//! | anything else | — | 426 |
//!
//! After the 101 the session ([`run`]) holds the socket: each message is routed by the Api's
//! route selection expression and sent to its route's integration (two-way routes answer on
//! the socket); `$disconnect` is called, best effort and without holding up the close, however
//! the connection ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::{Exchange, Flow, admit, respond, route};
use crate::body::{ProxyBody, full};
use crate::context::{RequestContext, WebSocketFacts};
use crate::error::RequestError;
use crate::integration::LiveIntegration;
use crate::state::Shared;
use crate::tables::{LiveRoute, LiveStage, Tables};
use crate::upstream::{Forwarding, Upstream};
use crate::websocket::{self, Connection, EventType, Manage, Managed, Outbound, Session, close};

/// The management API's path prefix after the stage.
const CONNECTIONS_PREFIX: &str = "/@connections/";

/// Serves a request to a WebSocket stage (after the resource policy).
pub(super) async fn serve(
    shared: &Arc<Shared>,
    upstream: &Arc<Upstream>,
    tables: &Arc<Tables>,
    stage: &LiveStage,
    mut request: Request<Incoming>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    if let Some(id) = ex.ctx.stage_path.strip_prefix(CONNECTIONS_PREFIX) {
        let id = id.to_string();
        return manage(shared, tables, stage, id, request, ex).await;
    }
    let Some(key) = upgrade_key(&request) else {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            r#"{"message":"Upgrade Required"}"#,
        );
    };
    // The stage's new-connection rate (AWS's new connections per second): 429 on the upgrade.
    let rate = shared.config.websocket.new_connections_per_second;
    if let Err(wait) = shared.websockets.admit_connection(&stage.id, rate) {
        shared.websockets.metrics.throttled_connects.inc();
        shared
            .metrics
            .throttled(&stage.api_name, &stage.name, "websocket_connect");
        let retry_after_secs = crate::limits::retry_after_seconds(wait);
        let mut refused = respond::fail(
            Some(&stage.api),
            RequestError::Throttled { retry_after_secs },
            ex,
        );
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        return refused;
    }
    // Subprotocols the client offers go to the `$connect` integration with its headers; the
    // one it answers with is the client's (AWS). Without an answer there is none.
    let offered_protocols = request
        .headers()
        .contains_key(header::SEC_WEBSOCKET_PROTOCOL);
    let mut protocol = None;
    let deployment = route::choose_deployment(stage, request.headers(), ex);
    let connect = deployment.routes.by_key(websocket::CONNECT);
    ex.ctx.route_key = Some(websocket::CONNECT.to_string());
    if let Some(route) = connect {
        ex.route_metrics = Some(Arc::clone(&route.metrics));
    }
    let connection_id = websocket::new_connection_id(&shared.replica);
    // The upgrade request is what connects: its time is the connection's (as on AWS, the
    // CONNECT event's `connectedAt` is its `requestTimeEpoch`).
    let connected_at = ex.ctx.request_time;
    ex.ctx.websocket = Some(WebSocketFacts {
        connection_id: connection_id.clone(),
        event_type: EventType::Connect.as_str(),
        message_id: None,
        connected_at: websocket::epoch_millis(connected_at),
    });
    // Throttles, the client-controlled removal and authorization run as for any route; an
    // Api without `$connect` route admits every upgrade its policy lets through.
    if let Some(route) = connect
        && let Flow::Respond(r) = admit::throttle(shared, stage, route, ex)
    {
        return r;
    }
    if let Flow::Respond(r) = admit::client_headers(shared, stage, &mut request, ex) {
        return r;
    }
    for name in reserved_names() {
        request.headers_mut().remove(name);
    }
    let request = match connect {
        Some(route) => {
            let limit = shared.config.websocket.max_message_bytes as u64;
            let authorized =
                admit::authorize(shared, tables, stage, route, limit, request, ex).await;
            let request = match authorized {
                Flow::Respond(r) => return r,
                Flow::Continue(request) => request,
            };
            if let Flow::Respond(r) = admit::usage_plan(shared, tables, stage, route, ex).await {
                return r;
            }
            Some(request)
        }
        None => None,
    };
    if let (Some(route), Some(request)) = (connect, request) {
        let (mut parts, _body) = request.into_parts();
        parts.headers.retain_remove_websocket_handshake();
        let event = Event {
            kind: EventType::Connect,
            route,
            headers: parts.headers,
            query: parts.uri.query().map(str::to_string),
            body: Bytes::new(),
            closed: None,
        };
        let called = call(shared, upstream, stage, event, &mut ex.ctx, &ex.request_id).await;
        count_event(
            shared,
            stage,
            Some(websocket::CONNECT),
            EventType::Connect,
            ex.ctx.integration_latency,
        );
        match called {
            Ok(answer) if (200..300).contains(&answer.status) => {
                protocol = answer
                    .headers
                    .get(header::SEC_WEBSOCKET_PROTOCOL)
                    .filter(|_| offered_protocols)
                    .cloned();
            }
            Ok(answer) => {
                // The integration refused the connection: its answer is the client's.
                let mut refused = Response::new(full(answer.body));
                *refused.status_mut() =
                    StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
                return refused;
            }
            Err(error) => return respond::fail(Some(&stage.api), error, ex),
        }
    }
    let Some(stage_index) = tables.stages.iter().position(|s| std::ptr::eq(s, stage)) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"message":"stage gone"}"#,
        );
    };
    let held = Held {
        shared: Arc::clone(shared),
        upstream: Arc::clone(upstream),
        tables: Arc::clone(tables),
        stage_index,
        canary: ex.ctx.canary,
        connection_id,
        connected_at,
        ctx: ex.ctx.clone(),
    };
    let session = Session::new(Box::new(move |io, drain| Box::pin(run(held, io, drain))));
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&websocket::accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response.extensions_mut().insert(session);
    response
}

/// Headers the gateway sets on integration calls, which no client may send.
fn reserved_names() -> [HeaderName; 3] {
    [
        HeaderName::from_static(websocket::CONNECTION_ID_HEADER),
        HeaderName::from_static(websocket::EVENT_TYPE_HEADER),
        HeaderName::from_static(websocket::ROUTE_KEY_HEADER),
    ]
}

/// Removes the handshake headers, which belong to the client's connection only.
trait HandshakeHeaders {
    fn retain_remove_websocket_handshake(&mut self);
}

impl HandshakeHeaders for HeaderMap {
    fn retain_remove_websocket_handshake(&mut self) {
        for name in [
            header::SEC_WEBSOCKET_KEY,
            header::SEC_WEBSOCKET_VERSION,
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
        ] {
            self.remove(name);
        }
    }
}

/// The client's `Sec-WebSocket-Key` when the request is a WebSocket handshake
/// (HTTP/1.1 `GET`, `Upgrade: websocket`, version 13).
fn upgrade_key(request: &Request<Incoming>) -> Option<String> {
    let h = request.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        });
    let version = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    (request.method() == Method::GET
        && request.version() == http::Version::HTTP_11
        && upgrade
        && version)
        .then(|| {
            h.get(header::SEC_WEBSOCKET_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .flatten()
}

fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

// ------------------------------------------------------------------ integration calls

/// One event for a route's integration.
struct Event<'a> {
    kind: EventType,
    route: &'a LiveRoute,
    /// The client's headers (CONNECT only).
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    /// How the connection ended (DISCONNECT only).
    closed: Option<&'a Closed>,
}

/// What an integration answered an event.
struct Answer {
    status: u16,
    headers: HeaderMap,
    /// At most the message limit.
    body: Bytes,
}

/// Calls the route's integration with the event; returns its answer. HTTP integrations get
/// the body with the `connectionId`, `eventType` and `routeKey` headers (and any parameter
/// mapping of `$context.connectionId`); LAMBDA_PROXY functions get the WebSocket event; MOCK
/// answers its status and body.
async fn call(
    shared: &Shared,
    upstream: &Upstream,
    stage: &LiveStage,
    event: Event<'_>,
    ctx: &mut RequestContext,
    request_id: &HeaderValue,
) -> Result<Answer, RequestError> {
    let limit = shared.config.websocket.max_message_bytes;
    let connection_id = ctx
        .websocket
        .as_ref()
        .map(|w| w.connection_id.clone())
        .unwrap_or_default();
    let response = match &event.route.integration {
        LiveIntegration::Mock(mock) => mock.respond(&[]),
        // Compile refuses LAMBDA (non-proxy) on WebSocket routes.
        LiveIntegration::Lambda(_) => {
            return Err(RequestError::BuildRequest(
                "a LAMBDA (non-proxy) integration cannot serve a WebSocket route".into(),
            ));
        }
        LiveIntegration::HttpProxy(http) => {
            let mut headers = event.headers;
            for (name, value) in [
                (websocket::CONNECTION_ID_HEADER, connection_id.as_str()),
                (websocket::EVENT_TYPE_HEADER, event.kind.as_str()),
                (websocket::ROUTE_KEY_HEADER, event.route.key.as_str()),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(HeaderName::from_static(name), v);
                }
            }
            if !event.body.is_empty() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            let path_and_query = match &event.query {
                Some(q) => format!("/?{q}"),
                None => "/".to_string(),
            };
            let mut uri: http::Uri = path_and_query
                .parse()
                .map_err(|e| RequestError::BuildRequest(format!("websocket event uri: {e}")))?;
            let mapped = http.mapping.apply_request(&mut headers, &mut uri, ctx)?;
            let mut request = Request::new(full(event.body));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uri;
            *request.headers_mut() = headers;
            let fwd = Forwarding {
                peer: ctx.peer,
                trusted_hop: ctx.trusted_hop,
                proto: ctx.scheme,
                original_host: ctx.domain_name.as_deref(),
                stage_path: mapped.as_deref().unwrap_or("/"),
                params: &[],
                request_id,
            };
            let mut sent_at = None;
            let result = upstream
                .forward(&http.target, request, &fwd, &mut sent_at)
                .await;
            ctx.integration_latency = sent_at.map(|t| t.elapsed());
            let answer = result?;
            ctx.integration_status = Some(answer.status);
            answer.response
        }
        LiveIntegration::LambdaProxy(lambda) => {
            let lambda_event = lambda_event(&event, stage, ctx);
            let invoked =
                crate::integration::lambda::invoke_event(upstream, lambda, lambda_event).await;
            ctx.integration_latency = invoked.sent_at.map(|t| t.elapsed());
            ctx.integration_status = invoked.status;
            invoked.response?
        }
    };
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    // Boxed before collecting (see `integrate::read_body`).
    let body = Limited::new(body, limit)
        .boxed_unsync()
        .collect()
        .await
        .map_err(|source| RequestError::UpstreamFailed {
            backend: event.route.key.clone(),
            source,
        })?
        .to_bytes();
    Ok(Answer {
        status,
        headers: parts.headers,
        body,
    })
}

/// Counts one event under its route key and observes its integration latency.
fn count_event(
    shared: &Shared,
    stage: &LiveStage,
    route_key: Option<&str>,
    event: EventType,
    latency: Option<Duration>,
) {
    let labels = websocket::RouteKeyLabels {
        api: stage.api_name.clone(),
        stage: stage.name.clone(),
        route_key: websocket::route_key_label(route_key),
        event_type: event.as_str(),
    };
    let metrics = &shared.websockets.metrics;
    metrics.route_events.get_or_create(&labels).inc();
    if let Some(latency) = latency {
        metrics
            .route_integration_latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }
}

/// API Gateway's WebSocket Lambda proxy event (`aws_lambda_events`'
/// `ApiGatewayWebsocketProxyRequest`): headers and query string on CONNECT, the body on
/// MESSAGE.
fn lambda_event(event: &Event<'_>, stage: &LiveStage, ctx: &RequestContext) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let facts = ctx.websocket.clone().unwrap_or_default();
    let mut request_context = json!({
        "routeKey": event.route.key,
        "eventType": event.kind.as_str(),
        "extendedRequestId": ctx.request_id,
        "requestTime": ctx.resolve("requestTime"),
        "messageDirection": "IN",
        "stage": stage.name,
        "connectedAt": facts.connected_at,
        "requestTimeEpoch": ctx.request_time_epoch(),
        "identity": {"sourceIp": ctx.source_ip.to_string(), "userAgent": ctx.user_agent},
        "requestId": ctx.request_id,
        "domainName": ctx.domain_name,
        "connectionId": facts.connection_id,
        "apiId": stage.api_name,
    });
    if let Some(message_id) = &facts.message_id {
        request_context["messageId"] = json!(message_id);
    }
    let authorizer = ctx.principal.authorizer_context();
    if !authorizer.is_empty() {
        request_context["authorizer"] = Value::Object(authorizer);
    }
    let mut out = json!({
        "requestContext": request_context,
        "isBase64Encoded": false,
    });
    // Headers as `headers` (the last value of a repeated name) and `multiValueHeaders`.
    let header_maps = |pairs: Vec<(String, String)>| {
        let mut headers = Map::new();
        let mut multi: Map<String, Value> = Map::new();
        for (name, v) in pairs {
            if let Some(list) = multi
                .entry(name.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                list.push(json!(v));
            }
            headers.insert(name, json!(v));
        }
        (Value::Object(headers), Value::Object(multi))
    };
    match event.kind {
        EventType::Connect => {
            let pairs = event
                .headers
                .iter()
                .map(|(name, value)| {
                    let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_string(), v)
                })
                .collect();
            let (headers, multi) = header_maps(pairs);
            out["headers"] = headers;
            out["multiValueHeaders"] = multi;
            if let Some(q) = &event.query {
                let (params, multi) = header_maps(url_pairs(q));
                out["queryStringParameters"] = params;
                out["multiValueQueryStringParameters"] = multi;
            }
        }
        EventType::Message => match std::str::from_utf8(&event.body) {
            Ok(text) => out["body"] = json!(text),
            Err(_) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&event.body);
                out["body"] = json!(encoded);
                out["isBase64Encoded"] = json!(true);
            }
        },
        EventType::Disconnect => {
            // AWS sends no client header on DISCONNECT, only a few of its own.
            let host = ctx.domain_name.clone().unwrap_or_default();
            let pairs = vec![
                ("Host".to_string(), host),
                ("X-Forwarded-For".to_string(), ctx.source_ip.to_string()),
            ];
            let (headers, multi) = header_maps(pairs);
            out["headers"] = headers;
            out["multiValueHeaders"] = multi;
            if let Some(closed) = event.closed {
                out["requestContext"]["disconnectStatusCode"] = json!(closed.code);
                out["requestContext"]["disconnectReason"] = json!(closed.reason);
            }
        }
    }
    out
}

/// `a=1&b=x%20y` → pairs, percent-decoded.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

// ------------------------------------------------------------------ the session

/// What a session holds on to: the tables it connected on (a connection keeps its
/// deployment, as on AWS), and the context of its `$connect` (principal, addresses).
struct Held {
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
    tables: Arc<Tables>,
    stage_index: usize,
    canary: bool,
    connection_id: String,
    connected_at: SystemTime,
    ctx: RequestContext,
}

impl Held {
    fn stage(&self) -> &LiveStage {
        &self.tables.stages[self.stage_index]
    }

    fn routes(&self) -> &causeway_snapshot::RouteTable<LiveRoute> {
        let stage = self.stage();
        match (&stage.canary, self.canary) {
            (Some(canary), true) => &canary.deployment.routes,
            _ => &stage.main.routes,
        }
    }

    /// A context for one event of this connection.
    fn event_ctx(
        &self,
        kind: EventType,
        route: Option<&str>,
        message_id: Option<String>,
    ) -> RequestContext {
        let mut ctx = self.ctx.clone();
        ctx.request_id = format!("{:016x}", rand::random::<u64>());
        ctx.request_time = SystemTime::now();
        ctx.route_key = route.map(str::to_string);
        ctx.integration_latency = None;
        ctx.integration_status = None;
        ctx.integration_error = None;
        ctx.error = None;
        ctx.websocket = Some(WebSocketFacts {
            connection_id: self.connection_id.clone(),
            event_type: kind.as_str(),
            message_id,
            connected_at: websocket::epoch_millis(self.connected_at),
        });
        ctx
    }

    /// One access-log line for a MESSAGE or DISCONNECT event.
    fn log(&self, mut ctx: RequestContext, status: u16, started: Instant) {
        let stage = self.stage();
        if !stage.access_log.enabled {
            return;
        }
        ctx.status = status;
        ctx.response_latency = started.elapsed();
        self.shared
            .access_log
            .write(&ctx, stage.access_log.format.as_deref());
    }
}

/// How a connection ended: the code and reason `$disconnect` reports (AWS's
/// `disconnectStatusCode` and `disconnectReason`), and a word for the logs.
struct Closed {
    code: u16,
    reason: String,
    why: &'static str,
}

impl Closed {
    /// The gateway closes: it sends a close frame with this code (when the queue takes it).
    fn by_gateway(sender: &mpsc::Sender<Outbound>, code: u16, why: &'static str) -> Self {
        let reason = match code {
            close::TOO_BIG => "Message too big",
            close::NORMAL => "Normal closure",
            _ => "Going away",
        };
        let _ = sender.try_send(Outbound::Close(code, reason));
        Self {
            code,
            reason: reason.to_string(),
            why,
        }
    }

    /// The client closed with this frame (or none).
    fn by_client(frame: Option<&CloseFrame>) -> Self {
        match frame {
            Some(frame) => Self {
                code: u16::from(frame.code),
                reason: frame.reason.as_str().to_string(),
                why: "client closed",
            },
            None => Self {
                code: close::NO_STATUS,
                reason: "Client-side close frame status not set".to_string(),
                why: "client closed",
            },
        }
    }

    /// The socket failed, or the client went away without a close frame.
    fn abnormal(why: &'static str) -> Self {
        Self {
            code: close::ABNORMAL,
            reason: "Connection closed abnormally".to_string(),
            why,
        }
    }
}

/// The socket the session holds.
type Socket = WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Holds the socket: reads messages (each routed and sent to its integration in turn, so a
/// slow integration slows the reader, not the proxy's memory), writes what the integrations
/// and the management API send through a bounded queue, and ends on a close either way, the
/// idle timeout, the maximum duration, a frame or message over the limit, `DELETE`, a
/// snapshot that removes its stage, or drain.
///
/// Memory of an idle connection is what this future holds while it waits (the message
/// handling is boxed, so its size is paid only while a message is in flight), tungstenite's
/// read buffer (`IDLE_READ_BUFFER`), the writer task and the queue.
async fn run(
    held: Held,
    io: hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>,
    drain: futures_util::future::BoxFuture<'static, ()>,
) {
    let limits = held.shared.config.websocket;
    let config = WebSocketConfig::default()
        .read_buffer_size(IDLE_READ_BUFFER)
        .write_buffer_size(0)
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes));
    let socket: Socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (sink, mut stream) = socket.split();
    let (sender, queue) = mpsc::channel::<Outbound>(limits.send_queue.max(1));
    let connection = Arc::new(Connection {
        stage_id: held.stage().id.clone(),
        connected_at: held.connected_at,
        last_active: std::sync::atomic::AtomicU64::new(
            u64::try_from(websocket::epoch_millis(held.connected_at)).unwrap_or(0),
        ),
        source_ip: held.ctx.source_ip,
        user_agent: held.ctx.user_agent.clone(),
        sender: sender.clone(),
        closing: tokio::sync::Notify::new(),
        close_code: std::sync::atomic::AtomicU16::new(close::NORMAL),
    });
    let id = held.connection_id.clone();
    held.shared
        .websockets
        .insert(id.clone(), Arc::clone(&connection));
    held.shared.websockets.metrics.open.inc();
    held.shared.websockets.metrics.connects.inc();
    let mut writer = tokio::spawn(write(sink, queue, limits.max_frame_bytes));
    // Messages per second from this client; none when unlimited.
    let rate = (limits.messages_per_second > 0.0).then(|| {
        crate::limits::TokenBucket::new(
            websocket::per_second(limits.messages_per_second),
            Instant::now(),
        )
    });
    let max_end = tokio::time::Instant::now() + limits.max_duration;
    let mut drain = drain;
    let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
    let mut messages = 0u64;
    let mut writer_done = false;
    let closed = loop {
        let message = tokio::select! {
            next = stream.next() => match next {
                Some(Ok(Message::Text(text))) => Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                // Pings are answered by the codec; they do not count as activity (AWS).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => break Closed::by_client(frame.as_ref()),
                None => break Closed::abnormal("client went away"),
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                    break Closed::by_gateway(&sender, close::TOO_BIG, "message too big");
                }
                Some(Err(_)) => break Closed::abnormal("read failed"),
            },
            () = tokio::time::sleep_until(idle_deadline) => {
                break Closed::by_gateway(&sender, close::GOING_AWAY, "idle timeout");
            }
            () = tokio::time::sleep_until(max_end) => {
                break Closed::by_gateway(&sender, close::GOING_AWAY, "maximum duration");
            }
            () = &mut drain => {
                break Closed::by_gateway(&sender, close::GOING_AWAY, "the proxy drains");
            }
            () = connection.closing.notified() => {
                let code = connection.close_code.load(std::sync::atomic::Ordering::SeqCst);
                let why = if code == close::NORMAL { "closed by the management API" } else { "its stage is gone" };
                break Closed::by_gateway(&sender, code, why);
            }
            _ = &mut writer, if !writer_done => {
                // The writer ends early only when a write failed (it is polled no more).
                writer_done = true;
                break Closed::abnormal("write failed");
            }
        };
        idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
        connection.touch();
        messages += 1;
        let throttled = rate
            .as_ref()
            .is_some_and(|bucket| bucket.try_take(Instant::now()).is_err());
        // Boxed: an idle connection does not carry the integration call's state.
        Box::pin(on_message(&held, &sender, message, messages, throttled)).await;
    };
    held.shared.websockets.remove(&id);
    held.shared.websockets.metrics.open.dec();
    held.shared.websockets.metrics.disconnects.inc();
    tracing::debug!(connection_id = %id, why = closed.why, code = closed.code, "websocket connection ended");
    // Closing: the writer sends what is queued and the close frame; a client that reads
    // nothing more does not hold the socket past a short grace.
    drop(sender);
    drop(connection);
    if !writer_done
        && tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    // `$disconnect`, best effort, never holding up the close (the socket is already gone).
    tokio::spawn(disconnect(held, closed));
}

/// tungstenite's read buffer, allocated with the socket: small, because idle connections
/// dominate memory; a larger frame grows it as needed.
const IDLE_READ_BUFFER: usize = 1024;

/// How long a closing connection may take to write what is queued and its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The only writer of the socket: sends what the queue holds (messages over the frame limit
/// in several frames, as AWS does), ends after a close frame, a write error, or when every
/// sender is gone.
async fn write(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    max_frame: usize,
) {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
    let max_frame = max_frame.max(1);
    while let Some(out) = queue.recv().await {
        let sent = match out {
            Outbound::Text(text) if text.len() <= max_frame => sink.send(Message::text(text)).await,
            Outbound::Binary(bytes) if bytes.len() <= max_frame => {
                sink.send(Message::binary(bytes)).await
            }
            Outbound::Text(text) => {
                send_fragments(&mut sink, Bytes::from(text), Data::Text, max_frame).await
            }
            Outbound::Binary(bytes) => {
                send_fragments(&mut sink, bytes, Data::Binary, max_frame).await
            }
            Outbound::Close(code, reason) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Sends one message in frames of `max_frame` bytes: the first with the message's opcode,
/// then continuations, the last one final.
async fn send_fragments(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    data: Bytes,
    first: tokio_tungstenite::tungstenite::protocol::frame::coding::Data,
    max_frame: usize,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let mut at = 0;
    while at < data.len() {
        let end = (at + max_frame).min(data.len());
        let opcode = if at == 0 { first } else { Data::Continue };
        let frame = Frame::message(data.slice(at..end), OpCode::Data(opcode), end == data.len());
        sink.feed(Message::Frame(frame)).await?;
        at = end;
    }
    sink.flush().await
}

/// Routes one message and calls its integration; a two-way route's answer goes back. A
/// message over the connection's rate, or over a gateway, stage or route throttle, is
/// answered `Too Many Requests` and goes nowhere.
async fn on_message(
    held: &Held,
    sender: &mpsc::Sender<Outbound>,
    body: Bytes,
    n: u64,
    throttled: bool,
) {
    let started = Instant::now();
    let api = &held.stage().api;
    let path = api
        .websocket
        .as_ref()
        .map(|w| w.route_selection.as_slice())
        .unwrap_or_default();
    let routes = held.routes();
    let selected = websocket::select_route(&body, path);
    let route = selected
        .as_deref()
        .and_then(|k| routes.by_key(k))
        .filter(|r| r.key != websocket::CONNECT && r.key != websocket::DISCONNECT)
        .or_else(|| routes.default_route());
    let message_id = format!("{}-{n}", held.connection_id);
    let mut ctx = held.event_ctx(
        EventType::Message,
        route.map(|r| r.key.as_str()),
        Some(message_id),
    );
    held.shared.websockets.metrics.messages_in.inc();
    let stage = held.stage();
    let route_key = route.map(|r| r.key.as_str());
    // The gateway, stage and route throttles apply to each message, as to a request.
    let throttled = throttled
        || route.is_some_and(|r| {
            let gateway = held.shared.gateway_throttle.as_deref();
            crate::limits::admit(gateway, &stage.throttles, &r.key, Instant::now()).is_err()
        });
    if throttled {
        held.shared.websockets.metrics.throttled_messages.inc();
        held.shared
            .metrics
            .throttled(&stage.api_name, &stage.name, "websocket_message");
        count_event(&held.shared, stage, route_key, EventType::Message, None);
        let answer = error_answer("Too Many Requests", &held.connection_id, &ctx.request_id);
        let _ = sender.send(Outbound::Text(answer)).await;
        held.log(ctx, 429, started);
        return;
    }
    let Some(route) = route else {
        // AWS's answer to a message no route takes.
        count_event(&held.shared, stage, None, EventType::Message, None);
        let answer = error_answer("Forbidden", &held.connection_id, &ctx.request_id);
        let _ = sender.send(Outbound::Text(answer)).await;
        held.log(ctx, 403, started);
        return;
    };
    let request_id =
        HeaderValue::from_str(&ctx.request_id).unwrap_or(HeaderValue::from_static("-"));
    let event = Event {
        kind: EventType::Message,
        route,
        headers: HeaderMap::new(),
        query: None,
        body,
        closed: None,
    };
    let result = call(
        &held.shared,
        &held.upstream,
        stage,
        event,
        &mut ctx,
        &request_id,
    )
    .await;
    count_event(
        &held.shared,
        stage,
        route_key,
        EventType::Message,
        ctx.integration_latency,
    );
    let status = match result {
        Ok(answer) => {
            if route.two_way && !answer.body.is_empty() {
                held.shared.websockets.metrics.messages_out.inc();
                // Awaited: a client that does not read slows its own reader, nothing else.
                let _ = sender.send(Outbound::data(answer.body)).await;
            }
            answer.status
        }
        Err(error) => {
            ctx.integration_error = Some(error.to_string());
            let answer = error_answer(
                "Internal server error",
                &held.connection_id,
                &ctx.request_id,
            );
            let _ = sender.send(Outbound::Text(answer)).await;
            error_status(&error)
        }
    };
    held.log(ctx, status, started);
}

/// The error message AWS sends on the socket: `{"message", "connectionId", "requestId"}`.
fn error_answer(message: &str, connection_id: &str, request_id: &str) -> String {
    serde_json::json!({
        "message": message,
        "connectionId": connection_id,
        "requestId": request_id,
    })
    .to_string()
}

/// Calls `$disconnect` (when the Api has one) and logs the DISCONNECT event.
async fn disconnect(held: Held, closed: Closed) {
    let started = Instant::now();
    let route = held.routes().by_key(websocket::DISCONNECT);
    let mut ctx = held.event_ctx(EventType::Disconnect, Some(websocket::DISCONNECT), None);
    ctx.integration_error = Some(closed.why.to_string());
    let mut status = 200;
    if let Some(route) = route {
        let request_id =
            HeaderValue::from_str(&ctx.request_id).unwrap_or(HeaderValue::from_static("-"));
        let event = Event {
            kind: EventType::Disconnect,
            route,
            headers: HeaderMap::new(),
            query: None,
            body: Bytes::new(),
            closed: Some(&closed),
        };
        let stage = held.stage();
        let called = call(
            &held.shared,
            &held.upstream,
            stage,
            event,
            &mut ctx,
            &request_id,
        )
        .await;
        count_event(
            &held.shared,
            stage,
            Some(websocket::DISCONNECT),
            EventType::Disconnect,
            ctx.integration_latency,
        );
        match called {
            Ok(answer) => status = answer.status,
            Err(error) => {
                tracing::debug!(connection_id = %held.connection_id, %error, "$disconnect failed");
                status = error_status(&error);
            }
        }
    }
    held.log(ctx, status, started);
}

// ------------------------------------------------------------------ @connections

/// `POST`/`GET`/`DELETE /@connections/{id}`: authorized by the Api's SigV4 authorizer, run
/// here when this replica owns the connection, else relayed to the owner through Redis.
async fn manage(
    shared: &Arc<Shared>,
    tables: &Tables,
    stage: &LiveStage,
    id: String,
    mut request: Request<Incoming>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    ex.ctx.route_key = Some("@connections".to_string());
    let authorization = stage
        .api
        .websocket
        .as_ref()
        .and_then(|w| w.connections_authorization.as_ref());
    let Some(authorization) = authorization else {
        return plain(
            StatusCode::FORBIDDEN,
            r#"{"message":"the @connections API of this Api has no connectionsAuthorizerRef"}"#,
        );
    };
    if let Flow::Respond(r) = admit::client_headers(shared, stage, &mut request, ex) {
        return r;
    }
    let limit = shared.config.websocket.max_message_bytes as u64;
    let wants = crate::auth::RouteAuth {
        api_key_required: false,
        authorization: Some(authorization),
    };
    let authorized = crate::auth::authorize(
        &shared.auth,
        &tables.auth,
        wants,
        limit,
        request,
        &mut ex.ctx,
    )
    .await;
    let request = match authorized {
        Ok(request) => request,
        Err(error) => return respond::fail(Some(&stage.api), error.into(), ex),
    };
    let call = match request.method().clone() {
        Method::GET => Manage::Get,
        Method::DELETE => Manage::Delete,
        Method::POST => {
            let body = Limited::new(request.into_body(), limit as usize)
                .boxed_unsync()
                .collect()
                .await;
            match body {
                Ok(collected) => Manage::Post {
                    data: collected.to_bytes().to_vec(),
                },
                Err(_) => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        r#"{"message":"PayloadTooLargeException"}"#,
                    );
                }
            }
        }
        _ => {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"message":"Method Not Allowed"}"#,
            );
        }
    };
    let owner = websocket::owner_of(&id);
    let answer = match (owner, &shared.relay) {
        (None, _) => Managed::gone(),
        (Some(owner), _) if owner == shared.replica => {
            shared.websockets.manage(&stage.id, &id, call)
        }
        (Some(_), None) => Managed::gone(),
        (Some(owner), Some(relay)) => match relay.call(owner, &stage.id, &id, call).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "@connections call not relayed");
                let mut r = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"message":"the connection's replica cannot be reached now"}"#,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        },
    };
    if answer.status == 200 && ex.ctx.method == "POST" {
        shared.websockets.metrics.messages_out.inc();
    }
    let mut response = Response::new(full(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The status a gateway answer to this error would have.
fn error_status(error: &RequestError) -> u16 {
    let classified = crate::error::classify(error);
    classified
        .forced_status
        .unwrap_or(classified.default_status)
        .as_u16()
}
