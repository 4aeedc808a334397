//! Causeway's Kubernetes I/O: watches feeding the inventory, a debounced compile, status and
//! Event writes, the deployment history in ConfigMaps, leader election, and the snapshot push
//! server. Everything about *what* resources mean is in `causeway-compile`; this crate only moves
//! data between the API server, `compile` and the proxies.
//!
//! Depends on crds, compile, snapshot and kube. Never handles user traffic.
//!
//! Flow of [`run`]: watches ([`watch`]) wake the reconciler when an object changed other than in
//! its status; at least [`Config::debounce`] after its previous pass (at once after a quiet
//! spell), it builds the
//! [`Inventory`](causeway_compile::Inventory), compiles, publishes the snapshot to the [`push`]
//! server (a no-op when the version did not change), hands the compiled statuses to the status
//! task ([`writer::StatusTask`]) and, on the leader, hands new deployments to the history task
//! ([`history::HistoryTask`]), whose own writes wake no compile. The
//! status task patches, on the leader and off the path to the proxies, the statuses that
//! changed; acks from proxies wake it (not the compile), so `Programmed` follows the rollout of
//! each object ([`rollout`]). Every
//! [`Config::usage_rollup_every`] the proxies' usage reports are added up ([`usage`]) and go
//! into `UsagePlan.status` on the next pass. The cluster's service-account issuer and keys
//! ([`cluster_keys`]) are read from the API server and given to `compile` on every pass.

pub mod admin;
pub mod cluster_keys;
pub mod history;
pub mod leader;
pub mod push;
pub mod rollout;
pub mod status;
pub mod tls;
pub mod usage;
pub mod watch;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use causeway_compile::{CompileOptions, Compiler};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use kube;

/// Default debounce: the least time from the end of one compile to the start of the next.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces watched (empty: all).
    pub scope: watch::Scope,
    /// The controller's own namespace (push certificates, the Lease).
    pub namespace: String,
    /// Compile settings.
    pub compile: CompileOptions,
    /// The least time from the end of one compile to the start of the next. A change after a
    /// quiet spell is compiled at once; the changes that come during a compile or within this
    /// time after it are folded into the next one (at most one compile per this period).
    pub debounce: Duration,
    /// Identity in the leader election (pod name).
    pub identity: String,
    /// Take part in leader election; when off, this replica always leads.
    pub leader_election: bool,
    /// Names in the push server certificate (DNS names and IP addresses).
    pub server_names: Vec<String>,
    /// Who makes the push certificates.
    pub cert_source: tls::CertSource,
    /// How often the proxies' usage reports are rolled up into `UsagePlan.status`
    /// ([`usage::DEFAULT_ROLLUP_EVERY`]).
    pub usage_rollup_every: Duration,
    /// How often the service-account issuer and keys are read from the API server
    /// ([`cluster_keys::REFRESH_EVERY`]); `None`: never (SERVICE_ACCOUNT authorizers then need
    /// `jwksSecretRef`).
    pub cluster_keys_every: Option<Duration>,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The API server could not be asked what it serves.
    #[error("cannot discover the EndpointSlice API version: {0}")]
    Discovery(#[source] kube::Error),
    /// Push certificates.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Leader election.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    /// Leader election stopped working; the process exits so that it is restarted.
    #[error("leader election ended unexpectedly; stopping")]
    ElectionEnded,
}

