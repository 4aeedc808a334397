//! `Route`: one route key of an Api and its integration.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ApiRef, Condition, ObjectRef, StringMap};

/// One route of an Api: a route key (`GET /pets/{id}`, `ANY /{proxy+}`, `$default`, or a
/// WebSocket route key) and the integration that answers it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "Route",
    plural = "routes",
    shortname = "cwroute",
    category = "causeway",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq",
    cel,
    doc = "One route of an Api and its integration (API Gateway's route / method).",
    printcolumn(name = "Api", type_ = "string", json_path = ".spec.apiRef.name"),
    printcolumn(name = "Route Key", type_ = "string", json_path = ".spec.routeKey"),
    printcolumn(
        name = "Integration",
        type_ = "string",
        json_path = ".spec.integration.type"
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
pub struct RouteSpec {
    /// The Api this route belongs to (same namespace).
    pub api_ref: ApiRef,
    /// `METHOD /path` (method one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY; path
    /// segments may be `{param}`, and the last may be greedy `{name+}`), or `$default` which
    /// matches what no other route does. WebSocket APIs use `$connect`, `$disconnect`,
    /// `$default` or a custom key.
    #[x_kube(validation = Rule::new("self == '$default' || self.startsWith('$') || self.matches('^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /') || !self.contains(' ')").message("routeKey must be '$default' or 'METHOD /path'"))]
    pub route_key: String,
    /// What answers the route.
    pub integration: IntegrationSpec,
    /// Name of an `Authorizer` of the same Api that must allow the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_ref: Option<ObjectRef>,
    /// Scopes the caller's token must hold (JWT authorizers), any one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_scopes: Vec<String>,
    /// Require a valid API key (`x-api-key`) from a usage plan bound to the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_required: Option<bool>,
    /// Request validation before the backend is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_validation: Option<RequestValidationSpec>,
    /// WebSocket APIs only: `$default` makes the route two-way (the integration's answer is
    /// sent to the client, AWS's route response `$default`). Unset: one-way, the answer is
    /// dropped. Other expressions are not built and refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_response_selection_expression: Option<String>,
    /// What the route declares to its callers (API Gateway's method request and method
    /// responses): the operation name, parameters and responses that `causeway export` writes
    /// (and so SDK generators see). Declarations only: nothing here is enforced (that is
    /// `requestValidation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodSpec>,
}

/// The declarations of a route (API Gateway's `Method`): its operation name, request
/// parameters and method responses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodSpec {
    /// Operation name (API Gateway's `operationName`, OpenAPI's `operationId`), for example
    /// `getPet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// Request parameters the route takes, API Gateway style: keys
    /// `method.request.querystring.NAME`, `method.request.header.NAME` or
    /// `method.request.path.NAME`, each with whether it is required.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_parameters: BTreeMap<String, bool>,
    /// Method responses: the status codes the route answers with, their headers and models.
    /// When set, each integration response's `statusCode` should be one of them (API Gateway
    /// refuses one that is not; compile notes it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<MethodResponseSpec>,
}

/// One method response (API Gateway's `MethodResponse`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodResponseSpec {
    /// Status code.
    #[schemars(range(min = 100, max = 599))]
    pub status_code: u16,
    /// What the response means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Response headers, keys `method.response.header.NAME`, each with whether it is
    /// required.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: BTreeMap<String, bool>,
    /// The model (from `Api.spec.models`) of the body, by content type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_models: StringMap,
}

/// How the gateway answers a route.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntegrationType {
    /// Forward the request to a backend as it is (path, query, headers, body).
    HttpProxy,
    /// Forward with request/response parameter mapping.
    Http,
    /// Answer from the gateway with a fixed status, headers and body.
    Mock,
    /// POST an API Gateway Lambda proxy event to a Service (for example the AWS Lambda Runtime
    /// Interface Emulator) and map its answer back.
    LambdaProxy,
    /// Lambda non-proxy (API Gateway's `aws` integration type): the request template's output is
    /// the invocation payload POSTed to the invoke path (as `LAMBDA_PROXY`), and the function's
    /// error message (`errorMessage` of a failed invocation) selects the integration response;
    /// a successful invocation takes the default one.
    Lambda,
}

