//! The authorization part of the snapshot: usage plans with hashed API keys, authorizers, and
//! what each route requires.
//!
//! Raw API keys never appear here: a key is its SHA-256 (lowercase hex) and an id. SigV4 secret
//! access keys do (the proxy needs them to verify HMACs); they live in fields whose names contain
//! `secret`, which `/config_dump` redacts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Throttle;

/// The default result TTL of REQUEST/TOKEN authorizers, seconds (API Gateway's).
pub const DEFAULT_AUTHORIZER_TTL_SECONDS: u32 = 300;
/// The longest result TTL of REQUEST/TOKEN authorizers, seconds.
pub const MAX_AUTHORIZER_TTL_SECONDS: u32 = 3600;
/// The default timeout of a REQUEST/TOKEN authorizer call, milliseconds.
pub const DEFAULT_AUTHORIZER_TIMEOUT_MS: u32 = 10_000;
/// The default JWT clock leeway, seconds.
pub const DEFAULT_JWT_LEEWAY_SECONDS: u32 = 60;
/// The path a function authorizer is POSTed to by default (the Lambda Runtime Interface
/// Emulator's invocation path).
pub const DEFAULT_FUNCTION_PATH: &str = "/2015-03-31/functions/function/invocations";

/// What a route requires before its integration runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteAuthorization {
    /// [`AuthorizerConfig::id`] of the authorizer that must allow the request.
    pub authorizer: String,
    /// JWT scopes; the token must hold at least one (empty: no scope check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A usage plan: which stages its keys may call, and their throttles and quotas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanConfig {
    /// `namespace/name` of the UsagePlan.
    pub id: String,
    /// The stages the plan is bound to, sorted by stage id.
    pub stages: Vec<PlanStage>,
    /// Throttle per key (for the throttling step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Quota per key (for the quota step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// `true`: refuse when the shared counter store is unreachable; `false`: count locally.
    #[serde(default)]
    pub fail_closed: bool,
    /// Send `RateLimit-*` headers.
    #[serde(default)]
    pub rate_limit_headers: bool,
    /// The keys, sorted by id.
    pub keys: Vec<ApiKeyConfig>,
}

/// A stage a plan is bound to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanStage {
    /// [`crate::StageConfig::id`].
    pub stage: String,
    /// Per-route throttles by route key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_throttles: BTreeMap<String, Throttle>,
}

/// One API key, by hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyConfig {
    /// The key id (shown in logs as `$context.identity.apiKeyId`).
    pub id: String,
    /// SHA-256 of the key value, lowercase hex.
    pub sha256: String,
    /// Disabled keys are refused.
    pub enabled: bool,
    /// This key's throttle instead of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// This key's quota instead of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// An [`ApiKeyConfig`] packed for keeping in memory: about 70 bytes instead of about 200 (the
/// hash as 32 bytes, the id boxed, the key's own limits boxed and absent for most keys). For
/// holders of many keys that only need them back now and then (the proxy's `/config_dump`,
/// the compiler's memo); [`PackedKey::unpack`] gives back exactly the key that was packed.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedKey {
    id: Box<str>,
    sha256: PackedHash,
    enabled: bool,
    own: Option<Box<(Option<Throttle>, Option<Quota>)>>,
}

/// `hex::encode`, by table: a compiler unpacks every key of its memo at each compile, and
/// `hex::encode` made unpacking 100,000 keys slower than copying them.
fn lower_hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(64);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The 32 bytes of a lowercase-hex hash, or the text when it is anything else.
#[derive(Debug, Clone, PartialEq)]
enum PackedHash {
    Bytes([u8; 32]),
    Text(Box<str>),
}

impl From<ApiKeyConfig> for PackedKey {
    fn from(key: ApiKeyConfig) -> Self {
        let mut bytes = [0u8; 32];
        // Only lowercase hex goes to bytes: anything else must come back as it was written.
        let lower = key
            .sha256
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        let sha256 = if lower && hex::decode_to_slice(&key.sha256, &mut bytes).is_ok() {
            PackedHash::Bytes(bytes)
        } else {
            PackedHash::Text(key.sha256.into_boxed_str())
        };
        Self {
            id: key.id.into_boxed_str(),
            sha256,
            enabled: key.enabled,
            own: (key.throttle.is_some() || key.quota.is_some())
                .then(|| Box::new((key.throttle, key.quota))),
        }
    }
}

impl PackedKey {
    /// The key as it was packed.
    pub fn unpack(&self) -> ApiKeyConfig {
        let (throttle, quota) = self.own.as_deref().copied().unwrap_or((None, None));
        ApiKeyConfig {
            id: self.id.to_string(),
            sha256: match &self.sha256 {
                PackedHash::Bytes(bytes) => lower_hex(bytes),
                PackedHash::Text(text) => text.to_string(),
            },
            enabled: self.enabled,
            throttle,
            quota,
        }
    }
}

