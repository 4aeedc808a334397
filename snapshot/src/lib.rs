//! The data-plane contract: the immutable [`Snapshot`] a proxy enforces, and its wire encoding.
//!
//! A snapshot is produced by `causeway-compile` and consumed by `causeway-proxy`. It is
//! self-contained (a proxy needs nothing else to serve traffic) and fully resolved: stage
//! variables are substituted, Services are resolved to endpoint addresses, defaults are applied.
//! The proxy interprets nothing; it builds its runtime tables from this and enforces them.
//!
//! Determinism: every collection is either a `Vec` in a defined order or a `BTreeMap`, so the
//! same snapshot always encodes to the same bytes, and its [`Snapshot::version`] is a hash of
//! those bytes. This crate knows nothing of Kubernetes, tokio or hyper.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod auth;
mod integrations;
pub mod mapping;
pub mod push;
mod route_table;
mod template;
mod templates;
pub use auth::*;
pub use integrations::*;
pub use route_table::{RouteConflict, RouteHit, RouteTable};
pub use template::{Template, TemplateError, TemplatePart};
pub use templates::*;

/// The default integration timeout (API Gateway's 29 seconds).
pub const DEFAULT_INTEGRATION_TIMEOUT_MS: u32 = 29_000;
/// The largest integration timeout a route may set.
pub const MAX_INTEGRATION_TIMEOUT_MS: u32 = 300_000;

/// Everything a proxy serves, immutable once sealed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Content hash of everything else (hex, 16 characters). Set by [`Snapshot::seal`].
    #[serde(default)]
    pub version: String,
    /// Api-wide settings, sorted by id.
    #[serde(default)]
    pub apis: Vec<ApiConfig>,
    /// Every servable stage with its resolved route table(s), sorted by id.
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    /// Host names and how their requests reach stages, sorted by hostname.
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    /// Upstream backends by id. This section changes with every pod roll; everything else
    /// changes only when resources do.
    #[serde(default)]
    pub backends: BTreeMap<String, Backend>,
    /// Usage plans with their hashed API keys, sorted by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage_plans: Vec<UsagePlanConfig>,
    /// Authorizers by id (`namespace/name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorizers: BTreeMap<String, AuthorizerConfig>,
    /// TLS certificates for the custom domains, chosen by SNI; sorted by first hostname.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
}

/// A certificate chain and its private key, served for `hostnames` (exact or `*.suffix`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Lowercase host names this certificate is served for, sorted.
    pub hostnames: Vec<String>,
    /// Leaf first, then intermediates (PEM).
    pub cert_chain_pem: String,
    /// PKCS#8, PKCS#1 or SEC1 private key (PEM). Redacted in `/config_dump`.
    pub private_key_pem: String,
    /// Mutual TLS: the CA certificates (PEM) a client certificate must chain to; a handshake
    /// without such a certificate fails. `None`: no client certificate is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_pem: Option<String>,
}

/// Settings that apply to every stage of an Api.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiConfig {
    /// `namespace/name` of the Api object.
    pub id: String,
    /// Gateway responses by kind, complete (compile fills in the defaults for every kind).
    #[serde(default)]
    pub gateway_responses: BTreeMap<GatewayResponseKind, GatewayResponse>,
    /// Largest request body in bytes; `None`: the proxy's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// CORS, answered by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Source-address policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SourcePolicy>,
    /// Media types treated as binary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_media_types: Vec<String>,
    /// Set on a WebSocket Api (`protocol: WEBSOCKET`): its stages hold client sockets instead
    /// of answering requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketConfig>,
}

/// What a WebSocket Api needs beyond its routes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketConfig {
    /// The route selection expression as a JSON path into the message:
    /// `$request.body.action` is `["action"]`, `$request.body.a.b` is `["a", "b"]`.
    pub route_selection: Vec<String>,
    /// The authorizer every `@connections` management call must pass; `None`: the management
    /// API of this Api refuses every call (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_authorization: Option<RouteAuthorization>,
}

/// The kinds of response the gateway generates itself.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayResponseKind {
    /// Fallback for gateway 4xx.
    #[serde(rename = "DEFAULT_4XX")]
    Default4xx,
    /// Fallback for gateway 5xx.
    #[serde(rename = "DEFAULT_5XX")]
    Default5xx,
    /// No route matched.
    MissingAuthenticationToken,
    /// Credentials refused (401).
    Unauthorized,
    /// Authorizer denied (403).
    AccessDenied,
    /// Missing or unknown API key (403).
    InvalidApiKey,
    /// Bad SigV4 signature (403).
    InvalidSignature,
    /// Signature outside its time window (403).
    ExpiredToken,
    /// Source-address policy refused the client (403).
    WafFiltered,
    /// Throttled (429).
    Throttled,
    /// Quota used up (429).
    QuotaExceeded,
    /// Body failed validation (400).
    BadRequestBody,
    /// Missing required parameters (400).
    BadRequestParameters,
    /// Body too large (413).
    RequestTooLarge,
    /// Unsupported media type (415).
    UnsupportedMediaType,
    /// Authorizer misbehaved (500).
    AuthorizerFailure,
    /// Authorizer answer not understood (500).
    AuthorizerConfigurationError,
    /// Backend timed out (504).
    IntegrationTimeout,
    /// Backend unreachable or broken (502).
    IntegrationFailure,
    /// Unknown stage or host (404).
    ResourceNotFound,
    /// Invalid API configuration (500).
    ApiConfigurationError,
}

