//! Gateway behaviour: CORS answered by the gateway, `$context` in gateway responses, binary
//! bodies untouched, WebSocket upgrade passthrough.

use std::time::Duration;

use bytes::Bytes;
use causeway_snapshot::{Cors, GatewayResponse, GatewayResponseKind, Snapshot};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const ORIGIN: &str = "https://app.test";

fn with_cors(mut snapshot: Snapshot) -> Snapshot {
    snapshot.apis[0].cors = Some(Cors {
        allow_origins: vec![ORIGIN.to_string()],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-api-key".into(), "content-type".into()],
        expose_headers: vec!["x-request-id".into()],
        max_age_seconds: Some(600),
        allow_credentials: true,
    });
    snapshot.seal()
}

async fn cors_proxy() -> (TestProxy, Upstream) {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /pets", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    (
        TestProxy::with_snapshot(with_cors(snapshot)).await,
        upstream,
    )
}

#[tokio::test]
async fn a_cors_preflight_is_answered_by_the_gateway_without_calling_the_backend() {
    let (proxy, upstream) = cors_proxy().await;
    let answer = send(
        &http1(),
        Method::OPTIONS,
        &proxy.url("/pets"),
        HOST,
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-api-key"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let h = &answer.headers;
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "x-api-key,content-type");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn cors_headers_are_on_proxied_answers_and_on_gateway_errors_for_allowed_origins_only() {
    let (proxy, _upstream) = cors_proxy().await;
    let client = http1();
    let ok = send(
        &client,
        Method::GET,
        &proxy.url("/pets"),
        HOST,
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(ok.headers["access-control-expose-headers"], "x-request-id");
    let missing = send(
        &client,
        Method::GET,
        &proxy.url("/nope"),
        HOST,
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(missing.headers["access-control-allow-origin"], ORIGIN);
    let stranger = send(
        &client,
        Method::GET,
        &proxy.url("/pets"),
        HOST,
        &[("origin", "https://evil.test")],
    )
    .await;
    assert_eq!(stranger.status, StatusCode::OK);
    assert!(
        stranger
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn gateway_responses_can_use_request_context_variables() {
    let mut snapshot = SnapshotBuilder::new().route(mock("GET /a", "a")).build();
    snapshot.apis[0].gateway_responses.insert(
        GatewayResponseKind::MissingAuthenticationToken,
        GatewayResponse {
            status: 404,
            headers: [("x-why".to_string(), "$context.error.message".to_string())].into(),
            body: concat!(
                r#"{"id":"$context.requestId","ip":"$context.identity.sourceIp","#,
                r#""m":"$context.httpMethod","p":"$context.path","s":"$context.stage","#,
                r#""d":"$context.domainName","e":$context.error.messageString,"st":"$context.status"}"#
            )
            .to_string(),
            content_type: "application/json".to_string(),
        },
    );
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;
    let answer = send(
        &http1(),
        Method::DELETE,
        &proxy.url("/b/c"),
        HOST,
        &[("x-request-id", "rid-7")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.headers["x-why"], "Missing Authentication Token");
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "id": answer.headers["x-request-id"].to_str().unwrap_or_default(), "ip": "127.0.0.1", "m": "DELETE", "p": "/b/c", "s": "prod",
            "d": HOST, "e": "Missing Authentication Token", "st": "404"
        })
    );
}

#[tokio::test]
async fn binary_bodies_pass_through_byte_for_byte() {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("POST /blob", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let bytes: Vec<u8> = (0..200_000).map(|_| rand::random::<u8>()).collect();
    let request = http::Request::post(proxy.url("/blob"))
        .header("host", HOST)
        .header("content-type", "application/octet-stream")
        .header(ECHO, "1")
        .body(
            Full::new(Bytes::from(bytes.clone()))
                .map_err(|e| match e {})
                .boxed(),
        )
        .expect("request");
    let response = http1().request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let back = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(back.len(), bytes.len());
    assert!(back == bytes, "the echoed body differs");
}

/// A backend that accepts one WebSocket handshake and then echoes bytes.
async fn websocket_echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read_exact(&mut byte).await.is_err() {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.contains("upgrade: websocket") {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
            .await;
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_upgrade_passes_through_and_bytes_flow_both_ways() {
    let backend = websocket_echo().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /ws", "ws"))
        .backend("ws", &[backend.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert_eq!(raw_status(&head), 101, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // A masked text frame "hi" and some raw bytes: the proxy copies, it does not interpret.
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    stream.write_all(&frame).await.expect("write frame");
    let mut back = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(back, frame);
}
