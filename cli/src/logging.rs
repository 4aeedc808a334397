//! Log setup: structured logs through `tracing`, text or JSON.

use clap::Args;
use tracing_subscriber::EnvFilter;

/// Logging flags.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format: `text` or `json` (the container image sets `json`).
    #[arg(
        long,
        global = true,
        env = "CAUSEWAY_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: String,
    /// Log filter, as in RUST_LOG (for example `info,causeway_proxy=debug`).
    #[arg(long, global = true, env = "CAUSEWAY_LOG", default_value = "info")]
    pub log: String,
}

/// Installs the global subscriber. Logs go to stderr; stdout carries access-log lines. Text logs
/// are coloured only when stderr is a terminal (never in files, pipes or container logs).
pub fn init(args: &LogArgs) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if args.log_format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_target(false).init();
    }
}