/// How one kind of gateway response is rendered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers; values may contain `$context` variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body template with `$context` variables (`$context.error.message`, `$context.requestId`, ...).
    pub body: String,
    /// Content type of the body.
    pub content_type: String,
}

/// CORS configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Allowed origins (`*` for any).
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    pub allow_headers: Vec<String>,
    /// Exposed response headers.
    pub expose_headers: Vec<String>,
    /// Preflight cache time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
    /// Allow credentials.
    pub allow_credentials: bool,
}

/// Source-address policy: deny wins; a non-empty allow list admits only its members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourcePolicy {
    /// Allowed CIDRs (normalized, for example `10.0.0.0/8`).
    pub allow: Vec<String>,
    /// Denied CIDRs.
    pub deny: Vec<String>,
}

/// One servable stage: its main deployment's routes and, optionally, a canary's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageConfig {
    /// `namespace/api/stage`: unique, used by hosts to point at the stage.
    pub id: String,
    /// `namespace/name` of the Api.
    pub api: String,
    /// Short Api name, for metrics labels and access logs.
    pub api_name: String,
    /// Stage name (as in URLs).
    pub name: String,
    /// What most requests are served by.
    pub main: DeploymentConfig,
    /// A share of requests served by another deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryConfig>,
    /// Default throttle for every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Access log settings.
    #[serde(default)]
    pub access_log: AccessLog,
    /// The stage's response cache, if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<StageCache>,
}

/// A deployment materialized for one stage: stage variables substituted, backends resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfig {
    /// Deployment id (content hash of the compiled Api).
    pub deployment_id: String,
    /// Stage variables in effect (for `$stageVariables` in mappings and logs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Routes, in a deterministic order (by route key).
    pub routes: Vec<RouteConfig>,
}

/// A canary on a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryConfig {
    /// Percent of requests (0-100) served by `deployment`.
    pub percent: f64,
    /// The canary's deployment, materialized with its variable overrides.
    pub deployment: DeploymentConfig,
    /// Header or cookie that keeps a client on one side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Whether canary requests may use the stage's cache entries.
    #[serde(default)]
    pub use_stage_cache: bool,
}

/// What makes a canary choice sticky.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Sticky {
    /// Hash of this request header's value.
    Header(String),
    /// Hash of this cookie's value.
    Cookie(String),
}

/// Token bucket settings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttle {
    /// Tokens per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: u32,
}

/// Access log settings for a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessLog {
    /// Write access-log lines for this stage.
    pub enabled: bool,
    /// Line template with `$context` variables; `None`: the default JSON line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: true,
            format: None,
        }
    }
}

/// HTTP method of a route; `Any` matches every method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum RouteMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// HEAD.
    Head,
    /// OPTIONS.
    Options,
    /// Any method.
    Any,
}

impl RouteMethod {
    /// The method as written in a route key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
            Self::Any => "ANY",
        }
    }

    /// Parses a method as written in a route key (upper case).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "HEAD" => Self::Head,
            "OPTIONS" => Self::Options,
            "ANY" => Self::Any,
            _ => return None,
        })
    }
}

/// What a route matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub enum RouteMatch {
    /// A method and a path pattern in matchit syntax: `/pets/{id}`, `/files/{*proxy}`.
    Path {
        /// Method (or `Any`).
        method: RouteMethod,
        /// Pattern in matchit syntax (API Gateway's `{proxy+}` becomes `{*proxy}`).
        pattern: String,
    },
    /// `$default`: what no other route matches.
    Default,
    /// A WebSocket route key (`$connect`, `$disconnect` or a custom key), matched by the value
    /// the route selection expression gives.
    Key,
}

/// One route of a materialized deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    /// The route key as the user wrote it (`GET /pets/{id}`, `$default`); used as metrics label.
    pub key: String,
    /// What it matches.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// What answers it.
    pub integration: Integration,
    /// Require an API key.
    #[serde(default)]
    pub api_key_required: bool,
    /// Throttle for this route (stage route settings), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Request validation before the integration, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<RequestValidation>,
    /// Response caching of this route on its stage, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RouteCache>,
    /// The authorizer that must allow requests, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RouteAuthorization>,
    /// WebSocket routes: the integration's answer is sent back to the client (a two-way
    /// route); otherwise it is dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_way: bool,
}

