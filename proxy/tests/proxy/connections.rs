//! What a connection may hold, and for how long: the first request's head within the header
//! timeout (also for a connection that sends nothing, part of the HTTP/2 preface, or never
//! finishes TLS), HTTP/2 without open streams only for the idle timeout even while it PINGs,
//! tunnels under the connection cap with an idle timeout and an end on drain, a per-client
//! connection cap; and that only WebSocket upgrades reach a backend.

use std::time::{Duration, Instant};

use causeway_proxy::ProxyConfig;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const SHORT: Duration = Duration::from_millis(300);

async fn proxy_with(config: ProxyConfig) -> (TestProxy, Upstream) {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .route(mock("GET /mock", "mocked"))
        .backend("app", &[upstream.endpoint()])
        .build();
    (TestProxy::with_config(config, snapshot).await, upstream)
}

/// Reads until the proxy closes the connection; how long that took (panics after 5 s).
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the proxy kept the connection open");
    started.elapsed()
}

fn assert_about(elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed >= timeout - Duration::from_millis(50)
            && elapsed < timeout * 2 + Duration::from_secs(1),
        "closed after {elapsed:?}, the timeout is {timeout:?}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_no_byte_is_closed_at_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    assert_about(closed_after(&mut stream).await, SHORT);
}

#[tokio::test]
async fn a_connection_that_sends_part_of_the_http2_preface_is_closed_at_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    assert_about(closed_after(&mut stream).await, SHORT);
}

#[tokio::test]
async fn a_tls_connection_that_never_finishes_its_handshake_is_closed_at_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let mut silent = TcpStream::connect(proxy.tls).await.expect("connect");
    let mut partial = TcpStream::connect(proxy.tls).await.expect("connect");
    // A TLS record header announcing a ClientHello that never comes.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let (silent, partial) = tokio::join!(closed_after(&mut silent), closed_after(&mut partial));
    assert_about(silent, SHORT);
    assert_about(partial, SHORT);
}

/// An HTTP/2 client connection that PINGs every 50 ms while idle; the receiver resolves when
/// the proxy ends the connection.
async fn pinging_h2(
    proxy: &TestProxy,
) -> (
    hyper::client::conn::http2::SendRequest<TestBody>,
    tokio::sync::oneshot::Receiver<Instant>,
) {
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(50))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = conn.await;
        let _ = ended_tx.send(Instant::now());
    });
    (send, ended)
}