/// The current time as RFC 3339 (UTC, seconds), for condition transitions and history.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The current time as RFC 3339 (UTC, microseconds), for deployment records.
pub fn now_precise() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    push_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    let wake = Arc::new(Notify::new());
    // Acks and proxy (dis)connections wake the status task (`PushServer::progress`), not the
    // compile: nothing a proxy says changes the snapshot.
    let push = push::PushServer::new(Arc::new(Notify::new()));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = JoinSet::new();

    let cert_source = config.cert_source;
    let load = move |client: Client, namespace: String, names: Vec<String>| async move {
        match cert_source {
            tls::CertSource::Controller => {
                tls::PushCerts::load_or_create_secrets(&client, &namespace, &names).await
            }
            tls::CertSource::External => tls::PushCerts::load_external(&client, &namespace).await,
        }
    };
    let certs = load(
        client.clone(),
        config.namespace.clone(),
        config.server_names.clone(),
    )
    .await?;
    let (tls, server_cert) = certs.rotating_server_config()?;
    let push_cert = Arc::clone(&server_cert);
    {
        // Rotation: renew the leaves when due (or read what cert-manager renewed) and serve the
        // new server certificate.
        let (client, namespace, names) = (
            client.clone(),
            config.namespace.clone(),
            config.server_names.clone(),
        );
        let every = match config.cert_source {
            tls::CertSource::Controller => tls::RENEW_CHECK_EVERY,
            tls::CertSource::External => tls::EXTERNAL_RELOAD_EVERY,
        };
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match load(client.clone(), namespace.clone(), names.clone()).await {
                    Ok(certs) => {
                        if let Err(e) = server_cert.set(&certs) {
                            warn!("{e}");
                        }
                    }
                    Err(e) => warn!("renewing push certificates: {e}"),
                }
            }
        });
    }
    {
        let push = push.clone();
        let done = stopped(stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = push.serve(push_listener, tls, done).await {
                warn!("{e}");
            }
        });
    }
    {
        let state = admin::AdminState {
            push: push.clone(),
            ready: Arc::clone(&ready),
            push_cert: Some(push_cert),
        };
        let done = stopped(stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = admin::serve(admin_listener, state, done).await {
                warn!("admin server: {e}");
            }
        });
    }

    let cluster_keys = match config.cluster_keys_every {
        Some(every) => Some(
            cluster_keys::watch_keys(client.clone(), every, Arc::clone(&wake), &mut tasks).await,
        ),
        None => None,
    };
    let slice_version = watch::SliceVersion::discover(&client)
        .await
        .map_err(ControllerError::Discovery)?;
    info!(?slice_version, scope = ?config.scope.namespaces, "starting watches");
    let own_writes = Arc::new(history::OwnWrites::default());
    let stores = watch::Stores::start(
        &client,
        &config.scope,
        slice_version,
        &wake,
        &own_writes,
        &mut tasks,
    );

    // Without election this replica always leads; the sender is kept so `changed()` waits.
    let (_always, leading, _election) = if config.leader_election {
        let (rx, task) = leader::elect(client.clone(), &config.namespace, &config.identity).await?;
        (None, rx, Some(task))
    } else {
        let (tx, rx) = tokio::sync::watch::channel(true);
        (Some(tx), rx, None)
    };

    let patch_mode = writer::PatchMode::discover(&client).await;
    info!(?patch_mode, "status writes");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: writer::FIELD_MANAGER.into(),
            instance: Some(config.identity.clone()),
        },
    );
    let mut reconciler = Reconciler {
        client: client.clone(),
        compile: Compiler::new(config.compile.clone()),
        cluster_keys,
        push: push.clone(),
        status_writer: writer::StatusWriter::new(client.clone(), Some(recorder))
            .with_mode(patch_mode)
            .spawn(push.clone(), config.debounce),
        history: history::HistoryTask::spawn(client.clone(), Arc::clone(&own_writes)),
        records: stores.records(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = stores.ready() => {}
        () = &mut shutdown => return Ok(()),
    }
    info!("watches synced");
    let loop_ = Loop {
        leading,
        wake: &wake,
        ready: &ready,
        debounce: config.debounce,
        usage_rollup_every: config.usage_rollup_every,
        identity: &config.identity,
        own_writes: Some(&own_writes),
    };
    let result = loop_.drive(&mut reconciler, &stores, shutdown).await;
    let _ = stop_tx.send(true);
    tasks.abort_all();
    result
}

/// The cluster's objects as [`drive`](Loop::drive) reads them on every pass: the watch stores
/// in [`run`], a fixed or scripted set in tests.
pub trait Objects {
    /// The compile input.
    fn inventory(&self) -> causeway_compile::Inventory;
    /// The deployment-record ConfigMaps.
    fn deployment_config_maps(&self) -> Vec<Arc<k8s_openapi::api::core::v1::ConfigMap>>;
}

impl Objects for watch::Stores {
    fn inventory(&self) -> causeway_compile::Inventory {
        watch::Stores::inventory(self)
    }
    fn deployment_config_maps(&self) -> Vec<Arc<k8s_openapi::api::core::v1::ConfigMap>> {
        watch::Stores::deployment_config_maps(self)
    }
}

