//! `causeway controller` and `causeway proxy` as child processes on port 0 of 127.0.0.1, with
//! the addresses they announced: shared by the file-mode tests (`controller.rs`,
//! `usage_rollup.rs`) and the cluster tests (`cluster.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{ChildGuard, causeway, eventually, get, wait_admin};

/// A running `causeway controller`.
pub struct Controller {
    /// The process (stderr in the work directory).
    pub process: ChildGuard,
    /// The snapshot server.
    pub push: SocketAddr,
    /// The admin endpoints.
    pub admin: SocketAddr,
    /// How long its waits wait.
    wait: Duration,
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
            wait: within,
        }
    }

    /// The controller in file mode, serving the YAML in `config`, push certificates in `tls`
    /// (made if absent; the proxies' in `tls/proxy`).
    pub async fn from_dir(work: &Path, config: &Path, tls: &Path, within: Duration) -> Self {
        let (config, tls) = (config.display().to_string(), tls.display().to_string());
        let args = [
            "--from-dir",
            &config,
            "--tls-dir",
            &tls,
            "--debounce-millis",
            "100",
        ];
        Self::start(work, &args, within).await
    }

    /// The published version (`/version`).
    pub async fn version(&self) -> String {
        get(self.admin, "localhost", "/version")
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    }

    /// Waits until a version other than `not` is published and every proxy in `ids` applied
    /// it (`/proxies`); returns it.
    pub async fn wait_applied(&self, ids: &[&str], not: Option<&str>) -> String {
        let done = eventually(self.wait, || async {
            let r = get(self.admin, "localhost", "/proxies").await.ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            let version = v["version"].as_str()?.to_string();
            let all = ids
                .iter()
                .all(|id| v["proxies"][id]["applied"] == version.as_str());
            (all && Some(version.as_str()) != not).then_some(version)
        })
        .await;
        done.unwrap_or_else(|| {
            panic!(
                "proxies {ids:?} never acknowledged; controller stderr:\n{}",
                self.process.stderr()
            )
        })
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
    /// How long its waits wait.
    wait: Duration,
}

impl Proxy {
    /// `causeway proxy --proxy-id id` fed by the snapshot server at `controller` with the
    /// certificates in `tls`, traffic and admin on port 0, plus the flags `more`; once
    /// `/healthz` answers within `within` (it may have no snapshot yet: see
    /// [`Proxy::wait_ready`]). Its waits wait as long.
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
            wait: within,
        }
    }

    /// Whether `/readyz` says a snapshot is applied.
    pub async fn ready(&self) -> bool {
        get(self.admin, "localhost", "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
    }

    /// Waits until a snapshot is applied (`/readyz`); panics with the proxy's stderr.
    pub async fn wait_ready(&self) {
        wait_admin(&self.process, self.admin, "/readyz", self.wait).await;
    }

    /// Waits until `GET path` on `host` answers 200 with a body containing `needle`.
    pub async fn wait_serves(&self, host: &str, path: &str, needle: &str) {
        let ok = eventually(self.wait, || async {
            let r = get(self.traffic, host, path).await.ok()?;
            (r.status == 200 && r.body.contains(needle)).then_some(())
        })
        .await;
        assert!(
            ok.is_some(),
            "GET {host}{path} never answered with {needle:?}; proxy stderr:\n{}",
            self.process.stderr()
        );
    }
}