fn h2_get(path: &str, headers: &[(&str, &str)]) -> http::Request<TestBody> {
    let mut request = http::Request::get(format!("http://{HOST}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(empty_body()).expect("request")
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout_while_it_pings() {
    let config = ProxyConfig {
        h2_idle_timeout: SHORT,
        header_read_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let (mut send, ended) = pinging_h2(&proxy).await;
    // A stream open longer than the idle timeout keeps the connection.
    let slow = send
        .send_request(h2_get("/slow", &[(DELAY_MS, "600")]))
        .await
        .expect("slow answer");
    assert_eq!(slow.status(), StatusCode::OK);
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the proxy closed the idle connection")
        .expect("end time");
    assert_about(ended - idle_from, SHORT);
}

#[tokio::test]
async fn an_http2_connection_that_opens_no_stream_is_closed_at_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let started = Instant::now();
    let (_send, ended) = pinging_h2(&proxy).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the proxy closed the connection")
        .expect("end time");
    assert_about(ended - started, SHORT);
}

#[tokio::test]
async fn connections_over_the_per_client_cap_are_closed_at_once_and_counted() {
    let config = ProxyConfig {
        max_connections_per_client: 2,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let _first = TcpStream::connect(proxy.addr).await.expect("connect");
    let _second = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut third = TcpStream::connect(proxy.addr).await.expect("connect");
    let _ = third
        .write_all(b"GET /x HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    let closed = closed_after(&mut third).await;
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    drop(_first);
    // Once one closes, the client may open another (the slot comes back when the proxy sees
    // the close, so poll).
    let request = b"GET /x HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
    let answer = settle(
        EVENTUALLY,
        || raw(proxy.addr, request),
        |a| raw_status(a) == 200,
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "never served again: {answer}");
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin").await;
    let line = metrics
        .body
        .lines()
        .find(|l| l.starts_with("causeway_proxy_connections_refused_total"))
        .unwrap_or_default()
        .to_string();
    let refused: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{line:?}");
}

// ---------------------------------------------------------------- upgrades

/// A backend that answers every WebSocket handshake with 101 and then echoes bytes; anything
/// else gets a 400.
async fn websocket_echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
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
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn websocket_proxy(config: ProxyConfig) -> TestProxy {
    let backend = websocket_echo().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /ws", "ws"))
        .backend("ws", &[backend.to_string()])
        .build();
    TestProxy::with_config(config, snapshot).await
}

/// Opens a tunnel through the proxy and checks that bytes flow.
async fn open_tunnel(proxy: &TestProxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert_eq!(raw_status(&head), 101, "{head}");
    stream.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&back, b"ping");
    stream
}

#[tokio::test]
async fn a_tunnel_with_no_byte_either_way_is_closed_after_its_idle_timeout() {
    let config = ProxyConfig {
        tunnel_idle_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let proxy = websocket_proxy(config).await;
    let mut tunnel = open_tunnel(&proxy).await;
    // Bytes keep it open past the idle timeout.
    for _ in 0..4 {
        // The wait is what is tested: bytes every half timeout keep the tunnel open.
        tokio::time::sleep(SHORT / 2).await;
        tunnel.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        tunnel.read_exact(&mut one).await.expect("still open");
    }
    assert_about(closed_after(&mut tunnel).await, SHORT);
}

#[tokio::test]
async fn a_tunnel_counts_against_the_connection_cap() {
    let config = ProxyConfig {
        max_connections: 1,
        ..ProxyConfig::default()
    };
    let proxy = websocket_proxy(config).await;
    let tunnel = open_tunnel(&proxy).await;
    let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
    second
        .write_all(b"GET /ws HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(400), second.read(&mut buf)).await;
    assert!(early.is_err(), "served while the tunnel held the only slot");
    drop(tunnel);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("served once the tunnel closed")
        .expect("read");
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 400);
}

#[tokio::test]
async fn a_tunnel_ends_when_the_proxy_drains() {
    let mut proxy = websocket_proxy(ProxyConfig::default()).await;
    let mut tunnel = open_tunnel(&proxy).await;
    proxy.shutdown();
    // Well before the drain timeout (1 s in tests): a tunnel never finishes by itself.
    let closed = closed_after(&mut tunnel).await;
    assert!(
        closed < Duration::from_millis(800),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_forwarded_and_the_request_is_served_as_plain_http1() {
    let (proxy, upstream) = proxy_with(ProxyConfig::default()).await;
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
    );
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    for name in ["upgrade", "http2-settings"] {
        assert!(seen[0].headers.get(name).is_none(), "{name} was forwarded");
    }
    let connection = seen[0]
        .headers
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(!connection.contains("upgrade"), "connection: {connection}");
}

#[tokio::test]
async fn only_websocket_upgrades_reach_a_backend_and_only_on_http_proxy_routes() {
    let backend = websocket_echo().await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /ws", "ws"))
        .route(mock("GET /mock", "mocked"))
        .backend("ws", &[backend.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    // Other protocols are dropped: the backend sees a plain request and answers 400.
    for protocol in ["TLS/1.2", "h2c", "custom-tunnel", "websocketx"] {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, close\r\nUpgrade: {protocol}\r\n\r\n"
        );
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{protocol}: {answer}");
    }
    // A WebSocket upgrade on a MOCK route is answered as plain HTTP.
    let request = format!(
        "GET /mock HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n"
    );
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.ends_with("mocked"), "{answer}");
}

#[tokio::test]
async fn a_backend_that_switches_protocols_unasked_is_a_502_not_a_tunnel() {
    // A backend that answers 101 to anything, then would talk its own protocol.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nsecret")
                    .await;
                // Part of the fake backend: it holds the connection open after its 101.
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "b"))
        .backend("b", &[backend.to_string()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    for upgrade in ["", "Upgrade: h2c\r\nConnection: Upgrade, close\r\n"] {
        let request =
            format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\n{upgrade}Connection: close\r\n\r\n");
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&answer), 502, "{upgrade:?}: {answer}");
        assert!(!answer.contains("secret"), "{answer}");
    }
}

#[tokio::test]
async fn an_http2_client_that_holds_its_window_at_zero_is_closed_after_the_send_timeout() {
    let config = ProxyConfig {
        send_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(0)
        .initial_connection_window_size(65_535)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = conn.await;
        let _ = ended_tx.send(Instant::now());
    });
    let response = send
        .send_request(h2_get("/big", &[(RESPONSE_BYTES, "1048576")]))
        .await
        .expect("the head arrives");
    assert_eq!(response.status(), StatusCode::OK);
    // The head came; the body cannot, and the client never opens its window.
    let waiting_from = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the proxy closed the stalled connection")
        .expect("end time");
    assert_about(ended - waiting_from, SHORT);
    drop(response);
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_a_large_answer_is_closed_after_the_send_timeout() {
    let config = ProxyConfig {
        send_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = proxy_with(config).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(proxy.addr).await.expect("connect");
    let head = format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\n{RESPONSE_BYTES}: 67108864\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    // Read nothing until the proxy has filled the socket buffers and given up; then whatever
    // arrived ends well short of the 64 MiB answer.
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::time::sleep(SHORT * 4).await; // the stall under test: the client does not read
        stream.read_to_end(&mut out).await
    })
    .await;
    assert!(read.is_ok(), "the proxy kept the stalled connection open");
    assert!(
        out.len() < 64 << 20,
        "the whole answer arrived: {}",
        out.len()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_backend_that_pauses_mid_answer_is_not_a_slow_client_and_its_answer_arrives_whole() {
    // A backend that sends its head and a first chunk, pauses three send timeouts, then ends.
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = backend.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        let (mut socket, _) = backend.accept().await.expect("accept");
        let mut head = [0u8; 4096];
        let _ = socket.read(&mut head).await;
        let first = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
        socket.write_all(first.as_bytes()).await.expect("head");
        tokio::time::sleep(SHORT * 3).await; // the backend's pause under test
        socket
            .write_all(b"4\r\nlast\r\n0\r\n\r\n")
            .await
            .expect("rest");
    });
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "paused"))
        .backend("paused", &[address])
        .build();
    let config = ProxyConfig {
        send_timeout: SHORT,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::with_config(config, snapshot).await;
    let answer = get(&http1(), &proxy.url("/paused"), HOST).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "firstlast")
    );
}
