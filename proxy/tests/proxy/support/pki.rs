//! The one certificate helper of the proxy tests (rcgen): certificate authorities, server
//! certificates with DNS SANs, client certificates for mutual TLS, the rustls configurations
//! that use them, and PEM files on disk for tools that read files (curl).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use causeway_snapshot::Certificate;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The organization every leaf carries (tests read it back from `subjectDN`).
pub const LEAF_ORGANIZATION: &str = "Causeway Tests";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A fresh certificate authority that signs [`Leaf`] certificates.
pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl Ca {
    /// A self-signed CA named `common_name`. Give each CA of a test its own name: with the same
    /// name on CA and leaf, OpenSSL takes the leaf for self-signed.
    pub fn new(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate (DER).
    pub fn der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// A leaf for `name`: subject `CN={name}, O=Causeway Tests`, DNS SAN `name`. The same leaf
    /// serves as a server certificate and as a client certificate.
    pub fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, LEAF_ORGANIZATION);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf { cert, key }
    }

    /// A rustls client trusting this CA, presenting `client` when given, offering `alpn`.
    pub fn client_config(&self, client: Option<&Leaf>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).expect("add ca");
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.der()], leaf.key_der())
                .expect("client cert"),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// Writes the CA certificate to `dir/{file}` and returns the path.
    pub fn write_pem(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("write ca pem");
        path
    }
}

/// A certificate signed by a [`Ca`], with its private key.
pub struct Leaf {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Leaf {
    /// The certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The certificate (DER).
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The private key (PKCS#8 DER).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// `(certificate PEM, key PEM)`, as a snapshot's client certificate fields take them.
    pub fn pem_pair(&self) -> (String, String) {
        (self.cert_pem(), self.key_pem())
    }

    /// The snapshot's certificate entry for `hostname`, requiring clients of `client_ca` (PEM)
    /// when given.
    pub fn snapshot_certificate(&self, hostname: &str, client_ca: Option<&str>) -> Certificate {
        Certificate {
            hostnames: vec![hostname.to_string()],
            cert_chain_pem: self.cert_pem(),
            private_key_pem: self.key_pem(),
            client_ca_pem: client_ca.map(str::to_string),
        }
    }

    /// A rustls server presenting this leaf; with `client_ca` (PEM) it requires a client
    /// certificate from that CA. ALPN offers `alpn`.
    pub fn server_config(&self, client_ca: Option<&str>, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(cert.expect("ca pem")).expect("root");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(vec![self.der()], self.key_der())
            .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}
