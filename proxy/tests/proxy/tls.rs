//! HTTPS with real certificates (rcgen): SNI picks the certificate, ALPN gives HTTP/2 or
//! HTTP/1.1, custom domains route by base path and header rules, HTTP→HTTPS redirects.

use std::sync::Arc;

use bytes::Bytes;
use causeway_proxy::ProxyConfig;
use causeway_snapshot::{BasePathMapping, Certificate, HostConfig, RoutingRuleConfig, Snapshot};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// A CA and leaf certificates it signed: `(host, snapshot entry, certificate)`.
struct Pki {
    ca: Ca,
    leaves: Vec<(String, Certificate, CertificateDer<'static>)>,
}

fn pki(hosts: &[&str]) -> Pki {
    let ca = Ca::new("Causeway test CA");
    let leaves = hosts
        .iter()
        .map(|host| {
            let leaf = ca.leaf(host);
            let snapshot_cert = leaf.snapshot_certificate(host, None);
            (host.to_string(), snapshot_cert, leaf.der())
        })
        .collect();
    Pki { ca, leaves }
}

/// `a.test` maps base path `v1` to the prod stage; `b.test` sends `x-version: 2*` to a beta
/// stage by a routing rule and everything else to prod. Both have certificates.
fn domains_snapshot(pki: &Pki, redirect: bool) -> Snapshot {
    let mut snapshot = SnapshotBuilder::new()
        .route(mock("GET /{proxy+}", "prod {proxy}"))
        .build();
    let mut beta = snapshot.stages[0].clone();
    beta.id = "default/pets/beta".to_string();
    beta.name = "beta".to_string();
    beta.main.routes = vec![mock("GET /{proxy+}", "beta {proxy}")];
    snapshot.stages.push(beta);
    snapshot.hosts.push(HostConfig {
        hostname: "a.test".to_string(),
        rules: vec![],
        mappings: vec![BasePathMapping {
            base_path: "v1".to_string(),
            stage: STAGE.to_string(),
        }],
        redirect_to_https: redirect,
    });
    snapshot.hosts.push(HostConfig {
        hostname: "b.test".to_string(),
        rules: vec![RoutingRuleConfig {
            priority: 1,
            headers: vec![("x-version".to_string(), "2*".to_string())],
            base_paths: vec![],
            strip_base_path: true,
            stage: "default/pets/beta".to_string(),
        }],
        mappings: vec![BasePathMapping {
            base_path: String::new(),
            stage: STAGE.to_string(),
        }],
        redirect_to_https: false,
    });
    snapshot.certificates = pki.leaves.iter().map(|(_, c, _)| c.clone()).collect();
    snapshot.seal()
}

fn connector(pki: &Pki, alpn: &[&[u8]]) -> TlsConnector {
    TlsConnector::from(Arc::new(pki.ca.client_config(None, alpn)))
}

async fn handshake(
    proxy: &TestProxy,
    pki: &Pki,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(proxy.tls).await?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    connector(pki, alpn).connect(name, tcp).await
}

/// One request over an established TLS stream; HTTP/2 when ALPN chose it.
async fn request_over(
    stream: TlsStream<TcpStream>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Version, String) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut builder = Request::get(format!("https://{host}{path}"));
    if !h2 {
        builder = builder.uri(path).header("host", host);
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Empty::<Bytes>::new()).expect("request");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(request).await.expect("response")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        send.send_request(request).await.expect("response")
    };
    let status = response.status();
    let version = response.version();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, version, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test]
async fn sni_chooses_the_certificate_of_each_domain() {
    let pki = pki(&["a.test", "b.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;
    for (host, _, leaf) in &pki.leaves {
        let stream = handshake(&proxy, &pki, host, &[b"http/1.1"])
            .await
            .expect("handshake");
        let presented = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .expect("a certificate");
        assert_eq!(&presented, leaf, "certificate for {host}");
    }
}

#[tokio::test]
async fn a_name_without_a_certificate_fails_the_handshake() {
    let pki = pki(&["a.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;
    let result = handshake(&proxy, &pki, "unknown.test", &[b"http/1.1"]).await;
    assert!(result.is_err(), "handshake for a name without certificate");
}

#[tokio::test]
async fn http2_over_tls_routes_by_base_path_and_header_rules() {
    let pki = pki(&["a.test", "b.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;

    let a = handshake(&proxy, &pki, "a.test", &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(a.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, version, body) = request_over(a, "a.test", "/v1/cats", &[]).await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(body, "prod cats");

    let b = handshake(&proxy, &pki, "b.test", &[b"h2"])
        .await
        .expect("hs");
    let (status, _, body) = request_over(b, "b.test", "/dogs", &[("x-version", "2.1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "beta dogs", "the header rule wins over the mapping");

    let b = handshake(&proxy, &pki, "b.test", &[b"h2"])
        .await
        .expect("hs");
    let (_, _, body) = request_over(b, "b.test", "/dogs", &[("x-version", "1")]).await;
    assert_eq!(body, "prod dogs");
}

#[tokio::test]
async fn http1_over_tls_is_served_when_alpn_asks_for_it() {
    let pki = pki(&["a.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;
    let a = handshake(&proxy, &pki, "a.test", &[b"http/1.1"])
        .await
        .expect("handshake");
    let (status, version, body) = request_over(a, "a.test", "/v1/x", &[]).await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    assert_eq!(body, "prod x");
    let log = proxy.log_json();
    assert!(log.iter().any(|l| l["protocol"] == "HTTP/1.1"), "{log:?}");
}

#[tokio::test]
async fn plain_http_to_a_redirecting_domain_gets_308_to_https() {
    let pki = pki(&["a.test"]);
    let config = ProxyConfig {
        https_port: 8443,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::with_config(config, domains_snapshot(&pki, true)).await;
    let answer = get(&http1(), &proxy.url("/v1/x?y=1"), "a.test").await;
    assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(answer.headers["location"], "https://a.test:8443/v1/x?y=1");
    // Over HTTPS the same host is served.
    let a = handshake(&proxy, &pki, "a.test", &[b"h2"])
        .await
        .expect("hs");
    let (status, _, _) = request_over(a, "a.test", "/v1/x", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn curl_speaks_http2_over_tls_to_the_proxy() {
    let pki = pki(&["a.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki.ca.write_pem(dir.path(), "ca.pem");
    let port = proxy.tls.port();
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(&ca)
        .args([
            "--resolve",
            &format!("a.test:{port}:127.0.0.1"),
            "-w",
            "\n%{http_version} %{http_code}",
            &format!("https://a.test:{port}/v1/curl"),
        ])
        .output()
        .await
        .expect("this test needs curl with HTTP/2 (apt-get install -y curl)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "prod curl\n2 200");
}

#[tokio::test]
async fn config_dump_shows_certificates_but_never_their_private_keys() {
    let pki = pki(&["a.test"]);
    let proxy = TestProxy::with_snapshot(domains_snapshot(&pki, false)).await;
    let answer = get(&http1(), &proxy.admin_url("/config_dump"), "admin").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.body.contains("PRIVATE KEY"), "{}", answer.body);
    let dump: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    let cert = &dump["certificates"][0];
    assert_eq!(cert["hostnames"][0], "a.test");
    assert_eq!(cert["privateKeyPem"], "<redacted>");
    assert!(
        cert["certChainPem"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );
}
