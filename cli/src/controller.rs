//! `causeway controller`: watch the cluster, compile, write statuses and the deployment
//! history, and push snapshots to the proxies. With the hidden `--from-dir DIR` it reads YAML
//! from disk instead of a cluster and only serves snapshots (push tests without a cluster).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use causeway_compile::{CompileOptions, Compiler};
use causeway_controller::admin::{self, AdminState};
use causeway_controller::kube::config::{KubeConfigOptions, Kubeconfig};
use causeway_controller::kube::{self, Client};
use causeway_controller::push::PushServer;
use causeway_controller::tls::PushCerts;
use causeway_controller::watch::Scope;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::files::read_sources;

/// Default address of the snapshot server.
pub const DEFAULT_PUSH_LISTEN: &str = "0.0.0.0:18000";
/// Default address of the controller's admin endpoints.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9902";
/// Default namespace of the controller itself.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "causeway-system";

/// Flags of `causeway controller`.
#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Kubeconfig file; default: in-cluster configuration, then `$KUBECONFIG`/`~/.kube/config`.
    #[arg(long, env = "CAUSEWAY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespaces to watch (repeatable); default: all namespaces.
    #[arg(long = "namespace", env = "CAUSEWAY_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// The controller's own namespace: push certificates Secrets and the leader Lease live here.
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_CONTROLLER_NAMESPACE)]
    controller_namespace: String,
    /// Identity in the leader election; default: the host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Take part in leader election (only the leader writes statuses); `false` for a single replica.
    #[arg(long, env = "CAUSEWAY_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Address of the snapshot server (HTTP/2, mutual TLS); port 0: a free port, logged as
    /// `listening role=push`.
    #[arg(long, env = "CAUSEWAY_PUSH_LISTEN", default_value = DEFAULT_PUSH_LISTEN)]
    push_listen: String,
    /// Address of the admin endpoints (`/healthz`, `/readyz`, `/proxies`, `/version`); port 0:
    /// a free port, logged as `listening role=admin`.
    #[arg(long, env = "CAUSEWAY_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN)]
    admin_listen: String,
    /// Names proxies use to reach the snapshot server (certificate SANs), repeatable; default:
    /// causeway-controller, causeway-controller.NS, causeway-controller.NS.svc, localhost, 127.0.0.1.
    #[arg(
        long = "push-server-name",
        env = "CAUSEWAY_PUSH_SERVER_NAMES",
        value_delimiter = ','
    )]
    push_server_names: Vec<String>,
    /// Domain of the Apis' default endpoints (`{api}.{namespace}.{domain}`).
    #[arg(long, env = "CAUSEWAY_EXECUTE_API_DOMAIN", default_value = crate::DEFAULT_EXECUTE_API_DOMAIN)]
    execute_api_domain: String,
    /// Least time from the end of one compile to the start of the next, milliseconds: a change
    /// after a quiet spell compiles at once, a burst of changes once per this period. With
    /// `--from-dir`: how often the files are read (at least 50).
    #[arg(long, env = "CAUSEWAY_DEBOUNCE_MILLIS", default_value_t = 200)]
    debounce_millis: u64,
    /// Milliseconds between usage rollups into `UsagePlan.status` (from the proxies' reports).
    #[arg(long, env = "CAUSEWAY_USAGE_ROLLUP_MILLIS", default_value_t = causeway_controller::usage::DEFAULT_ROLLUP_EVERY.as_millis() as u64)]
    usage_rollup_millis: u64,
    /// Who makes the push certificates: `controller` (made and rotated by the controller) or
    /// `cert-manager` (read from the Secret `causeway-push-tls` that a cert-manager Certificate
    /// writes — `tls.crt`, `tls.key`, `ca.crt` — and read again every minute).
    #[arg(long, env = "CAUSEWAY_PUSH_CERTS", default_value = "controller", value_parser = ["controller", "cert-manager"])]
    push_certs: String,
    /// Seconds between reads of the API server's service-account issuer and keys
    /// (`/.well-known/openid-configuration`, `/openid/v1/jwks`) for SERVICE_ACCOUNT
    /// authorizers; a change (key rotation) is pushed to the proxies. 0: never read them.
    #[arg(long, env = "CAUSEWAY_SERVICE_ACCOUNT_KEYS_REFRESH_SECONDS", default_value_t = causeway_controller::cluster_keys::REFRESH_EVERY.as_secs())]
    service_account_keys_refresh_seconds: u64,
    /// Read resources from this directory of YAML instead of a cluster (tests).
    #[arg(long, hide = true)]
    from_dir: Option<PathBuf>,
    /// With --from-dir: keep the push certificates here (made if absent; the proxies' in `proxy/`).
    #[arg(long, hide = true)]
    tls_dir: Option<PathBuf>,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let server_names = if args.push_server_names.is_empty() {
        let ns = &args.controller_namespace;
        vec![
            "causeway-controller".into(),
            format!("causeway-controller.{ns}"),
            format!("causeway-controller.{ns}.svc"),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
    } else {
        args.push_server_names.clone()
    };
    let compile_options = CompileOptions {
        execute_api_domain: args.execute_api_domain.clone(),
        ..CompileOptions::default()
    };
    let push_listener = TcpListener::bind(&args.push_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--push-listen)", args.push_listen))?;
    let admin_listener = TcpListener::bind(&args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--admin-listen)", args.admin_listen))?;
    crate::serving::announce("push", &push_listener)?;
    crate::serving::announce("admin", &admin_listener)?;

    if let Some(dir) = &args.from_dir {
        let tls_dir = args.tls_dir.clone().context("--from-dir needs --tls-dir")?;
        let certs = PushCerts::load_or_create_dir(&tls_dir, &server_names)?;
        return from_dir(
            dir.clone(),
            (certs, tls_dir, server_names),
            compile_options,
            push_listener,
            admin_listener,
            Duration::from_millis(args.debounce_millis.max(50)),
        )
        .await;
    }

    let client = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
            Client::try_from(config).context("cannot build the Kubernetes client")?
        }
        None => Client::try_default()
            .await
            .context("no Kubernetes configuration (in-cluster, $KUBECONFIG or ~/.kube/config); use --kubeconfig")?,
    };
    let identity = args.identity.clone().unwrap_or_else(hostname);
    let config = causeway_controller::Config {
        scope: Scope {
            namespaces: args.namespaces.clone(),
        },
        namespace: args.controller_namespace.clone(),
        compile: compile_options,
        debounce: Duration::from_millis(args.debounce_millis),
        identity,
        leader_election: args.leader_elect,
        server_names,
        usage_rollup_every: Duration::from_millis(args.usage_rollup_millis),
        cluster_keys_every: (args.service_account_keys_refresh_seconds > 0)
            .then(|| Duration::from_secs(args.service_account_keys_refresh_seconds)),
        cert_source: if args.push_certs == "cert-manager" {
            causeway_controller::tls::CertSource::External
        } else {
            causeway_controller::tls::CertSource::Controller
        },
    };
    causeway_controller::run(
        client,
        config,
        push_listener,
        admin_listener,
        shutdown_signal(),
    )
    .await?;
    info!("controller stopped");
    Ok(())
}

