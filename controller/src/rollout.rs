//! Which proxies serve each object as it is now: the input of its `Programmed` condition.
//!
//! Pure. The push server numbers the snapshots it publishes (1, 2, …, see
//! [`PushServer::fleet`](crate::push::PushServer::fleet)); [`Changes`] remembers, per object, the
//! number of the snapshot in which its compiled status last changed; and an object is programmed
//! on a proxy that applied that snapshot or a later one. So a change to one Route moves the
//! `Programmed` condition of that Route (and of the Api and Stages whose compiled status it
//! changed) and of nothing else: every other object keeps `Programmed=True` for the generation
//! it had, which the proxies still serve, and its status is not written again.

use std::collections::HashMap;

use causeway_compile::{Kind, ObjectStatus};
use causeway_snapshot::push::DroppedPart;

use crate::status::Rollout;

/// Where every connected proxy is, in the push server's numbering of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    /// The number of the snapshot published now (0: none yet).
    pub current: u64,
    /// Its version (content hash).
    pub current_version: String,
    /// The proxies with an open stream.
    pub proxies: Vec<ProxyProgress>,
}

/// One connected proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyProgress {
    /// Its id.
    pub id: String,
    /// The number of the snapshot it applied last (0: none, or one this controller did not
    /// publish, such as a snapshot it kept from before a restart).
    pub applied: u64,
    /// The number of the last snapshot it rejected, and why (`None`: it rejected none since it
    /// last applied one).
    pub rejected: Option<(u64, String)>,
    /// Parts it left out of the snapshot it applied, each with why.
    pub dropped: Vec<DroppedPart>,
}

impl Fleet {
    /// The rollout of an object whose compiled status last changed in snapshot `since`
    /// (`version`): how many connected proxies applied that snapshot or a later one, which
    /// rejected one of those, and what the ones that serve it left out.
    pub fn rollout_since(&self, since: u64, version: &str) -> Rollout {
        let serves = |p: &&ProxyProgress| p.applied >= since;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Rollout {
            version: version.to_string(),
            connected: count(self.proxies.len()),
            applied: count(self.proxies.iter().filter(serves).count()),
            rejected: self
                .proxies
                .iter()
                .filter(|p| !serves(p))
                .filter_map(|p| match &p.rejected {
                    Some((n, reason)) if *n >= since => Some((p.id.clone(), reason.clone())),
                    _ => None,
                })
                .collect(),
            dropped: self
                .proxies
                .iter()
                .filter(serves)
                .flat_map(|p| p.dropped.iter().map(|d| (p.id.clone(), d.clone())))
                .collect(),
        }
    }
}

/// An object's identity in [`Changes`].
pub type ObjectKey = (Kind, String, String);

/// The key of a compiled status.
pub fn key_of(status: &ObjectStatus) -> ObjectKey {
    (status.kind, status.namespace.clone(), status.name.clone())
}

/// Per object: its compiled status as last seen, and the snapshot in which that last changed.
#[derive(Debug, Default)]
pub struct Changes {
    seen: HashMap<ObjectKey, Seen>,
}

#[derive(Debug)]
struct Seen {
    status: ObjectStatus,
    since: u64,
    version: String,
}

impl Changes {
    /// Records the statuses compiled into snapshot `number` (`version`): an object seen for the
    /// first time, or whose compiled status differs from the one seen before, changed in this
    /// snapshot; the others keep the snapshot they changed in. Objects no longer compiled are
    /// forgotten. Returns how many changed.
    pub fn observe(&mut self, statuses: &[ObjectStatus], number: u64, version: &str) -> usize {
        let mut changed = 0;
        let mut next = HashMap::with_capacity(statuses.len());
        for status in statuses {
            let key = key_of(status);
            let seen = match self.seen.remove(&key) {
                Some(seen) if seen.status == *status => seen,
                _ => {
                    changed += 1;
                    Seen {
                        status: status.clone(),
                        since: number,
                        version: version.to_string(),
                    }
                }
            };
            next.insert(key, seen);
        }
        self.seen = next;
        changed
    }

    /// The snapshot (number and version) in which the object's compiled status last changed.
    pub fn since(&self, key: &ObjectKey) -> Option<(u64, &str)> {
        self.seen.get(key).map(|s| (s.since, s.version.as_str()))
    }

    /// Forgets everything (every object then counts as changed at the next
    /// [`observe`](Self::observe)).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// How an object's rollout is found: one [`Rollout`] for every object, or per object from
/// [`Changes`] and the [`Fleet`].
pub trait RolloutOf {
    /// The rollout that decides `status`'s `Programmed` condition.
    fn rollout_of(&self, status: &ObjectStatus) -> Rollout;
}

impl RolloutOf for Rollout {
    fn rollout_of(&self, _status: &ObjectStatus) -> Rollout {
        self.clone()
    }
}

/// Per-object rollouts: each object against the snapshot it last changed in.
#[derive(Debug, Clone, Copy)]
pub struct Tracked<'a> {
    /// Where the proxies are.
    pub fleet: &'a Fleet,
    /// Where each object changed.
    pub changes: &'a Changes,
}

