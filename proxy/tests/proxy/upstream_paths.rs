//! Paths the gateway builds for the backend (`overwrite:path` mappings, integration path
//! templates): substituted values are percent-encoded and the result re-normalized, so no value
//! can change the path's structure; a client value that would is a 400.

use causeway_snapshot::mapping::{MappingSide, parse_key};
use causeway_snapshot::{Integration, ParameterMapping, RouteConfig};
use http::{Method, StatusCode};

use crate::support::*;

/// `GET /go` maps its path from the `to` query parameter, `GET /as` from the `x-to` header.
fn mapped(key: &str, value: &str) -> RouteConfig {
    let mut route = proxy_to(key, "up").build();
    if let Integration::HttpProxy(h) = &mut route.integration {
        let (action, target) = parse_key("overwrite:path", MappingSide::Request).expect("key");
        h.request_parameters = vec![ParameterMapping {
            action,
            target,
            value: value.into(),
        }];
    }
    route
}

#[tokio::test]
async fn mapped_path_values_are_encoded_and_cannot_climb_or_add_segments() {
    let upstream = Upstream::start("up").await;
    let snapshot = SnapshotBuilder::new()
        .backend("up", &[upstream.endpoint()])
        .route(mapped("GET /go", "/v2/${request.querystring.to}"))
        .route(mapped("GET /as", "/v2/$request.header.x-to"))
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let go = |query: &str| {
        let url = proxy.url(&format!("/go?{query}"));
        async move { send(&http1(), Method::GET, &url, HOST, &[]).await }
    };
    for hostile in ["to=../admin", "to=..", "to=a%2Fb", "to=%2e%2e%2fadmin"] {
        let answer = go(hostile).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{hostile}");
    }
    let by_header = send(
        &http1(),
        Method::GET,
        &proxy.url("/as"),
        HOST,
        &[("x-to", "../admin")],
    )
    .await;
    assert_eq!(by_header.status, StatusCode::BAD_REQUEST);
    assert!(upstream.seen().is_empty(), "nothing reached the backend");

    // Escapes in a value stay text; spaces and reserved characters are encoded.
    assert_eq!(go("to=%252e%252e").await.status, StatusCode::OK);
    assert_eq!(go("to=a%20b%3Fc").await.status, StatusCode::OK);
    let paths: Vec<String> = upstream.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/v2/%252e%252e", "/v2/a%20b%3Fc"]);
}

#[tokio::test]
async fn template_parameters_keep_their_meaning_and_a_greedy_one_its_segments() {
    let upstream = Upstream::start("up").await;
    let snapshot = SnapshotBuilder::new()
        .backend("up", &[upstream.endpoint()])
        .route(proxy_to("GET /things/{id}", "up").path("/items/{id}/detail"))
        .route(proxy_to("GET /files/{proxy+}", "up").path("/store/{proxy}"))
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    for path in ["/things/a%20b", "/things/%252e%252e", "/files/a/b/c.txt"] {
        let answer = get(&http1(), &proxy.url(path), HOST).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let paths: Vec<String> = upstream.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/items/a%20b/detail",
            "/items/%252e%252e/detail",
            "/store/a/b/c.txt"
        ]
    );
}
