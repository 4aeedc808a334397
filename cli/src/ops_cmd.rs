//! Flags of the operator commands and how they run: build a client from the kubeconfig, call the
//! matching function of [`causeway::ops`], print to stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use causeway::ops;
use causeway_controller::kube::config::{KubeConfigOptions, Kubeconfig};
use causeway_controller::kube::{self, Client};
use clap::{Args, Subcommand};

/// Where the cluster is: kubeconfig and namespace.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Kubeconfig file; default: `$KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    #[arg(long, env = "CAUSEWAY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the Api; default: the kubeconfig context's namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

/// Selects a stage of an Api.
#[derive(Args, Debug, Clone)]
pub struct StageArgs {
    /// The Api (its `metadata.name`).
    api: String,
    /// The stage name (`spec.stageName`, else the Stage's `metadata.name`).
    #[arg(long, short = 's')]
    stage: String,
}

/// Flags of the mutating commands.
#[derive(Args, Debug, Clone)]
pub struct MutateArgs {
    /// Print the merge patch without applying it.
    #[arg(long)]
    dry_run: bool,
}

/// The operator commands.
#[derive(Subcommand, Debug)]
pub enum OpsCommand {
    /// The Api's deployments, newest first, and which stage serves which.
    History {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The Api.
        api: String,
    },
    /// Stages of the Api (or of every Api in the namespace): deployment, canary, URLs, proxies,
    /// conditions, rejected objects.
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The Api; default: every Api in the namespace.
        api: Option<String>,
    },
    /// Pin the stage to the Api's newest deployment (`spec.deploymentId`, removing `autoDeploy`).
    Deploy {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        stage: StageArgs,
        /// Set the Stage's `spec.description` as well.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        mutate: MutateArgs,
    },
    /// Point the stage at an older deployment: `--to ID`, default the one before it in history.
    Rollback {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        stage: StageArgs,
        /// Deployment id to serve.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        mutate: MutateArgs,
    },
    /// Send a share of the stage's traffic to another deployment (default: the newest).
    Canary {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        stage: StageArgs,
        /// Share of requests for the canary, 0-100 (fractions allowed).
        #[arg(long)]
        percent: f64,
        /// Deployment id for the canary; default: the Api's newest deployment.
        #[arg(long)]
        deployment: Option<String>,
        #[command(flatten)]
        mutate: MutateArgs,
    },
    /// The stage takes its canary's deployment and variable overrides; the canary is removed.
    Promote {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        stage: StageArgs,
        #[command(flatten)]
        mutate: MutateArgs,
    },
    /// The URLs that reach the stage.
    GetUrl {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        stage: StageArgs,
    },
    /// Routes added (+), removed (-) or changed (~) from deployment FROM to deployment TO.
    Diff {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The Api.
        api: String,
        /// The older deployment id.
        from: String,
        /// The newer deployment id.
        to: String,
    },
}

/// Builds the client from `--kubeconfig` or the default configuration.
async fn client(args: &ClusterArgs) -> anyhow::Result<Client> {
    match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
            Client::try_from(config).context("cannot build the Kubernetes client")
        }
        None => Client::try_default().await.context(
            "no Kubernetes configuration ($KUBECONFIG, ~/.kube/config or in-cluster); use --kubeconfig",
        ),
    }
}

impl OpsCommand {
    /// The cluster flags of the command.
    fn cluster(&self) -> &ClusterArgs {
        match self {
            Self::History { cluster, .. }
            | Self::Status { cluster, .. }
            | Self::Deploy { cluster, .. }
            | Self::Rollback { cluster, .. }
            | Self::Canary { cluster, .. }
            | Self::Promote { cluster, .. }
            | Self::GetUrl { cluster, .. }
            | Self::Diff { cluster, .. } => cluster,
        }
    }
}

/// Runs one operator command.
pub async fn run(command: OpsCommand) -> anyhow::Result<()> {
    let cluster = command.cluster().clone();
    let client = client(&cluster).await?;
    let ns = cluster
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut out = std::io::stdout().lock();
    let c = &client;
    let o = &mut out;
    match command {
        OpsCommand::History { api, .. } => ops::history(c, &ns, &api, o).await?,
        OpsCommand::Status { api, .. } => ops::status(c, &ns, api.as_deref(), o).await?,
        OpsCommand::Deploy {
            stage,
            description,
            mutate,
            ..
        } => {
            ops::deploy(
                c,
                &ns,
                &stage.api,
                &stage.stage,
                description.as_deref(),
                mutate.dry_run,
                o,
            )
            .await?
        }
        OpsCommand::Rollback {
            stage, to, mutate, ..
        } => {
            ops::rollback(
                c,
                &ns,
                &stage.api,
                &stage.stage,
                to.as_deref(),
                mutate.dry_run,
                o,
            )
            .await?
        }
        OpsCommand::Canary {
            stage,
            percent,
            deployment,
            mutate,
            ..
        } => {
            ops::canary(
                c,
                &ns,
                &stage.api,
                &stage.stage,
                percent,
                deployment.as_deref(),
                mutate.dry_run,
                o,
            )
            .await?
        }
        OpsCommand::Promote { stage, mutate, .. } => {
            ops::promote(c, &ns, &stage.api, &stage.stage, mutate.dry_run, o).await?
        }
        OpsCommand::GetUrl { stage, .. } => {
            ops::get_url(c, &ns, &stage.api, &stage.stage, o).await?
        }
        OpsCommand::Diff { api, from, to, .. } => ops::diff(c, &ns, &api, &from, &to, o).await?,
    }
    out.flush()?;
    Ok(())
}
