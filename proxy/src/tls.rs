//! TLS termination: the certificate table built from the snapshot's `certificates`, and the
//! SNI resolver that reads it from the current runtime on every handshake (so a snapshot swap
//! changes certificates for new connections without restarting the listener).

use std::collections::HashMap;
use std::sync::Arc;

use causeway_snapshot::Certificate;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Shared;
use crate::runtime::ApplyError;

/// Certificates by host name: exact names, then `*.suffix` wildcards (longest suffix first).
#[derive(Default)]
pub(crate) struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
}

impl CertTable {
    /// Parses every certificate and key; one that does not load rejects the snapshot.
    pub fn build(certificates: &[Certificate]) -> Result<Self, ApplyError> {
        let mut table = Self::default();
        for c in certificates {
            let context = c.hostnames.join(",");
            let invalid = |what: &'static str, error: String| ApplyError::Invalid {
                what,
                value: error,
                context: format!("certificate for {context}"),
            };
            let chain = CertificateDer::pem_slice_iter(c.cert_chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("certificate chain", e.to_string()))?;
            if chain.is_empty() {
                return Err(invalid("certificate chain", "no certificate".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(c.private_key_pem.as_bytes())
                .map_err(|e| invalid("private key", e.to_string()))?;
            let key = ring::sign::any_supported_type(&key)
                .map_err(|e| invalid("private key", e.to_string()))?;
            let certified = Arc::new(CertifiedKey::new(chain, key));
            for name in &c.hostnames {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') => table
                        .wildcards
                        .push((suffix.to_string(), Arc::clone(&certified))),
                    _ => {
                        table.exact.insert(name, Arc::clone(&certified));
                    }
                }
            }
        }
        table
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(table)
    }

    /// The certificate for an SNI name.
    pub fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(&name).cloned().or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
                .map(|(_, c)| Arc::clone(c))
        })
    }
}

/// Chooses the certificate by SNI from the runtime applied at handshake time.
struct SniResolver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let runtime = self.shared.runtime.load();
        let found = runtime.as_ref()?.certificates.find(name);
        if found.is_none() {
            tracing::debug!(sni = name, "no certificate for this name");
        }
        found
    }
}

/// Why the HTTPS listener cannot start.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the TLS server settings: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// TLS 1.2 and 1.3 with the ring provider, ALPN h2 then http/1.1, certificates by SNI.
pub(crate) fn server_config(shared: Arc<Shared>) -> Result<rustls::ServerConfig, TlsSetupError> {
    let provider = Arc::new(ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { shared }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