/// The reconcile loop of a controller replica: reconcile, then wait for a change (an object, an
/// ack, leadership), debounce, repeat. Whether this pass may write follows `leading` — the
/// receiver of the Lease election — so a replica that loses its Lease stops writing statuses
/// at its next pass, and the loss itself wakes the loop.
pub struct Loop<'a> {
    /// True while this replica holds the Lease.
    pub leading: tokio::sync::watch::Receiver<bool>,
    /// Woken by watches and acks.
    pub wake: &'a Notify,
    /// Set after each pass to whether this replica leads (the `/readyz` answer).
    pub ready: &'a AtomicBool,
    /// The least time from the end of one pass to the start of the next (see
    /// [`Config::debounce`]).
    pub debounce: Duration,
    /// Add up the proxies' usage reports into `UsagePlan.status` this often (at least 100 ms).
    pub usage_rollup_every: Duration,
    /// For logs.
    pub identity: &'a str,
    /// The history writes of this controller: their watch events wake no compile, only a
    /// refresh of the deployments in the Api statuses.
    pub own_writes: Option<&'a history::OwnWrites>,
}

impl std::fmt::Debug for Loop<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Loop<'_> {
    /// Runs passes until `shutdown` resolves (`Ok`) or the election ends (`ElectionEnded`:
    /// better to stop than to write without a Lease).
    pub async fn drive(
        mut self,
        reconciler: &mut Reconciler,
        objects: &impl Objects,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut was_leader = false;
        let rollup_every = self.usage_rollup_every.max(Duration::from_millis(100));
        let mut next_rollup = tokio::time::Instant::now() + rollup_every;
        loop {
            if tokio::time::Instant::now() >= next_rollup {
                next_rollup = tokio::time::Instant::now() + rollup_every;
                let plans: Vec<String> = objects
                    .inventory()
                    .usage_plans
                    .iter()
                    .map(|p| {
                        use kube::ResourceExt;
                        let ns = p.namespace().unwrap_or_else(|| "default".into());
                        format!("{ns}/{}", p.name_any())
                    })
                    .collect();
                let reports = reconciler.push.usage_reports();
                reconciler
                    .status_writer
                    .set_usage(usage::rollup(&reports, &plans, usage::today()));
            }
            let is_leader = *self.leading.borrow_and_update();
            if is_leader != was_leader {
                info!(leader = is_leader, identity = %self.identity, "leadership changed");
                was_leader = is_leader;
            }
            // This pass reads every change notified so far: a wake stored meanwhile (during the
            // debounce, say) would only cause a pass that finds nothing new.
            let _ = futures_util::FutureExt::now_or_never(self.wake.notified());
            let started = std::time::Instant::now();
            let inventory = objects.inventory();
            tracing::debug!(
                inventory_ms = started.elapsed().as_secs_f64() * 1000.0,
                "inventory read"
            );
            reconciler
                .reconcile(
                    inventory,
                    &objects.deployment_config_maps(),
                    is_leader,
                    &now(),
                )
                .await;
            self.ready.store(is_leader, Ordering::Relaxed);
            let finished = tokio::time::Instant::now();
            loop {
                let own_written = async {
                    match self.own_writes {
                        Some(own) => own.written().notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = self.wake.notified() => break,
                    () = tokio::time::sleep_until(next_rollup) => break,
                    changed = self.leading.changed() => {
                        if changed.is_err() {
                            return Err(ControllerError::ElectionEnded);
                        }
                        break;
                    }
                    () = own_written => {
                        // Our own history write came back through the watch: the Api statuses
                        // list it, no compile.
                        if is_leader {
                            reconciler
                                .status_writer
                                .set_deployments(history::summaries(
                                    &objects.deployment_config_maps(),
                                ));
                        }
                    }
                    () = &mut shutdown => return Ok(()),
                }
            }
            // Debounce: a change after a quiet spell goes to the proxies at once; within
            // `debounce` of the last pass, wait for the rest of that period and fold in whatever
            // else changes meanwhile. So an edit pays no debounce, and a burst (a `kubectl
            // apply` of many objects) costs one pass per period, never a pass per object.
            // (Waiting after every change cost each edit the whole debounce.)
            tokio::select! {
                () = tokio::time::sleep_until(finished + self.debounce) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }
}

/// One pass of the controller: compile, publish, and (when leading) record deployments and
/// write statuses. Kept apart from the watch plumbing so that it can be tested against a mock
/// API server.
pub struct Reconciler {
    /// The API client (history and status writes).
    pub client: Client,
    /// The compiler, with its settings and the memo of the last pass: unchanged objects
    /// (Causeway objects: same uid and `generation`; others: same `resourceVersion`) reuse
    /// their compiled parts, so status writes recompile nothing.
    pub compile: Compiler,
    /// The latest service-account issuer and keys read from the API server; on every pass
    /// they go into `compile` (`service_account_issuer`, `service_account_jwks`).
    pub cluster_keys: Option<tokio::sync::watch::Receiver<Option<cluster_keys::ClusterKeys>>>,
    /// Where snapshots go.
    pub push: push::PushServer,
    /// Status and Event writes, in their own task ([`writer::StatusWriter::spawn`]).
    pub status_writer: writer::StatusTask,
    /// Deployment-history writes, in their own task ([`history::HistoryTask::spawn`]).
    pub history: history::HistoryTask,
    /// The deployment records read back from the cluster; told of each record written, so that
    /// its ConfigMap is not parsed when the watch brings it back.
    pub records: Arc<std::sync::Mutex<history::RecordCache>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// What one [`Reconciler::reconcile`] did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The compiled snapshot version.
    pub version: String,
    /// Whether that version was new to the push server.
    pub published: bool,
}

impl Reconciler {
    /// Compiles `inventory`, publishes the snapshot, hands the statuses to the status task
    /// (which writes those that changed when `leading`), and, only when `leading`, hands the
    /// deployment-history changes to the history task. Waits for no write.
    pub async fn reconcile(
        &mut self,
        inventory: causeway_compile::Inventory,
        config_maps: &[Arc<k8s_openapi::api::core::v1::ConfigMap>],
        leading: bool,
        now: &str,
    ) -> Outcome {
        if let Some(keys) = &self.cluster_keys
            && let Some(keys) = keys.borrow().as_ref()
        {
            let options = self.compile.options();
            if options.service_account_issuer.as_deref() != Some(keys.issuer.as_str())
                || options.service_account_jwks.as_deref() != Some(keys.jwks.as_str())
            {
                let mut options = options.clone();
                options.service_account_issuer = Some(keys.issuer.clone());
                options.service_account_jwks = Some(keys.jwks.clone());
                self.compile.set_options(options);
            }
        }
        let started = std::time::Instant::now();
        let compiled = self.compile.compile(&inventory);
        tracing::debug!(
            compile_ms = started.elapsed().as_secs_f64() * 1000.0,
            version = %compiled.snapshot.version,
            "compiled"
        );
        let published = self.push.publish(&compiled.snapshot);
        let outcome = Outcome {
            version: compiled.snapshot.version.clone(),
            published,
        };
        // Statuses go to their own task, which writes them (when leading) while this loop waits
        // for the next change: the path from a change to the proxies never waits for a PATCH.
        if leading {
            self.status_writer
                .set_deployments(history::summaries(config_maps));
        }
        let inventory = Arc::new(inventory);
        self.status_writer.submit(writer::StatusInput {
            inventory: Arc::clone(&inventory),
            statuses: compiled.statuses,
            number: self.push.number(),
            version: compiled.snapshot.version,
            leading,
            now: now.to_string(),
        });
        if !leading {
            return outcome;
        }
        // Deployment records get the time to the microsecond: two made in the same second
        // (a quick edit after another) must still sort in the order they were made.
        let plan = history::plan(
            &compiled.deployments,
            &inventory.apis,
            &inventory.stages,
            config_maps,
            &now_precise(),
        );
        match self.records.lock() {
            Ok(mut records) => records.writing_plan(&plan, &compiled.deployments),
            Err(poisoned) => poisoned
                .into_inner()
                .writing_plan(&plan, &compiled.deployments),
        }
        // The history task writes it; the loop goes on at once (the write is safe to repeat,
        // and the next compile plans again whatever failed).
        self.history.submit(plan);
        outcome
    }
}
