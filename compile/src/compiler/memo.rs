//! What an incremental compile reuses from the previous one.
//!
//! Parts are keyed by fingerprints of exactly the inputs that made them: an object's
//! fingerprint is its `(namespace, name, resourceVersion)` when it has one (the API server
//! changes `resourceVersion` on every write; the YAML loader sets it to a hash of the document),
//! else a hash of its whole JSON encoding. A part whose key matches is reused as it is; any
//! difference recompiles it. Nothing here is global: the memo lives in a
//! [`Compiler`](crate::Compiler), and a fresh one gives exactly what `compile` gives.
//!
//! Fingerprints are 64-bit SipHash values (std's `DefaultHasher` with its fixed keys): stable
//! within a process, which is all a memo needs.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use causeway_snapshot::UsagePlanConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::ObjKey;
use super::deployment::Definition;
use crate::DeploymentRecord;
use crate::status::ObjectStatus;

/// A running hash.
#[derive(Default)]
pub(crate) struct Fp(DefaultHasher);

impl Fp {
    /// Adds anything hashable.
    pub(crate) fn add(&mut self, value: impl Hash) -> &mut Self {
        value.hash(&mut self.0);
        self
    }

    /// Adds an object by its identity and version (see the module docs).
    pub(crate) fn object<T: Serialize>(&mut self, meta: &ObjectMeta, object: &T) -> &mut Self {
        self.add(object_fp(meta, object))
    }

    /// Adds every object of a list, in order.
    pub(crate) fn objects<'a, T: Serialize + 'a>(
        &mut self,
        objects: impl IntoIterator<Item = &'a T>,
        meta: impl Fn(&T) -> &ObjectMeta,
    ) -> &mut Self {
        let mut n = 0usize;
        for o in objects {
            self.object(meta(o), o);
            n += 1;
        }
        self.add(n)
    }

    /// The value.
    pub(crate) fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// The fingerprint of one object: identity and `resourceVersion`, or identity and content.
pub(crate) fn object_fp<T: Serialize>(meta: &ObjectMeta, object: &T) -> u64 {
    let mut h = DefaultHasher::new();
    meta.namespace.hash(&mut h);
    meta.name.hash(&mut h);
    match &meta.resource_version {
        Some(rv) => {
            // The API server changes `resourceVersion` with every write, `generation` included;
            // `generation` is hashed too for inventories edited by hand (tests, tools).
            0u8.hash(&mut h);
            rv.hash(&mut h);
            meta.generation.hash(&mut h);
        }
        None => {
            1u8.hash(&mut h);
            serde_json::to_vec(object).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

/// The routes of one Api as compiled: their statuses, and the Api's current deployment.
#[derive(Debug)]
pub(crate) struct ApiRoutes {
    /// Statuses of the Routes naming this Api (accepted or not).
    pub statuses: Vec<ObjectStatus>,
    /// Accepted routes.
    pub route_count: u32,
    /// The definition and record, when the Api is accepted.
    pub deployment: Option<Arc<(Definition, DeploymentRecord)>>,
}

/// The usage-plan step: its key, the plans, their statuses and their digests. Kept unpacked:
/// packing the keys saved about 10 MB at 100,000 keys but unpacking them cost every compile
/// more than the copy does.
pub(crate) type UsagePlansEntry = (
    u64,
    Vec<UsagePlanConfig>,
    Vec<ObjectStatus>,
    Vec<causeway_snapshot::PartDigest>,
);

/// Everything reused between compiles.
#[derive(Default)]
pub(crate) struct Memo {
    /// A one-shot compile ([`compile`](crate::compile)) keeps nothing: its parts are moved
    /// into the result instead of copied out of the memo.
    pub one_shot: bool,
    /// Per Api `(namespace, name)`: the key its routes were compiled with, and the result.
    pub routes: HashMap<ObjKey, (u64, Arc<ApiRoutes>)>,
    /// Per Stage: the key and the result of its own compilation.
    pub stages: super::stage::StageMemo,
    /// The usage-plan step as a whole: key, plans, statuses, the plans' digests.
    pub usage_plans: Option<UsagePlansEntry>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("apis", &self.routes.len())
            .field("stages", &self.stages.len())
            .finish_non_exhaustive()
    }
}
