//! TLS origination towards `https` backends: a connector that dials the endpoint over TCP and
//! runs a rustls handshake with the backend's server name (its Service host name, or the
//! VpcLink's `sni`), verifying against the VpcLink's CA or, without one, the system roots
//! (`/etc/ssl/certs/ca-certificates.crt`, read once).
//!
//! Each https backend gets its own pooled client (server name and trust are per backend, and
//! hyper's pool key is only the endpoint address); the client carries over across snapshot
//! swaps while the backend's TLS settings stay the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use causeway_snapshot::UpstreamTls;
use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::body::{BoxError, ProxyBody};
use crate::config;

/// Where the system trust store is read from.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system roots, loaded on first use (empty, with a warning, when unreadable).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        match std::fs::read(SYSTEM_ROOTS) {
            Ok(pem) => {
                for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                    let _ = store.add(cert);
                }
            }
            Err(error) => {
                tracing::warn!(path = SYSTEM_ROOTS, %error, "cannot read the system trust store; https backends without a VpcLink CA will fail");
            }
        }
        Arc::new(store)
    }))
}

/// Why an https backend's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    /// The CA bundle is not PEM certificates.
    #[error("the CA bundle is not PEM certificates: {0}")]
    Ca(String),
    /// The server name is not a DNS name or IP address.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// rustls refused the settings.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The pooled client of one https backend, and the settings it was built from.
pub(crate) struct TlsOrigin {
    pub settings: UpstreamTls,
    pub client: Client<TlsConnector, ProxyBody>,
}

impl TlsOrigin {
    /// Builds the client for a backend whose `Host` is `authority`.
    pub fn new(authority: &str, settings: &UpstreamTls) -> Result<Self, OriginationError> {
        let roots = match &settings.ca_pem {
            Some(pem) => {
                let mut store = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| OriginationError::Ca(e.to_string()))?;
                    store.add(cert)?;
                }
                Arc::new(store)
            }
            None => system_roots(),
        };
        let host = settings.server_name.clone().unwrap_or_else(|| {
            authority
                .parse::<http::uri::Authority>()
                .map(|a| a.host().to_string())
                .unwrap_or_else(|_| authority.to_string())
        });
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| OriginationError::ServerName(host.clone()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config::DEFAULT_UPSTREAM_CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = TlsConnector {
            http,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            server_name,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config::DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(config::DEFAULT_UPSTREAM_MAX_IDLE_PER_HOST)
            .set_host(false)
            .build(connector);
        Ok(Self {
            settings: settings.clone(),
            client,
        })
    }
}

/// An HTTP/2 prior-knowledge (h2c) client bound to one endpoint: requests carry the backend's
/// host as `:authority`, while the connector always dials the endpoint. One multiplexed
/// connection per endpoint (hyper's pool keys on the authority, so each endpoint needs its
/// own client for the balancer to choose among them).
pub(crate) struct H2cEndpoint {
    pub address: String,
    pub client: Client<FixedConnector, ProxyBody>,
}

impl H2cEndpoint {
    pub fn new(address: &str) -> Result<Self, http::uri::InvalidUri> {
        let target: Uri = format!("http://{address}").parse()?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config::DEFAULT_UPSTREAM_CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config::DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT)
            .http2_only(true)
            .http2_initial_stream_window_size(config::DEFAULT_H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(config::DEFAULT_H2_CONNECTION_WINDOW)
            .http2_keep_alive_interval(config::DEFAULT_H2_KEEP_ALIVE_INTERVAL)
            .http2_keep_alive_timeout(config::DEFAULT_H2_KEEP_ALIVE_TIMEOUT)
            .set_host(false)
            .build(FixedConnector { http, target });
        Ok(Self {
            address: address.to_string(),
            client,
        })
    }
}

/// Dials one fixed address whatever the request URI says.
#[derive(Clone)]
pub(crate) struct FixedConnector {
    http: HttpConnector,
    target: Uri,
}

impl tower::Service<Uri> for FixedConnector {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = <HttpConnector as tower::Service<Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        self.http.call(self.target.clone())
    }
}

/// Dials TCP, then TLS with a fixed server name.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    http: HttpConnector,
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let tls = self.tls.clone();
        let name = self.server_name.clone();
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let stream = tls.connect(name, tcp).await?;
            Ok(TlsIo(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection to a backend, as hyper's client wants it.
pub(crate) struct TlsIo(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        self.0.inner().get_ref().0.connected()
    }
}

impl hyper::rt::Read for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
