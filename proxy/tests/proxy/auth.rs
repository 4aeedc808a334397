//! Authorization: resource policy, API keys, JWT, REQUEST/TOKEN functions, SigV4 — each against
//! real servers on 127.0.0.1.

mod api_keys;
mod function;
mod jwt;
mod policy;
mod service_account;
pub(crate) mod sigv4;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use causeway_snapshot::{
    AuthorizerConfig, AuthorizerSettings, Backend, RouteAuthorization, RouteConfig, Snapshot,
    UpstreamScheme,
};

/// Adds an authorizer to a route.
pub fn with_authorizer(mut route: RouteConfig, authorizer: &str, scopes: &[&str]) -> RouteConfig {
    route.authorization = Some(RouteAuthorization {
        authorizer: authorizer.to_string(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    });
    route
}

/// An authorizer entry for the snapshot.
pub fn authorizer(
    id: &str,
    identity_source: &[&str],
    forward: &[(&str, &str)],
    settings: AuthorizerSettings,
) -> AuthorizerConfig {
    AuthorizerConfig {
        id: id.to_string(),
        api: crate::support::API.to_string(),
        identity_source: identity_source.iter().map(|s| s.to_string()).collect(),
        forward_headers: forward
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        settings,
    }
}

/// Adds authorizers (and backends) to a built snapshot and seals it again.
pub fn add_authorizers(
    mut snapshot: Snapshot,
    authorizers: Vec<AuthorizerConfig>,
    backends: &[(&str, SocketAddr)],
) -> Snapshot {
    for a in authorizers {
        snapshot.authorizers.insert(a.id.clone(), a);
    }
    for (id, addr) in backends {
        snapshot.backends.insert(
            id.to_string(),
            Backend {
                scheme: UpstreamScheme::Http,
                authority: format!("{id}.default.svc"),
                endpoints: vec![addr.to_string()],
                load_balancing: Default::default(),
                http2: false,
                tls: None,
            },
        );
    }
    snapshot.seal()
}
