//! `Authorizer`: JWT, REQUEST/TOKEN (external function), SigV4, service-account and mTLS checks.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ApiRef, Condition, ObjectRef, SecretKeyRef, SecretRef, StringMap};
use crate::route::BackendRef;

/// An authorizer of an Api, named by routes in `authorizerRef`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "Authorizer",
    plural = "authorizers",
    shortname = "cwauth",
    category = "causeway",
    namespaced,
    status = "AuthorizerStatus",
    derive = "PartialEq",
    cel,
    doc = "An authorizer of an Api: JWT, REQUEST/TOKEN function, SigV4, service account or mTLS.",
    printcolumn(name = "Api", type_ = "string", json_path = ".spec.apiRef.name"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
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
#[x_kube(validation = Rule::new("self.type != 'JWT' || has(self.jwt)").message("type JWT needs jwt"))]
#[x_kube(validation = Rule::new("!(self.type == 'REQUEST' || self.type == 'TOKEN') || has(self.__function__)").message("types REQUEST and TOKEN need function"))]
#[x_kube(validation = Rule::new("self.type != 'SIGV4' || has(self.sigv4)").message("type SIGV4 needs sigv4"))]
#[x_kube(validation = Rule::new("self.type != 'SERVICE_ACCOUNT' || has(self.serviceAccount)").message("type SERVICE_ACCOUNT needs serviceAccount"))]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerSpec {
    /// The Api this authorizer belongs to (same namespace).
    pub api_ref: ApiRef,
    /// Authorizer type.
    #[serde(rename = "type")]
    pub type_: AuthorizerType,
    /// Where the caller's identity is read, for example `$request.header.Authorization` or
    /// `$request.querystring.token` (several for REQUEST authorizers). Default for JWT and TOKEN:
    /// `$request.header.Authorization`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_source: Vec<String>,
    /// JWT settings (type JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// External function settings (types REQUEST and TOKEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionAuthorizerSpec>,
    /// SigV4 settings (type SIGV4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<SigV4Spec>,
    /// Kubernetes service-account token settings (type SERVICE_ACCOUNT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSpec>,
    /// Client-certificate checks (type MTLS); the handshake itself is set on the Stage's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsSpec>,
    /// Headers sent to the integration with the authorizer's result, for example
    /// `x-causeway-principal: $context.authorizer.principalId`. Client-sent copies are removed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub forward_headers: StringMap,
}

/// Authorizer types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizerType {
    /// JSON Web Tokens from an OIDC issuer.
    Jwt,
    /// A function (Service) called with the whole request context.
    Request,
    /// A function (Service) called with one bearer token.
    Token,
    /// AWS Signature Version 4 with access keys from Secrets (the IAM analog).
    Sigv4,
    /// Kubernetes projected service-account tokens.
    ServiceAccount,
    /// Client certificates presented on a mutual-TLS domain.
    Mtls,
}

/// JWT authorizer settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// Required `iss`; also the base of OIDC discovery when `jwksUri` is not set.
    pub issuer: String,
    /// Accepted `aud` values (at least one must match; when a token has no `aud`, its
    /// `client_id` is matched instead, as for Cognito access tokens). Required: without an
    /// audience any token of the issuer would pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub audiences: Vec<String>,
    /// Where to fetch the JWKS; default from `{issuer}/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// An inline JWKS for clusters without egress: a Secret key holding the JWKS JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretKeyRef>,
    /// Allowed signing algorithms (default RS256, ES256). `none` and HMAC algorithms are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`, seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 600))]
    pub leeway_seconds: Option<u32>,
    /// Allow `jwksUri` (or the issuer, for discovery) to point at loopback, link-local
    /// addresses (169.254.0.0/16, fe80::/10, cloud metadata) or the proxy's admin port (9901).
    /// Refused by default: the proxy would fetch from inside its own network boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_jwks: Option<bool>,
}

/// REQUEST / TOKEN authorizer settings: the function is a Service or URL that receives an
/// API Gateway authorizer event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionAuthorizerSpec {
    /// The Service to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendRef>,
    /// A URL to call instead of `backendRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Path POSTed to (default the Lambda Runtime Interface Emulator's invocation path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How long the gateway waits, milliseconds (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 50, max = 30000))]
    pub timeout_millis: Option<u32>,
    /// How long a decision is cached, seconds (default 300, 0 disables, at most 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub result_ttl_seconds: Option<u32>,
    /// TOKEN only: a regular expression the token must match before the function is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_validation_expression: Option<String>,
    /// `SIMPLE` (`{"isAuthorized": bool, "context": {}}`) or `IAM` (policy document); default: both
    /// are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<AuthorizerResponseFormat>,
}

/// Formats of a function authorizer's answer.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizerResponseFormat {
    /// `{"isAuthorized": true, "context": {...}}`.
    Simple,
    /// `{"principalId": "...", "policyDocument": {...}, "context": {...}}`.
    Iam,
}

/// SigV4 authorizer settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigV4Spec {
    /// Region in the credential scope (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Service in the credential scope (default `execute-api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A Secret whose keys are access key ids and values the secret access keys.
    pub credentials_secret_ref: SecretRef,
    /// Largest clock difference accepted, seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 900))]
    pub max_skew_seconds: Option<u32>,
}

/// Service-account authorizer settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSpec {
    /// Accepted token audiences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The cluster's service-account issuer (default: the one the controller discovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Service accounts allowed; `name` `*` allows every account of the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<ObjectRef>,
    /// A Secret key holding the cluster's service-account JWKS (`kubectl get --raw
    /// /openid/v1/jwks`), for standalone mode or to pin the keys; default: the JWKS the
    /// controller reads from the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretKeyRef>,
}

/// mTLS authorizer settings. The client certificate is verified during the handshake against
/// the CA of the Stage's domain (`domains[].clientCaSecretRef`); a request that arrived without
/// one (another domain, plain HTTP) gets 401, a certificate whose names are not allowed 403.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MtlsSpec {
    /// A Secret with `ca.crt` the client certificate must also chain to. Not built yet: an
    /// authorizer that sets it is refused (`UnsupportedFeature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// Allowed names: the subject common name or a subject alternative name (DNS, URI, email)
    /// must equal one of them; `*.example.com` allows any name ending in `.example.com`. Empty
    /// allows any certificate the domain's CA signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_subjects: Vec<String>,
}

/// Observed state of an Authorizer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// SERVICE_ACCOUNT: where the cluster's keys in the snapshot come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_keys: Option<ServiceAccountKeysStatus>,
}

/// Where a SERVICE_ACCOUNT authorizer's keys come from, and which keys they are.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountKeysStatus {
    /// `Secret` (from `jwksSecretRef`) or `APIServer` (read by the controller from the API
    /// server's `/openid/v1/jwks`, and read again when the server rotates its keys).
    pub source: String,
    /// The Secret (`namespace/name`) for source `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The issuer tokens must carry (from the spec, else from the API server's discovery
    /// document, else the Kubernetes default).
    pub issuer: String,
    /// Key ids (`kid`) in the JWKS, sorted: a rotation shows here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
}
