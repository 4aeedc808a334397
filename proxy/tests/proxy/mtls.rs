//! Mutual TLS on custom domains, with real rustls on both sides and certificates made by
//! rcgen: a client certificate from the domain's CA passes, one from another CA or none fails
//! the handshake, a domain without mutual TLS on the same listener needs none, the verified
//! certificate reaches mappings and the access log, and the MTLS authorizer narrows by name.

use std::sync::Arc;

use bytes::Bytes;
use causeway_snapshot::mapping::{MappingSide, parse_key};
use causeway_snapshot::{
    AuthorizerSettings, BasePathMapping, Certificate, HostConfig, Integration, MtlsSettings,
    ParameterMapping, RouteConfig, Snapshot,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::auth::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

/// The mutual-TLS domain and a plain-TLS domain, served by the same listener and stage.
const MTLS_HOST: &str = "m.test";
const OPEN_HOST: &str = "open.test";
const ANY_CERT: &str = "default/any-cert";
const ADMINS: &str = "default/admins";

/// Server certificates, the domain's client CA, and a stranger CA.
struct Pki {
    servers: Ca,
    clients: Ca,
    strangers: Ca,
}

impl Pki {
    fn new() -> Self {
        Self {
            servers: Ca::new("Causeway server CA"),
            clients: Ca::new("Partner client CA"),
            strangers: Ca::new("Stranger CA"),
        }
    }

    fn server_cert(&self, host: &str, client_ca: Option<&str>) -> Certificate {
        self.servers
            .leaf(host)
            .snapshot_certificate(host, client_ca)
    }

    /// A TLS client trusting the server CA, presenting a certificate for `name` from `ca`.
    fn connector(&self, client: Option<(&Ca, &str)>) -> TlsConnector {
        let leaf = client.map(|(ca, name)| ca.leaf(name));
        let config = self.servers.client_config(leaf.as_ref(), &[b"http/1.1"]);
        TlsConnector::from(Arc::new(config))
    }
}

fn mappings(table: &[(&str, &str)]) -> Vec<ParameterMapping> {
    table
        .iter()
        .map(|(key, value)| {
            let (action, target) = parse_key(key, MappingSide::Request).expect("key");
            ParameterMapping {
                action,
                target,
                value: value.to_string(),
            }
        })
        .collect()
}

/// One stage on both domains: `GET /hello` proxied with the certificate mapped to headers,
/// `GET /any` behind an MTLS authorizer that takes any verified certificate, `GET /admin`
/// behind one that allows `admin.example.com` only.
fn snapshot(pki: &Pki, upstream: &Upstream) -> Snapshot {
    let mut hello: RouteConfig = proxy_to("GET /hello", "up").build();
    if let Integration::HttpProxy(h) = &mut hello.integration {
        h.request_parameters = mappings(&[
            (
                "overwrite:header.x-client-subject",
                "$context.identity.clientCert.subjectDN",
            ),
            (
                "overwrite:header.x-client-issuer",
                "$context.identity.clientCert.issuerDN",
            ),
            (
                "overwrite:header.x-client-serial",
                "$context.identity.clientCert.serialNumber",
            ),
            (
                "overwrite:header.x-client-not-after",
                "$context.identity.clientCert.validity.notAfter",
            ),
        ]);
    }
    let mut snapshot = SnapshotBuilder::new()
        .route(hello)
        .route(with_authorizer(mock("GET /any", "any"), ANY_CERT, &[]))
        .route(with_authorizer(mock("GET /admin", "admin"), ADMINS, &[]))
        .backend("up", &[upstream.endpoint()])
        .build();
    snapshot.stages[0].access_log.format =
        Some("$context.status|$context.identity.clientCert.subjectDN".to_string());
    for host in [MTLS_HOST, OPEN_HOST] {
        snapshot.hosts.push(HostConfig {
            hostname: host.to_string(),
            rules: vec![],
            mappings: vec![BasePathMapping {
                base_path: String::new(),
                stage: STAGE.to_string(),
            }],
            redirect_to_https: false,
        });
    }
    snapshot.hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    snapshot.certificates = vec![
        pki.server_cert(MTLS_HOST, Some(pki.clients.pem())),
        pki.server_cert(OPEN_HOST, None),
    ];
    let mtls = |allowed: &[&str]| {
        AuthorizerSettings::Mtls(MtlsSettings {
            allowed_subjects: allowed.iter().map(|s| s.to_string()).collect(),
        })
    };
    add_authorizers(
        snapshot,
        vec![
            authorizer(
                ANY_CERT,
                &[],
                &[("x-client-cn", "$context.identity.clientCert.subjectDN")],
                mtls(&[]),
            ),
            authorizer(ADMINS, &[], &[], mtls(&["admin.example.com"])),
        ],
        &[],
    )
}

/// One HTTP/1.1 request over TLS with `sni`, `Host: host`; `Err` when the handshake or the
/// exchange fails (with TLS 1.3 a refused client certificate shows on the first read).
async fn request(
    proxy: &TestProxy,
    connector: &TlsConnector,
    sni: &str,
    host: &str,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let tcp = TcpStream::connect(proxy.tls)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

#[tokio::test]
async fn a_client_certificate_from_the_domain_ca_passes_and_reaches_mappings_and_the_access_log() {
    let pki = Pki::new();
    let upstream = Upstream::with_handler(|_| Reply::ok("hi")).await;
    let proxy = TestProxy::with_snapshot(snapshot(&pki, &upstream)).await;
    let client = pki.connector(Some((&pki.clients, "client.example.com")));

    let (status, body) = request(&proxy, &client, MTLS_HOST, MTLS_HOST, "/hello")
        .await
        .expect("served");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hi"));
    let seen = upstream.seen();
    let headers = &seen.last().expect("forwarded").headers;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let subject = header("x-client-subject");
    assert!(subject.contains("CN=client.example.com"), "{subject}");
    assert!(subject.contains("O=Causeway Tests"), "{subject}");
    assert!(
        header("x-client-issuer").contains("CN=Partner client CA"),
        "{headers:?}"
    );
    let serial = header("x-client-serial");
    assert!(
        serial.len() > 2 && serial.split(':').all(|b| b.len() == 2),
        "{serial}"
    );
    let not_after = header("x-client-not-after");
    assert!(not_after.ends_with(" GMT"), "{not_after}");

    let logs = proxy.wait_logs(1).await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("200|") && l.contains("CN=client.example.com")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_none_is_refused_in_the_handshake() {
    let pki = Pki::new();
    let upstream = Upstream::with_handler(|_| Reply::ok("hi")).await;
    let proxy = TestProxy::with_snapshot(snapshot(&pki, &upstream)).await;
    let stranger = pki.connector(Some((&pki.strangers, "client.example.com")));
    let anonymous = pki.connector(None);
    for (who, connector) in [("stranger", &stranger), ("no certificate", &anonymous)] {
        let result = request(&proxy, connector, MTLS_HOST, MTLS_HOST, "/hello").await;
        assert!(result.is_err(), "{who}: {result:?}");
    }
    assert_eq!(upstream.calls(), 0, "nothing reached the backend");
}

#[tokio::test]
async fn a_domain_without_mutual_tls_on_the_same_listener_needs_no_certificate() {
    let pki = Pki::new();
    let upstream = Upstream::with_handler(|_| Reply::ok("hi")).await;
    let proxy = TestProxy::with_snapshot(snapshot(&pki, &upstream)).await;
    let anonymous = pki.connector(None);
    let (status, _) = request(&proxy, &anonymous, OPEN_HOST, OPEN_HOST, "/hello")
        .await
        .expect("served");
    assert_eq!(status, StatusCode::OK);
    let seen = upstream.seen();
    assert!(
        seen[0]
            .headers
            .get("x-client-subject")
            .is_none_or(|v| v.is_empty()),
        "no certificate, no subject: {:?}",
        seen[0].headers
    );
    // A route behind an MTLS authorizer, reached without a certificate: 401.
    let (status, _) = request(&proxy, &anonymous, OPEN_HOST, OPEN_HOST, "/any")
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_mutual_tls_host_is_misdirected_over_another_name_or_plain_http() {
    let pki = Pki::new();
    let upstream = Upstream::with_handler(|_| Reply::ok("hi")).await;
    let proxy = TestProxy::with_snapshot(snapshot(&pki, &upstream)).await;
    // A handshake for the open domain, then a request naming the mutual-TLS host.
    let anonymous = pki.connector(None);
    let (status, _) = request(&proxy, &anonymous, OPEN_HOST, MTLS_HOST, "/hello")
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let answer = get(&http1(), &proxy.url("/hello"), MTLS_HOST).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn the_mtls_authorizer_allows_listed_names_and_denies_the_others() {
    let pki = Pki::new();
    let upstream = Upstream::with_handler(|_| Reply::ok("hi")).await;
    let proxy = TestProxy::with_snapshot(snapshot(&pki, &upstream)).await;
    let client = pki.connector(Some((&pki.clients, "client.example.com")));
    let admin = pki.connector(Some((&pki.clients, "admin.example.com")));

    let any = request(&proxy, &client, MTLS_HOST, MTLS_HOST, "/any").await;
    assert_eq!(any.expect("answered").0, StatusCode::OK);
    let denied = request(&proxy, &client, MTLS_HOST, MTLS_HOST, "/admin").await;
    assert_eq!(denied.expect("answered").0, StatusCode::FORBIDDEN);
    let allowed = request(&proxy, &admin, MTLS_HOST, MTLS_HOST, "/admin").await;
    assert_eq!(
        allowed.expect("answered"),
        (StatusCode::OK, "admin".to_string())
    );
}
