//! Certificates of the push channel: a private CA, a server certificate for the controller and
//! one client certificate shared by the proxies, made with rcgen when absent.
//!
//! In a cluster they live in two Secrets in the controller's namespace: [`SERVER_SECRET`]
//! (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`; only the controller reads it) and
//! [`PROXY_SECRET`] (`ca.crt`, `tls.crt`, `tls.key`: the client certificate, mounted by the
//! proxies, which never see a CA key). Without a cluster they are files in a directory, the
//! proxy's in its `proxy/` subdirectory.
//!
//! Rotation: the CA is valid for 10 years, the server and client certificates for
//! [`LEAF_DAYS`]. Whenever the controller loads them — at start, then every
//! [`RENEW_CHECK_EVERY`] — leaves that expire within [`RENEW_BEFORE_DAYS`] are issued anew from
//! the same CA and written back (Secrets or files); the push server swaps its certificate in
//! place ([`ServerCert`]), and proxies read their mounted files again on every (re)connection,
//! while connections already open carry on. Since the CA does not change, old and new leaves
//! are both trusted during the hand-over. Replacing the CA itself: delete both Secrets and
//! restart the controller and the proxies.

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
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The controller's Secret (holds the CA key).
pub const SERVER_SECRET: &str = "causeway-push-tls";
/// The proxies' Secret (client certificate and the CA certificate only).
pub const PROXY_SECRET: &str = "causeway-proxy-tls";

/// Validity of the server and client certificates, days.
pub const LEAF_DAYS: i64 = 365;
/// Leaves that expire within this many days are issued anew.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// How often a running controller checks whether its leaves need renewing.
pub const RENEW_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Who makes the push certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertSource {
    /// The controller makes and rotates them (the default).
    #[default]
    Controller,
    /// Someone else (cert-manager) writes [`SERVER_SECRET`] (`tls.crt`, `tls.key`, `ca.crt`)
    /// and [`PROXY_SECRET`] and renews them; the controller only reads the server Secret, again
    /// every [`EXTERNAL_RELOAD_EVERY`], and serves what it holds.
    External,
}