/// Requests per calendar period (UTC).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Requests allowed per period.
    pub limit: u64,
    /// The period.
    pub period: QuotaPeriod,
    /// Requests counted at the start of each period.
    #[serde(default)]
    pub offset: u64,
}

/// Quota periods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// A UTC week from Monday.
    Week,
    /// A UTC calendar month.
    Month,
}

/// One authorizer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerConfig {
    /// `namespace/name` of the Authorizer.
    pub id: String,
    /// `namespace/name` of its Api.
    pub api: String,
    /// Where the identity is read, normalized: `header.<lowercase name>` or
    /// `querystring.<name>` (REQUEST authorizers may list several; JWT and TOKEN one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_source: Vec<String>,
    /// Headers sent to the integration (lowercase name → `$context` template). Client-sent
    /// copies are removed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forward_headers: BTreeMap<String, String>,
    /// Type-specific settings.
    pub settings: AuthorizerSettings,
}

/// Type-specific authorizer settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum AuthorizerSettings {
    /// JSON Web Tokens.
    #[serde(rename = "JWT")]
    Jwt(JwtSettings),
    /// A function called with the request context.
    #[serde(rename = "REQUEST")]
    Request(FunctionSettings),
    /// A function called with one token.
    #[serde(rename = "TOKEN")]
    Token(FunctionSettings),
    /// AWS Signature Version 4.
    #[serde(rename = "SIGV4")]
    Sigv4(Sigv4Settings),
    /// Kubernetes service-account tokens.
    #[serde(rename = "SERVICE_ACCOUNT")]
    ServiceAccount(ServiceAccountSettings),
    /// The client certificate verified during the mutual-TLS handshake.
    #[serde(rename = "MTLS")]
    Mtls(MtlsSettings),
}

/// JWT verification settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JwtSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values; empty: `aud` is not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Allowed `alg` values (asymmetric only: RS*, PS*, ES*, EdDSA).
    pub algorithms: Vec<String>,
    /// Clock skew allowed for `exp`, `nbf`, `iat`, seconds.
    pub leeway_seconds: u32,
    /// Where the keys come from.
    pub jwks: JwksSource,
}

/// Where a JWT authorizer's keys come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum JwksSource {
    /// Fetched from this URL by the proxy.
    Uri(String),
    /// The JWKS URL is read from this OIDC discovery document first.
    Discovery(String),
    /// A JWKS document delivered in the snapshot.
    Inline(String),
}

/// REQUEST / TOKEN function settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSettings {
    /// Key into [`crate::Snapshot::backends`].
    pub backend: String,
    /// Path POSTed to.
    pub path: String,
    /// Call timeout, milliseconds.
    pub timeout_ms: u32,
    /// Decision cache TTL, seconds (0: no caching).
    pub ttl_seconds: u32,
    /// TOKEN only: the token must match this regular expression before any call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_validation: Option<String>,
    /// Accepted answer formats.
    pub response_format: ResponseFormat,
}

/// Which answers of a function authorizer are accepted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseFormat {
    /// `{"isAuthorized": bool, "context": {}}` only.
    Simple,
    /// IAM policy documents only.
    Iam,
    /// Either.
    Any,
}

/// SigV4 verification settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sigv4Settings {
    /// Region of the credential scope.
    pub region: String,
    /// Service of the credential scope.
    pub service: String,
    /// Largest clock difference accepted, seconds.
    pub max_skew_seconds: u32,
    /// Access key id → secret access key. Redacted by `/config_dump`.
    pub secret_access_keys: BTreeMap<String, String>,
}

/// Service-account token settings: a JWT check plus who may call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSettings {
    /// The token check (issuer, audiences, keys inline).
    pub jwt: JwtSettings,
    /// Allowed `(namespace, name)`; name `*` allows a whole namespace.
    pub allow: Vec<(String, String)>,
}

/// Client-certificate checks. The certificate itself was verified against the domain's client
/// CA during the handshake; this only narrows who may call.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MtlsSettings {
    /// Allowed subject common names or subject alternative names (DNS, URI, email), exact;
    /// `*.suffix` allows any name ending in `.suffix`. Empty: any verified certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_subjects: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_key_unpacks_to_exactly_the_key_that_was_packed() {
        let plain = |id: &str, sha256: String| ApiKeyConfig {
            id: id.into(),
            sha256,
            enabled: true,
            throttle: None,
            quota: None,
        };
        let own = ApiKeyConfig {
            enabled: false,
            throttle: Some(Throttle {
                rate: 0.5,
                burst: 2,
            }),
            quota: Some(Quota {
                limit: 10,
                period: QuotaPeriod::Week,
                offset: 3,
            }),
            ..plain("own", hex::encode([9u8; 32]))
        };
        for key in [
            plain("a", hex::encode([1u8; 32])),
            own,
            // Not lowercase hex of 32 bytes: kept as text.
            plain("upper", hex::encode_upper([2u8; 32])),
            plain("short", "abcd".into()),
            plain("", String::new()),
        ] {
            assert_eq!(PackedKey::from(key.clone()).unpack(), key);
        }
    }
}