impl RolloutOf for Tracked<'_> {
    fn rollout_of(&self, status: &ObjectStatus) -> Rollout {
        match self.changes.since(&key_of(status)) {
            Some((since, version)) => self.fleet.rollout_since(since, version),
            // Not observed (should not happen): as if it changed in the current snapshot.
            None => self
                .fleet
                .rollout_since(self.fleet.current, &self.fleet.current_version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_compile::StatusDetail;
    use causeway_crds::Condition;

    fn route(name: &str, generation: i64) -> ObjectStatus {
        ObjectStatus {
            kind: Kind::Route,
            namespace: "default".into(),
            name: name.into(),
            generation: Some(generation),
            conditions: vec![Condition {
                type_: "Accepted".into(),
                status: "True".into(),
                reason: "Accepted".into(),
                message: "m".into(),
                observed_generation: Some(generation),
                last_transition_time: None,
            }],
            detail: StatusDetail::None,
        }
    }

    fn proxy(id: &str, applied: u64) -> ProxyProgress {
        ProxyProgress {
            id: id.into(),
            applied,
            ..ProxyProgress::default()
        }
    }

    #[test]
    fn an_object_keeps_the_snapshot_it_changed_in_until_its_compiled_status_changes() {
        let mut changes = Changes::default();
        assert_eq!(changes.observe(&[route("a", 1), route("b", 1)], 1, "v1"), 2);
        assert_eq!(changes.observe(&[route("a", 2), route("b", 1)], 2, "v2"), 1);
        assert_eq!(changes.since(&key_of(&route("a", 2))), Some((2, "v2")));
        assert_eq!(changes.since(&key_of(&route("b", 1))), Some((1, "v1")));
        // Nothing changed: nothing moves.
        assert_eq!(changes.observe(&[route("a", 2), route("b", 1)], 3, "v3"), 0);
        assert_eq!(changes.since(&key_of(&route("b", 1))), Some((1, "v1")));
    }

    #[test]
    fn an_object_that_is_gone_and_comes_back_counts_as_changed() {
        let mut changes = Changes::default();
        changes.observe(&[route("a", 1), route("b", 1)], 1, "v1");
        changes.observe(&[route("a", 1)], 2, "v2");
        assert_eq!(changes.since(&key_of(&route("b", 1))), None);
        assert_eq!(changes.observe(&[route("a", 1), route("b", 1)], 3, "v3"), 1);
        assert_eq!(changes.since(&key_of(&route("b", 1))), Some((3, "v3")));
    }

    #[test]
    fn an_object_is_programmed_on_proxies_that_applied_its_snapshot_or_a_later_one() {
        let fleet = Fleet {
            current: 5,
            current_version: "v5".into(),
            proxies: vec![proxy("p1", 5), proxy("p2", 4), proxy("p3", 2)],
        };
        let old = fleet.rollout_since(2, "v2");
        assert_eq!((old.connected, old.applied), (3, 3));
        assert_eq!(old.version, "v2");
        let newer = fleet.rollout_since(4, "v4");
        assert_eq!((newer.connected, newer.applied), (3, 2));
        let newest = fleet.rollout_since(5, "v5");
        assert_eq!((newest.connected, newest.applied), (3, 1));
    }

    #[test]
    fn a_rejection_counts_only_for_objects_the_rejected_snapshot_carries_a_change_of() {
        let fleet = Fleet {
            current: 3,
            current_version: "v3".into(),
            proxies: vec![
                proxy("p1", 3),
                ProxyProgress {
                    rejected: Some((3, "bad tls key".into())),
                    ..proxy("p2", 2)
                },
            ],
        };
        let changed_in_3 = fleet.rollout_since(3, "v3");
        assert_eq!(
            changed_in_3.rejected,
            vec![("p2".to_string(), "bad tls key".to_string())]
        );
        // p2 still serves snapshot 2, which holds this object as it is.
        let changed_in_2 = fleet.rollout_since(2, "v2");
        assert!(changed_in_2.rejected.is_empty());
        assert_eq!(changed_in_2.applied, 2);
    }

    #[test]
    fn per_object_rollouts_follow_the_changes() {
        let mut changes = Changes::default();
        changes.observe(&[route("a", 1), route("b", 1)], 1, "v1");
        changes.observe(&[route("a", 2), route("b", 1)], 2, "v2");
        let fleet = Fleet {
            current: 2,
            current_version: "v2".into(),
            proxies: vec![proxy("p1", 2), proxy("p2", 1)],
        };
        let tracked = Tracked {
            fleet: &fleet,
            changes: &changes,
        };
        assert_eq!(tracked.rollout_of(&route("a", 2)).applied, 1);
        assert_eq!(tracked.rollout_of(&route("b", 1)).applied, 2);
    }
}
