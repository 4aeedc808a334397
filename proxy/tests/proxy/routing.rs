use http::{Method, StatusCode};

use crate::support::*;

async fn pets_proxy() -> (TestProxy, Upstream) {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .base_path("v1")
        .route(mock("GET /pets/{id}", "get {id}"))
        .route(proxy_to("GET /pets/{proxy+}", "pets").path("/upstream/{proxy}"))
        .route(mock("GET /pets/dogs", "dogs"))
        .route(mock("ANY /pets/{id}", "any {id}"))
        .route(mock("$default", "default"))
        .backend("pets", &[upstream.endpoint()])
        .build();
    (TestProxy::with_snapshot(snapshot).await, upstream)
}

#[tokio::test]
async fn each_request_lands_on_the_most_specific_route_for_its_method() {
    let (proxy, upstream) = pets_proxy().await;
    let client = http1();
    let cases = [
        (Method::GET, "/v1/pets/dogs", "dogs"),
        (Method::GET, "/v1/pets/7", "get 7"),
        (Method::POST, "/v1/pets/7", "any 7"),
        (Method::DELETE, "/v1/cats", "default"),
        (Method::POST, "/v1/pets/7/toys", "default"),
        (
            Method::GET,
            "/v1/pets/7/toys?color=red",
            "pets /upstream/7/toys?color=red",
        ),
    ];
    for (method, path, expected) in cases {
        let answer = send(&client, method.clone(), &proxy.url(path), HOST, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{method} {path}");
        assert_eq!(answer.body, expected, "{method} {path}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "only the greedy route calls the backend");
    assert_eq!(seen[0].path, "/upstream/7/toys");
    assert_eq!(seen[0].query.as_deref(), Some("color=red"));
}

#[tokio::test]
async fn the_base_path_is_stripped_and_the_host_port_and_case_are_ignored() {
    let (proxy, _upstream) = pets_proxy().await;
    let answer = get(&http1(), &proxy.url("/v1/pets/9"), "API.Test:8080").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "get 9");
    let outside = get(&http1(), &proxy.url("/v2/pets/9"), HOST).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unknown_route_is_missing_authentication_token_and_never_reaches_the_backend() {
    let upstream = Upstream::start("pets").await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /pets", "pets"))
        .backend("pets", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let client = http1();
    for (method, path) in [(Method::GET, "/cats"), (Method::POST, "/pets")] {
        let answer = send(&client, method, &proxy.url(path), HOST, &[]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.body, r#"{"message":"Missing Authentication Token"}"#);
        assert!(answer.headers.contains_key("x-request-id"));
    }
    assert!(upstream.seen().is_empty(), "the backend was called");
}

#[tokio::test]
async fn an_unknown_host_is_not_found() {
    let proxy =
        TestProxy::with_snapshot(SnapshotBuilder::new().route(mock("$default", "x")).build()).await;
    let answer = get(&http1(), &proxy.url("/"), "other.test").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, r#"{"message":"Not Found"}"#);
}

#[tokio::test]
async fn before_any_snapshot_every_request_is_refused_and_the_proxy_is_not_ready() {
    let proxy = TestProxy::start().await;
    let client = http1();
    let answer = get(&client, &proxy.url("/pets"), HOST).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body, r#"{"message":"no configuration yet"}"#);
    let ready = get(&client, &proxy.admin_url("/readyz"), "admin").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&client, &proxy.admin_url("/healthz"), "admin")
            .await
            .status,
        StatusCode::OK
    );

    proxy.proxy.apply(
        SnapshotBuilder::new()
            .route(mock("GET /pets", "pets"))
            .build(),
    );
    assert_eq!(
        get(&client, &proxy.admin_url("/readyz"), "admin")
            .await
            .status,
        StatusCode::OK
    );
    let answer = get(&client, &proxy.url("/pets"), HOST).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "pets")
    );
}

#[tokio::test]
async fn an_http2_prior_knowledge_client_gets_the_same_answers() {
    let (proxy, upstream) = pets_proxy().await;
    for path in ["/v1/pets/7", "/v1/pets/7/toys?a=b"] {
        let one = get(&http1(), &proxy.url(path), HOST).await;
        // HTTP/2 carries the host in :authority, taken from the URI.
        let url = format!("http://{HOST}:{}{path}", proxy.addr.port());
        let two = send_h2(&proxy, &url).await;
        assert_eq!(two.status, one.status, "{path}");
        assert_eq!(two.body, one.body, "{path}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_11));
    assert_eq!(seen[1].headers["host"], "pets.default.svc");
}

/// h2c to the proxy's socket while the URI names [`HOST`].
async fn send_h2(proxy: &TestProxy, url: &str) -> Answer {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let request = http::Request::get(url).body(empty_body()).expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}
