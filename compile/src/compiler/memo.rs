//! What an incremental compile reuses from the previous one.
//!
//! Parts are keyed by fingerprints of exactly the inputs that made them. A Causeway object
//! (group `causeway.dev`, all with a status subresource) read from a cluster (it has a `uid` and
//! a `generation`) is fingerprinted by `(namespace, name, uid, generation, labels, annotations,
//! being deleted)`: the API server moves `generation` with every spec change, and a status
//! write (the controller's own, on every pass) changes only `resourceVersion`, which must not
//! recompile anything (compile never reads a Causeway object's status). Any other object is
//! fingerprinted by its `(namespace, name, resourceVersion)` when it has one (the API server
//! changes `resourceVersion` on every write; the YAML loader sets it to a hash of the
//! document), else by a hash of its whole JSON encoding. A part whose key matches is reused as it is; any
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
use kube::Resource;
use serde::Serialize;

use super::ObjKey;
use super::deployment::Definition;
use crate::DeploymentRecord;
use crate::status::ObjectStatus;

/// The API group of the Causeway kinds.
const CAUSEWAY_GROUP: &str = "causeway.dev";

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
    pub(crate) fn object<T: Serialize + Resource<DynamicType = ()>>(
        &mut self,
        meta: &ObjectMeta,
        object: &T,
    ) -> &mut Self {
        self.add(object_fp(meta, object))
    }

    /// Adds every object of a list, in order.
    pub(crate) fn objects<'a, T: Serialize + Resource<DynamicType = ()> + 'a>(
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

/// The fingerprint of one object: identity and generation (Causeway objects from a cluster),
/// identity and `resourceVersion`, or identity and content (see the module docs).
pub(crate) fn object_fp<T: Serialize + Resource<DynamicType = ()>>(
    meta: &ObjectMeta,
    object: &T,
) -> u64 {
    let mut h = DefaultHasher::new();
    meta.namespace.hash(&mut h);
    meta.name.hash(&mut h);
    if T::group(&()) == CAUSEWAY_GROUP
        && let (Some(uid), Some(generation)) = (&meta.uid, meta.generation)
    {
        2u8.hash(&mut h);
        uid.hash(&mut h);
        generation.hash(&mut h);
        meta.labels.hash(&mut h);
        meta.annotations.hash(&mut h);
        meta.deletion_timestamp.is_some().hash(&mut h);
        return h.finish();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_crds::Route;
    use k8s_openapi::api::core::v1::Service;

    fn route(generation: i64, resource_version: &str, key: &str) -> Route {
        let mut route: Route = serde_json::from_value(serde_json::json!({
            "apiVersion": "causeway.dev/v1alpha1",
            "kind": "Route",
            "metadata": {"name": "r", "namespace": "default", "uid": "u-1",
                         "generation": generation, "resourceVersion": resource_version},
            "spec": {"apiRef": {"name": "pets"}, "routeKey": key,
                     "integration": {"type": "MOCK"}},
        }))
        .expect("a Route");
        route.status = None;
        route
    }

    #[test]
    fn a_status_write_is_a_memo_hit_and_a_spec_change_a_miss() {
        let before = route(1, "10", "GET /a");
        // The controller's status write: new resourceVersion and status, same generation.
        let mut status_only = route(1, "11", "GET /a");
        status_only.status = Some(Default::default());
        assert_eq!(
            object_fp(&before.metadata, &before),
            object_fp(&status_only.metadata, &status_only)
        );
        // A spec change moves generation.
        let spec = route(2, "12", "GET /b");
        assert_ne!(
            object_fp(&before.metadata, &before),
            object_fp(&spec.metadata, &spec)
        );
        // Labels and annotations count; so does being deleted and recreated (new uid).
        let mut labelled = route(1, "13", "GET /a");
        labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        assert_ne!(
            object_fp(&before.metadata, &before),
            object_fp(&labelled.metadata, &labelled)
        );
        let mut recreated = route(1, "14", "GET /a");
        recreated.metadata.uid = Some("u-2".into());
        assert_ne!(
            object_fp(&before.metadata, &before),
            object_fp(&recreated.metadata, &recreated)
        );
        // Without a uid (the YAML loader) resourceVersion decides, as before.
        let mut loaded = before.clone();
        loaded.metadata.uid = None;
        let mut reloaded = route(1, "15", "GET /a");
        reloaded.metadata.uid = None;
        assert_ne!(
            object_fp(&loaded.metadata, &loaded),
            object_fp(&reloaded.metadata, &reloaded)
        );
    }

    #[test]
    fn core_objects_keep_resource_version() {
        let service = |rv: &str| Service {
            metadata: ObjectMeta {
                name: Some("svc".into()),
                namespace: Some("default".into()),
                uid: Some("u-s".into()),
                generation: Some(1),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        let (a, b) = (service("1"), service("2"));
        assert_ne!(object_fp(&a.metadata, &a), object_fp(&b.metadata, &b));
    }
}