/// The integration of a route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'MOCK' || has(self.backendRef) || has(self.uri)").message("HTTP_PROXY, HTTP, LAMBDA_PROXY and LAMBDA integrations need backendRef or uri"))]
#[x_kube(validation = Rule::new("!(has(self.backendRef) && has(self.uri))").message("set only one of backendRef and uri"))]
pub struct IntegrationSpec {
    /// Integration type.
    #[serde(rename = "type")]
    pub type_: IntegrationType,
    /// A Kubernetes Service (and port) to send requests to. A Service in another namespace needs
    /// a `VpcLink` there that grants this namespace access (`vpcLinkRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendRef>,
    /// A URL to send requests to instead of `backendRef`, for example
    /// `http://${stageVariables.petsHost}:8080/v1/pets/{id}`. Path parameters `{name}` and
    /// stage variables `${stageVariables.name}` are substituted. A host naming a Service
    /// (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`) resolves through its
    /// EndpointSlices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The path sent to the backend, with `{param}`, `{proxy}` and `${stageVariables.x}`
    /// substituted. Default: the request path, less the stage's base path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Method sent to the backend; default the request's method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The VpcLink that grants access to a backend in another namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_link_ref: Option<ObjectRef>,
    /// Integration timeout in milliseconds (default 29000, maximum 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 50, max = 300000))]
    pub timeout_millis: Option<u32>,
    /// Headers added to the backend request; values may use `${stageVariables.x}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: StringMap,
    /// Parameter mapping (HTTP API style): keys such as `overwrite:header.x-id`,
    /// `append:querystring.tag`, `remove:header.cookie`, `overwrite:path`; values from
    /// `$request.*`, `$context.*`, `$stageVariables.*` or literals.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_parameters: StringMap,
    /// Response mapping: `overwrite:statuscode`, `overwrite:header.x`, `append:header.x`,
    /// `remove:header.x`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: StringMap,
    /// The fixed answer of a `MOCK` integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockSpec>,
    /// `LAMBDA_PROXY` only: event payload format, `1.0` (REST API style) or `2.0` (HTTP API
    /// style). Default: `1.0` on an Api of `apiType: REST`, `2.0` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<PayloadFormatVersion>,
    /// `HTTP`, `MOCK` and `LAMBDA` (REST API non-proxy integrations): Velocity mapping templates
    /// by request content type (for example `application/json`), as API Gateway's
    /// `requestTemplates`. The template chosen by the request's `Content-Type` (default
    /// `application/json`) renders the body sent to the backend; for `MOCK`, its output's
    /// `statusCode` selects the integration response.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_templates: StringMap,
    /// What happens to a request whose content type has no request template:
    /// `WHEN_NO_MATCH` (default), `WHEN_NO_TEMPLATES` or `NEVER`, as API Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough_behavior: Option<PassthroughBehavior>,
    /// Conversion of a request body that is passed through (no template applies) before it is
    /// sent to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,
    /// `HTTP`, `MOCK` and `LAMBDA`: the integration responses (API Gateway's `responses`), each
    /// selected by a regular expression on the backend's status code (`HTTP`, `MOCK`) or on the
    /// function's error message (`LAMBDA`). The response without a `selectionPattern` is the
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integration_responses: Vec<IntegrationResponseSpec>,
}

/// What API Gateway does with a request body no request template matches.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    /// The body is passed through unmapped when no template matches its content type (the
    /// default).
    WhenNoMatch,
    /// The body is passed through unmapped only when the integration has no request templates
    /// at all; otherwise an unmatched content type is refused with 415.
    WhenNoTemplates,
    /// The body is never passed through: an unmatched content type is refused with 415
    /// Unsupported Media Type.
    Never,
}

/// Conversion of a payload between text and binary (API Gateway's `contentHandling`).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandling {
    /// Decode a base64 text payload to binary (a payload that is not base64 fails with 500).
    ConvertToBinary,
    /// Encode the payload as base64 text.
    ConvertToText,
}

/// One integration response: which backend outcome it matches, and the response it makes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponseSpec {
    /// A regular expression that must match the whole backend status code (`HTTP`, `MOCK`, for
    /// example `4\d{2}`) or the whole error message of a `LAMBDA` function (for example
    /// `.*Not Found.*`). Absent or empty: the default response, used when no other matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_pattern: Option<String>,
    /// Status code sent to the client.
    #[schemars(range(min = 100, max = 599))]
    pub status_code: u16,
    /// Response headers, API Gateway style: keys `method.response.header.NAME`, values
    /// `integration.response.header.NAME`, `integration.response.body`,
    /// `integration.response.body.JSONPATH`, `context.NAME`, `stageVariables.NAME` or a quoted
    /// literal `'text'`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: StringMap,
    /// Velocity templates for the response body, by response content type; chosen by the
    /// request's `Accept` header, then `application/json`, then the first. Absent: the backend's
    /// body is passed through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_templates: StringMap,
    /// Conversion of a response body that is passed through (no response template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,
}

/// A Service port to send requests to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Service name.
    pub name: String,
    /// Service namespace; default the Route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// `http` (default) or `https`; with `https` the VpcLink (or the system roots) supply the
    /// trust settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<BackendScheme>,
}

/// Scheme used towards a backend.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendScheme {
    /// Plain HTTP (HTTP/1.1).
    Http,
    /// HTTP over TLS.
    Https,
}

/// Lambda proxy payload format versions.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum PayloadFormatVersion {
    /// REST API (`APIGatewayProxyRequest`) events.
    #[serde(rename = "1.0")]
    V1,
    /// HTTP API (`APIGatewayV2HTTPRequest`) events.
    #[serde(rename = "2.0")]
    V2,
}

/// The fixed answer of a MOCK integration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MockSpec {
    /// Status code (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: Option<u16>,
    /// Response headers; values may use `${stageVariables.x}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: StringMap,
    /// Response body; `${stageVariables.x}` and `{param}` are substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// What to validate before calling the backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestValidationSpec {
    /// Validate the body against the model for its content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_body: Option<bool>,
    /// Check that the required parameters are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_parameters: Option<bool>,
    /// Query-string parameters that must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_query_strings: Vec<String>,
    /// Headers that must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_headers: Vec<String>,
    /// Model name (from `Api.spec.models`) per request content type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: StringMap,
}

/// Observed state of a Route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
