//! `petstore-backend`: a small backend for the examples. It serves a fixed pet list under any
//! version prefix (`/v1/pets`, `/v2/pets/{id}`) and echoes every other request as JSON, so a
//! user can see exactly what the gateway forwarded (path, query, headers, body size).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};

const DEFAULT_LISTEN: &str = "127.0.0.1:9080";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = DEFAULT_LISTEN.to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "-h" | "--help" => {
                println!(
                    "petstore-backend [--listen ADDR]   (default {DEFAULT_LISTEN}; port 0: a free \
                     port, printed on stderr as `listening role=backend addr=IP:PORT`)"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                std::process::exit(2);
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("petstore-backend: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    // The address really bound (`--listen 127.0.0.1:0` takes a free port), in the same shape
    // as the causeway binaries' `listening` event, for scripts and tests to read.
    match listener.local_addr() {
        Ok(addr) => eprintln!("petstore-backend: listening role=backend addr={addr}"),
        Err(e) => {
            eprintln!("petstore-backend: no local address: {e}");
            std::process::exit(1);
        }
    }
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, peer));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(v.to_str().unwrap_or("<binary>").to_string()),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, doc) = match (method.as_str(), segments.as_slice()) {
        ("GET", [version, "pets"]) => (StatusCode::OK, json!({"version": version, "pets": pets()})),
        ("GET", [version, "pets", id]) => match pets().into_iter().find(|p| p["id"] == *id) {
            Some(pet) => (StatusCode::OK, json!({"version": version, "pet": pet})),
            None => (
                StatusCode::NOT_FOUND,
                json!({"message": format!("no pet {id}")}),
            ),
        },
        ("POST", [version, "pets"]) => {
            let pet: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (
                StatusCode::CREATED,
                json!({"version": version, "created": pet}),
            )
        }
        _ => (StatusCode::OK, Value::Null),
    };
    let doc = if doc.is_null() {
        json!({
            "echo": {"method": method, "path": path, "query": query, "headers": headers,
                     "bodyBytes": body.len(), "peer": peer.to_string()}
        })
    } else {
        doc
    };
    let mut response = Response::new(Full::new(Bytes::from(doc.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(stage) = headers.get("x-stage").and_then(Value::as_str)
        && let Ok(v) = hyper::header::HeaderValue::from_str(stage)
    {
        response.headers_mut().insert("x-seen-stage", v);
    }
    Ok(response)
}

fn pets() -> Vec<Value> {
    vec![
        json!({"id": "1", "type": "dog", "price": 249.99}),
        json!({"id": "2", "type": "cat", "price": 124.99}),
        json!({"id": "3", "type": "fish", "price": 0.99}),
    ]
}
