//! `causeway`: the one binary. Subcommands: `controller` (in a cluster), `proxy` (fed by the
//! controller), `standalone` (compile YAML from disk and serve it),
//! `validate` (print what `compile` says of each object), `crds` (print the CRD YAML), `import
//! openapi` and `export` (OpenAPI documents), and the
//! operator commands of the release lifecycle (`history`, `status`, `deploy`, `rollback`,
//! `canary`, `promote`, `get-url`, `diff`; see [`causeway::ops`]). Also a kubectl plugin when
//! invoked as `kubectl-causeway`.
//! Only this crate uses `anyhow`; the libraries have typed errors.

mod alloc;
mod controller;
mod files;
mod logging;
mod openapi_cmd;
mod ops_cmd;
mod proxy_args;
mod proxy_cmd;
mod serving;
mod standalone;
mod tracing_args;
mod usage;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Default proxy traffic address.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default proxy admin address (`/healthz`, `/readyz`, `/metrics`, `/config_dump`).
const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
/// Default domain of the Apis' default endpoints (`{api}.{namespace}.{domain}`).
const DEFAULT_EXECUTE_API_DOMAIN: &str = "localhost";

/// Causeway: a Kubernetes-native API gateway with the concepts of Amazon API Gateway.
#[derive(Parser, Debug)]
#[command(name = "causeway", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the resources in a directory of YAML without a cluster; recompile on change.
    Standalone(StandaloneArgs),
    /// Compile the resources in a directory and print each object's status; exit 1 if any
    /// object is rejected, 2 if a file cannot be read.
    Validate(ValidateArgs),
    /// Print the CustomResourceDefinitions (YAML) generated from the Rust types.
    Crds,
    /// Requests admitted and throttled per API key per day for a usage plan (API Gateway's
    /// GetUsage), from the shared Redis or from one proxy's admin endpoint.
    Usage(usage::UsageArgs),
    /// Run the controller: watch the cluster, write statuses, push snapshots to the proxies.
    Controller(controller::ControllerArgs),
    /// Run a proxy fed by the controller's snapshot push.
    Proxy(proxy_cmd::ProxyCmdArgs),
    /// Import an API description (an AWS-style OpenAPI document) as Causeway resources.
    #[command(subcommand)]
    Import(openapi_cmd::ImportCommand),
    /// Write an Api as an OpenAPI 3.0 or Swagger 2.0 document, from files (`-f DIR`) or the
    /// cluster.
    Export(openapi_cmd::ExportArgs),
    #[command(flatten)]
    Ops(ops_cmd::OpsCommand),
}

/// Where resources come from and how they are compiled.
#[derive(Args, Debug, Clone)]
struct SourceArgs {
    /// Directory (searched recursively for *.yaml and *.yml) or single YAML file.
    #[arg(short = 'f', long = "filename", env = "CAUSEWAY_FILENAME")]
    path: PathBuf,
    /// Domain of the default endpoints: Api `pets` in namespace `shop` answers at
    /// `pets.shop.{domain}/{stage}/`.
    #[arg(long, env = "CAUSEWAY_EXECUTE_API_DOMAIN", default_value = DEFAULT_EXECUTE_API_DOMAIN)]
    execute_api_domain: String,
}

#[derive(Args, Debug)]
struct StandaloneArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Addresses for API traffic (HTTP/1.1 and h2c), repeatable or comma-separated: for dual
    /// stack give an IPv4 and an IPv6 address (`--listen 0.0.0.0:8080 --listen [::]:8080`).
    /// Port 0 takes a free port; every listener logs the address it bound as the event
    /// `listening` with `role` (traffic, https, admin) and `addr`.
    #[arg(long, env = "CAUSEWAY_LISTEN", default_value = DEFAULT_LISTEN, value_delimiter = ',', num_args = 1)]
    listen: Vec<String>,
    /// Address for the admin endpoints (port 0: a free port, logged as `listening role=admin`).
    #[arg(long, env = "CAUSEWAY_ADMIN_LISTEN", default_value = DEFAULT_ADMIN)]
    admin_listen: String,
    /// How often to look for changed files, milliseconds.
    #[arg(long, env = "CAUSEWAY_POLL_MILLIS", default_value_t = standalone::DEFAULT_POLL_MILLIS)]
    poll_millis: u64,
    /// Keep the deployment history here (so pinned stages survive restarts); default: memory only.
    #[arg(long, env = "CAUSEWAY_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    proxy: Box<proxy_args::ProxyArgs>,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Output format: `text` or `json`.
    #[arg(short, long, default_value = "text")]
    output: String,
}

/// The name the binary answers to as a kubectl plugin (`kubectl causeway ...`).
const KUBECTL_PLUGIN_NAME: &str = "kubectl-causeway";

/// Parses the command line. Invoked as `kubectl-causeway` (a symlink on `$PATH`, run by
/// `kubectl causeway ...`), the help names itself `kubectl causeway`; parsing is the same.
fn parse_cli() -> Cli {
    let invoked_as = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut command = Cli::command();
    if invoked_as.as_deref() == Some(KUBECTL_PLUGIN_NAME) {
        command = command
            .bin_name("kubectl causeway")
            .name(KUBECTL_PLUGIN_NAME);
    }
    let matches = command.get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

fn main() -> ExitCode {
    let cli = parse_cli();
    match cli.command {
        Command::Crds => match causeway_crds::generate::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::from(2)
            }
        },
        Command::Validate(args) => validate::run(&args.source, &args.output),
        Command::Usage(args) => usage::run(args),
        Command::Import(command) => openapi_cmd::run_import(command),
        Command::Export(args) => openapi_cmd::run_export(args),
        Command::Controller(args) => run_async(&cli.log, controller::run(args)),
        Command::Proxy(args) => run_async(&cli.log, proxy_cmd::run(args)),
        Command::Ops(command) => run_async(&cli.log, ops_cmd::run(command)),
        Command::Standalone(args) => {
            logging::init(&cli.log);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(standalone::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Runs a long-lived subcommand on a multi-threaded runtime, with logging and the process-wide
/// rustls crypto provider (ring) installed.
fn run_async(
    log: &logging::LogArgs,
    task: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    logging::init(log);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Catches what clap otherwise reports only when a command is run (duplicate argument
        // groups or names, bad `requires`, conflicting env vars).
        super::Cli::command().debug_assert();
    }
}
