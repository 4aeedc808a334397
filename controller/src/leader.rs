//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager). Every replica
//! watches, compiles and serves snapshots; only the leader writes statuses, Events and the
//! deployment history, and only the leader reports ready, so the push Service sends proxies to
//! it (see docs/controller.md, "High availability").

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

/// Name of the Lease.
pub const LEASE_NAME: &str = "causeway-controller";
/// Lease duration, seconds: a dead leader is replaced after at most this long.
pub const LEASE_SECONDS: u64 = 15;
/// Renewal margin, seconds.
pub const GRACE_SECONDS: u64 = 5;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// kube-lease-manager failed.
    #[error("leader election on Lease {LEASE_NAME}: {0}")]
    Lease(#[from] LeaseManagerError),
}

/// Takes part in the election; the receiver says whether this replica leads now. Dropping the
/// receiver releases the Lease.
pub async fn elect(
    client: Client,
    namespace: &str,
    identity: &str,
) -> Result<(watch::Receiver<bool>, tokio::task::JoinHandle<()>), LeaderError> {
    elect_with(client, namespace, identity, LEASE_SECONDS, GRACE_SECONDS).await
}

/// [`elect`] with another lease duration and renewal margin, seconds (tests use short ones).
pub async fn elect_with(
    client: Client,
    namespace: &str,
    identity: &str,
    duration: u64,
    grace: u64,
) -> Result<(watch::Receiver<bool>, tokio::task::JoinHandle<()>), LeaderError> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(crate::writer::FIELD_MANAGER)
        .build()
        .await?;
    let (rx, handle) = manager.watch().await;
    let task = tokio::spawn(async move {
        match handle.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("leader election stopped: {e}"),
            Err(e) => tracing::warn!("leader election task failed: {e}"),
        }
    });
    Ok((rx, task))
}
