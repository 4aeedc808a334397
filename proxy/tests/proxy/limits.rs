//! One test per edge limit: the status the client gets, and where it matters, that the proxy
//! stopped reading (or never called the backend).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_proxy::ProxyConfig;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn echo_proxy(config: ProxyConfig) -> (TestProxy, Upstream) {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .backend("app", &[upstream.endpoint()])
        .max_body_bytes(64 * 1024)
        .build();
    (TestProxy::with_config(config, snapshot).await, upstream)
}

#[tokio::test]
async fn a_request_target_over_the_limit_is_414_and_never_forwarded() {
    let config = ProxyConfig {
        max_uri_bytes: 1024,
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let long = format!("/x?q={}", "a".repeat(2000));
    let request = format!("GET {long} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 414, "{answer}");
    let short = format!("GET /x?q=a HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw(proxy.addr, short.as_bytes()).await), 200);
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn a_header_block_over_the_limit_is_431() {
    let config = ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let big = "b".repeat(40 * 1024);
    let request =
        format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 431, "{answer}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn more_headers_than_the_limit_is_431() {
    let config = ProxyConfig {
        max_headers: 10,
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 431, "{answer}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413_after_at_most_the_limit_plus_one_buffer() {
    let (proxy, upstream) = echo_proxy(ProxyConfig::default()).await;
    // 16 MiB offered, chunked (no Content-Length): only streaming enforcement can stop it.
    let produced = Arc::new(AtomicU64::new(0));
    let request = http::Request::post(proxy.url("/upload"))
        .header("host", HOST)
        .body(chunked_body(16 * 1024 * 1024, Some(produced.clone())))
        .expect("request");
    let response = http1().request(request).await;
    let status = response.map(|r| r.status()).ok();
    assert_eq!(status, Some(StatusCode::PAYLOAD_TOO_LARGE));
    // The backend saw at most the limit (64 KiB) before the body was cut off.
    let seen = upstream.seen();
    let forwarded: u64 = seen.iter().map(|s| s.body_len()).sum();
    assert!(forwarded <= 64 * 1024, "forwarded {forwarded} bytes");
    // And the proxy stopped reading: far less than what was offered left the client.
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent < 8 * 1024 * 1024, "client produced {sent} bytes");
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408() {
    let config = ProxyConfig {
        body_idle_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = echo_proxy(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!("POST /x HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n0123456789");
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(raw_status(&answer), 408, "{answer}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "after {elapsed:?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected_after_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: api.test\r\nX-Slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the proxy closed the connection");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
    let answer = String::from_utf8_lossy(&out);
    assert!(
        answer.is_empty() || raw_status(&answer) == 408,
        "either closed or 408: {answer}"
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let config = ProxyConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = echo_proxy(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.expect("read");
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was closed");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connections_over_the_per_pod_cap_wait_until_one_closes() {
    let config = ProxyConfig {
        max_connections: 1,
        ..ProxyConfig::default()
    };
    let (proxy, _upstream) = echo_proxy(config).await;
    let first = TcpStream::connect(proxy.addr).await.expect("connect");
    // The second connection is accepted by the kernel but not served while the first is open.
    let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
    second
        .write_all(b"GET /x HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(400), second.read(&mut buf)).await;
    assert!(early.is_err(), "served while the cap was reached");
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("served once the first closed")
        .expect("read");
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
}

#[tokio::test]
async fn http2_streams_over_the_concurrency_limit_wait_for_a_free_slot() {
    let config = ProxyConfig {
        h2_max_concurrent_streams: 2,
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let client = h2c();
    // One exchange first, so the client has the server's SETTINGS (a client that ignores
    // them gets REFUSED_STREAM for the streams over the limit).
    assert_eq!(
        get(&client, &proxy.host_url("/warm"), HOST).await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    let requests = (0..4).map(|_| {
        let client = client.clone();
        let url = proxy.host_url("/slow");
        async move { send(&client, Method::GET, &url, HOST, &[(DELAY_MS, "300")]).await }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    // Two at a time: two rounds of 300 ms.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(550), "took {elapsed:?}");
    assert_eq!(upstream.seen().len(), 5);
}

#[tokio::test]
async fn the_proxy_stops_reading_a_header_block_over_the_limit() {
    let config = ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..ProxyConfig::default()
    };
    let (proxy, upstream) = echo_proxy(config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: api.test\r\nX-Endless: ")
        .await
        .expect("write");
    // Keep sending one header line that never ends: the proxy must give up after its buffer
    // (16 KiB) and close, so writing fails long before 64 MiB have gone out.
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        while sent < 64 * 1024 * 1024 {
            if stream.write_all(&chunk).await.is_err() {
                return true;
            }
            sent += chunk.len();
        }
        false
    })
    .await;
    assert_eq!(
        outcome,
        Ok(true),
        "the proxy kept reading ({sent} bytes sent)"
    );
    assert!(sent < 16 * 1024 * 1024, "{sent} bytes were accepted");
    assert!(upstream.seen().is_empty());
}
