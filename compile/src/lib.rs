//! `compile(inventory) -> Compiled { snapshot, statuses, deployments }`: the one place where
//! Causeway resources are interpreted and validated.
//!
//! Pure and deterministic: no I/O, no clock, no randomness; the same [`Inventory`] gives a
//! byte-identical [`Snapshot`](causeway_snapshot::Snapshot) with the same version. An invalid
//! object is left out and reported in its [`ObjectStatus`] with a reason from [`reasons`];
//! everything else still compiles. Defaults are applied here, never written into `spec`.
//!
//! Depends on `causeway-crds` (input) and `causeway-snapshot` (output) only.

pub mod inventory;
pub mod load;
pub mod openapi;
pub mod reasons;
pub mod status;

pub use inventory::{CompileOptions, DeploymentRecord, Inventory};
pub use load::{LoadError, Object};
pub use status::{Kind, ObjectStatus, StatusDetail};

use causeway_snapshot::Snapshot;

/// What [`compile`] produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The sealed snapshot for the proxies.
    pub snapshot: Snapshot,
    /// One status per input object of the six Causeway kinds, sorted by (kind, namespace, name).
    pub statuses: Vec<ObjectStatus>,
    /// The current deployment of every accepted Api (content-addressed), sorted by Api. The
    /// caller records new ones in its deployment history.
    pub deployments: Vec<DeploymentRecord>,
}

/// Compiles an inventory. See the crate docs.
pub fn compile(inventory: &Inventory, options: &CompileOptions) -> Compiled {
    compiler::run(inventory, options)
}

mod compiler;
