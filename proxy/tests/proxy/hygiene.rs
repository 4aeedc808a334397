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
