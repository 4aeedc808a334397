//! SERVICE_ACCOUNT authorizers: Kubernetes projected service-account tokens, checked like JWTs
//! (issuer, audience, `exp`/`nbf`/`iat`) against the cluster's keys delivered in the snapshot
//! (proxies hold no cluster credentials), then allowed by namespace and name from `sub`
//! (`system:serviceaccount:NS:NAME`). A valid token of an account not on the list is 403.

use causeway_snapshot::ServiceAccountSettings;
use http::HeaderMap;
use serde_json::Value;

use super::jwt::JwtAuthorizer;
use super::{AuthError, AuthState, LiveAuthorizer, Principal};

/// A SERVICE_ACCOUNT authorizer, ready to check tokens.
pub(crate) struct ServiceAccountAuthorizer {
    jwt: JwtAuthorizer,
    /// `(namespace, name)`; name `*` admits the whole namespace.
    allow: Vec<(String, String)>,
}

impl ServiceAccountAuthorizer {
    pub fn build(id: &str, settings: &ServiceAccountSettings) -> Result<Self, String> {
        Ok(Self {
            jwt: JwtAuthorizer::build(id, &settings.jwt)?,
            allow: settings.allow.clone(),
        })
    }

    pub async fn authorize(
        &self,
        state: &AuthState,
        authorizer: &LiveAuthorizer,
        headers: &HeaderMap,
        uri: &http::Uri,
    ) -> Result<Principal, AuthError> {
        let mut principal = self
            .jwt
            .authorize(state, authorizer, headers, uri, &[])
            .await?;
        let sub = principal.principal_id.clone().unwrap_or_default();
        let Some((namespace, name)) = service_account(&sub) else {
            return Err(AuthError::Denied(format!(
                "{sub:?} is not a service account"
            )));
        };
        if !self.admits(namespace, name) {
            return Err(AuthError::Denied(format!(
                "service account {namespace}/{name} is not allowed"
            )));
        }
        principal
            .context
            .insert("namespace".into(), Value::String(namespace.to_string()));
        principal
            .context
            .insert("serviceAccount".into(), Value::String(name.to_string()));
        Ok(principal)
    }

    fn admits(&self, namespace: &str, name: &str) -> bool {
        self.allow
            .iter()
            .any(|(ns, n)| ns == namespace && (n == "*" || n == name))
    }
}

/// `system:serviceaccount:NS:NAME` → `(NS, NAME)`.
fn service_account(sub: &str) -> Option<(&str, &str)> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_service_account_subjects_are_read() {
        assert_eq!(
            service_account("system:serviceaccount:shop:checkout"),
            Some(("shop", "checkout"))
        );
        assert_eq!(service_account("system:serviceaccount:shop"), None);
        assert_eq!(service_account("system:serviceaccount::x"), None);
        assert_eq!(service_account("user-42"), None);
        assert_eq!(service_account("system:serviceaccount:a:b:c"), None);
    }
}
