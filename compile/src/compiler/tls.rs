//! TLS material from Secrets: a `kubernetes.io/tls` Secret's `tls.crt` / `tls.key` (base64 in
//! `data`, or plain in `stringData` as in files written by hand), checked to be PEM of the
//! right kind so that a proxy never receives a certificate it cannot load.

use causeway_snapshot::Certificate;
use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Input;
use super::Problem;
use crate::reasons;

/// Key of the certificate chain in a TLS Secret.
pub(crate) const TLS_CRT: &str = "tls.crt";
/// Key of the private key in a TLS Secret.
pub(crate) const TLS_KEY: &str = "tls.key";

/// The Secret `namespace/name`.
pub(crate) fn secret<'a>(
    inventory: &'a Input<'_>,
    namespace: &str,
    name: &str,
) -> Option<&'a Secret> {
    inventory.secret(namespace, name)
}

/// The text of `key` in the Secret: `stringData` wins over `data`, as the API server merges.
pub(crate) fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone());
    }
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Resolves `field` (a `tlsSecretRef`) to a certificate for `hostname`.
pub(crate) fn tls_certificate(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
    hostname: &str,
) -> Result<Certificate, Problem> {
    let missing = |what: String| {
        Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!("{field}: Secret {namespace}/{name} {what}"),
        )
    };
    let secret =
        secret(inventory, namespace, name).ok_or_else(|| missing("does not exist".into()))?;
    let chain = secret_text(secret, TLS_CRT).ok_or_else(|| missing(format!("has no {TLS_CRT}")))?;
    let key = secret_text(secret, TLS_KEY).ok_or_else(|| missing(format!("has no {TLS_KEY}")))?;
    let invalid = |what: &str| {
        Problem::invalid(
            reasons::INVALID,
            format!("{field}: Secret {namespace}/{name}: {what}"),
        )
    };
    let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&format!("{TLS_CRT} is not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(&format!("{TLS_CRT} holds no certificate")));
    }
    PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| invalid(&format!("{TLS_KEY} is not a PEM private key: {e}")))?;
    Ok(Certificate {
        hostnames: vec![hostname.to_string()],
        cert_chain_pem: chain,
        private_key_pem: key,
        client_ca_pem: None,
    })
}

/// Key of a CA bundle in a Secret (VpcLink `tls.caSecretRef`).
pub(crate) const CA_CRT: &str = "ca.crt";

/// Resolves a CA bundle Secret (`ca.crt`, PEM certificates).
pub(crate) fn ca_bundle(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<String, Problem> {
    let missing = |what: String| {
        Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!("{field}: Secret {namespace}/{name} {what}"),
        )
    };
    let secret =
        secret(inventory, namespace, name).ok_or_else(|| missing("does not exist".into()))?;
    let ca = secret_text(secret, CA_CRT).ok_or_else(|| missing(format!("has no {CA_CRT}")))?;
    let certs = CertificateDer::pem_slice_iter(ca.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Problem::invalid(
                reasons::INVALID,
                format!("{field}: Secret {namespace}/{name}: {CA_CRT} is not PEM: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(missing(format!("has no certificate in {CA_CRT}")));
    }
    Ok(ca)
}

/// Resolves a domain's `clientCaSecretRef` (mutual TLS): `ca.crt` must hold PEM certificates
/// that are X.509 CA certificates (basic constraints `cA: true`), so that the proxy can build a
/// client verifier from them. A bundle that fails any check rejects the Stage (`Invalid`).
pub(crate) fn client_ca_bundle(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<String, Problem> {
    let missing = |what: String| {
        Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!("{field}: Secret {namespace}/{name} {what}"),
        )
    };
    let secret =
        secret(inventory, namespace, name).ok_or_else(|| missing("does not exist".into()))?;
    let bundle = secret_text(secret, CA_CRT).ok_or_else(|| missing(format!("has no {CA_CRT}")))?;
    let invalid = |what: String| {
        Problem::invalid(
            reasons::INVALID,
            format!("{field}: Secret {namespace}/{name}: {CA_CRT} {what}"),
        )
    };
    if CertificateDer::pem_slice_iter(bundle.as_bytes())
        .next()
        .is_none()
    {
        return Err(invalid("has no PEM certificate".into()));
    }
    for (i, der) in CertificateDer::pem_slice_iter(bundle.as_bytes()).enumerate() {
        let der = der.map_err(|e| invalid(format!("is not PEM: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| invalid(format!("certificate {i} is not an X.509 certificate: {e}")))?;
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            return Err(invalid(format!(
                "certificate {i} ({}) is not a CA certificate (basic constraints cA is not true)",
                cert.subject()
            )));
        }
    }
    Ok(bundle)
}

/// Merges per-hostname certificates: one entry per distinct chain and key, hostnames sorted;
/// the first claim of a hostname wins (stages are visited oldest first).
pub(crate) fn merge(claims: Vec<Certificate>) -> Vec<Certificate> {
    let mut taken = std::collections::BTreeSet::new();
    let mut merged: Vec<Certificate> = Vec::new();
    for claim in claims {
        for hostname in claim.hostnames {
            if !taken.insert(hostname.clone()) {
                continue;
            }
            match merged.iter_mut().find(|c| {
                c.cert_chain_pem == claim.cert_chain_pem
                    && c.private_key_pem == claim.private_key_pem
                    && c.client_ca_pem == claim.client_ca_pem
            }) {
                Some(c) => c.hostnames.push(hostname),
                None => merged.push(Certificate {
                    hostnames: vec![hostname],
                    cert_chain_pem: claim.cert_chain_pem.clone(),
                    private_key_pem: claim.private_key_pem.clone(),
                    client_ca_pem: claim.client_ca_pem.clone(),
                }),
            }
        }
    }
    for c in &mut merged {
        c.hostnames.sort();
    }
    merged.sort_by(|a, b| a.hostnames.cmp(&b.hostnames));
    merged
}

/// A client certificate and its key, checked: PEM of the right kind, and the key is the one of
/// the first certificate (so that a proxy never receives a pair it cannot present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCertificate {
    /// The chain, PEM.
    pub cert_chain_pem: String,
    /// The private key, PEM.
    pub private_key_pem: String,
}

/// Resolves `field` (a `kubernetes.io/tls` Secret presented as client certificate).
pub(crate) fn client_certificate(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<ClientCertificate, Problem> {
    let cert = tls_certificate(inventory, field, namespace, name, "")?;
    let invalid = |what: String| {
        Problem::invalid(
            reasons::INVALID,
            format!("{field}: Secret {namespace}/{name}: {what}"),
        )
    };
    let chain = CertificateDer::pem_slice_iter(cert.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{TLS_CRT} is not PEM certificates: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(cert.private_key_pem.as_bytes())
        .map_err(|e| invalid(format!("{TLS_KEY} is not a PEM private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        invalid(format!(
            "{TLS_KEY} does not belong to the first certificate of {TLS_CRT}: {e}"
        ))
    })?;
    Ok(ClientCertificate {
        cert_chain_pem: cert.cert_chain_pem,
        private_key_pem: cert.private_key_pem,
    })
}
