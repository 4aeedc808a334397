//! `Stage`: a named, addressable release of an Api with its settings.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ApiRef, Condition, SecretRef, StringMap, ThrottleSpec};

/// A stage of an Api: which deployment it serves (pinned id or the newest), its variables,
/// throttling, cache, canary, access log and custom domains.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "Stage",
    plural = "stages",
    shortname = "cwstage",
    category = "causeway",
    namespaced,
    status = "StageStatus",
    derive = "PartialEq",
    cel,
    doc = "A stage of an Api: the deployment it serves and its settings (API Gateway's stage).",
    printcolumn(name = "Api", type_ = "string", json_path = ".spec.apiRef.name"),
    printcolumn(
        name = "Deployment",
        type_ = "string",
        json_path = ".status.deploymentId"
    ),
    printcolumn(
        name = "Canary",
        type_ = "number",
        json_path = ".spec.canary.percentTraffic"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.urls[0]"),
    printcolumn(
        name = "Programmed",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Programmed\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.deploymentId) != (has(self.autoDeploy) && self.autoDeploy)").message("set exactly one of deploymentId and autoDeploy: true"))]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// The Api this stage serves (same namespace).
    pub api_ref: ApiRef,
    /// Stage name used in URLs (`/{stageName}/...` on the default endpoint); default
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,128}$')").message("stageName may hold letters, digits, '-' and '_' only"))]
    pub stage_name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Serve this deployment (an id from `Api.status.deployments`). Rolling back is setting an
    /// older id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// Always serve the newest deployment of the Api.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_deploy: Option<bool>,
    /// Stage variables, used as `${stageVariables.name}` in integrations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: StringMap,
    /// Default throttling for every route of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
    /// Per-route overrides (throttling, caching), by route key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_settings: Vec<RouteSettings>,
    /// A canary: a share of traffic served by another deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// The stage's response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Access log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSpec>,
    /// Custom domains that route to this stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainSpec>,
}

/// Settings for one route of a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSettings {
    /// The route key these settings apply to, for example `GET /pets/{id}`.
    pub route_key: String,
    /// Throttling for this route, instead of the stage default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
    /// Cache this route's responses (needs `cache.enabled` on the stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_enabled: Option<bool>,
    /// Time to live of this route's cache entries, seconds (0-3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub cache_ttl_seconds: Option<u32>,
    /// Request parts that make up the cache key besides the path: `querystring.NAME`,
    /// `header.NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_key_parameters: Vec<String>,
    /// What to do with a client's `Cache-Control: max-age=0`: `IGNORE` (default) or
    /// `FAIL_WITH_403`, or `ALLOW` to let any client invalidate the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_invalidation: Option<CacheInvalidation>,
}

/// How a client's request to bypass the cache is handled.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CacheInvalidation {
    /// Any client may invalidate the entry.
    Allow,
    /// Ignore the header and answer from the cache.
    Ignore,
    /// Refuse the request with 403.
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
}

/// A canary release on a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The deployment that serves the canary's share.
    pub deployment_id: String,
    /// Share of requests sent to the canary, 0-100 (fractions allowed).
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent_traffic: f64,
    /// Stage variables that differ for the canary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_variable_overrides: StringMap,
    /// Let canary requests use the stage's cache entries (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_stage_cache: Option<bool>,
    /// Keep a client on one side: the value of this header or cookie chooses, instead of chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySpec>,
}

/// What keeps a client on one side of a canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.header) != has(self.cookie)").message("set exactly one of header and cookie"))]
pub struct StickySpec {
    /// Request header whose value chooses the side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Cookie whose value chooses the side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

/// The stage's response cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Turn the cache on.
    pub enabled: bool,
    /// Memory the cache may use on each proxy, bytes (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub capacity_bytes: Option<u64>,
    /// Default time to live, seconds (default 300, 0-3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub ttl_seconds: Option<u32>,
    /// Add `X-Cache: Hit` / `Miss` to cached routes' responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_status_header: Option<bool>,
    /// Let every caller of a route with an authorizer or an API key share its cache entries
    /// (default false: entries are kept per caller — principal id and API key id — and a
    /// caller that cannot be told apart from others is not cached). Set it only for answers
    /// that do not depend on who asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_across_principals: Option<bool>,
}

/// Access log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSpec {
    /// Write one line per request (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Line format with `$context` variables, for example
    /// `{"requestId":"$context.requestId","status":"$context.status"}`. Default: a JSON object with
    /// the common fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// A custom domain that routes to this stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    /// Host name, for example `api.example.com`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9*]([-a-z0-9.]*[a-z0-9])?$')").message("hostname must be a lowercase DNS name"))]
    pub hostname: String,
    /// Base path mapped to this stage, for example `v1`; empty maps the whole domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// A `kubernetes.io/tls` Secret with the certificate for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_ref: Option<SecretRef>,
    /// Mutual TLS: a Secret holding `ca.crt` (PEM CA certificates, API Gateway's truststore).
    /// Clients must present a certificate that chains to one of them, or the handshake fails.
    /// Needs `tlsSecretRef`; every stage on the same hostname must name the same CA. The
    /// certificate is `$context.identity.clientCert.*` in mappings and access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_secret_ref: Option<SecretRef>,
    /// Redirect plain-HTTP requests for this host to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to_https: Option<bool>,
    /// Routing rules: requests to this host matching a rule's conditions go to this stage,
    /// ahead of base-path mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_rules: Vec<RoutingRule>,
}

/// A routing rule on a custom domain (API Gateway's routing rules).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRule {
    /// Lower numbers are evaluated first; must be unique per hostname.
    #[schemars(range(min = 1, max = 1000000))]
    pub priority: u32,
    /// Header conditions, all of which must match (at most 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub match_headers: Vec<HeaderMatch>,
    /// Base paths, any of which must prefix the request path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_base_paths: Vec<String>,
    /// Remove the matched base path before routing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_base_path: Option<bool>,
}

/// One header condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub header: String,
    /// Value to match; a leading or trailing `*` matches any suffix or prefix.
    pub value_glob: String,
}

/// Observed state of a Stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// URLs that reach the stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The deployment the stage serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The deployment the canary serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_deployment_id: Option<String>,
    /// Proxies that serve this Stage as it is now (they applied the snapshot in which its
    /// status last changed, or a later one), out of those connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<ProxyCounts>,
}

/// How many proxies run the current snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyCounts {
    /// Proxies connected to the controller.
    pub connected: u32,
    /// Of those, how many applied the snapshot in which this Stage's status last changed, or
    /// a later one.
    pub applied: u32,
}
