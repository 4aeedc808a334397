//! `causeway import openapi` end to end: AWS's PetStore document imported by the real binary,
//! served by `causeway standalone` in front of the example backend, answering as the document
//! says (mock root page, proxied routes, CORS mock, body validation, unknown routes).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use causeway_e2e::{Reply, Standalone, bin, eventually, get, petstore_backend, repo_root};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const HOST: &str = "petstore.default.localhost";

/// A request with a method, a body and its content type.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", HOST)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[tokio::test]
async fn the_aws_petstore_document_imported_by_the_cli_is_served_by_standalone_as_the_document_says()
 {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, backend) = petstore_backend(dir.path()).await;
    let backend_port = backend.port();
    // The document's backend is AWS's demo endpoint; point it at the example backend.
    let doc = std::fs::read_to_string(
        repo_root().join("tests/fixtures/openapi/petstore-rest-oas30.json"),
    )
    .unwrap()
    .replace(
        "http://petstore.execute-api.us-east-1.amazonaws.com/petstore",
        &format!("http://127.0.0.1:{backend_port}/v1"),
    );
    let doc_path = dir.path().join("petstore.json");
    std::fs::write(&doc_path, doc).unwrap();
    let crs = dir.path().join("crs");
    let import = std::process::Command::new(bin("causeway"))
        .args(["import", "openapi"])
        .arg(&doc_path)
        .arg("--out")
        .arg(&crs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "import failed: {stderr}");
    assert!(
        stderr.contains("imported Api petstore: 6 routes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/paths/~1pets/get/x-amazon-apigateway-integration/responses/default"),
        "what is approximated is reported with its pointer: {stderr}"
    );

    // The backend runs on this machine: an address is reached only through a VpcLink that
    // lists it, as in a cluster.
    std::fs::write(
        crs.join("local-backend.yaml"),
        "apiVersion: causeway.dev/v1alpha1\nkind: VpcLink\nmetadata: {name: local-backend, namespace: default}\nspec:\n  allowedNamespaces: [default]\n  addresses: [127.0.0.1]\n",
    )
    .unwrap();

    let gateway = Standalone::start(&crs, dir.path(), &[]).await;
    let traffic = gateway.traffic;

    // GET / is the mock's HTML page.
    let root = get(traffic, HOST, "/prod/").await.unwrap();
    assert_eq!(root.status, 200, "{}", root.body);
    assert_eq!(root.header("content-type"), Some("text/html"));
    assert!(root.body.contains("Welcome to your Pet Store API"));

    // GET /pets and /pets/{petId} reach the backend (petId renamed from the URI's {id}).
    let pets = eventually(Duration::from_secs(10), || async {
        let r = get(traffic, HOST, "/prod/pets?type=dog").await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await
    .expect("GET /prod/pets");
    assert_eq!(pets.json()["version"], "v1", "{}", pets.body);
    assert_eq!(pets.header("access-control-allow-origin"), Some("*"));
    let pet = get(traffic, HOST, "/prod/pets/2").await.unwrap();
    assert_eq!(pet.json()["pet"]["type"], "cat", "{}", pet.body);

    // OPTIONS /pets is the CORS mock.
    let options = send(traffic, "OPTIONS", "/prod/pets", "application/json", "")
        .await
        .unwrap();
    assert_eq!(options.status, 200);
    assert_eq!(
        options.header("access-control-allow-methods"),
        Some("POST,GET,OPTIONS")
    );

    // POST /pets validates the body against the NewPet model before calling the backend.
    let bad = send(
        traffic,
        "POST",
        "/prod/pets",
        "application/json",
        r#"{"type":"lizard","price":5}"#,
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    let good = send(
        traffic,
        "POST",
        "/prod/pets",
        "application/json",
        r#"{"type":"dog","price":249.99}"#,
    )
    .await
    .unwrap();
    assert!(good.status < 300, "{} {}", good.status, good.body);

    // A route the document does not have: REST's 403.
    let unknown = get(traffic, HOST, "/prod/owners").await.unwrap();
    assert_eq!(unknown.status, 403, "{}", unknown.body);
    assert_eq!(unknown.json()["message"], "Missing Authentication Token");
    drop(gateway);
}
