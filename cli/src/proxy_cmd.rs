//! `causeway proxy`: the data plane in a cluster. Serves what the controller pushes; keeps the
//! last applied snapshot in `--state-file` and serves it at start-up before the controller answers.

use std::path::PathBuf;

use anyhow::Context;
use causeway_proxy::snapshot_client::{self, SnapshotClientConfig};
use causeway_proxy::{AccessLogSink, Proxy, ProxyConfig};
use clap::Args;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Default proxy traffic address in a cluster.
pub const DEFAULT_PROXY_LISTEN: &str = "0.0.0.0:8080";
/// Default proxy admin address in a cluster.
pub const DEFAULT_PROXY_ADMIN: &str = "0.0.0.0:9901";

/// Flags of `causeway proxy`.
#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The controller's snapshot server, `https://HOST:PORT`.
    #[arg(long, env = "CAUSEWAY_CONTROLLER")]
    controller: String,
    /// Directory with `ca.crt`, `tls.crt`, `tls.key` (the `causeway-proxy-tls` Secret, mounted).
    #[arg(long, env = "CAUSEWAY_TLS_DIR")]
    tls_dir: PathBuf,
    /// File keeping the last applied snapshot (served at once after a restart).
    #[arg(long, env = "CAUSEWAY_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Address for API traffic (HTTP/1.1 and h2c).
    #[arg(long, env = "CAUSEWAY_LISTEN", default_value = DEFAULT_PROXY_LISTEN)]
    listen: String,
    /// Address for the admin endpoints.
    #[arg(long, env = "CAUSEWAY_ADMIN_LISTEN", default_value = DEFAULT_PROXY_ADMIN)]
    admin_listen: String,
    /// This proxy's id in acknowledgements; default: the host name (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    proxy_id: Option<String>,
    /// Access log destination: `stdout` or `off`.
    #[arg(long, env = "CAUSEWAY_ACCESS_LOG", default_value = "stdout")]
    access_log: String,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let access_log = match args.access_log.as_str() {
        "stdout" => AccessLogSink::Stdout,
        "off" => AccessLogSink::Discard,
        other => anyhow::bail!("--access-log must be `stdout` or `off`, not {other:?}"),
    };
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
    let proxy = Proxy::new(ProxyConfig {
        access_log,
        ..ProxyConfig::default()
    });
    if let Some(path) = &args.state_file {
        match snapshot_client::load_state(&proxy, path) {
            Ok(Some(_)) | Ok(None) => {}
            Err(e) => warn!("{e}; waiting for the controller"),
        }
    }
    let traffic = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let admin = TcpListener::bind(&args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--admin-listen)", args.admin_listen))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let serve = tokio::spawn({
        let proxy = proxy.clone();
        let done = stopped(stop_rx.clone());
        async move { proxy.serve(traffic, done).await }
    });
    let serve_admin = tokio::spawn({
        let proxy = proxy.clone();
        let done = stopped(stop_rx.clone());
        async move { proxy.serve_admin(admin, done).await }
    });
    info!(listen = %args.listen, admin = %args.admin_listen, controller = %controller, "proxy listening");
    let config = SnapshotClientConfig {
        controller,
        tls,
        proxy_id: args
            .proxy_id
            .clone()
            .unwrap_or_else(crate::controller::default_identity),
        state_file: args.state_file.clone(),
    };
    snapshot_client::run(proxy, config, crate::controller::shutdown_signal()).await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = serve.await;
    let _ = serve_admin.await;
    Ok(())
}
