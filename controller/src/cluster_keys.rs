//! The cluster's service-account token issuer and keys, for `SERVICE_ACCOUNT` authorizers.
//!
//! Proxies have no Kubernetes credentials, so the controller reads the API server's OIDC
//! discovery document ([`DISCOVERY_PATH`], for the issuer) and its JWKS ([`JWKS_PATH`]), hands
//! them to `compile` through `CompileOptions`, and the keys travel in the snapshot. Both are
//! non-resource URLs: the chart binds the controller to the built-in ClusterRole
//! `system:service-account-issuer-discovery` for them. They are read before the first compile
//! and every [`REFRESH_EVERY`] after; a change (the API server rotated its signing keys) wakes
//! the reconciler, which compiles and pushes a snapshot with the new keys. A failed read keeps
//! the last keys read (a passing API server hiccup must not take every authorizer down).

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// The API server's OIDC discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The API server's service-account signing keys.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// How often the keys are read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// The issuer and keys of the cluster's service-account tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKeys {
    /// `issuer` of the discovery document (the `iss` of the tokens).
    pub issuer: String,
    /// The JWKS, re-serialized with its keys sorted by `kid` so that the same keys always give
    /// the same snapshot.
    pub jwks: String,
}

/// Why the keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterKeysError {
    /// The request failed (no RBAC for the non-resource URL, a server without issuer
    /// discovery, a network error).
    #[error("cannot read {path} from the API server: {source}")]
    Request {
        /// The path asked for.
        path: &'static str,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// The answer is not what the path serves.
    #[error("{path} from the API server is malformed: {message}")]
    Malformed {
        /// The path asked for.
        path: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads the issuer and keys from the API server.
pub async fn fetch(client: &Client) -> Result<ClusterKeys, ClusterKeysError> {
    let discovery = get(client, DISCOVERY_PATH).await?;
    let jwks = get(client, JWKS_PATH).await?;
    parse(&discovery, &jwks)
}

async fn get(client: &Client, path: &'static str) -> Result<String, ClusterKeysError> {
    let request =
        http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| ClusterKeysError::Malformed {
                path,
                message: e.to_string(),
            })?;
    client
        .request_text(request)
        .await
        .map_err(|source| ClusterKeysError::Request { path, source })
}

/// The issuer of a discovery document and the canonical form of a JWKS.
pub fn parse(discovery: &str, jwks: &str) -> Result<ClusterKeys, ClusterKeysError> {
    let malformed = |path, message: String| ClusterKeysError::Malformed { path, message };
    let document: Value = serde_json::from_str(discovery)
        .map_err(|e| malformed(DISCOVERY_PATH, format!("not JSON: {e}")))?;
    let issuer = document
        .get("issuer")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| malformed(DISCOVERY_PATH, "no \"issuer\"".into()))?
        .to_string();
    let mut set: Value =
        serde_json::from_str(jwks).map_err(|e| malformed(JWKS_PATH, format!("not JSON: {e}")))?;
    let keys = set
        .get_mut("keys")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| malformed(JWKS_PATH, "no \"keys\" array".into()))?;
    keys.sort_by(|a, b| {
        let kid = |k: &Value| k.get("kid").and_then(Value::as_str).map(str::to_string);
        kid(a).cmp(&kid(b))
    });
    let jwks = serde_json::to_string(&set).map_err(|e| malformed(JWKS_PATH, e.to_string()))?;
    Ok(ClusterKeys { issuer, jwks })
}

/// Reads the keys now (logging a failure), then every `every` in a task on `tasks`; the
/// receiver holds the latest keys read, and `wake` is notified when they change.
pub async fn watch_keys(
    client: Client,
    every: Duration,
    wake: Arc<Notify>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> watch::Receiver<Option<ClusterKeys>> {
    let first = match fetch(&client).await {
        Ok(keys) => {
            info!(issuer = %keys.issuer, "service-account keys read from the API server");
            Some(keys)
        }
        Err(e) => {
            warn!("{e}; SERVICE_ACCOUNT authorizers without jwksSecretRef stay unresolved");
            None
        }
    };
    let (tx, rx) = watch::channel(first);
    tasks.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match fetch(&client).await {
                Ok(keys) => {
                    let changed = tx.send_if_modified(|current| {
                        if current.as_ref() == Some(&keys) {
                            false
                        } else {
                            *current = Some(keys.clone());
                            true
                        }
                    });
                    if changed {
                        info!(issuer = %keys.issuer, "service-account keys changed on the API server");
                        wake.notify_one();
                    }
                }
                Err(e) => warn!("{e}; keeping the keys read before"),
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_comes_from_the_discovery_document_and_keys_are_sorted_by_kid() {
        let keys = parse(
            r#"{"issuer":"https://kubernetes.default.svc","jwks_uri":"https://x/openid/v1/jwks"}"#,
            r#"{"keys":[{"kid":"b","kty":"RSA"},{"kid":"a","kty":"RSA"}]}"#,
        )
        .expect("parses");
        assert_eq!(keys.issuer, "https://kubernetes.default.svc");
        assert_eq!(
            keys.jwks,
            r#"{"keys":[{"kid":"a","kty":"RSA"},{"kid":"b","kty":"RSA"}]}"#
        );
    }

    #[test]
    fn a_discovery_document_without_an_issuer_or_a_jwks_without_keys_is_malformed() {
        assert!(matches!(
            parse(r#"{"jwks_uri":"x"}"#, r#"{"keys":[]}"#),
            Err(ClusterKeysError::Malformed {
                path: DISCOVERY_PATH,
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"issuer":"x"}"#, r#"{"nokeys":1}"#),
            Err(ClusterKeysError::Malformed {
                path: JWKS_PATH,
                ..
            })
        ));
    }
}