async fn from_dir(
    dir: PathBuf,
    (certs, tls_dir, server_names): (PushCerts, PathBuf, Vec<String>),
    options: CompileOptions,
    push_listener: TcpListener,
    admin_listener: TcpListener,
    poll: Duration,
) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let push = PushServer::new(Arc::clone(&wake));
    let (tls, server_cert) = certs.rotating_server_config()?;
    let push_cert = Arc::clone(&server_cert);
    // Rotation: renew the leaves in the directory when due and serve the new certificate.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(causeway_controller::tls::RENEW_CHECK_EVERY).await;
            match PushCerts::load_or_create_dir(&tls_dir, &server_names) {
                Ok(certs) => {
                    if let Err(e) = server_cert.set(&certs) {
                        warn!("{e}");
                    }
                }
                Err(e) => warn!("renewing push certificates: {e}"),
            }
        }
    });
    tokio::spawn({
        let push = push.clone();
        async move {
            if let Err(e) = push.serve(push_listener, tls, std::future::pending()).await {
                warn!("{e}");
            }
        }
    });
    tokio::spawn(admin::serve(
        admin_listener,
        AdminState {
            push: push.clone(),
            ready: Arc::new(AtomicBool::new(true)),
            push_cert: Some(push_cert),
        },
        std::future::pending(),
    ));
    let mut last = None;
    let mut watch = crate::files::SourceWatch::for_poll(poll);
    let mut parsed = crate::files::ParseCache::default();
    // Incremental: objects of files that did not change keep their compiled parts.
    let mut compiler = Compiler::new(options);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        if watch.must_read(&dir) {
            match read_sources(&dir) {
                Err(e) => warn!("{e:#}"),
                Ok(sources) if Some(sources.fingerprint) != last => {
                    last = Some(sources.fingerprint);
                    match sources.inventory_with(&mut parsed) {
                        Err(errors) => errors.iter().for_each(|e| warn!("{e}")),
                        Ok(inventory) => {
                            let started = std::time::Instant::now();
                            let compiled = compiler.compile(&inventory);
                            let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
                            if push.publish(&compiled.snapshot) {
                                info!(
                                    routes = inventory.routes.len(),
                                    compile_ms = format!("{compile_ms:.1}"),
                                    snapshot_bytes = compiled.snapshot.to_bytes().len(),
                                    version = %compiled.snapshot.version,
                                    "compiled"
                                );
                            }
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = wake.notified() => {
                let r = push.rollout();
                info!(version = %r.version, connected = r.connected, applied = r.applied, rejected = r.rejected.len(), "rollout");
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("causeway-controller-{}", std::process::id()))
}

/// The host name, or a fallback; also used by `causeway proxy` as the default proxy id.
pub fn default_identity() -> String {
    hostname()
}
