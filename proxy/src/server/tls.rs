//! TLS termination: the acceptor reads each ClientHello, finds the SNI name in the *current*
//! tables' certificates and finishes the handshake with that name's server settings (so a
//! snapshot swap changes certificates for new connections without restarting the listener).
//! The verified client leaf is parsed once per connection into a [`ClientCert`] that rides in
//! every request's extensions (`$context.identity.clientCert.*`, the MTLS authorizer).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::context::{ClientCert, TlsInfo};
use crate::state::Shared;

/// Why a TLS connection was not established.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    /// Reading the ClientHello or finishing the handshake failed (this includes a client
    /// certificate that is missing or not from the domain's CA).
    #[error("tls handshake failed: {0}")]
    Handshake(#[from] std::io::Error),
    /// The client sent no SNI name, or one without a certificate.
    #[error("no certificate for server name {0:?}")]
    UnknownName(Option<String>),
}

/// Accepts TLS connections with the settings of the SNI name in the current runtime.
#[derive(Clone)]
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
}

impl Acceptor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Reads the ClientHello, picks the name's settings and finishes the handshake.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, TlsInfo), AcceptError> {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let name = start.client_hello().server_name().map(str::to_string);
        let entry = name.as_deref().and_then(|n| {
            let runtime = self.shared.tables.load();
            runtime.as_ref()?.certificates.find(n).cloned()
        });
        let Some(entry) = entry else {
            return Err(AcceptError::UnknownName(name));
        };
        let stream = start.into_stream(Arc::clone(&entry.config)).await?;
        let client_cert = entry.client_ca.as_ref().and_then(|_| {
            let leaf = stream.get_ref().1.peer_certificates()?.first()?;
            ClientCert::parse(leaf.as_ref()).map(Arc::new)
        });
        let info = TlsInfo {
            client_ca: entry.client_ca.clone().filter(|_| client_cert.is_some()),
            client_cert,
        };
        Ok((stream, info))
    }
}