/// How a route is answered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Integration {
    /// Forward to an upstream.
    HttpProxy(HttpProxyIntegration),
    /// Answer from the gateway.
    Mock(MockIntegration),
    /// POST an API Gateway Lambda proxy event and map the answer back.
    LambdaProxy(LambdaProxyIntegration),
    /// Lambda non-proxy: the mapped payload is the invocation's input, the function's error
    /// message selects the integration response.
    Lambda(LambdaIntegration),
}

/// Forwarding to an upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpProxyIntegration {
    /// Key into [`Snapshot::backends`].
    pub backend: String,
    /// Path sent upstream. `None`: the request path after the stage's base path. Otherwise a
    /// template whose parameters are the route's path parameters (`{id}`, `{proxy}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Template>,
    /// Method sent upstream; `None`: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers added to the upstream request (stage variables already substituted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// Timeout for the whole upstream exchange up to the response head, milliseconds.
    pub timeout_ms: u32,
    /// Request parameter mapping, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_parameters: Vec<ParameterMapping>,
    /// Response parameter mapping, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_parameters: Vec<ParameterMapping>,
    /// `HTTP` (non-proxy): request templates and integration responses. `None`: the request
    /// and response pass through (`HTTP_PROXY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<IntegrationMapping>,
}

/// A fixed answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MockIntegration {
    /// Status code.
    pub status: u16,
    /// Response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body template: path parameters `{name}` are substituted per request.
    pub body: Template,
    /// Request templates and integration responses: the request template's output
    /// `{"statusCode": N}` selects the integration response, whose template renders the body.
    /// When set, `status`, `headers` and `body` are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<IntegrationMapping>,
}

/// An upstream: where to connect.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `http` or `https`.
    pub scheme: UpstreamScheme,
    /// `Host` header sent upstream (the Service's DNS name, or the URL's host).
    pub authority: String,
    /// Ready endpoints as `ip:port` or `host:port` (resolved at connect time), sorted.
    pub endpoints: Vec<String>,
    /// How the proxy chooses among the endpoints.
    #[serde(default, skip_serializing_if = "LoadBalancing::is_default")]
    pub load_balancing: LoadBalancing,
    /// Speak HTTP/2 with prior knowledge (h2c) to this plain-HTTP backend (the Service port's
    /// `appProtocol: kubernetes.io/h2c`); otherwise HTTP/1.1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// TLS origination settings of an `https` backend (from the VpcLink of its namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// How the proxy verifies an `https` backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// CA bundle (PEM) that signs the backend's certificate; `None`: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Name sent in SNI and verified; `None`: the host of [`Backend::authority`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Client certificate chain (PEM) presented to the backend (VpcLink
    /// `tls.clientCertSecretRef`); set together with `client_key_pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// The private key (PEM) of `client_cert_pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

/// Load-balancing policy of a backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalancing {
    /// Each endpoint in turn (the default: predictable, and fair for equal endpoints).
    #[default]
    RoundRobin,
    /// Power of two choices: of two random endpoints, the one with fewer requests in flight.
    LeastRequest,
}

impl LoadBalancing {
    /// Whether this is the default policy (left out of the encoding).
    pub fn is_default(&self) -> bool {
        *self == Self::RoundRobin
    }
}

/// Upstream scheme.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamScheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A host name and how its requests reach stages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostConfig {
    /// Lowercase host name without port; may start with `*.` (wildcard, one or more labels).
    pub hostname: String,
    /// Routing rules, evaluated by ascending priority before base-path mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RoutingRuleConfig>,
    /// Base-path mappings, longest base path first; `""` maps the whole host.
    pub mappings: Vec<BasePathMapping>,
    /// Answer plain-HTTP requests for this host with 308 to the same URL over HTTPS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_to_https: bool,
}

/// A base-path mapping: requests under `/{base_path}` go to a stage, with the base path removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BasePathMapping {
    /// Base path without slashes (`v1`, `prod`), or `""` for the whole host.
    pub base_path: String,
    /// [`StageConfig::id`] of the target.
    pub stage: String,
}

/// A header-based routing rule on a host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRuleConfig {
    /// Lower first.
    pub priority: u32,
    /// All must match: (lowercase header name, glob with optional leading/trailing `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Any must prefix the path (without slashes); empty: any path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_paths: Vec<String>,
    /// Remove the matched base path.
    pub strip_base_path: bool,
    /// [`StageConfig::id`] of the target.
    pub stage: String,
}

