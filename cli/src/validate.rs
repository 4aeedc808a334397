//! `causeway validate -f DIR`: what `compile` says of each object.

use std::process::ExitCode;

use causeway_compile::{CompileOptions, Compiled, ObjectStatus, compile};

use crate::SourceArgs;
use crate::files::read_sources;

/// Runs the command; the exit code says whether everything was accepted.
pub fn run(source: &SourceArgs, output: &str) -> ExitCode {
    let sources = match read_sources(&source.path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let inventory = match sources.inventory() {
        Ok(i) => i,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let options = CompileOptions {
        execute_api_domain: source.execute_api_domain.clone(),
        ..CompileOptions::default()
    };
    let compiled = compile(&inventory, &options);
    let rejected = compiled
        .statuses
        .iter()
        .filter(|s| !s.is_accepted())
        .count();
    if output == "json" {
        let doc = serde_json::json!({
            "version": compiled.snapshot.version,
            "statuses": compiled.statuses,
            "deployments": compiled.deployments.iter()
                .map(|d| serde_json::json!({"api": d.api, "id": d.id}))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", render_table(&compiled));
        let files = sources.files.len();
        let objects = compiled.statuses.len();
        println!(
            "\n{objects} objects in {files} files: {} accepted, {rejected} rejected; snapshot {}",
            objects - rejected,
            compiled.snapshot.version
        );
    }
    if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// One line per object: kind, namespace/name, verdict, reason and message.
pub fn render_table(compiled: &Compiled) -> String {
    let rows: Vec<[String; 4]> = compiled.statuses.iter().map(row).collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(4).max(4);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:w0$}  {:w1$}  {:8}  {}\n",
        "KIND", "NAME", "ACCEPTED", "DETAIL"
    );
    for r in rows {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:8}  {}\n",
            r[0], r[1], r[2], r[3]
        ));
    }
    out
}

fn row(status: &ObjectStatus) -> [String; 4] {
    let name = format!("{}/{}", status.namespace, status.name);
    let (verdict, detail) = match status.problem() {
        None => ("True".to_string(), detail(status)),
        Some(c) => ("False".to_string(), format!("{}: {}", c.reason, c.message)),
    };
    [status.kind.as_str().to_string(), name, verdict, detail]
}

fn detail(status: &ObjectStatus) -> String {
    use causeway_compile::StatusDetail;
    match &status.detail {
        StatusDetail::Api {
            latest_deployment_id,
            route_count,
        } => {
            format!("deployment {latest_deployment_id}, {route_count} routes")
        }
        StatusDetail::Stage {
            urls,
            deployment_id,
            canary_deployment_id,
            ..
        } => {
            let canary = canary_deployment_id
                .as_ref()
                .map(|c| format!(", canary {c}"))
                .unwrap_or_default();
            format!("deployment {deployment_id}{canary} at {}", urls.join(" "))
        }
        StatusDetail::UsagePlan { key_count } => format!("{key_count} keys"),
        StatusDetail::ServiceAccount { source, issuer, .. } => {
            format!("keys from {source}, issuer {issuer}")
        }
        StatusDetail::None => String::new(),
    }
}
