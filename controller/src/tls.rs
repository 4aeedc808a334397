//! Certificates of the push channel: a private CA, a server certificate for the controller and
//! one client certificate shared by the proxies, made with rcgen when absent.
//!
//! In a cluster they live in two Secrets in the controller's namespace: [`SERVER_SECRET`]
//! (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`; only the controller reads it) and
//! [`PROXY_SECRET`] (`ca.crt`, `tls.crt`, `tls.key`: the client certificate, mounted by the
//! proxies, which never see a CA key). Without a cluster they are files in a directory, the
//! proxy's in its `proxy/` subdirectory. Certificates are valid for 10 years; rotation is not
//! built yet (delete both Secrets and restart the controller and the proxies).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The controller's Secret (holds the CA key).
pub const SERVER_SECRET: &str = "causeway-push-tls";
/// The proxies' Secret (client certificate and the CA certificate only).
pub const PROXY_SECRET: &str = "causeway-proxy-tls";

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed.
    #[error("cannot generate push certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file or Secret key is missing or malformed.
    #[error("push certificates: {0}")]
    Pem(String),
    /// rustls refused the material.
    #[error("push TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("push TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// File I/O.
    #[error("push certificates in {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The API server refused.
    #[error("push certificates Secret {name}: {source}")]
    Kube {
        /// Secret name.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// The certificates of the push channel, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct PushCerts {
    /// CA certificate.
    pub ca_cert: String,
    /// CA key.
    pub ca_key: String,
    /// Server certificate (signed by the CA).
    pub server_cert: String,
    /// Server key.
    pub server_key: String,
    /// Client certificate for proxies (signed by the CA).
    pub client_cert: String,
    /// Client key.
    pub client_key: String,
}

impl std::fmt::Debug for PushCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCerts").finish_non_exhaustive()
    }
}

impl PushCerts {
    /// Makes a new CA and certificates. `server_names` are the DNS names and IP addresses the
    /// proxies use to reach the controller.
    pub fn generate(server_names: &[String]) -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "causeway push CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, &ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(server_names.to_vec())?;
        server
            .distinguished_name
            .push(DnType::CommonName, "causeway-controller");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "causeway-proxy");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let client_cert = client.signed_by(&client_key, &issuer)?;

        Ok(Self {
            ca_cert: ca_cert.pem(),
            ca_key: ca_key.serialize_pem(),
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
        })
    }

    /// The rustls server configuration: HTTP/2 only, client certificates required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certs(&self.ca_cert)? {
            roots.add(cert)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.server_cert)?, key(&self.server_key)?)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reads the controller's files from `dir` (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`,
    /// `proxy/tls.crt`, `proxy/tls.key`), making them first if `dir` has none.
    pub fn load_or_create_dir(dir: &Path, server_names: &[String]) -> Result<Self, TlsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsError::Io { path, source }
        };
        if !dir.join("ca.crt").exists() {
            let certs = Self::generate(server_names)?;
            let proxy = dir.join("proxy");
            std::fs::create_dir_all(&proxy).map_err(io(&proxy))?;
            for (path, text) in [
                (dir.join("ca.crt"), &certs.ca_cert),
                (dir.join("ca.key"), &certs.ca_key),
                (dir.join("tls.crt"), &certs.server_cert),
                (dir.join("tls.key"), &certs.server_key),
                (proxy.join("ca.crt"), &certs.ca_cert),
                (proxy.join("tls.crt"), &certs.client_cert),
                (proxy.join("tls.key"), &certs.client_key),
            ] {
                std::fs::write(&path, text).map_err(io(&path))?;
            }
            return Ok(certs);
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(io(&path))
        };
        Ok(Self {
            ca_cert: read("ca.crt")?,
            ca_key: read("ca.key")?,
            server_cert: read("tls.crt")?,
            server_key: read("tls.key")?,
            client_cert: read("proxy/tls.crt")?,
            client_key: read("proxy/tls.key")?,
        })
    }

    /// Reads the server Secret from `namespace`, creating it if absent, then makes sure the
    /// proxies' Secret holds the matching client certificate. If two replicas race, the
    /// server Secret decides: the loser reads the winner's certificates.
    pub async fn load_or_create_secrets(
        client: &Client,
        namespace: &str,
        server_names: &[String],
    ) -> Result<Self, TlsError> {
        let api = kube::Api::<Secret>::namespaced(client.clone(), namespace);
        let kube_err = |name: &str| {
            let name = name.to_string();
            move |source| TlsError::Kube { name, source }
        };
        let certs = match api
            .get_opt(SERVER_SECRET)
            .await
            .map_err(kube_err(SERVER_SECRET))?
        {
            Some(secret) => Self::from_secret(&secret)?,
            None => {
                let certs = Self::generate(server_names)?;
                let server_secret = secret(
                    namespace,
                    SERVER_SECRET,
                    &[
                        ("ca.crt", &certs.ca_cert),
                        ("ca.key", &certs.ca_key),
                        ("tls.crt", &certs.server_cert),
                        ("tls.key", &certs.server_key),
                        ("client.crt", &certs.client_cert),
                        ("client.key", &certs.client_key),
                    ],
                );
                match api.create(&PostParams::default(), &server_secret).await {
                    Ok(_) => certs,
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let secret = api
                            .get(SERVER_SECRET)
                            .await
                            .map_err(kube_err(SERVER_SECRET))?;
                        Self::from_secret(&secret)?
                    }
                    Err(e) => return Err(kube_err(SERVER_SECRET)(e)),
                }
            }
        };
        let proxy_secret = secret(
            namespace,
            PROXY_SECRET,
            &[
                ("ca.crt", &certs.ca_cert),
                ("tls.crt", &certs.client_cert),
                ("tls.key", &certs.client_key),
            ],
        );
        match api
            .get_opt(PROXY_SECRET)
            .await
            .map_err(kube_err(PROXY_SECRET))?
        {
            Some(existing) if existing.data == proxy_secret.data => {}
            Some(_) => {
                let patch = serde_json::json!({ "data": proxy_secret.data });
                api.patch(
                    PROXY_SECRET,
                    &PatchParams {
                        field_manager: Some(crate::writer::FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(kube_err(PROXY_SECRET))?;
            }
            None => match api.create(&PostParams::default(), &proxy_secret).await {
                Ok(_) => {}
                // Another replica made it from the same server Secret.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(kube_err(PROXY_SECRET)(e)),
            },
        }
        Ok(certs)
    }

    fn from_secret(server: &Secret) -> Result<Self, TlsError> {
        let data = server.data.clone().unwrap_or_default();
        let get = |key: &str| {
            data.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .ok_or_else(|| TlsError::Pem(format!("Secret {SERVER_SECRET} has no key {key}")))
        };
        Ok(Self {
            ca_cert: get("ca.crt")?,
            ca_key: get("ca.key")?,
            server_cert: get("tls.crt")?,
            server_key: get("tls.key")?,
            client_cert: get("client.crt")?,
            client_key: get("client.key")?,
        })
    }
}

/// A Secret owned by the controller holding `data`.
fn secret(namespace: &str, name: &str, data: &[(&str, &String)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "causeway-controller".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Parses PEM certificates.
pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Parses a PEM private key.
pub fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::Pem(format!("private key: {e}")))
}