/// Errors decoding a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot.
    #[error("snapshot is not valid JSON for this version: {0}")]
    Decode(#[from] serde_json::Error),
    /// The version does not match the content.
    #[error("snapshot version {claimed} does not match its content (hash {actual})")]
    VersionMismatch {
        /// Version written in the snapshot.
        claimed: String,
        /// Version computed from the content.
        actual: String,
    },
}

impl Snapshot {
    /// Computes the content hash and stores it as [`Snapshot::version`].
    pub fn seal(mut self) -> Self {
        self.version = self.content_hash();
        self
    }

    /// [`seal`](Self::seal) with the digests ([`part_digest`]) of the stages and of the usage
    /// plans, in order, given by a caller that keeps them with the parts it reuses (a compiler
    /// then hashes only what changed). The caller vouches for them; the version is the same as
    /// `seal` gives when they are right.
    pub fn seal_with_digests(mut self, stages: &[PartDigest], plans: &[PartDigest]) -> Self {
        debug_assert_eq!(stages.len(), self.stages.len());
        debug_assert_eq!(plans.len(), self.usage_plans.len());
        let apis: Vec<PartDigest> = self.apis.iter().map(part_digest).collect();
        self.version = self.version_from(&apis, stages, plans);
        self
    }

    /// The content hash (16 hex digits): SHA-256 over the SHA-256 digests of the JSON encoding
    /// of each part in order — every Api, every stage, the hosts, the backends, every usage
    /// plan, the authorizers, the certificates — so that a compiler can keep the digests of
    /// parts that did not change ([`seal_with_digests`](Self::seal_with_digests)).
    pub fn content_hash(&self) -> String {
        let apis: Vec<PartDigest> = self.apis.iter().map(part_digest).collect();
        let stages: Vec<PartDigest> = self.stages.iter().map(part_digest).collect();
        let plans: Vec<PartDigest> = self.usage_plans.iter().map(part_digest).collect();
        self.version_from(&apis, &stages, &plans)
    }

    /// Whether [`version`](Self::version) is the content hash — or the content hash of
    /// releases before part digests (SHA-256 of the whole encoding), so that a proxy keeps
    /// accepting its saved state and an older controller across an upgrade.
    pub fn version_matches(&self) -> bool {
        self.version == self.content_hash() || self.version == self.whole_encoding_hash()
    }

    fn whole_encoding_hash(&self) -> String {
        let mut hasher = HashWriter(Sha256::new());
        let _ = serde_json::to_writer(&mut hasher, &Unversioned(self));
        hex::encode(&hasher.0.finalize()[..8])
    }

    fn version_from(
        &self,
        apis: &[PartDigest],
        stages: &[PartDigest],
        plans: &[PartDigest],
    ) -> String {
        let mut h = Sha256::new();
        h.update(b"causeway-snapshot-parts-v2");
        let list = |h: &mut Sha256, tag: u8, digests: &[PartDigest]| {
            h.update([tag]);
            h.update((digests.len() as u64).to_le_bytes());
            for d in digests {
                h.update(d);
            }
        };
        list(&mut h, 1, apis);
        list(&mut h, 2, stages);
        list(&mut h, 3, &[part_digest(&self.hosts)]);
        list(&mut h, 4, &[part_digest(&self.backends)]);
        list(&mut h, 5, plans);
        list(&mut h, 6, &[part_digest(&self.authorizers)]);
        list(&mut h, 7, &[part_digest(&self.certificates)]);
        hex::encode(&h.finalize()[..8])
    }

    /// The wire encoding (JSON, deterministic).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and checks the version against the content ([`version_matches`](Self::version_matches)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        if !snapshot.version_matches() {
            let actual = snapshot.content_hash();
            return Err(SnapshotError::VersionMismatch {
                claimed: snapshot.version,
                actual,
            });
        }
        Ok(snapshot)
    }

    /// The stage with this id.
    pub fn stage(&self, id: &str) -> Option<&StageConfig> {
        self.stages
            .binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.stages[i])
    }

    /// The Api with this id.
    pub fn api(&self, id: &str) -> Option<&ApiConfig> {
        self.apis
            .binary_search_by(|a| a.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.apis[i])
    }
}

/// The SHA-256 digest of one part of a snapshot.
pub type PartDigest = [u8; 32];

/// SHA-256 of a part's JSON encoding (a stage, a usage plan, an Api), streamed into the hasher:
/// the unit [`Snapshot::content_hash`] is made of.
pub fn part_digest<T: Serialize>(part: &T) -> PartDigest {
    let mut hasher = HashWriter(Sha256::new());
    // Serializing plain data with string keys cannot fail.
    let _ = serde_json::to_writer(&mut hasher, part);
    hasher.0.finalize().into()
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A snapshot serialized with an empty version (the hash of releases before part digests).
struct Unversioned<'a>(&'a Snapshot);

impl Serialize for Unversioned<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut copy = self.0.clone();
        copy.version.clear();
        copy.serialize(serializer)
    }
}
