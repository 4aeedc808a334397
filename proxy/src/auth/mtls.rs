//! MTLS authorizer: the client certificate was verified against the domain's CA during the
//! handshake (`server::tls`); this checks that the request came with one at all (a route can be
//! reached over a domain without mutual TLS, or plain HTTP) and that one of its names — subject
//! common name or a DNS, URI or email SAN — is allowed.

use std::sync::Arc;

use causeway_snapshot::MtlsSettings;

use super::{AuthError, Principal};
use crate::context::ClientCert;

/// An MTLS authorizer, ready to use.
pub(crate) struct MtlsAuthorizer {
    /// Exact names.
    exact: Vec<String>,
    /// `.suffix` of `*.suffix` patterns.
    suffixes: Vec<String>,
}

impl MtlsAuthorizer {
    pub fn build(settings: &MtlsSettings) -> Self {
        let mut exact = Vec::new();
        let mut suffixes = Vec::new();
        for pattern in &settings.allowed_subjects {
            match pattern.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => suffixes.push(suffix.to_string()),
                _ => exact.push(pattern.clone()),
            }
        }
        Self { exact, suffixes }
    }

    /// Whether `name` is allowed (every name when no pattern is set).
    fn allows(&self, name: &str) -> bool {
        if self.exact.is_empty() && self.suffixes.is_empty() {
            return true;
        }
        self.exact.iter().any(|e| e == name)
            || self
                .suffixes
                .iter()
                .any(|s| name.len() > s.len() && name.ends_with(s.as_str()))
    }

    /// 401 without a verified certificate, 403 when none of its names is allowed. The
    /// principal is the certificate's subject DN.
    pub fn authorize(&self, cert: Option<Arc<ClientCert>>) -> Result<Principal, AuthError> {
        let cert = cert.ok_or_else(|| {
            AuthError::MissingIdentity(
                "client certificate (the route needs a mutual-TLS domain)".into(),
            )
        })?;
        let allowed = if self.exact.is_empty() && self.suffixes.is_empty() {
            true
        } else {
            cert.names.iter().any(|n| self.allows(n))
        };
        if !allowed {
            return Err(AuthError::Denied(format!(
                "client certificate {:?} is not among the allowed subjects",
                cert.subject_dn
            )));
        }
        Ok(Principal {
            principal_id: Some(cert.subject_dn.clone()),
            ..Principal::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> Option<Arc<ClientCert>> {
        Some(Arc::new(ClientCert {
            subject_dn: "CN=x".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            ..ClientCert::default()
        }))
    }

    fn authorizer(allowed: &[&str]) -> MtlsAuthorizer {
        MtlsAuthorizer::build(&MtlsSettings {
            allowed_subjects: allowed.iter().map(|n| n.to_string()).collect(),
        })
    }

    #[test]
    fn no_certificate_is_unauthorized_and_an_unlisted_name_is_denied() {
        let a = authorizer(&["billing.example.com", "*.ops.example.com"]);
        assert!(matches!(
            a.authorize(None),
            Err(AuthError::MissingIdentity(_))
        ));
        assert!(matches!(
            a.authorize(cert(&["other.example.com"])),
            Err(AuthError::Denied(_))
        ));
        assert!(matches!(
            a.authorize(cert(&["ops.example.com"])),
            Err(AuthError::Denied(_))
        ));
        assert!(a.authorize(cert(&["x", "billing.example.com"])).is_ok());
        assert!(a.authorize(cert(&["a.ops.example.com"])).is_ok());
    }

    #[test]
    fn without_patterns_any_verified_certificate_passes() {
        let p = authorizer(&[]).authorize(cert(&[])).expect("allowed");
        assert_eq!(p.principal_id.as_deref(), Some("CN=x"));
    }
}
