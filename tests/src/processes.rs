//! `causeway controller` and `causeway proxy` as child processes on port 0 of 127.0.0.1, with
//! the addresses they announced: shared by the file-mode tests (`controller.rs`,
//! `usage_rollup.rs`) and the cluster tests (`cluster.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::{ChildGuard, causeway, get, wait_admin};

/// A running `causeway controller`.
pub struct Controller {
    /// The process (stderr in the work directory).
    pub process: ChildGuard,
    /// The snapshot server.
    pub push: SocketAddr,
    /// The admin endpoints.
    pub admin: SocketAddr,
}

impl Controller {
    /// `causeway controller` with `args` (push and admin listeners on port 0 are added), once
    /// `/healthz` answers within `within`.
    pub async fn start(work: &Path, args: &[&str], within: Duration) -> Self {
        let mut all = vec![
            "controller",
            "--push-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let process = ChildGuard::spawn(&causeway(), &all, work);
        let push = process.listening("push").await;
        let admin = process.listening("admin").await;
        wait_admin(&process, admin, "/healthz", within).await;
        Self {
            process,
            push,
            admin,
        }
    }
}

/// A running `causeway proxy` fed by a controller.
pub struct Proxy {
    /// The process (stderr in the work directory).
    pub process: ChildGuard,
    /// The traffic listener.
    pub traffic: SocketAddr,
    /// The admin endpoints.
    pub admin: SocketAddr,
}

impl Proxy {
    /// `causeway proxy --proxy-id id` fed by the snapshot server at `controller` with the
    /// certificates in `tls`, traffic and admin on port 0, plus the flags `more`; once
    /// `/healthz` answers within `within` (it may have no snapshot yet: see
    /// [`Proxy::wait_ready`]).
    pub async fn start(
        work: &Path,
        id: &str,
        controller: SocketAddr,
        tls: &Path,
        more: &[&str],
        within: Duration,
    ) -> Self {
        let controller = format!("https://{controller}");
        let tls = tls.display().to_string();
        let mut args = vec![
            "proxy",
            "--controller",
            &controller,
            "--tls-dir",
            &tls,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--proxy-id",
            id,
        ];
        args.extend_from_slice(more);
        let process = ChildGuard::spawn(&causeway(), &args, work);
        let traffic = process.listening("traffic").await;
        let admin = process.listening("admin").await;
        wait_admin(&process, admin, "/healthz", within).await;
        Self {
            process,
            traffic,
            admin,
        }
    }

    /// Whether `/readyz` says a snapshot is applied.
    pub async fn ready(&self) -> bool {
        get(self.admin, "localhost", "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
    }

    /// Waits until a snapshot is applied (`/readyz`); panics with the proxy's stderr.
    pub async fn wait_ready(&self, within: Duration) {
        wait_admin(&self.process, self.admin, "/readyz", within).await;
    }
}
