//! The certificate table built from the snapshot's `certificates`: one rustls `ServerConfig`
//! per certificate, built when the snapshot is applied — with a client verifier over the
//! domain's CA bundle for mutual-TLS domains (a client without a valid certificate from that
//! CA fails the handshake), without one for the others.

use std::collections::HashMap;
use std::sync::Arc;

use causeway_snapshot::Certificate;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ApplyError;

/// The server settings of one certificate, and its client CA when it asks for mutual TLS.
pub(crate) struct SniEntry {
    pub config: Arc<rustls::ServerConfig>,
    /// The PEM bundle client certificates are verified against; `None`: no client certificate.
    pub client_ca: Option<Arc<str>>,
}

/// Server settings by host name: exact names, then `*.suffix` wildcards (longest suffix first).
#[derive(Default)]
pub(crate) struct CertTable {
    exact: HashMap<String, Arc<SniEntry>>,
    wildcards: Vec<(String, Arc<SniEntry>)>,
}

impl CertTable {
    /// Parses every certificate, key and client CA, and builds their server settings. One that
    /// does not load is left out and returned with its host names (a handshake for those names
    /// then fails: no certificate is better than a wrong one); the others serve.
    pub fn build(certificates: &[Certificate]) -> (Self, Vec<(String, ApplyError)>) {
        let mut table = Self::default();
        let mut unusable = Vec::new();
        for c in certificates {
            let entry = match sni_entry(c) {
                Ok(entry) => Arc::new(entry),
                Err(error) => {
                    unusable.push((c.hostnames.join(","), error));
                    continue;
                }
            };
            for name in &c.hostnames {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') => table
                        .wildcards
                        .push((suffix.to_string(), Arc::clone(&entry))),
                    _ => {
                        table.exact.insert(name, Arc::clone(&entry));
                    }
                }
            }
        }
        table
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        (table, unusable)
    }

    /// The settings for an SNI (or `Host`) name.
    pub fn find(&self, name: &str) -> Option<&Arc<SniEntry>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(&name).or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
                .map(|(_, c)| c)
        })
    }
}

/// The server settings of one certificate: its chain and key, and the client verifier of a
/// mutual-TLS domain.
fn sni_entry(c: &Certificate) -> Result<SniEntry, ApplyError> {
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
    let key =
        ring::sign::any_supported_type(&key).map_err(|e| invalid("private key", e.to_string()))?;
    let certified = Arc::new(CertifiedKey::new(chain, key));
    let verifier = match &c.client_ca_pem {
        None => None,
        Some(pem) => Some(client_verifier(pem).map_err(|e| invalid("client CA bundle", e))?),
    };
    let config =
        server_config(certified, verifier).map_err(|e| invalid("TLS settings", e.to_string()))?;
    Ok(SniEntry {
        config: Arc::new(config),
        client_ca: c.client_ca_pem.as_deref().map(Arc::from),
    })
}

/// A verifier that requires a client certificate chaining to one of the bundle's CAs.
fn client_verifier(
    pem: &str,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| e.to_string())?;
        roots.add(der).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())
}

/// Always the same certificate (one `ServerConfig` per certificate).
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// TLS 1.2 and 1.3 with the ring provider, ALPN h2 then http/1.1.
fn server_config(
    certified: Arc<CertifiedKey>,
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(FixedCert(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
