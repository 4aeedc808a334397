//! `UsagePlan`: API keys with throttling and quotas on stages.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, SecretKeyRef, ThrottleSpec};

/// A usage plan: which stages its API keys may call, with a throttle and a quota per key.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "UsagePlan",
    plural = "usageplans",
    shortname = "cwplan",
    category = "causeway",
    namespaced,
    status = "UsagePlanStatus",
    derive = "PartialEq",
    cel,
    doc = "API keys with throttling and quotas on stages (API Gateway's usage plan).",
    printcolumn(
        name = "Rate",
        type_ = "number",
        json_path = ".spec.throttle.rateLimit"
    ),
    printcolumn(name = "Quota", type_ = "integer", json_path = ".spec.quota.limit"),
    printcolumn(name = "Period", type_ = "string", json_path = ".spec.quota.period"),
    printcolumn(name = "Keys", type_ = "integer", json_path = ".status.keyCount"),
    printcolumn(name = "Counting", type_ = "string", json_path = ".status.counting"),
    printcolumn(
        name = "Admitted",
        type_ = "integer",
        json_path = ".status.usage.admitted"
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
pub struct UsagePlanSpec {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Stages (of Apis in this namespace) the plan's keys may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_stages: Vec<ApiStageBinding>,
    /// Throttle applied to each key. Enforced by each proxy replica on its own (not shared
    /// through Redis): with N replicas a key may get up to N × the rate (and N × the burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
    /// Quota applied to each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
    /// The plan's API keys. Each key's value lives in a Secret; only its SHA-256 hash leaves the
    /// controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeySpec>,
    /// What to do when the shared counter store (Redis) cannot be reached: `FAIL_CLOSED`
    /// (default: refuse with 503, so no key ever exceeds its quota) or `FAIL_OPEN` (admit,
    /// counting locally; over-admission is bounded by one quota per replica per period). The
    /// `QuotaStoreAvailable` condition says when proxies report Redis unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Add `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers to responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_headers: Option<bool>,
}

/// A stage the plan applies to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiStageBinding {
    /// Api name (same namespace).
    pub api: String,
    /// Stage name.
    pub stage: String,
    /// Per-route throttles for this stage, by route key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_throttles: BTreeMap<String, ThrottleSpec>,
}

/// A quota: requests per calendar period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// Requests allowed per period.
    #[schemars(range(min = 0))]
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH` (calendar periods in UTC).
    pub period: QuotaPeriod,
    /// Requests already counted at the start of each period (API Gateway's `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub offset: Option<u64>,
}

/// Quota periods.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// A UTC week starting Monday.
    Week,
    /// A UTC calendar month.
    Month,
}

/// Behaviour when the shared counter store is unavailable.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailMode {
    /// Admit requests, counting per replica until the store returns.
    FailOpen,
    /// Refuse requests that need the store (the quota is never exceeded).
    FailClosed,
}

/// One API key of the plan.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// Key id: shown in logs, metrics and usage reports instead of the key itself.
    pub id: String,
    /// The Secret key holding the API key's value.
    pub secret_ref: SecretKeyRef,
    /// Disable the key without deleting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Throttle for this key instead of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
    /// Quota for this key instead of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
}

/// Observed state of a UsagePlan.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of keys resolved from their Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<u32>,
    /// How quotas are counted, from the proxies' usage reports: `Shared` (every proxy counts
    /// in Redis: quotas are exact across replicas) or `PerReplica` (some proxy has no Redis:
    /// each replica counts alone, so N replicas may admit up to N quotas). Throttles (rate and
    /// burst) are always enforced per replica: N replicas admit at most N × rate (+ N × burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<String>,
    /// Usage of the current UTC day, added up over every proxy's report by the controller
    /// (rolled up about once a minute; written only when it changed). A restarted proxy's
    /// earlier counts of the day are missing here; `causeway usage` reads the exact ones from
    /// Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageSummary>,
}

/// Usage totals for the current period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// Start of the UTC day counted (RFC 3339).
    pub period_start: String,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused by throttle or quota.
    pub throttled: u64,
    /// Keys with the most admitted requests (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_keys: Vec<KeyUsage>,
}

/// One key's usage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsage {
    /// Key id.
    pub id: String,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused.
    pub throttled: u64,
}
