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
    // Nothing is kept for a next compile, so every part is moved into the result, not copied.
    let mut memo = compiler::Memo {
        one_shot: true,
        ..compiler::Memo::default()
    };
    compiler::run(inventory, options, &mut memo)
}

/// An incremental [`compile`]: it remembers the compiled parts of the last inventory it saw
/// (per Api: its routes, statuses and deployment; per Stage: its materialized deployment; the
/// usage plans; the digests of the snapshot's parts) keyed by fingerprints of exactly the
/// objects that made them — `(namespace, name, resourceVersion)`, or the content of an object
/// without a `resourceVersion`. Unchanged parts are reused, so one edited Route among 10,000
/// recompiles one Api. Still pure: no I/O, no clock, no globals; the result is always equal to
/// `compile` of the same inventory.
#[derive(Debug)]
pub struct Compiler {
    options: CompileOptions,
    memo: compiler::Memo,
}

impl Compiler {
    /// A compiler with nothing remembered yet.
    pub fn new(options: CompileOptions) -> Self {
        Self {
            options,
            memo: compiler::Memo::default(),
        }
    }

    /// The compile settings.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }

    /// Changes the compile settings (the memo keys include them, so nothing stale is reused).
    pub fn set_options(&mut self, options: CompileOptions) {
        self.options = options;
    }

    /// Compiles `inventory`, reusing what is unchanged since the last call.
    pub fn compile(&mut self, inventory: &Inventory) -> Compiled {
        compiler::run(inventory, &self.options, &mut self.memo)
    }
}

mod compiler;
