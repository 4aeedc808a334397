//! WebSocket Apis with a real WebSocket client (tokio-tungstenite), real HTTP backends and,
//! across replicas, a real `redis-server`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use causeway_snapshot::{
    AuthorizerSettings, FunctionSettings, ResponseFormat, RouteConfig, Sigv4Settings, Snapshot,
    WebSocketConfig,
};
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::auth::sigv4::{ACCESS_KEY, AUTHORIZER as IAM, SECRET_KEY, sign};
use crate::auth::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FUNCTION: &str = "default/ws-fn";

/// A backend that answers by event: CONNECT → 200 unless `x-deny` was sent (then 403),
/// MESSAGE → `{"echo": body}`, DISCONNECT → 200.
async fn backend() -> Upstream {
    Upstream::with_handler(|r: &Seen| {
        let event = r
            .headers
            .get("eventtype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match event {
            "CONNECT" if r.headers.contains_key("x-deny") => {
                Reply::ok(r#"{"message":"not you"}"#).status(403)
            }
            "MESSAGE" => Reply::ok(format!(
                r#"{{"echo":{}}}"#,
                serde_json::to_string(&String::from_utf8_lossy(&r.body)).unwrap()
            )),
            _ => Reply::ok(""),
        }
    })
    .await
}

fn two_way(mut route: RouteConfig) -> RouteConfig {
    route.two_way = true;
    route
}

/// `$connect`, `$disconnect` and `sendmessage` (two-way) to `backend`, a two-way MOCK
/// `$default`, route selection on `$request.body.action`; `@connections` signed with SigV4.
fn chat(backend: &Upstream, connect: RouteConfig) -> Snapshot {
    let mut snapshot = SnapshotBuilder::new()
        .backend("chat", &[backend.endpoint()])
        .route(connect)
        .route(proxy_to("$disconnect", "chat").build())
        .route(two_way(proxy_to("sendmessage", "chat").build()))
        .route(proxy_to("oneway", "chat").build())
        .route(two_way(mock("$default", "default route")))
        .build();
    snapshot.apis[0].websocket = Some(WebSocketConfig {
        route_selection: vec!["action".into()],
        connections_authorization: Some(causeway_snapshot::RouteAuthorization {
            authorizer: IAM.into(),
            scopes: vec![],
        }),
    });
    let settings = AuthorizerSettings::Sigv4(Sigv4Settings {
        region: "us-east-1".into(),
        service: "execute-api".into(),
        max_skew_seconds: 300,
        secret_access_keys: [(ACCESS_KEY.to_string(), SECRET_KEY.to_string())].into(),
    });
    add_authorizers(snapshot, vec![authorizer(IAM, &[], &[], settings)], &[])
}

fn plain_chat(backend: &Upstream) -> Snapshot {
    chat(backend, proxy_to("$connect", "chat").build())
}

/// Opens a WebSocket to the proxy's stage with these extra headers.
async fn connect(proxy: &TestProxy, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    connect_to(proxy.addr, headers).await
}

async fn connect_to(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let mut request = format!("ws://{HOST}:{}/", addr.port())
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
    Ok(ws)
}

/// The next text message, within 5 s.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close frame the proxy sends, within `within`.
async fn close_frame(ws: &mut Ws, within: Duration) -> Option<CloseFrame> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The connection id the backend saw on `$connect`.
fn connection_id(backend: &Upstream) -> String {
    let seen = backend.seen();
    let connect = seen
        .iter()
        .rfind(|r| r.header("eventtype") == "CONNECT")
        .expect("a CONNECT call");
    connect.header("connectionid")
}

#[tokio::test]
async fn messages_are_routed_by_their_action_and_two_way_routes_answer_on_the_socket() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.expect("upgrade accepted");
    let id = connection_id(&backend);
    assert_eq!(id.len(), 24, "{id}");

    ws.send(Message::text(r#"{"action":"sendmessage","text":"hi"}"#))
        .await
        .unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(echoed["echo"], r#"{"action":"sendmessage","text":"hi"}"#);
    let message = backend
        .seen()
        .into_iter()
        .find(|r| r.header("eventtype") == "MESSAGE")
        .expect("the integration got the message");
    assert_eq!(message.method, Method::POST);
    assert_eq!(message.header("routekey"), "sendmessage");
    assert_eq!(message.header("connectionid"), id);

    // Not JSON, and JSON without a known action: `$default` (a two-way MOCK).
    ws.send(Message::text("plain words")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "default route");
    ws.send(Message::text(r#"{"action":"nobody"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "default route");

    // A one-way route's answer is not sent back: the next answer is the `$default` one.
    ws.send(Message::text(r#"{"action":"oneway"}"#))
        .await
        .unwrap();
    until("the one-way route is called", EVENTUALLY, || {
        backend
            .seen()
            .iter()
            .any(|r| r.header("routekey") == "oneway")
    })
    .await;
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "default route");

    // `$disconnect` when the client closes.
    ws.close(None).await.unwrap();
    until("$disconnect is called", EVENTUALLY, || {
        backend
            .seen()
            .iter()
            .any(|r| r.header("eventtype") == "DISCONNECT" && r.header("connectionid") == id)
    })
    .await;
    until(
        "access-log lines for CONNECT, MESSAGE and DISCONNECT",
        EVENTUALLY,
        || {
            let logs = proxy.logs.lock().unwrap().join("\n");
            logs.contains("\"eventType\":\"CONNECT\"")
                && logs.contains("\"eventType\":\"MESSAGE\"")
                && logs.contains("\"eventType\":\"DISCONNECT\"")
                && logs.contains(&id)
        },
    )
    .await;
}

#[tokio::test]
async fn a_connect_integration_answering_non_2xx_refuses_the_upgrade() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    match connect(&proxy, &[("x-deny", "1")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::FORBIDDEN),
        other => panic!("the upgrade should be refused, got {other:?}"),
    }
    // A plain request to the stage is told to upgrade.
    let answer = get(&http1(), &proxy.url("/"), HOST).await;
    assert_eq!(answer.status, StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn a_request_authorizer_on_connect_admits_only_the_callers_it_allows() {
    let backend = backend().await;
    let function = Upstream::with_handler(|r: &Seen| {
        let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let allowed = event["identitySource"][0] == "allow";
        Reply::ok(serde_json::json!({"isAuthorized": allowed}).to_string())
    })
    .await;
    let connect_route = with_authorizer(proxy_to("$connect", "chat").build(), FUNCTION, &[]);
    let settings = AuthorizerSettings::Request(FunctionSettings {
        backend: "authz".into(),
        path: "/2015-03-31/functions/function/invocations".into(),
        timeout_ms: 1_000,
        ttl_seconds: 0,
        identity_validation: None,
        response_format: ResponseFormat::Any,
    });
    let snapshot = add_authorizers(
        chat(&backend, connect_route),
        vec![authorizer(FUNCTION, &["header.x-token"], &[], settings)],
        &[("authz", function.addr)],
    );
    let proxy = TestProxy::with_snapshot(snapshot).await;
    for (token, allowed) in [(Some("allow"), true), (Some("deny"), false), (None, false)] {
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("x-token", *t)).collect();
        let result = connect(&proxy, &headers).await;
        match (allowed, result) {
            (true, Ok(_)) => {}
            (false, Err(WsError::Http(r))) => assert!(
                r.status() == StatusCode::UNAUTHORIZED || r.status() == StatusCode::FORBIDDEN,
                "{token:?}: {}",
                r.status()
            ),
            (allowed, other) => panic!("{token:?} (allowed: {allowed}): {other:?}"),
        }
    }
    assert_eq!(
        backend
            .seen()
            .iter()
            .filter(|r| r.header("eventtype") == "CONNECT")
            .count(),
        1,
        "only the allowed caller reaches the $connect integration"
    );
}

/// A signed `@connections` call to `addr`.
async fn manage(addr: SocketAddr, method: Method, id: &str, body: &str) -> Answer {
    let url = format!("http://{HOST}:{}/@connections/{id}", addr.port());
    let signed = sign(method.as_str(), &url, body, 0, ACCESS_KEY);
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send_body(addr, method, id, body, &headers).await
}

async fn send_body(
    addr: SocketAddr,
    method: Method,
    id: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let client = http1();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/@connections/{id}"))
        .header("host", format!("{HOST}:{}", addr.port()));
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("host") {
            builder = builder.header(*k, *v);
        }
    }
    let body: TestBody = Full::new(Bytes::from(body.to_string()))
        .map_err(|e| match e {})
        .boxed();
    let request = builder.body(body).expect("request");
    let response = client.request(request).await.expect("management call");
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
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[tokio::test]
async fn the_connections_api_posts_describes_and_closes_a_connection_and_410s_the_unknown() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    let id = connection_id(&backend);

    let unsigned = send_body(proxy.addr, Method::POST, &id, "x", &[]).await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN, "{}", unsigned.body);

    let posted = manage(proxy.addr, Method::POST, &id, "pushed").await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    assert_eq!(next_text(&mut ws).await, "pushed");

    let described = manage(proxy.addr, Method::GET, &id, "").await;
    assert_eq!(described.status, StatusCode::OK);
    let info: serde_json::Value = serde_json::from_str(&described.body).unwrap();
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(
        info["connectedAt"].as_str().unwrap().ends_with('Z'),
        "{info}"
    );

    let unknown = manage(proxy.addr, Method::GET, &"0".repeat(24), "").await;
    assert_eq!(unknown.status, StatusCode::GONE);

    let deleted = manage(proxy.addr, Method::DELETE, &id, "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
    until("$disconnect after DELETE", EVENTUALLY, || {
        backend
            .seen()
            .iter()
            .any(|r| r.header("eventtype") == "DISCONNECT")
    })
    .await;
    let gone = settle(
        EVENTUALLY,
        || manage(proxy.addr, Method::GET, &id, ""),
        |a| a.status == StatusCode::GONE,
    )
    .await
    .status;
    assert_eq!(gone, StatusCode::GONE);
}

#[tokio::test]
async fn idle_connections_and_old_connections_are_closed_going_away_and_disconnected() {
    let backend = backend().await;
    let config = |idle_ms: u64, max_ms: u64| causeway_proxy::ProxyConfig {
        websocket: causeway_proxy::WebSocketLimits {
            idle_timeout: Duration::from_millis(idle_ms),
            max_duration: Duration::from_millis(max_ms),
            ..Default::default()
        },
        ..Default::default()
    };
    let idle = TestProxy::with_config(config(300, 60_000), plain_chat(&backend)).await;
    let mut ws = connect(&idle, &[]).await.unwrap();
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));

    // Messages keep it open past the idle timeout, not past the maximum duration.
    let old = TestProxy::with_config(config(400, 1_000), plain_chat(&backend)).await;
    let mut ws = connect(&old, &[]).await.unwrap();
    let started = std::time::Instant::now();
    let mut closed = None;
    while closed.is_none() && started.elapsed() < Duration::from_secs(5) {
        let _ = ws.send(Message::text("ping-ish")).await;
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => closed = Some(frame),
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(closed.flatten().map(|f| u16::from(f.code)), Some(1001));
    until("$disconnect after both", EVENTUALLY, || {
        backend
            .seen()
            .iter()
            .filter(|r| r.header("eventtype") == "DISCONNECT")
            .count()
            >= 2
    })
    .await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_the_connection_with_1009() {
    let backend = backend().await;
    let config = causeway_proxy::ProxyConfig {
        websocket: causeway_proxy::WebSocketLimits {
            max_frame_bytes: 1024,
            max_message_bytes: 1024,
            ..Default::default()
        },
        ..Default::default()
    };
    let proxy = TestProxy::with_config(config, plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    ws.send(Message::text("x".repeat(4096))).await.unwrap();
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1009));
    assert!(
        !backend
            .seen()
            .iter()
            .any(|r| r.header("eventtype") == "MESSAGE"),
        "the oversize message never reaches the integration"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_makes_posts_429_instead_of_growing_the_queue() {
    let backend = backend().await;
    let config = causeway_proxy::ProxyConfig {
        websocket: causeway_proxy::WebSocketLimits {
            send_queue: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let proxy = TestProxy::with_config(config, plain_chat(&backend)).await;
    let _ws = connect(&proxy, &[]).await.unwrap();
    let id = connection_id(&backend);
    let big = "y".repeat(120 * 1024);
    // One signature, replayed (within the signature's validity), keeps the loop fast.
    let url = format!("http://{HOST}:{}/@connections/{id}", proxy.addr.port());
    let signed = sign("POST", &url, &big, 0, ACCESS_KEY);
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut refused = false;
    // The socket buffers fill first, then the queue of 4: a bounded number of posts succeed.
    for _ in 0..400 {
        let answer = send_body(proxy.addr, Method::POST, &id, &big, &headers).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert!(refused, "a client that never reads is refused more data");
}

/// A redis-server child on a free port, killed on drop.
struct RedisServer(Child, u16);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts redis-server on a port that was free a moment ago (its `--port 0` turns TCP off);
/// when another test took the port in between, redis-server exits and another port is tried.
/// Ready means the port answers `PING` with `+PONG`, so a test server that took the port is
/// not mistaken for redis.
async fn redis_server() -> RedisServer {
    for _ in 0..5 {
        let port = closed_port().await.port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = tokio::time::Instant::now() + EVENTUALLY;
        while tokio::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            if pong(port).await {
                return RedisServer(child, port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start on any of 5 free ports");
}

async fn pong(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut answer))
            .await
            .is_ok_and(|r| r.is_ok())
        && &answer == b"+PONG\r\n"
}

#[tokio::test]
async fn a_management_call_on_another_replica_reaches_the_owner_through_redis() {
    let redis = redis_server().await;
    let backend = backend().await;
    let with_redis = |port: u16| causeway_proxy::ProxyConfig {
        redis_url: Some(format!("redis://127.0.0.1:{port}/")),
        ..Default::default()
    };
    let owner = TestProxy::with_config(with_redis(redis.1), plain_chat(&backend)).await;
    let other = TestProxy::with_config(with_redis(redis.1), plain_chat(&backend)).await;
    let mut ws = connect(&owner, &[]).await.unwrap();
    let id = connection_id(&backend);

    // The subscriptions start with the listeners: retry until the owner's is up.
    let posted = settle(
        EVENTUALLY,
        || manage(other.addr, Method::POST, &id, "from the other replica"),
        |a| a.status == StatusCode::OK,
    )
    .await
    .status;
    assert_eq!(posted, StatusCode::OK);
    assert_eq!(next_text(&mut ws).await, "from the other replica");
    let described = manage(other.addr, Method::GET, &id, "").await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.body);
    let deleted = manage(other.addr, Method::DELETE, &id, "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));

    // An owner that is gone: nobody listens on its tag any more.
    let mut owner = owner;
    let mut ws2 = connect(&owner, &[]).await.unwrap();
    let id2 = connection_id(&backend);
    owner.shutdown();
    let _ = close_frame(&mut ws2, Duration::from_secs(5)).await;
    drop(owner);
    let status = settle(
        EVENTUALLY,
        || manage(other.addr, Method::POST, &id2, "late"),
        |a| a.status == StatusCode::GONE,
    )
    .await
    .status;
    assert_eq!(status, StatusCode::GONE);

    // Redis down: a call for another replica's connection is 503 with a retry hint.
    drop(redis);
    let answer = settle(
        EVENTUALLY,
        || manage(other.addr, Method::GET, &id2, ""),
        |a| a.status == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn draining_closes_connections_going_away_and_calls_disconnect() {
    let backend = backend().await;
    let mut proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    let id = connection_id(&backend);
    proxy.shutdown();
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
    until("$disconnect on drain", EVENTUALLY, || {
        backend
            .seen()
            .iter()
            .any(|r| r.header("eventtype") == "DISCONNECT" && r.header("connectionid") == id)
    })
    .await;
}

// ------------------------------------------------------------------ Lambda events

fn lambda_route(key: &str) -> RouteConfig {
    RouteConfig {
        key: key.to_string(),
        matcher: route_match(key),
        integration: causeway_snapshot::Integration::LambdaProxy(
            causeway_snapshot::LambdaProxyIntegration {
                backend: "fn".to_string(),
                path: causeway_snapshot::LAMBDA_INVOKE_PATH.to_string(),
                payload_format: causeway_snapshot::PayloadFormat::V1,
                timeout_ms: 5_000,
            },
        ),
        api_key_required: false,
        throttle: None,
        validation: None,
        cache: None,
        authorization: None,
        two_way: false,
    }
}

#[tokio::test]
async fn the_lambda_events_of_connect_message_and_disconnect_are_aws_lambda_events_websocket_requests()
 {
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
    let function = Upstream::with_handler(|r: &Seen| {
        let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        match event["requestContext"]["eventType"].as_str() {
            Some("MESSAGE") => Reply::ok(r#"{"statusCode":200,"body":"got it"}"#),
            _ => Reply::ok(r#"{"statusCode":200}"#),
        }
    })
    .await;
    let authz = Upstream::with_handler(|_: &Seen| {
        Reply::ok(r#"{"isAuthorized":true,"context":{"tier":"gold"}}"#)
    })
    .await;
    let mut snapshot = SnapshotBuilder::new()
        .backend("fn", &[function.endpoint()])
        .route(with_authorizer(lambda_route("$connect"), FUNCTION, &[]))
        .route(two_way(lambda_route("$default")))
        .route(lambda_route("$disconnect"))
        .build();
    snapshot.apis[0].websocket = Some(WebSocketConfig {
        route_selection: vec!["action".into()],
        connections_authorization: None,
    });
    let settings = AuthorizerSettings::Request(FunctionSettings {
        backend: "authz".into(),
        path: "/2015-03-31/functions/function/invocations".into(),
        timeout_ms: 1_000,
        ttl_seconds: 0,
        identity_validation: None,
        response_format: ResponseFormat::Any,
    });
    let snapshot = add_authorizers(
        snapshot,
        vec![authorizer(FUNCTION, &["header.x-token"], &[], settings)],
        &[("authz", authz.addr)],
    );
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let mut request = format!(
        "ws://{HOST}:{}/?room=blue&room=green&x=a%20b",
        proxy.addr.port()
    )
    .into_client_request()
    .unwrap();
    for (k, v) in [("x-token", "t1"), ("x-client", "tests")] {
        request.headers_mut().insert(k, v.parse().unwrap());
    }
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    ws.send(Message::text("hello lambda")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "got it");
    ws.close(Some(CloseFrame {
        code: 4000.into(),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    until("three events", Duration::from_secs(5), || {
        function.seen().len() >= 3
    })
    .await;

    let events: Vec<ApiGatewayWebsocketProxyRequest> = function
        .seen()
        .iter()
        .map(|r| {
            serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "not an ApiGatewayWebsocketProxyRequest ({e}): {}",
                    String::from_utf8_lossy(&r.body)
                )
            })
        })
        .collect();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e.request_context.event_type.clone().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["CONNECT", "MESSAGE", "DISCONNECT"]);
    let (connect, message, disconnect) = (&events[0], &events[1], &events[2]);
    let id = connect.request_context.connection_id.clone().unwrap();
    assert_eq!(id.len(), 24, "{id}");
    for (event, route_key) in [
        (connect, "$connect"),
        (message, "$default"),
        (disconnect, "$disconnect"),
    ] {
        let rc = &event.request_context;
        assert_eq!(rc.route_key.as_deref(), Some(route_key));
        assert_eq!(rc.connection_id.as_deref(), Some(id.as_str()));
        assert_eq!(rc.connected_at, connect.request_context.connected_at);
        assert!(rc.connected_at > 1_700_000_000_000, "{}", rc.connected_at);
        assert!(rc.request_time_epoch >= rc.connected_at);
        assert_eq!(rc.domain_name.as_deref(), Some(HOST));
        assert_eq!(rc.stage.as_deref(), Some("prod"));
        assert_eq!(rc.apiid.as_deref(), Some("pets"));
        assert_eq!(rc.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(rc.message_direction.as_deref(), Some("IN"));
        assert!(rc.request_id.as_deref().is_some_and(|r| !r.is_empty()));
        // `09/Apr/2015:12:34:56 +0000`
        let time = rc.request_time.clone().unwrap_or_default();
        assert!(time.len() == 26 && time.ends_with(" +0000"), "{time}");
        // The authorizer's context rides on every event of the connection.
        assert_eq!(
            rc.authorizer.fields.get("tier"),
            Some(&serde_json::json!("gold")),
            "{route_key}"
        );
    }
    // The upgrade request is what connects: CONNECT's request time is the connection's.
    assert_eq!(
        connect.request_context.request_time_epoch,
        connect.request_context.connected_at
    );
    // CONNECT: the client's headers and query string, no body, no message id.
    assert_eq!(
        connect
            .headers
            .get("x-client")
            .and_then(|v| v.to_str().ok()),
        Some("tests")
    );
    assert_eq!(
        connect.query_string_parameters.first("x"),
        Some("a b"),
        "{:?}",
        connect.query_string_parameters
    );
    assert_eq!(
        connect.multi_value_query_string_parameters.all("room"),
        Some(vec!["blue", "green"])
    );
    assert_eq!(connect.body, None);
    assert_eq!(connect.request_context.message_id, None);
    // MESSAGE: the body and a message id, no headers or query string.
    assert_eq!(message.body.as_deref(), Some("hello lambda"));
    assert!(!message.is_base64_encoded);
    assert!(
        message
            .request_context
            .message_id
            .as_deref()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(message.headers.is_empty(), "{:?}", message.headers);
    assert!(message.query_string_parameters.is_empty());
    // DISCONNECT: the client's close code and reason; none of its headers, no body.
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(4000)
    );
    assert_eq!(
        disconnect.request_context.disconnect_reason.as_deref(),
        Some("done")
    );
    assert!(disconnect.headers.get("x-client").is_none());
    assert!(disconnect.query_string_parameters.is_empty());
    assert_eq!(disconnect.body, None);
    assert_eq!(disconnect.request_context.message_id, None);
}

// ------------------------------------------------------------------ subprotocols

/// A raw handshake (no client library checks the answer): the status line and headers.
async fn raw_upgrade(addr: SocketAddr, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!("no answer head: {other:?} after {head:?}"),
        }
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test]
async fn the_subprotocol_the_connect_integration_answers_is_the_clients() {
    // CONNECT: choose `b` when offered, else none.
    let backend = Upstream::with_handler(|r: &Seen| {
        let offered = r.header("sec-websocket-protocol");
        if r.header("eventtype") == "CONNECT" && offered.split(',').any(|p| p.trim() == "b") {
            Reply::ok("").header("sec-websocket-protocol", "b")
        } else {
            Reply::ok("")
        }
    })
    .await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut request = format!("ws://{HOST}:{}/", proxy.addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "a, b".parse().unwrap());
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (_ws, response) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade with a subprotocol");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("b")
    );
    assert_eq!(
        backend
            .seen()
            .iter()
            .find(|r| r.header("eventtype") == "CONNECT")
            .unwrap()
            .header("sec-websocket-protocol"),
        "a, b",
        "the offer reaches the $connect integration"
    );
    // Offered, none chosen: the upgrade goes ahead without one (as AWS; RFC 6455 lets the
    // client decide whether to go on).
    let head = raw_upgrade(proxy.addr, "Sec-WebSocket-Protocol: a\r\n").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-protocol"), "{head}");
}

// ------------------------------------------------------------------ limits

#[tokio::test]
async fn new_connections_over_the_stage_rate_are_refused_with_429() {
    let backend = backend().await;
    let config = causeway_proxy::ProxyConfig {
        websocket: causeway_proxy::WebSocketLimits {
            new_connections_per_second: 2.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let proxy = TestProxy::with_config(config, plain_chat(&backend)).await;
    let _a = connect(&proxy, &[]).await.expect("first");
    let _b = connect(&proxy, &[]).await.expect("second");
    let head = raw_upgrade(proxy.addr, "").await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_eq!(
        backend
            .seen()
            .iter()
            .filter(|r| r.header("eventtype") == "CONNECT")
            .count(),
        2,
        "a refused upgrade reaches no integration"
    );
    // The bucket refills: a second later a connection is admitted again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    connect(&proxy, &[])
        .await
        .expect("admitted after the refill");
}

#[tokio::test]
async fn messages_over_the_connection_rate_are_answered_too_many_requests_and_go_nowhere() {
    let backend = backend().await;
    let config = causeway_proxy::ProxyConfig {
        websocket: causeway_proxy::WebSocketLimits {
            messages_per_second: 2.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let proxy = TestProxy::with_config(config, plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    let id = connection_id(&backend);
    for i in 0..4 {
        ws.send(Message::text(format!(
            r#"{{"action":"sendmessage","n":{i}}}"#
        )))
        .await
        .unwrap();
    }
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(next_text(&mut ws).await);
    }
    let throttled: Vec<serde_json::Value> = answers
        .iter()
        .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .filter(|a| a["message"] == "Too Many Requests")
        .collect();
    assert_eq!(throttled.len(), 2, "{answers:?}");
    assert_eq!(throttled[0]["connectionId"], id.as_str());
    assert_eq!(
        backend
            .seen()
            .iter()
            .filter(|r| r.header("eventtype") == "MESSAGE")
            .count(),
        2,
        "throttled messages reach no integration"
    );
    // The connection stays open, and the bucket refills.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ws.send(Message::text("again")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "default route");
}

/// Sends `data` as a text message in frames of `frame` bytes.
async fn send_in_frames(ws: &mut Ws, data: &[u8], frame: usize) {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let chunks: Vec<&[u8]> = data.chunks(frame).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        let f = Frame::message(
            Bytes::copy_from_slice(chunk),
            OpCode::Data(opcode),
            i + 1 == chunks.len(),
        );
        ws.send(Message::Frame(f)).await.unwrap();
    }
}

#[tokio::test]
async fn frames_of_32_kib_join_into_messages_of_128_kib_and_larger_ones_close_with_1009() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    // 120 KiB in 32 KiB frames: one message, routed and answered (the answer, over 32 KiB,
    // comes back in frames the client joins).
    let mut ws = connect(&proxy, &[]).await.unwrap();
    let text = format!(
        r#"{{"action":"sendmessage","pad":"{}"}}"#,
        "p".repeat(120 * 1024)
    );
    send_in_frames(&mut ws, text.as_bytes(), 32 * 1024).await;
    let echoed: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(echoed["echo"].as_str().map(str::len), Some(text.len()));
    // One frame of 32 KiB + 1: 1009.
    let mut ws = connect(&proxy, &[]).await.unwrap();
    ws.send(Message::text("f".repeat(32 * 1024 + 1)))
        .await
        .unwrap();
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1009));
    // 128 KiB + 1 in 32 KiB frames: 1009.
    let mut ws = connect(&proxy, &[]).await.unwrap();
    send_in_frames(&mut ws, "m".repeat(128 * 1024 + 1).as_bytes(), 32 * 1024).await;
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1009));
    assert_eq!(
        backend
            .seen()
            .iter()
            .filter(|r| r.header("eventtype") == "MESSAGE")
            .count(),
        1,
        "only the message within the limits reaches the integration"
    );
}

// ------------------------------------------------------------------ snapshots

#[tokio::test]
async fn a_snapshot_without_the_stage_closes_its_connections_going_away_and_calls_disconnect() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    let id = connection_id(&backend);
    // The same snapshot, unchanged: the connection stays.
    proxy.proxy.apply(plain_chat(&backend));
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "default route");
    // Without the Api (and so its stage).
    let mut without = plain_chat(&backend);
    without.apis.clear();
    without.stages.clear();
    without.hosts.clear();
    without.authorizers.clear();
    without.usage_plans.clear();
    proxy.proxy.apply(without.seal());
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
    until(
        "$disconnect of the removed stage's connection",
        Duration::from_secs(5),
        || {
            backend
                .seen()
                .iter()
                .any(|r| r.header("eventtype") == "DISCONNECT" && r.header("connectionid") == id)
        },
    )
    .await;
}

#[tokio::test]
async fn a_snapshot_that_makes_the_api_http_closes_its_websocket_connections_going_away() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    // The same Api and stage, now an HTTP Api: the stage stays, its WebSocket side is gone.
    let mut http = plain_chat(&backend);
    for api in &mut http.apis {
        api.websocket = None;
    }
    proxy.proxy.apply(http.seal());
    let frame = close_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
}

// ------------------------------------------------------------------ metrics

#[tokio::test]
async fn events_and_integration_latency_are_counted_by_route_key_with_unknown_keys_as_default() {
    let backend = backend().await;
    let proxy = TestProxy::with_snapshot(plain_chat(&backend)).await;
    let mut ws = connect(&proxy, &[]).await.unwrap();
    ws.send(Message::text(r#"{"action":"sendmessage"}"#))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::text(r#"{"action":"no-such-key-1"}"#))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::text(r#"{"action":"no-such-key-2"}"#))
        .await
        .unwrap();
    next_text(&mut ws).await;
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "localhost")
        .await
        .body;
    let line = |key: &str, event: &str| {
        format!(
            r#"causeway_proxy_websocket_route_events_total{{api="pets",stage="prod",route_key="{key}",event_type="{event}"}}"#
        )
    };
    assert!(
        metrics.contains(&format!("{} 1", line("sendmessage", "MESSAGE"))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{} 2", line("$default", "MESSAGE"))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{} 1", line("$connect", "CONNECT"))),
        "{metrics}"
    );
    assert!(
        !metrics.contains("no-such-key"),
        "unknown keys are not labels"
    );
    assert!(
        metrics.contains(
            r#"causeway_proxy_websocket_integration_latency_seconds_count{api="pets",stage="prod",route_key="sendmessage",event_type="MESSAGE"} 1"#
        ),
        "{metrics}"
    );
}

// ------------------------------------------------------------------ relay

#[tokio::test]
async fn a_replica_resubscribing_to_redis_answers_503_with_retry_after_not_410() {
    let redis = redis_server().await;
    let backend = backend().await;
    let with_redis = |port: u16| causeway_proxy::ProxyConfig {
        redis_url: Some(format!("redis://127.0.0.1:{port}/")),
        ..Default::default()
    };
    let owner = TestProxy::with_config(with_redis(redis.1), plain_chat(&backend)).await;
    let other = TestProxy::with_config(with_redis(redis.1), plain_chat(&backend)).await;
    let _ws = connect(&owner, &[]).await.unwrap();
    let id = connection_id(&backend);
    let mut status = StatusCode::GONE;
    for _ in 0..100 {
        status = manage(other.addr, Method::GET, &id, "").await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK, "the relay works before");
    // Signed before, so that the call follows the kill at once.
    let url = format!("http://{HOST}:{}/@connections/{id}", other.addr.port());
    let signed = sign("GET", &url, "", 0, ACCESS_KEY);
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Every subscription is dropped: the owner resubscribes after a pause.
    let killed = Command::new("redis-cli")
        .args([
            "-p",
            &redis.1.to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .expect("redis-cli runs");
    assert!(killed.status.success(), "{killed:?}");
    let answer = send_body(other.addr, Method::GET, &id, "", &headers).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(
        answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Once resubscribed, the same call reaches the owner again.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = send_body(other.addr, Method::GET, &id, "", &headers)
            .await
            .status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK);
    // A tag no replica ever had is gone at once.
    let unknown = manage(
        other.addr,
        Method::GET,
        &format!("ffffffff{}", &id[8..]),
        "",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::GONE, "{}", unknown.body);
}
