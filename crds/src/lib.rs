//! Causeway's user-facing API, group `causeway.dev`, version `v1alpha1`: the six custom
//! resource kinds (`Api`, `Route`, `Stage`, `UsagePlan`, `Authorizer`, `VpcLink`), their status
//! types, and the generator of the CRD YAML.
//!
//! This crate holds types only: no interpretation (that is `causeway-compile`), no I/O, no
//! defaults written into `spec` (defaults are applied when compiling, so GitOps tools see no
//! drift). Every field's `///` doc becomes `kubectl explain` text. Cross-field rules are CEL
//! (`x-kubernetes-validations`); `compile` evaluates the same rules client-side, so they hold on
//! API servers that do not enforce CEL.

// kube-derive takes one `printcolumn(...)` attribute per column; clippy reads the repeated
// `type_ = "string"` keys as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod authorizer;
pub mod common;
pub mod generate;
pub mod route;
mod schema;
pub mod stage;
pub mod usage_plan;
pub mod vpc_link;

pub use api::{Api, ApiSpec, ApiStatus};
pub use authorizer::{Authorizer, AuthorizerSpec, AuthorizerStatus};
pub use common::Condition;
pub use route::{Route, RouteSpec, RouteStatus};
pub use stage::{Stage, StageSpec, StageStatus};
pub use usage_plan::{UsagePlan, UsagePlanSpec, UsagePlanStatus};
pub use vpc_link::{VpcLink, VpcLinkSpec, VpcLinkStatus};

/// The API group of every Causeway kind.
pub const GROUP: &str = "causeway.dev";
/// The API version of every Causeway kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in YAML.
pub const API_VERSION: &str = "causeway.dev/v1alpha1";