/// How often externally made certificates are read again.
pub const EXTERNAL_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
#[derive(Clone, Default, PartialEq, Eq)]
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

        let mut certs = Self {
            ca_cert: ca_cert.pem(),
            ca_key: ca_key.serialize_pem(),
            ..Self::default()
        };
        certs.issue_leaves(&issuer, server_names, time::OffsetDateTime::now_utc())?;
        Ok(certs)
    }

    /// Issues new server and client certificates from `issuer`, valid from `now` for
    /// [`LEAF_DAYS`].
    fn issue_leaves<S: rcgen::SigningKey>(
        &mut self,
        issuer: &Issuer<'_, S>,
        server_names: &[String],
        now: time::OffsetDateTime,
    ) -> Result<(), TlsError> {
        let not_after = now + time::Duration::days(LEAF_DAYS);
        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(server_names.to_vec())?;
        server
            .distinguished_name
            .push(DnType::CommonName, "causeway-controller");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.not_before = now - time::Duration::hours(1);
        server.not_after = not_after;
        let server_cert = server.signed_by(&server_key, issuer)?;

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "causeway-proxy");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.not_before = now - time::Duration::hours(1);
        client.not_after = not_after;
        let client_cert = client.signed_by(&client_key, issuer)?;

        self.server_cert = server_cert.pem();
        self.server_key = server_key.serialize_pem();
        self.client_cert = client_cert.pem();
        self.client_key = client_key.serialize_pem();
        Ok(())
    }

    /// When the server or client certificate expires (the earlier of the two).
    pub fn leaves_expire(&self) -> Result<time::OffsetDateTime, TlsError> {
        let mut earliest: Option<time::OffsetDateTime> = None;
        for pem in [&self.server_cert, &self.client_cert] {
            let der = certs(pem)?.remove(0);
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
            let not_after = cert.validity().not_after.to_datetime();
            earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
        }
        earliest.ok_or_else(|| TlsError::Pem("no certificate".into()))
    }

    /// These certificates with new leaves from the same CA if the current ones expire within
    /// [`RENEW_BEFORE_DAYS`] of `now` (or cannot be read); `None` when they are good.
    pub fn renewed(
        &self,
        server_names: &[String],
        now: time::OffsetDateTime,
    ) -> Result<Option<Self>, TlsError> {
        let due = self.leaves_expire().map_or(true, |at| {
            at - now < time::Duration::days(RENEW_BEFORE_DAYS)
        });
        if !due {
            return Ok(None);
        }
        let ca_key = KeyPair::from_pem(&self.ca_key)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert, ca_key)?;
        let mut renewed = self.clone();
        renewed.issue_leaves(&issuer, server_names, now)?;
        Ok(Some(renewed))
    }

    /// The rustls server configuration: HTTP/2 only, client certificates required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        Ok(self.rotating_server_config()?.0)
    }

    /// [`server_config`](Self::server_config) and the handle that swaps its certificate.
    pub fn rotating_server_config(
        &self,
    ) -> Result<(Arc<rustls::ServerConfig>, Arc<ServerCert>), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certs(&self.ca_cert)? {
            roots.add(cert)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?;
        let resolver = Arc::new(ServerCert(
            std::sync::RwLock::new(self.certified_key()?),
            std::sync::atomic::AtomicI64::new(expiry_unix(self)),
        ));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok((Arc::new(config), resolver))
    }

    /// Reads the controller's files from `dir` (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`,
    /// `proxy/tls.crt`, `proxy/tls.key`), making them first if `dir` has none, and renewing the
    /// leaves (written back) when they are due.
    pub fn load_or_create_dir(dir: &Path, server_names: &[String]) -> Result<Self, TlsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsError::Io { path, source }
        };
        if !dir.join("ca.crt").exists() {
            let certs = Self::generate(server_names)?;
            certs.write_dir(dir)?;
            return Ok(certs);
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(io(&path))
        };
        let certs = Self {
            ca_cert: read("ca.crt")?,
            ca_key: read("ca.key")?,
            server_cert: read("tls.crt")?,
            server_key: read("tls.key")?,
            client_cert: read("proxy/tls.crt")?,
            client_key: read("proxy/tls.key")?,
        };
        match certs.renewed(server_names, time::OffsetDateTime::now_utc())? {
            Some(renewed) => {
                renewed.write_dir(dir)?;
                tracing::info!(dir = %dir.display(), "push certificates renewed");
                Ok(renewed)
            }
            None => Ok(certs),
        }
    }

    /// Writes the files [`load_or_create_dir`](Self::load_or_create_dir) reads (each through a
    /// temporary file and a rename, so a reader never sees half a certificate).
    fn write_dir(&self, dir: &Path) -> Result<(), TlsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsError::Io { path, source }
        };
        let proxy = dir.join("proxy");
        std::fs::create_dir_all(&proxy).map_err(io(&proxy))?;
        for (path, text) in [
            (dir.join("ca.crt"), &self.ca_cert),
            (dir.join("ca.key"), &self.ca_key),
            (dir.join("tls.crt"), &self.server_cert),
            (dir.join("tls.key"), &self.server_key),
            (proxy.join("ca.crt"), &self.ca_cert),
            (proxy.join("tls.crt"), &self.client_cert),
            (proxy.join("tls.key"), &self.client_key),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
        }
        Ok(())
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
        let certs = match certs.renewed(server_names, time::OffsetDateTime::now_utc())? {
            Some(renewed) => {
                let data = secret(
                    namespace,
                    SERVER_SECRET,
                    &[
                        ("tls.crt", &renewed.server_cert),
                        ("tls.key", &renewed.server_key),
                        ("client.crt", &renewed.client_cert),
                        ("client.key", &renewed.client_key),
                    ],
                )
                .data;
                api.patch(
                    SERVER_SECRET,
                    &PatchParams {
                        field_manager: Some(crate::writer::FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&serde_json::json!({ "data": data })),
                )
                .await
                .map_err(kube_err(SERVER_SECRET))?;
                tracing::info!(secret = SERVER_SECRET, "push certificates renewed");
                renewed
            }
            None => certs,
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

    /// Reads certificates made by someone else (cert-manager's Secret layout: `tls.crt`,
    /// `tls.key`, and `ca.crt`, the CA that signed both the server and the proxies'
    /// certificates). There is no CA key: nothing is issued or renewed here.
    pub async fn load_external(client: &Client, namespace: &str) -> Result<Self, TlsError> {
        let api = kube::Api::<Secret>::namespaced(client.clone(), namespace);
        let server = api
            .get(SERVER_SECRET)
            .await
            .map_err(|source| TlsError::Kube {
                name: SERVER_SECRET.into(),
                source,
            })?;
        Self::from_external_secret(&server)
    }

    fn from_external_secret(server: &Secret) -> Result<Self, TlsError> {
        let data = server.data.clone().unwrap_or_default();
        let get = |key: &str| {
            data.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    TlsError::Pem(format!(
                        "Secret {SERVER_SECRET} has no key {key} (with --push-certs cert-manager, \
                         a cert-manager Certificate issued by a CA Issuer writes it)"
                    ))
                })
        };
        let certs = Self {
            ca_cert: get("ca.crt")?,
            server_cert: get("tls.crt")?,
            server_key: get("tls.key")?,
            ..Self::default()
        };
        // Fail here, with the Secret's name, rather than at the first handshake.
        certs.rotating_server_config()?;
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

impl PushCerts {
    /// The server certificate and key, ready for rustls.
    fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        Ok(Arc::new(CertifiedKey::from_der(
            certs(&self.server_cert)?,
            key(&self.server_key)?,
            &provider,
        )?))
    }
}

