//! `causeway usage PLAN`: requests admitted and throttled per key per day (API Gateway's
//! GetUsage), read from the Redis every replica writes to (`--redis-url`), or from one proxy's
//! admin endpoint (`--admin`, that replica's counts when it has no Redis).

use std::process::ExitCode;

use anyhow::Context;
use causeway_proxy::usage::{UsageReport, parse_date, read_shared};
use clap::Args;
use http_body_util::{BodyExt, Empty};

/// Flags of `causeway usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// The usage plan, as `NAME` (in --namespace) or `NAMESPACE/NAME`.
    plan: String,
    /// Namespace of the plan when PLAN has none.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Only this API key id.
    #[arg(long)]
    key: Option<String>,
    /// First day, YYYY-MM-DD (default today, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (default today, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Read fleet-wide counts from this Redis.
    #[arg(long, env = "CAUSEWAY_REDIS_URL", conflicts_with = "admin")]
    redis_url: Option<String>,
    /// Read from this proxy admin address instead (for example http://127.0.0.1:9901).
    #[arg(long)]
    admin: Option<String>,
    /// Output format: `text` or `json`.
    #[arg(short, long, default_value = "text")]
    output: String,
}

/// Runs the command.
pub fn run(args: UsageArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(report(&args)) {
        Ok(report) => {
            print!("{}", render(&report, &args.output));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

async fn report(args: &UsageArgs) -> anyhow::Result<UsageReport> {
    let plan = if args.plan.contains('/') {
        args.plan.clone()
    } else {
        format!("{}/{}", args.namespace, args.plan)
    };
    let day = |flag: &str, value: &Option<String>| match value {
        None => Ok(today()),
        Some(text) => parse_date(text)
            .with_context(|| format!("--{flag} must be a date as YYYY-MM-DD, not {text:?}")),
    };
    let (from, to) = (day("from", &args.from)?, day("to", &args.to)?);
    if from > to {
        anyhow::bail!("--from is after --to");
    }
    match (&args.redis_url, &args.admin) {
        (Some(url), _) => {
            let client = redis::Client::open(url.as_str())
                .with_context(|| format!("invalid --redis-url {url:?}"))?;
            let mut conn = client
                .get_connection_manager()
                .await
                .with_context(|| format!("cannot reach redis at {url}"))?;
            read_shared(&mut conn, &plan, args.key.as_deref(), from, to)
                .await
                .context("cannot read usage from redis")
        }
        (None, Some(admin)) => from_admin(admin, &plan, args, from, to).await,
        (None, None) => anyhow::bail!(
            "say where usage is kept: --redis-url (shared by every replica) or --admin (one proxy)"
        ),
    }
}

async fn from_admin(
    admin: &str,
    plan: &str,
    args: &UsageArgs,
    from: u64,
    to: u64,
) -> anyhow::Result<UsageReport> {
    use causeway_proxy::usage::DayUsage;
    use hyper_util::client::legacy::Client;
    let date = causeway_proxy::usage::date;
    let mut url = format!(
        "{}/usage?plan={plan}&from={}&to={}",
        admin.trim_end_matches('/'),
        date(from),
        date(to)
    );
    if let Some(key) = &args.key {
        url.push_str(&format!("&key={key}"));
    }
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid --admin {admin:?}"))?;
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("cannot reach the proxy admin at {admin}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    if !status.is_success() {
        anyhow::bail!(
            "{admin} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        items: std::collections::BTreeMap<String, std::collections::BTreeMap<String, DayUsage>>,
    }
    let answer: Answer =
        serde_json::from_slice(&body).context("the admin answer is not a usage report")?;
    Ok(UsageReport {
        items: answer.items,
    })
}

fn render(report: &UsageReport, output: &str) -> String {
    if output == "json" {
        return serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
    }
    let mut out = format!(
        "{:20}  {:10}  {:>10}  {:>10}\n",
        "KEY", "DATE", "ADMITTED", "THROTTLED"
    );
    for (key, days) in &report.items {
        for (date, usage) in days {
            out.push_str(&format!(
                "{key:20}  {date:10}  {:>10}  {:>10}\n",
                usage.admitted, usage.throttled
            ));
        }
    }
    if report.items.is_empty() {
        out.push_str("(no requests counted in this range)\n");
    }
    out
}
