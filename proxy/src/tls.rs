//! TLS termination: the certificate table built from the snapshot's `certificates`, and the
//! acceptor that reads each ClientHello, finds the SNI name in the *current* runtime's table
//! and finishes the handshake with that name's server settings (so a snapshot swap changes
//! certificates for new connections without restarting the listener).
//!
//! Mutual TLS: rustls verifies client certificates per `ServerConfig`, so every certificate of
//! the snapshot gets its own `ServerConfig`, built when the snapshot is applied — with a client
//! verifier over the domain's CA bundle for mutual-TLS domains (a client without a valid
//! certificate from that CA fails the handshake), without one for the others. The verified
//! leaf is parsed once per connection into a [`ClientCert`] that rides in every request's
//! extensions (`$context.identity.clientCert.*`, the MTLS authorizer).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use causeway_snapshot::Certificate;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::Shared;
use crate::runtime::ApplyError;

/// The server settings of one certificate, and its client CA when it asks for mutual TLS.
pub(crate) struct SniEntry {
    config: Arc<rustls::ServerConfig>,
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
    /// Parses every certificate, key and client CA, and builds their server settings; one that
    /// does not load rejects the snapshot.
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
            let verifier = match &c.client_ca_pem {
                None => None,
                Some(pem) => {
                    Some(client_verifier(pem).map_err(|e| invalid("client CA bundle", e))?)
                }
            };
            let config = server_config(certified, verifier)
                .map_err(|e| invalid("TLS settings", e.to_string()))?;
            let entry = Arc::new(SniEntry {
                config: Arc::new(config),
                client_ca: c.client_ca_pem.as_deref().map(Arc::from),
            });
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
        Ok(table)
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

/// What a TLS connection established, for every request on it (request extensions).
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsInfo {
    /// The client CA bundle the handshake verified the client certificate against.
    pub client_ca: Option<Arc<str>>,
    /// The verified client certificate (mutual-TLS domains only).
    pub client_cert: Option<Arc<ClientCert>>,
}

/// A verified client certificate, as `$context.identity.clientCert.*` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The leaf certificate, PEM (`clientCertPem`).
    pub pem: String,
    /// `subjectDN`, for example `CN=client.example.com, O=Example`.
    pub subject_dn: String,
    /// `issuerDN`.
    pub issuer_dn: String,
    /// `serialNumber`, colon-separated hex.
    pub serial_number: String,
    /// `validity.notBefore`, for example `May 28 12:30:02 2026 GMT`.
    pub not_before: String,
    /// `validity.notAfter`.
    pub not_after: String,
    /// Subject common names and subject alternative names (DNS, URI, email): what the MTLS
    /// authorizer's `allowedSubjects` are matched against.
    pub names: Vec<String>,
}

impl ClientCert {
    /// Parses a DER certificate (the handshake has verified it already).
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                        names.push((*n).to_string());
                    }
                    _ => {}
                }
            }
        }
        let body = BASE64.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Some(Self {
            pem,
            subject_dn: cert.subject().to_string(),
            issuer_dn: cert.issuer().to_string(),
            serial_number: cert.raw_serial_as_string(),
            not_before: openssl_time(cert.validity().not_before.timestamp()),
            not_after: openssl_time(cert.validity().not_after.timestamp()),
            names,
        })
    }

    /// The value of `$context.identity.clientCert.<field>`.
    pub fn field(&self, field: &str) -> Option<&str> {
        Some(match field {
            "clientCertPem" => &self.pem,
            "subjectDN" => &self.subject_dn,
            "issuerDN" => &self.issuer_dn,
            "serialNumber" => &self.serial_number,
            "validity.notBefore" => &self.not_before,
            "validity.notAfter" => &self.not_after,
            _ => return None,
        })
    }
}

/// The value of a `$context` variable naming the client certificate, when `name` is one.
pub(crate) fn client_cert_context(cert: Option<&ClientCert>, name: &str) -> Option<String> {
    let field = name.strip_prefix("identity.clientCert.")?;
    cert?.field(field).map(str::to_string)
}

/// `Mon DD HH:MM:SS YYYY GMT`, as OpenSSL (and API Gateway) print certificate times.
fn openssl_time(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{month_name} {day:>2} {:02}:{:02}:{:02} {year} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

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
            let runtime = self.shared.runtime.load();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_times_print_as_openssl_does() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        // 2024-02-29T13:05:09Z, a leap day.
        assert_eq!(openssl_time(1_709_211_909), "Feb 29 13:05:09 2024 GMT");
        assert_eq!(openssl_time(4_102_444_799), "Dec 31 23:59:59 2099 GMT");
    }

    #[test]
    fn only_client_cert_fields_answer_client_cert_variables() {
        let cert = ClientCert {
            subject_dn: "CN=a".into(),
            not_after: "Dec 31 23:59:59 2099 GMT".into(),
            ..ClientCert::default()
        };
        let get = |name| client_cert_context(Some(&cert), name);
        assert_eq!(
            get("identity.clientCert.subjectDN").as_deref(),
            Some("CN=a")
        );
        assert_eq!(
            get("identity.clientCert.validity.notAfter").as_deref(),
            Some("Dec 31 23:59:59 2099 GMT")
        );
        assert_eq!(get("identity.clientCert.nope"), None);
        assert_eq!(get("identity.sourceIp"), None);
        assert_eq!(
            client_cert_context(None, "identity.clientCert.subjectDN"),
            None
        );
    }
}
