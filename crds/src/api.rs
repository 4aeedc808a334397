//! `Api`: one API, its protocol, policy, gateway responses, CORS and models.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, ObjectRef, StringMap};

/// An API served by Causeway: the counterpart of an Amazon API Gateway REST/HTTP/WebSocket API.
///
/// Routes, stages and authorizers refer to it by name from the same namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "Api",
    plural = "apis",
    shortname = "cwapi",
    category = "causeway",
    namespaced,
    status = "ApiStatus",
    derive = "PartialEq",
    cel,
    doc = "An API served by Causeway (Amazon API Gateway's API).",
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.apiType"),
    printcolumn(
        name = "Latest",
        type_ = "string",
        json_path = ".status.latestDeploymentId",
        description = "newest deployment id"
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// `HTTP` (default) or `WEBSOCKET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ApiProtocol>,
    /// Which kind of Amazon API Gateway API this one behaves as: `REST` or `HTTP`. It selects
    /// AWS's defaults: an unknown route answers 403 `{"message":"Missing Authentication Token"}`
    /// on `REST` and 404 `{"message":"Not Found"}` on `HTTP`; the default Lambda proxy payload
    /// format is `1.0` on `REST` and `2.0` on `HTTP`. Features AWS offers only on the other kind
    /// still work, and are noted in the Route's `Accepted` condition message. Unset: the 403 of
    /// `REST` and the payload `2.0` of `HTTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_type: Option<ApiType>,
    /// Free text shown in `kubectl describe` and kept in deployment records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Turn off the API's default endpoint `{api}.{namespace}.{executeApiDomain}/{stage}`
    /// (API Gateway's name), leaving only the Stages' custom domains. Set it when those domains
    /// require a client certificate: the default endpoint never asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_execute_api_endpoint: Option<bool>,
    /// Deprecated spelling of `!disableExecuteApiEndpoint`: `false` turns the default endpoint
    /// off. Use `disableExecuteApiEndpoint`; both set must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_api_endpoint: Option<bool>,
    /// Where API keys are read from: `HEADER` (`x-api-key`, default) or `AUTHORIZER`
    /// (the usage identifier key returned by a REQUEST/TOKEN authorizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_source: Option<ApiKeySource>,
    /// Resource policy: which client addresses may call the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ResourcePolicy>,
    /// Overrides of the responses the gateway itself sends (errors before or instead of the backend).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_responses: Vec<GatewayResponseSpec>,
    /// Cross-origin resource sharing, answered by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// Media types treated as binary (for example `image/png` or `*/*`); used by Lambda-proxy
    /// integrations to decide base64 encoding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_media_types: Vec<String>,
    /// Largest request body accepted, in bytes (default: the proxy's limit, 10 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_body_bytes: Option<u64>,
    /// Models: named JSON Schemas (draft-04 or newer) used by route request validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSpec>,
    /// An OpenAPI document (3.0/3.1 or Swagger 2.0, YAML or JSON, with the
    /// `x-amazon-apigateway-*` extensions) that `compile` imports into this Api's routes,
    /// authorizers, models and settings, exactly as `causeway import openapi` would. Route CRs
    /// win over operations with the same route key, Authorizer CRs over schemes that import to
    /// the same name, and fields set in this spec over the document's. What the import did
    /// not carry over, or why it failed, is the `DefinitionImported` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<ApiDefinition>,
    /// WebSocket APIs only: the expression that selects the route from a message,
    /// `$request.body.NAME` or a nested `$request.body.a.b` (default `$request.body.action`).
    /// A message that is not a JSON object, or has no string there, goes to `$default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_selection_expression: Option<String>,
    /// WebSocket APIs only: where the `$connect` request's API key is read. Only
    /// `$request.header.x-api-key` (the default) is served; `$context.authorizer.usageIdentifierKey`
    /// is refused until keys from authorizers are built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_selection_expression: Option<String>,
    /// WebSocket APIs only: a `SIGV4` Authorizer of this Api that every call to the
    /// `@connections` management API (`POST`/`GET`/`DELETE /{stage}/@connections/{id}`) must
    /// pass, as AWS requires IAM (SigV4) there. Unset: the management API refuses every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_authorizer_ref: Option<ObjectRef>,
}

/// Where an Api's OpenAPI document is: set exactly one of `configMapRef` and `inline`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiDefinition {
    /// A key of a ConfigMap in the Api's namespace. The controller reads ConfigMaps labelled
    /// `causeway.dev/definition: "true"` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// The document itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// The import mapping file (YAML) for what only AWS can name: `lambda` functions,
    /// `vpcLinks`, `cognito` pools, `securitySchemes`, `sigv4`, `defaultIntegration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
}

