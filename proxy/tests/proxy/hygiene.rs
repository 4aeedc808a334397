//! Request hygiene: one path for routing and forwarding, `Host` checks, forwarding headers.

use causeway_proxy::ProxyConfig;
use http::StatusCode;

use crate::support::*;

/// A greedy proxy route to a recording upstream, and a MOCK route under `/admin`.
async fn path_proxy() -> (TestProxy, Upstream) {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .route(mock("GET /admin/{proxy+}", "admin only"))
        .backend("app", &[upstream.endpoint()])
        .build();
    (TestProxy::with_snapshot(snapshot).await, upstream)
}

#[tokio::test]
async fn the_path_the_router_decides_on_is_the_path_the_backend_receives_or_the_request_is_refused()
{
    let (proxy, upstream) = path_proxy().await;
    // (path as sent, Some(path routed and forwarded) | None = refused with 400)
    let cases: [(&str, Option<&str>); 12] = [
        ("/x", Some("/x")),
        ("/a/./b", Some("/a/b")),
        ("//a", Some("/a")),
        ("/a//b", Some("/a/b")),
        ("/%61pp/%7Euser", Some("/app/~user")),
        ("/a/%2e/b", Some("/a/b")),
        ("/admin/../x", None),
        ("/public/%2e%2e/admin/x", None),
        ("/a%2Fb", None),
        ("/a%5Cb", None),
        ("/a;jsessionid=1", None),
        ("/a/.%2e/b", None),
    ];
    for (sent, expected) in cases {
        let before = upstream.seen().len();
        let request = format!("GET {sent} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
        let answer = raw(proxy.addr, request.as_bytes()).await;
        let seen = upstream.seen();
        match expected {
            Some(path) => {
                assert_eq!(raw_status(&answer), 200, "{sent}: {answer}");
                assert_eq!(seen.len(), before + 1, "{sent} reached the backend once");
                assert_eq!(seen[before].path, path, "{sent}: forwarded path");
                let log = proxy.log_json();
                let last = log.last().expect("a log line");
                assert_eq!(last["path"], path, "{sent}: routed (logged) path");
                assert_eq!(last["routeKey"], "ANY /{proxy+}", "{sent}");
            }
            None => {
                assert_eq!(raw_status(&answer), 400, "{sent}: {answer}");
                assert_eq!(seen.len(), before, "{sent} never reached the backend");
            }
        }
    }
}

#[tokio::test]
async fn a_dotted_path_cannot_reach_a_route_it_does_not_name() {
    let (proxy, upstream) = path_proxy().await;
    // Normalized, `/admin/./x` is `/admin/x`: it lands on the admin route, never on the
    // greedy proxy route with a path the backend would resolve differently.
    let answer = raw(
        proxy.addr,
        format!("GET /admin/./x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.ends_with("admin only"), "{answer}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn two_host_headers_are_refused_with_400() {
    let (proxy, upstream) = path_proxy().await;
    let request =
        format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\nHost: evil.test\r\nConnection: close\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_host_that_disagrees_with_the_absolute_request_target_is_refused_with_400() {
    let (proxy, upstream) = path_proxy().await;
    let request =
        format!("GET http://{HOST}/x HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    let agreeing =
        format!("GET http://{HOST}/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let answer = raw(proxy.addr, agreeing.as_bytes()).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let (proxy, upstream) = path_proxy().await;
    let answer = send(
        &http1(),
        http::Method::GET,
        &proxy.url("/x"),
        HOST,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "bank.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = &upstream.seen()[0].headers;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], HOST);
    assert!(seen.get("forwarded").is_none());
    assert!(seen.get("x-real-ip").is_none());
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_hop_are_kept_and_extended() {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    let config = ProxyConfig {
        trusted_hops: vec!["127.0.0.0/8".parse().expect("cidr")],
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::with_config(config, snapshot).await;
    let answer = send(
        &http1(),
        http::Method::GET,
        &proxy.url("/x"),
        HOST,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "lb-42"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // A trusted hop's safe request id is kept.
    assert_eq!(answer.headers["x-request-id"], "lb-42");
    let seen = &upstream.seen()[0].headers;
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    // The access log names the client behind the trusted hop.
    let log = proxy.log_json();
    assert_eq!(log.last().expect("a line")["ip"], "203.0.113.7");
}

#[tokio::test]
async fn percent_escapes_that_are_not_utf8_are_refused_with_400_and_never_forwarded() {
    let (proxy, upstream) = path_proxy().await;
    // `%c0%ae` is an overlong `.`: a lenient decoder turns `%c0%ae%c0%ae` into `..`.
    for sent in ["/%c0%ae%c0%ae/admin/x", "/a%ff", "/%ed%a0%80", "/x/%C0%AF"] {
        let request = format!("GET {sent} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{sent}: {answer}");
    }
    assert!(upstream.seen().is_empty());
    // Valid UTF-8 escapes pass unchanged.
    let request = format!("GET /caf%C3%A9 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw(proxy.addr, request.as_bytes()).await), 200);
    assert_eq!(upstream.seen()[0].path, "/caf%C3%A9");
}

#[tokio::test]
async fn a_malformed_chunked_body_is_400_and_does_not_count_against_the_backend() {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    // One failure would eject the only endpoint, if the client's fault counted as the backend's.
    let config = ProxyConfig {
        outlier_consecutive_failures: 1,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::with_config(config, snapshot).await;
    for body in ["5\r\nhello\r\nZZ\r\n", "5\r\nhelloXX\r\n0\r\n\r\n"] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{body:?}: {answer}");
    }
    let request = format!("GET /after HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw(proxy.addr, request.as_bytes()).await), 200);
}

/// A request framed twice (Content-Length and Transfer-Encoding, in either order) is refused
/// with 400 before it reaches anything, as nginx does, while the same requests framed once,
/// pipelined on one connection with bodies that look like heads, all pass.
#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_refused() {
    let upstream = Upstream::start("app").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("ANY /{proxy+}", "app"))
        .backend("app", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    for framing in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        "content-length: 5\r\ntransfer-encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: x\r\n",
    ] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\n{framing}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        );
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{framing:?}: {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "{framing:?}: {answer}"
        );
    }
    assert!(upstream.seen().is_empty(), "nothing reached the backend");

    let body = "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    let pipelined = format!(
        "POST /one HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len}\r\n\r\n{body}\
         POST /two HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n{body}\r\n0\r\n\r\n\
         GET /three HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n",
        len = body.len()
    );
    let answer = raw(proxy.addr, pipelined.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body_len(), body.len() as u64);
    assert_eq!(seen[1].body_len(), body.len() as u64);
}
