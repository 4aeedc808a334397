//! The plain HTTP/1.1 upstream pool: connections are reused, a connection the backend closed
//! while it sat idle is not used, `Connection: close` answers and abandoned bodies are not
//! pooled. The backend is a raw TCP server, so that the tests see its connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_proxy::ProxyConfig;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// How the raw backend treats a connection after each answer.
#[derive(Clone, Copy)]
enum Mode {
    /// `200` with a body, connection kept.
    KeepAlive,
    /// `204`, connection kept.
    NoContent,
    /// `200` with `Connection: close`, then closes.
    CloseAfterEach,
    /// `200`, then closes the connection when it has been idle this long.
    CloseWhenIdle(Duration),
    /// `200`, then, idle this long, shuts its writing side and reads until the proxy closes.
    HalfCloseWhenIdle(Duration),
    /// `200` with a chunked body that never ends (a chunk every 10 ms) until writing fails.
    Endless,
}

struct RawBackend {
    address: String,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl RawBackend {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    serve(stream, mode).await;
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            address,
            accepted,
            closed,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Answers request heads (bodiless requests only) until the peer closes or the mode says so.
async fn serve(mut stream: TcpStream, mode: Mode) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = match mode {
                Mode::CloseWhenIdle(idle) => {
                    match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                        Ok(read) => read,
                        Err(_) => return,
                    }
                }
                Mode::HalfCloseWhenIdle(idle) => {
                    match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                        Ok(read) => read,
                        Err(_) => {
                            let _ = stream.shutdown().await;
                            while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
                            return;
                        }
                    }
                }
                _ => stream.read(&mut chunk).await,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head end")
            + 4;
        buffer.drain(..end);
        let answer: &[u8] = match mode {
            Mode::KeepAlive | Mode::CloseWhenIdle(_) | Mode::HalfCloseWhenIdle(_) => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            }
            Mode::NoContent => b"HTTP/1.1 204 No Content\r\n\r\n",
            Mode::CloseAfterEach => {
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
            }
            Mode::Endless => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
        match mode {
            Mode::CloseAfterEach => return,
            Mode::Endless => loop {
                if stream.write_all(b"400\r\n").await.is_err()
                    || stream.write_all(&[b'x'; 1024]).await.is_err()
                    || stream.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            },
            _ => {}
        }
    }
}

async fn proxy_for(backend: &RawBackend) -> TestProxy {
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "raw"))
        .backend("raw", std::slice::from_ref(&backend.address))
        .build();
    TestProxy::with_snapshot(snapshot).await
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    for mode in [Mode::KeepAlive, Mode::NoContent] {
        let backend = RawBackend::start(mode).await;
        let proxy = proxy_for(&backend).await;
        // A fresh client connection each time: reuse is the proxy's, not the client's.
        for _ in 0..5 {
            let status = get(&http1(), &proxy.url("/x"), HOST).await.status;
            assert!(status.is_success(), "{status}");
        }
        assert_eq!(
            backend.accepted(),
            1,
            "one upstream connection for five requests"
        );
    }
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_while_idle_is_not_used() {
    let backend = RawBackend::start(Mode::CloseWhenIdle(Duration::from_millis(50))).await;
    let proxy = proxy_for(&backend).await;
    for round in 1..=3 {
        let answer = get(&http1(), &proxy.url("/x"), HOST).await;
        assert_eq!(answer.status, StatusCode::OK, "round {round}: {answer:?}");
        until(
            "the backend closes the idle connection",
            Duration::from_secs(5),
            || backend.closed() == round,
        )
        .await;
    }
    assert_eq!(backend.accepted(), 3);
}

#[tokio::test]
async fn the_pool_closes_idle_connections_that_expired_without_another_request() {
    let backend = RawBackend::start(Mode::KeepAlive).await;
    let config = ProxyConfig {
        upstream_pool_idle_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /x", "raw"))
        .backend("raw", std::slice::from_ref(&backend.address))
        .build();
    let proxy = TestProxy::with_config(config, snapshot).await;
    let answer = get(&http1(), &proxy.url("/x"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    // The backend keeps its side open; only the proxy's sweep can end the connection.
    until(
        "the proxy closes the expired idle connection",
        Duration::from_secs(10),
        || backend.closed() == 1,
    )
    .await;
}

#[tokio::test]
async fn the_pool_closes_idle_connections_the_backend_shut_without_another_request() {
    // The default idle timeout (30 s) is far away: the sweep (every 10 s at most) finds the
    // connection the backend shut and closes it, rather than leaving it in CLOSE_WAIT.
    let backend = RawBackend::start(Mode::HalfCloseWhenIdle(Duration::from_millis(50))).await;
    let proxy = proxy_for(&backend).await;
    let answer = get(&http1(), &proxy.url("/x"), HOST).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    until(
        "the proxy closes the connection the backend shut",
        Duration::from_secs(20),
        || backend.closed() == 1,
    )
    .await;
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn connection_close_answers_are_not_pooled() {
    let backend = RawBackend::start(Mode::CloseAfterEach).await;
    let proxy = proxy_for(&backend).await;
    let client = http1();
    for _ in 0..3 {
        let answer = get(&client, &proxy.url("/x"), HOST).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(backend.accepted(), 3);
}

#[tokio::test]
async fn an_abandoned_answer_closes_its_upstream_connection() {
    let backend = RawBackend::start(Mode::Endless).await;
    let proxy = proxy_for(&backend).await;
    let request = http::Request::get(proxy.url("/x"))
        .header("host", HOST)
        .body(empty_body())
        .expect("request");
    let mut response = http1().request(request).await.expect("response head");
    assert_eq!(response.status(), StatusCode::OK);
    let first = response
        .body_mut()
        .frame()
        .await
        .expect("a frame")
        .expect("data");
    assert!(first.is_data());
    drop(response);
    // The proxy drops the half-read answer and its connection: the backend's writes fail.
    until(
        "the upstream connection is closed",
        Duration::from_secs(5),
        || backend.closed() == 1,
    )
    .await;
    assert_eq!(backend.accepted(), 1);
}
