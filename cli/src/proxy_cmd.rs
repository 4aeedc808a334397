//! `causeway proxy`: the data plane in a cluster. Serves what the controller pushes; keeps the
//! last applied snapshot in `--state-file` and serves it at start-up before the controller answers.

use std::path::PathBuf;

use anyhow::Context;
use causeway_proxy::Proxy;
use causeway_proxy::snapshot_client::{self, SnapshotClientConfig};
use clap::Args;
use tracing::{info, warn};

use crate::serving;

/// Default proxy traffic address in a cluster.
pub const DEFAULT_PROXY_LISTEN: &str = "0.0.0.0:8080";
/// Default proxy admin address in a cluster.
pub const DEFAULT_PROXY_ADMIN: &str = "0.0.0.0:9901";

/// Flags of `causeway proxy`.
#[derive(Args, Debug)]
pub struct ProxyCmdArgs {
    /// The controller's snapshot server, `https://HOST:PORT`.
    #[arg(long, env = "CAUSEWAY_CONTROLLER")]
    controller: String,
    /// Directory with `ca.crt`, `tls.crt`, `tls.key` (the `causeway-proxy-tls` Secret, mounted).
    #[arg(long, env = "CAUSEWAY_TLS_DIR")]
    tls_dir: PathBuf,
    /// File keeping the last applied snapshot (served at once after a restart).
    #[arg(long, env = "CAUSEWAY_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Addresses for API traffic (HTTP/1.1 and h2c), repeatable or comma-separated: for dual
    /// stack give an IPv4 and an IPv6 address (`--listen 0.0.0.0:8080 --listen [::]:8080`).
    /// Port 0 takes a free port; every listener logs the address it bound as the event
    /// `listening` with `role` (traffic, https, admin) and `addr`.
    #[arg(long, env = "CAUSEWAY_LISTEN", default_value = DEFAULT_PROXY_LISTEN, value_delimiter = ',', num_args = 1)]
    listen: Vec<String>,
    /// Address for the admin endpoints (port 0: a free port, logged as `listening role=admin`).
    #[arg(long, env = "CAUSEWAY_ADMIN_LISTEN", default_value = DEFAULT_PROXY_ADMIN)]
    admin_listen: String,
    /// This proxy's id in acknowledgements; default: the host name (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    proxy_id: Option<String>,
    /// Milliseconds between usage reports to the controller (it rolls them up into
    /// `UsagePlan.status`).
    #[arg(long, env = "CAUSEWAY_USAGE_REPORT_MILLIS", default_value_t = snapshot_client::DEFAULT_USAGE_REPORT_EVERY.as_millis() as u64)]
    usage_report_millis: u64,
    #[command(flatten)]
    proxy: Box<crate::proxy_args::ProxyArgs>,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: ProxyCmdArgs) -> anyhow::Result<()> {
    let controller: http::Uri = args
        .controller
        .parse()
        .with_context(|| format!("--controller {:?} is not a URL", args.controller))?;
    anyhow::ensure!(
        controller.scheme_str() == Some("https") && controller.host().is_some(),
        "--controller must be https://HOST:PORT, not {:?}",
        args.controller
    );
    let tls = snapshot_client::tls_from_dir(&args.tls_dir)?;
    let https = serving::bind_https(args.proxy.https_listen.as_deref()).await?;
    let proxy = Proxy::new(
        args.proxy
            .proxy_config(serving::https_port(https.as_ref())?)?,
    );
    if let Some(path) = &args.state_file {
        match snapshot_client::load_state(&proxy, path) {
            Ok(Some(_)) | Ok(None) => {}
            Err(e) => warn!("{e}; waiting for the controller"),
        }
    }
    let listeners = serving::start(&proxy, &args.listen, &args.admin_listen, https).await?;
    info!(controller = %controller, "snapshots from the controller");
    let config = SnapshotClientConfig {
        controller,
        tls,
        tls_dir: Some(args.tls_dir.clone()),
        proxy_id: args
            .proxy_id
            .clone()
            .unwrap_or_else(crate::controller::default_identity),
        state_file: args.state_file.clone(),
        usage_report_every: std::time::Duration::from_millis(args.usage_report_millis.max(100)),
    };
    snapshot_client::run(proxy, config, crate::controller::shutdown_signal()).await;
    info!("shutting down");
    listeners.stop().await;
    Ok(())
}