/// The push server's certificate, swappable while the server runs (rotation), and when the
/// leaves served expire (Unix seconds; 0 when unknown), for the controller's metrics.
#[derive(Debug)]
pub struct ServerCert(
    std::sync::RwLock<Arc<CertifiedKey>>,
    std::sync::atomic::AtomicI64,
);

/// When `certs`' leaves expire, Unix seconds (0 when unreadable).
fn expiry_unix(certs: &PushCerts) -> i64 {
    certs
        .leaves_expire()
        .map(time::OffsetDateTime::unix_timestamp)
        .unwrap_or(0)
}

impl ServerCert {
    /// Serves `certs`' server certificate from the next handshake on.
    pub fn set(&self, certs: &PushCerts) -> Result<(), TlsError> {
        let key = certs.certified_key()?;
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        self.1
            .store(expiry_unix(certs), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// When the push certificates served now expire (the earlier of the server and proxy
    /// leaves), Unix seconds; 0 when unknown.
    pub fn expires_unix(&self) -> i64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;

    fn names() -> Vec<String> {
        vec!["127.0.0.1".into(), "causeway-push".into()]
    }

    /// Whether the CA of `ca` accepts `certs`' client certificate at `at`.
    fn client_accepted(ca: &PushCerts, certs: &PushCerts, at: time::OffsetDateTime) -> bool {
        let mut roots = RootCertStore::empty();
        roots
            .add(super::certs(&ca.ca_cert).expect("ca")[0].clone())
            .expect("root");
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier");
        let leaf = super::certs(&certs.client_cert).expect("client")[0].clone();
        let seconds = u64::try_from(at.unix_timestamp()).expect("after 1970");
        verifier
            .verify_client_cert(
                &leaf,
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            )
            .is_ok()
    }

    #[test]
    fn fresh_leaves_are_not_renewed_and_due_ones_are_reissued_from_the_same_ca() {
        let now = time::OffsetDateTime::now_utc();
        let certs = PushCerts::generate(&names()).expect("generate");
        let expires = certs.leaves_expire().expect("expiry");
        let days = (expires - now).whole_days();
        assert!((LEAF_DAYS - 1..=LEAF_DAYS).contains(&days), "{days} days");
        assert!(certs.renewed(&names(), now).expect("check").is_none());

        // 340 days on, 25 are left: due.
        let later = now + time::Duration::days(340);
        let renewed = certs
            .renewed(&names(), later)
            .expect("renew")
            .expect("due leaves are renewed");
        assert_eq!(renewed.ca_cert, certs.ca_cert, "the CA stays");
        assert_eq!(renewed.ca_key, certs.ca_key);
        assert_ne!(renewed.server_cert, certs.server_cert);
        assert_ne!(renewed.client_cert, certs.client_cert);
        let renewed_days = (renewed.leaves_expire().expect("expiry") - later).whole_days();
        assert!((LEAF_DAYS - 1..=LEAF_DAYS).contains(&renewed_days));

        // The old leaf is refused once expired; the new one is accepted by the unchanged CA.
        let after_old = now + time::Duration::days(LEAF_DAYS + 1);
        assert!(!client_accepted(&certs, &certs, after_old));
        assert!(client_accepted(&certs, &renewed, after_old));
        assert!(renewed.renewed(&names(), later).expect("check").is_none());
    }

    #[test]
    fn certificates_from_cert_manager_are_read_without_a_ca_key() {
        let made = PushCerts::generate(&names()).expect("generate");
        let layout = |keys: &[(&str, &String)]| secret("ns", SERVER_SECRET, keys);
        let certs = PushCerts::from_external_secret(&layout(&[
            ("ca.crt", &made.ca_cert),
            ("tls.crt", &made.server_cert),
            ("tls.key", &made.server_key),
        ]))
        .expect("cert-manager's layout");
        assert_eq!(certs.server_cert, made.server_cert);
        assert!(certs.ca_key.is_empty());
        let missing = PushCerts::from_external_secret(&layout(&[
            ("tls.crt", &made.server_cert),
            ("tls.key", &made.server_key),
        ]))
        .expect_err("no ca.crt");
        assert!(missing.to_string().contains("ca.crt"), "{missing}");
        let mismatched = PushCerts::from_external_secret(&layout(&[
            ("ca.crt", &made.ca_cert),
            ("tls.crt", &made.server_cert),
            ("tls.key", &made.client_key),
        ]));
        assert!(
            mismatched.is_err(),
            "a key that is not the certificate's is refused"
        );
    }

    #[test]
    fn the_push_server_swaps_its_certificate_in_place() {
        let certs = PushCerts::generate(&names()).expect("generate");
        let (_config, server) = certs.rotating_server_config().expect("config");
        let served = || server.0.read().expect("lock").cert[0].clone();
        assert_eq!(served(), super::certs(&certs.server_cert).expect("pem")[0]);
        let renewed = certs
            .renewed(
                &names(),
                time::OffsetDateTime::now_utc() + time::Duration::days(350),
            )
            .expect("renew")
            .expect("due");
        server.set(&renewed).expect("set");
        assert_eq!(
            served(),
            super::certs(&renewed.server_cert).expect("pem")[0]
        );
    }

    #[test]
    fn a_directory_is_renewed_in_place_when_its_leaves_are_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = PushCerts::load_or_create_dir(dir.path(), &names()).expect("create");
        let again = PushCerts::load_or_create_dir(dir.path(), &names()).expect("load");
        assert_eq!(first, again, "good leaves are kept");
        // Leaves that expire in 10 days, written as if made long ago.
        let mut due = first.clone();
        let ca_key = KeyPair::from_pem(&first.ca_key).expect("key");
        let issuer = Issuer::from_ca_cert_pem(&first.ca_cert, ca_key).expect("issuer");
        due.issue_leaves(
            &issuer,
            &names(),
            time::OffsetDateTime::now_utc() - time::Duration::days(LEAF_DAYS - 10),
        )
        .expect("issue");
        due.write_dir(dir.path()).expect("write");
        let loaded = PushCerts::load_or_create_dir(dir.path(), &names()).expect("load");
        assert_eq!(loaded.ca_cert, first.ca_cert);
        assert_ne!(loaded.client_cert, due.client_cert, "renewed");
        let on_disk = std::fs::read_to_string(dir.path().join("proxy/tls.crt")).expect("read");
        assert_eq!(
            on_disk, loaded.client_cert,
            "the proxies' files are renewed too"
        );
    }
}
