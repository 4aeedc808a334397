//! Snapshot types of integrations: `LAMBDA_PROXY` integrations, request validation, parameter
//! mapping and response caching. Every field added to the older types for these features is
//! optional and skipped when unused, so snapshots that do not use them encode as before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mapping::{MappingAction, MappingTarget};

/// The path of the AWS Lambda Runtime Interface Emulator's invoke endpoint: the default
/// target path of a `LAMBDA_PROXY` integration.
pub const LAMBDA_INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// The default response cache capacity, bytes (64 MiB).
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
/// The default cache entry time to live, seconds (API Gateway's 300).
pub const DEFAULT_CACHE_TTL_SECONDS: u32 = 300;
/// The longest cache entry time to live, seconds.
pub const MAX_CACHE_TTL_SECONDS: u32 = 3600;

/// `LAMBDA_PROXY`: an API Gateway proxy event POSTed to a backend, its answer mapped back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LambdaProxyIntegration {
    /// Key into [`crate::Snapshot::backends`].
    pub backend: String,
    /// The invoke path (stage variables substituted), by default [`LAMBDA_INVOKE_PATH`].
    pub path: String,
    /// Event payload format.
    pub payload_format: PayloadFormat,
    /// Timeout for the invocation, milliseconds.
    pub timeout_ms: u32,
}

/// `LAMBDA` (non-proxy, API Gateway's `aws` integration type): the request template's output
/// (or the body, passed through) is POSTed as the invocation payload; the function's error
/// message (the invoke endpoint's `X-Amz-Function-Error` answer, `errorMessage`) selects the
/// integration response, the default one when the function succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LambdaIntegration {
    /// Key into [`crate::Snapshot::backends`].
    pub backend: String,
    /// The invoke path (stage variables substituted), by default [`LAMBDA_INVOKE_PATH`].
    pub path: String,
    /// Timeout for the invocation, milliseconds.
    pub timeout_ms: u32,
    /// Request templates and integration responses (selection patterns match the function's
    /// error message).
    pub mapping: crate::IntegrationMapping,
}

/// Lambda proxy event payload format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayloadFormat {
    /// REST API style (`APIGatewayProxyRequest`).
    #[serde(rename = "1.0")]
    V1,
    /// HTTP API style (`APIGatewayV2HTTPRequest`).
    #[serde(rename = "2.0")]
    V2,
}

/// Request validation of a route, checked before the backend is called.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestValidation {
    /// Query-string parameters that must be present (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_query_strings: Vec<String>,
    /// Headers that must be present (lowercase names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_headers: Vec<String>,
    /// Body models by request content type (lowercase media type, or `$default`); empty: the
    /// body is not validated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body_models: BTreeMap<String, Model>,
}

/// A model: a named JSON Schema, carried whole so a deployment is self-contained.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// Model name (for messages).
    pub name: String,
    /// The JSON Schema document.
    pub schema: serde_json::Value,
}

/// One parameter mapping: what to change and the value template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParameterMapping {
    /// Overwrite, append or remove.
    pub action: MappingAction,
    /// What it changes.
    pub target: MappingTarget,
    /// The value template (`$request.header.x`, `$context.requestId`, literals, mixes); empty for
    /// `remove`. Stage variables written `${stageVariables.x}` are already substituted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// A stage's response cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct StageCache {
    /// Memory the cache may use on each proxy, bytes.
    pub capacity_bytes: u64,
    /// Add `X-Cache: Hit` / `Miss` to cached routes' responses.
    #[serde(default)]
    pub status_header: bool,
    /// On routes with an authorizer or an API key, callers share entries. When false (the
    /// default) entries are keyed by the caller (principal id and API key id), and a caller
    /// the proxy cannot tell apart from others is not cached at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_across_principals: bool,
}

/// Caching of one route (present only when the stage has a cache and the route uses it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteCache {
    /// Entry time to live, seconds (0: nothing is stored).
    pub ttl_seconds: u32,
    /// Request parts in the cache key besides stage, host, method and path:
    /// `querystring.NAME` or `header.NAME` (header names lowercase), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_parameters: Vec<String>,
    /// What a client's `Cache-Control: max-age=0` does.
    #[serde(default)]
    pub invalidation: CacheInvalidationPolicy,
}

/// What a client's request to bypass the cache does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CacheInvalidationPolicy {
    /// The entry is refreshed from the backend.
    Allow,
    /// The header is ignored (API Gateway's default for unauthorized clients).
    #[default]
    Ignore,
    /// The request is refused with 403.
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
}
