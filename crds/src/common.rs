//! Types shared by several kinds: references, conditions, throttling.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to an `Api` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiRef {
    /// Name of the `Api` object, in the namespace of the referring object.
    pub name: String,
}

/// A reference to an object by name, optionally in another namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Name of the object.
    pub name: String,
    /// Namespace of the object; defaults to the namespace of the referring object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to one key of a Kubernetes `Secret` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the `Secret`.
    pub name: String,
    /// Key inside the Secret's `data`.
    pub key: String,
}

/// A reference to a whole Kubernetes `Secret` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the `Secret`.
    pub name: String,
}

/// Token-bucket throttling: a steady rate and a burst.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleSpec {
    /// Steady-state requests per second (API Gateway's `rateLimit`). Fractions are allowed.
    #[schemars(range(min = 0.0))]
    pub rate_limit: f64,
    /// Maximum bucket size: requests admitted at once after a quiet period (API Gateway's `burstLimit`).
    #[schemars(range(min = 0))]
    pub burst_limit: u32,
}

/// The condition types every Causeway object may carry.
pub mod condition_type {
    /// The object is valid and was taken into the snapshot.
    pub const ACCEPTED: &str = "Accepted";
    /// Every object this one references exists and may be referenced.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Every connected proxy has applied the snapshot that contains this object.
    pub const PROGRAMMED: &str = "Programmed";
    /// The object serves traffic (Accepted, ResolvedRefs and Programmed together).
    pub const READY: &str = "Ready";
    /// An error that retrying will not fix, until the object or its references change.
    pub const STALLED: &str = "Stalled";
    /// An Api's `spec.definition` (OpenAPI document) was imported, and every object it gave
    /// was accepted.
    pub const DEFINITION_IMPORTED: &str = "DefinitionImported";
}

/// One status condition, as in Kubernetes API conventions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::drop_empty_string_defaults)]
pub struct Condition {
    /// Condition type: `Accepted`, `ResolvedRefs`, `Programmed`, `Ready` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason for the condition's last transition.
    pub reason: String,
    /// A human-readable message, naming the object at fault.
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the condition last changed status (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Status fields common to every kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` the controller last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Free-form string map (headers, stage variables, labels).
pub type StringMap = BTreeMap<String, String>;
