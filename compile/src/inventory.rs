//! The input of `compile`: every object it may read.

use causeway_crds::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize};

/// Every object `compile` reads. Order does not matter: compile sorts what it reads.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Api objects.
    pub apis: Vec<Api>,
    /// Route objects.
    pub routes: Vec<Route>,
    /// Stage objects.
    pub stages: Vec<Stage>,
    /// UsagePlan objects.
    pub usage_plans: Vec<UsagePlan>,
    /// Authorizer objects.
    pub authorizers: Vec<Authorizer>,
    /// VpcLink objects.
    pub vpc_links: Vec<VpcLink>,
    /// Services referenced by integrations.
    pub services: Vec<Service>,
    /// EndpointSlices of those Services (v1; v1beta1 objects are converted when loaded).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets referenced by usage plans, authorizers and domains.
    pub secrets: Vec<Secret>,
    /// ConfigMaps holding OpenAPI documents named by `Api.spec.definition`.
    pub config_maps: Vec<ConfigMap>,
    /// Deployment history: earlier deployments that pinned stages may still serve.
    pub deployments: Vec<DeploymentRecord>,
}

/// Settings of the compilation that are not resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Domain of the default endpoints: an Api `pets` in namespace `shop` is served at
    /// `pets.shop.{domain}/{stage}/...`. Default `localhost` (curl resolves `*.localhost` to
    /// 127.0.0.1), set to a wildcard DNS name in clusters.
    pub execute_api_domain: String,
    /// The cluster's DNS suffix for Service host names (default `cluster.local`).
    pub cluster_domain: String,
    /// The cluster's service-account token issuer (the controller reads it from the API
    /// server's OIDC discovery document); SERVICE_ACCOUNT authorizers default to it.
    pub service_account_issuer: Option<String>,
    /// The cluster's service-account JWKS (JSON), read by the controller from
    /// `/openid/v1/jwks`: proxies have no cluster credentials, so the keys travel in the snapshot.
    pub service_account_jwks: Option<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            execute_api_domain: "localhost".into(),
            cluster_domain: "cluster.local".into(),
            service_account_issuer: None,
            service_account_jwks: None,
        }
    }
}

/// An immutable deployment: the compiled, not yet stage-resolved, definition of an Api.
/// Its id is a short content hash of `definition`, so equal definitions have equal ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    /// Content hash (10 lowercase hex digits).
    pub id: String,
    /// `namespace/name` of the Api.
    pub api: String,
    /// The compiled definition (routes with stage-variable templates unresolved). Its shape is
    /// private to `compile`; it is stored as JSON by the deployment history. Shared, because
    /// every compile returns the record of every Api and most are unchanged.
    pub definition: std::sync::Arc<serde_json::Value>,
}
