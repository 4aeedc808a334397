//! `causeway standalone -f DIR`: the same `compile` and the same proxy as in a cluster, fed
//! from YAML files on disk and recompiled when they change.
//!
//! A bad file or a rejected object is reported (file, object, reason) and the last good
//! snapshot keeps serving. The deployment history lives in memory, or in `--state-dir` so that
//! stages pinned to an older deployment survive a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use causeway_compile::{CompileOptions, Compiled, Compiler, DeploymentRecord, Inventory};
use causeway_proxy::Proxy;
use tracing::{info, warn};

use crate::StandaloneArgs;
use crate::files::read_sources;
use crate::serving;

/// How often files are checked for changes, milliseconds.
pub const DEFAULT_POLL_MILLIS: u64 = 500;
/// Deployments kept per Api (stages may pin any of them).
const HISTORY_PER_API: usize = 50;

/// Runs until Ctrl-C.
pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    // A typo in -f is a mistake to say at once, not a condition to wait out.
    if !args.source.path.exists() {
        anyhow::bail!("{} does not exist (-f)", args.source.path.display());
    }
    let https = serving::bind_https(args.proxy.https_listen.as_deref()).await?;
    let config = args
        .proxy
        .proxy_config(serving::https_port(https.as_ref())?)?;
    let proxy = Proxy::new(config);
    let listeners = serving::start(&proxy, &args.listen, &args.admin_listen, https).await?;

    let mut state = State::new(args.state_dir.clone())?;
    // Incremental: a reload after an edit recompiles only what the edit touched.
    let mut compiler = Compiler::new(CompileOptions {
        execute_api_domain: args.source.execute_api_domain.clone(),
        ..CompileOptions::default()
    });
    let poll = Duration::from_millis(args.poll_millis.max(50));
    let mut last_fingerprint = None;
    let mut watch = crate::files::SourceWatch::for_poll(poll);
    let mut parsed = crate::files::ParseCache::default();
    // The last problem reported, so that a persisting one is said once, not at every poll.
    let mut last_problem: Option<String> = None;
    let mut first = true;
    loop {
        if watch.must_read(&args.source.path) {
            match read_sources(&args.source.path) {
                Err(e) => {
                    let problem = format!("{e:#}");
                    if last_problem.as_deref() != Some(problem.as_str()) {
                        warn!("{problem}; still serving the last good configuration");
                        last_problem = Some(problem);
                    }
                    last_fingerprint = None;
                }
                Ok(sources) if Some(sources.fingerprint) != last_fingerprint => {
                    last_fingerprint = Some(sources.fingerprint);
                    match sources.inventory_with(&mut parsed) {
                        Err(errors) => {
                            for e in &errors {
                                warn!("{e}");
                            }
                            warn!(
                                files = sources.files.len(),
                                "not applied: fix the files above; still serving the last good configuration"
                            );
                        }
                        Ok(inventory) => {
                            last_problem = None;
                            let compiled = state.compile(inventory, &mut compiler);
                            report(&compiled, sources.files.len());
                            if first {
                                print_urls(&compiled, listeners.traffic.first().map(|a| a.port()));
                                first = false;
                            }
                            // The proxy logs each swap with its version and the parts it dropped.
                            proxy.apply(compiled.snapshot);
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("shutting down");
    listeners.stop().await;
    Ok(())
}

fn report(compiled: &Compiled, files: usize) {
    let rejected: Vec<_> = compiled
        .statuses
        .iter()
        .filter(|s| !s.is_accepted())
        .collect();
    for status in &rejected {
        if let Some(c) = status.problem() {
            warn!(
                kind = status.kind.as_str(),
                object = %format!("{}/{}", status.namespace, status.name),
                reason = %c.reason,
                "rejected: {}", c.message
            );
        }
    }
    info!(
        files,
        objects = compiled.statuses.len(),
        rejected = rejected.len(),
        stages = compiled.snapshot.stages.len(),
        version = %compiled.snapshot.version,
        "compiled"
    );
}

/// Logs each stage's URL as reachable here: compile knows host and path, the listener the port
/// it really bound.
fn print_urls(compiled: &Compiled, port: Option<u16>) {
    let port = port.filter(|p| *p != 80);
    for status in &compiled.statuses {
        if let causeway_compile::StatusDetail::Stage { urls, .. } = &status.detail {
            for url in urls {
                let url = match (port, url.strip_prefix("http://")) {
                    (Some(port), Some(rest)) => match rest.split_once('/') {
                        Some((host, path)) => format!("http://{host}:{port}/{path}"),
                        None => format!("http://{rest}:{port}"),
                    },
                    _ => url.clone(),
                };
                info!(stage = %format!("{}/{}", status.namespace, status.name), "serving {url}");
            }
        }
    }
}

/// The deployment history, so that stages may pin deployments that are no longer current.
struct State {
    history: BTreeMap<String, Vec<DeploymentRecord>>,
    file: Option<PathBuf>,
}

impl State {
    fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut state = Self {
            history: BTreeMap::new(),
            file: None,
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create --state-dir {}", dir.display()))?;
            let file = dir.join("deployments.json");
            if let Ok(text) = std::fs::read_to_string(&file) {
                state.history = serde_json::from_str(&text).with_context(|| {
                    format!("cannot read deployment history {}", file.display())
                })?;
            }
            state.file = Some(file);
        }
        Ok(state)
    }

    /// Compiles with the history, then records the new current deployments.
    fn compile(&mut self, mut inventory: Inventory, compiler: &mut Compiler) -> Compiled {
        inventory.deployments = self.history.values().flatten().cloned().collect();
        let compiled = compiler.compile(&inventory);
        let pinned: Vec<&str> = inventory
            .stages
            .iter()
            .filter_map(|s| s.spec.deployment_id.as_deref())
            .collect();
        let mut changed = false;
        for record in &compiled.deployments {
            let list = self.history.entry(record.api.clone()).or_default();
            if list.iter().any(|r| r.id == record.id) {
                continue;
            }
            info!(api = %record.api, deployment = %record.id, "new deployment recorded");
            list.insert(0, record.clone());
            changed = true;
            // Bounded, but a pinned deployment is never dropped.
            let mut kept = 0;
            list.retain(|r| {
                kept += 1;
                kept <= HISTORY_PER_API || pinned.contains(&r.id.as_str())
            });
        }
        if changed && let Some(file) = &self.file {
            let json = serde_json::to_vec_pretty(&self.history).unwrap_or_default();
            if let Err(e) = std::fs::write(file, json) {
                warn!("cannot write deployment history {}: {e}", file.display());
            }
        }
        compiled
    }
}