/// A reference to one key of a ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    pub name: String,
    /// Key in its `data`.
    pub key: String,
}

/// The protocol of an Api.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiProtocol {
    /// Request/response HTTP (HTTP/1.1 and HTTP/2).
    Http,
    /// WebSocket API: route keys `$connect`, `$disconnect`, `$default` and custom keys.
    Websocket,
}

/// Amazon API Gateway's two kinds of request/response API.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiType {
    /// A REST API (API Gateway v1): mapping templates, non-proxy integrations, API keys.
    Rest,
    /// An HTTP API (API Gateway v2): proxy integrations, JWT authorizers, parameter mapping.
    Http,
}

/// Where API keys are read from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiKeySource {
    /// The `x-api-key` request header.
    Header,
    /// The `usageIdentifierKey` returned by a REQUEST or TOKEN authorizer.
    Authorizer,
}

/// Source-address policy. A request whose client address is in `deny` is refused; if `allow` is
/// non-empty, only addresses in it are admitted. Deny wins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// CIDRs allowed to call the API (IPv4 or IPv6, for example `10.0.0.0/8`). Empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<String>,
    /// CIDRs refused, even if also allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_cidrs: Vec<String>,
}

/// The kinds of response the gateway generates itself, as in API Gateway.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayResponseType {
    /// Any 4xx the gateway sends without a more specific type.
    #[serde(rename = "DEFAULT_4XX")]
    Default4xx,
    /// Any 5xx the gateway sends without a more specific type.
    #[serde(rename = "DEFAULT_5XX")]
    Default5xx,
    /// 403: no route matched (API Gateway's message `Missing Authentication Token`).
    MissingAuthenticationToken,
    /// 401: the authorizer refused the caller's credentials.
    Unauthorized,
    /// 403: the authorizer denied access.
    AccessDenied,
    /// 403: the API key is missing or unknown.
    InvalidApiKey,
    /// 403: the request signature (SigV4) is invalid.
    InvalidSignature,
    /// 403: the signature's timestamp is outside the allowed window.
    ExpiredToken,
    /// 403: the resource policy refused the client address.
    WafFiltered,
    /// 429: a throttle refused the request.
    Throttled,
    /// 429: the API key's quota is used up.
    QuotaExceeded,
    /// 400: the request body failed validation.
    BadRequestBody,
    /// 400: required parameters are missing.
    BadRequestParameters,
    /// 413: the request body is too large.
    RequestTooLarge,
    /// 415: the content type is not supported.
    UnsupportedMediaType,
    /// 500: the authorizer misbehaved (bad response, unreachable).
    AuthorizerFailure,
    /// 500: the authorizer's response was not understood.
    AuthorizerConfigurationError,
    /// 504: the backend did not answer in time.
    IntegrationTimeout,
    /// 502: the backend could not be reached or answered badly.
    IntegrationFailure,
    /// 404: the resource does not exist (used for unknown stages and hosts).
    ResourceNotFound,
    /// 500: invalid API configuration.
    ApiConfigurationError,
}

/// A replacement for one kind of gateway-generated response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponseSpec {
    /// Which gateway response this replaces.
    #[serde(rename = "type")]
    pub type_: GatewayResponseType,
    /// Status code to send instead of the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: Option<u16>,
    /// Response headers to add. Values may use `$context` variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: StringMap,
    /// Response body template; `$context.error.message`, `$context.requestId` and other
    /// `$context` variables are substituted. Default: `{"message":"$context.error.message"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Content type of the body (default `application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// CORS settings; the gateway answers preflight requests itself and adds CORS headers to every
/// response, including its own error responses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Allowed origins, for example `https://app.example.com`, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Allowed methods, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the browser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_age_seconds: Option<u32>,
    /// Send `Access-Control-Allow-Credentials: true` (not allowed with origin `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// A named JSON Schema used to validate request bodies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Model name, referenced by routes.
    pub name: String,
    /// Content type the model applies to (default `application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The JSON Schema document (draft-04 as API Gateway uses, or newer). Remote `$ref`s are
    /// never fetched.
    #[schemars(schema_with = "crate::schema::any_json")]
    pub schema: serde_json::Value,
}

/// Observed state of an Api.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The id of the newest deployment (the content hash of the API as compiled now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_deployment_id: Option<String>,
    /// Recent deployments, newest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentSummary>,
    /// Number of routes in the newest deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_count: Option<u32>,
}

/// One deployment record, as listed in `Api.status`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSummary {
    /// Deployment id: a short content hash of the compiled API.
    pub id: String,
    /// When the deployment was first recorded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Description given when the deployment was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
