//! `causeway import openapi FILE` and `causeway export API`: the shell around
//! [`causeway_compile::openapi`] (reading files, the cluster, writing YAML/JSON).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use causeway_compile::openapi::{
    self, ExportFormat, ExportOptions, ImportMapping, ImportOptions, NoteKind, StageChoice,
};
use causeway_compile::{CompileOptions, Kind, StatusDetail, compile};
use causeway_crds::{Api, Authorizer, Route};
use clap::{Args, Subcommand, ValueEnum};

use crate::files::read_sources;

/// What to import.
#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// An OpenAPI 3.0/3.1 or Swagger 2.0 document (YAML or JSON) with the
    /// `x-amazon-apigateway-*` extensions, as AWS exports it. Writes the CRs to stdout (or
    /// `--out DIR`) and what was not carried over to stderr; exit 1 when the import fails.
    Openapi(ImportArgs),
}

/// Flags of `causeway import openapi`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The document.
    file: PathBuf,
    /// Write `{api}-api.yaml`, `{api}-routes.yaml`, `{api}-authorizers.yaml` and
    /// `{api}-stage.yaml` here instead of printing one stream.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Namespace of the objects.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Name of the Api; default from `info.title`.
    #[arg(long)]
    api_name: Option<String>,
    /// Stage name; default the stage an AWS export names (`basePath`), else `prod`.
    #[arg(long, conflicts_with = "no_stage")]
    stage: Option<String>,
    /// Write no Stage.
    #[arg(long)]
    no_stage: bool,
    /// Mapping file (YAML): Lambda functions, VPC links, Cognito pools, IAM credentials.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Serve routes without the authorizers, security requirements or resource policy
    /// statements that cannot be carried over, instead of failing.
    #[arg(long)]
    allow_insecure_drop: bool,
    /// Also list the documentation-only constructs that were ignored.
    #[arg(short, long)]
    verbose: bool,
}

/// The document format of `causeway export`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    /// OpenAPI 3.0.3.
    Oas30,
    /// Swagger 2.0.
    Swagger20,
}

/// Which extensions `causeway export` writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionsArg {
    /// None: a plain document for SDK generators and documentation.
    None,
    /// `x-amazon-apigateway-*` (and `x-causeway-*`, so that `causeway import openapi` gives
    /// back the same resources).
    Aws,
}

/// Flags of `causeway export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The Api (its `metadata.name`).
    api: String,
    /// Read the objects from this directory or file (as `causeway validate -f`) instead of
    /// the cluster.
    #[arg(short = 'f', long = "filename")]
    path: Option<PathBuf>,
    /// Namespace of the Api (files: default any; cluster: default the context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Kubeconfig file (cluster mode).
    #[arg(long, env = "CAUSEWAY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Write this stage's URL as the server.
    #[arg(long, short = 's')]
    stage: Option<String>,
    /// Document format.
    #[arg(long, value_enum, default_value = "oas30")]
    format: FormatArg,
    /// Extensions to write.
    #[arg(long, value_enum, default_value = "none")]
    extensions: ExtensionsArg,
    /// Output encoding: `yaml` or `json`.
    #[arg(short, long, default_value = "yaml")]
    output: String,
    /// Domain of the default endpoints (files mode), as for `causeway validate`.
    #[arg(long, env = "CAUSEWAY_EXECUTE_API_DOMAIN", default_value = crate::DEFAULT_EXECUTE_API_DOMAIN)]
    execute_api_domain: String,
}

/// Runs `causeway import ...`.
pub fn run_import(command: ImportCommand) -> ExitCode {
    let ImportCommand::Openapi(args) = command;
    match import(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mapping = match &args.mapping {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            ImportMapping::parse(&t).with_context(|| p.display().to_string())?
        }
        None => ImportMapping::default(),
    };
    let options = ImportOptions {
        namespace: args.namespace.clone(),
        api_name: args.api_name.clone(),
        stage: match (&args.stage, args.no_stage) {
            (_, true) => StageChoice::None,
            (Some(s), false) => StageChoice::Named(s.clone()),
            (None, false) => StageChoice::FromDocument,
        },
        mapping,
        allow_insecure_drop: args.allow_insecure_drop,
    };
    let imported = match openapi::import(&text, &options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let mut err = std::io::stderr().lock();
    for note in &imported.notes {
        if note.kind != NoteKind::Ignored || args.verbose {
            writeln!(err, "{note}")?;
        }
    }
    let api = imported.api.metadata.name.clone().unwrap_or_default();
    writeln!(
        err,
        "imported Api {api}: {} routes, {} authorizers{}; {} not carried over, {} security constructs dropped, {} documentation-only ignored{}",
        imported.routes.len(),
        imported.authorizers.len(),
        if imported.stage.is_some() {
            ", 1 stage"
        } else {
            ""
        },
        imported.count(NoteKind::Dropped),
        imported.count(NoteKind::Security),
        imported.count(NoteKind::Ignored),
        if args.verbose { "" } else { " (-v lists them)" },
    )?;
    match &args.out {
        None => print!("{}", imported.to_yaml()),
        Some(dir) => write_dir(dir, &api, &imported)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_dir(dir: &Path, api: &str, imported: &openapi::Imported) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let yaml = |objects: Vec<serde_json::Value>| -> String {
        objects
            .iter()
            .filter_map(|o| serde_saphyr::to_string(o).ok())
            .map(|y| format!("---\n{y}"))
            .collect()
    };
    let objects = imported.objects();
    let of_kind = |k: &str| -> Vec<serde_json::Value> {
        objects
            .iter()
            .filter(|o| o.get("kind").and_then(|v| v.as_str()) == Some(k))
            .cloned()
            .collect()
    };
    for (kind, file) in [
        ("Api", "api"),
        ("Route", "routes"),
        ("Authorizer", "authorizers"),
        ("Stage", "stage"),
    ] {
        let list = of_kind(kind);
        if list.is_empty() {
            continue;
        }
        let path = dir.join(format!("{api}-{file}.yaml"));
        std::fs::write(&path, yaml(list))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `causeway export ...`.
pub fn run_export(args: ExportArgs) -> ExitCode {
    let result = match &args.path {
        Some(path) => export_from_files(&args, path),
        None => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            let _ = rustls::crypto::ring::default_provider().install_default();
            runtime.block_on(export_from_cluster(&args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn export_from_files(args: &ExportArgs, path: &Path) -> anyhow::Result<()> {
    let sources = read_sources(path)?;
    let inventory = sources.inventory().map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let candidates: Vec<&Api> = inventory
        .apis
        .iter()
        .filter(|a| {
            a.metadata.name.as_deref() == Some(args.api.as_str())
                && args
                    .namespace
                    .as_ref()
                    .is_none_or(|n| a.metadata.namespace.as_deref() == Some(n.as_str()))
        })
        .collect();
    let api = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => anyhow::bail!("no Api {} in {}", args.api, path.display()),
        _ => anyhow::bail!(
            "Api {} exists in several namespaces in {}; pick one with -n",
            args.api,
            path.display()
        ),
    };
    let ns = api
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let options = CompileOptions {
        execute_api_domain: args.execute_api_domain.clone(),
        ..CompileOptions::default()
    };
    let compiled = compile(&inventory, &options);
    let accepted = |kind: Kind, name: &Option<String>| {
        compiled.statuses.iter().any(|s| {
            s.kind == kind && s.namespace == ns && Some(&s.name) == name.as_ref() && s.is_accepted()
        })
    };
    let routes: Vec<Route> = inventory
        .routes
        .iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|r| accepted(Kind::Route, &r.metadata.name))
        .cloned()
        .collect();
    let authorizers: Vec<Authorizer> = inventory
        .authorizers
        .iter()
        .filter(|a| a.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|a| accepted(Kind::Authorizer, &a.metadata.name))
        .cloned()
        .collect();
    let server_url = match &args.stage {
        None => None,
        Some(stage) => {
            let url = inventory
                .stages
                .iter()
                .filter(|s| {
                    s.metadata.namespace.as_deref() == Some(ns.as_str())
                        && s.spec.api_ref.name == args.api
                        && s.spec.stage_name.as_ref().or(s.metadata.name.as_ref()) == Some(stage)
                })
                .find_map(|s| {
                    compiled.statuses.iter().find_map(|st| match &st.detail {
                        StatusDetail::Stage { urls, .. }
                            if st.kind == Kind::Stage
                                && st.namespace == ns
                                && Some(&st.name) == s.metadata.name.as_ref() =>
                        {
                            urls.first().cloned()
                        }
                        _ => None,
                    })
                });
            Some(
                url.with_context(|| {
                    format!("Api {ns}/{} has no accepted stage {stage}", args.api)
                })?,
            )
        }
    };
    write_export(args, &api, &routes, &authorizers, server_url)
}

async fn export_from_cluster(args: &ExportArgs) -> anyhow::Result<()> {
    use causeway_controller::kube::Client;
    use causeway_controller::kube::config::{KubeConfigOptions, Kubeconfig};
    let client = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            let config = causeway_controller::kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &KubeConfigOptions::default(),
            )
            .await
            .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
            Client::try_from(config).context("cannot build the Kubernetes client")?
        }
        None => Client::try_default().await.context(
            "no Kubernetes configuration ($KUBECONFIG, ~/.kube/config or in-cluster); use --kubeconfig, or -f DIR to export from files",
        )?,
    };
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let objects = causeway::ops::api_objects(&client, &ns, &args.api).await?;
    let server_url = match &args.stage {
        None => None,
        Some(s) => Some(objects.stage_url(s).with_context(|| {
            format!(
                "Stage {s} of Api {ns}/{} has no URL in its status",
                args.api
            )
        })?),
    };
    write_export(
        args,
        &objects.api,
        &objects.routes,
        &objects.authorizers,
        server_url,
    )
}

fn write_export(
    args: &ExportArgs,
    api: &Api,
    routes: &[Route],
    authorizers: &[Authorizer],
    server_url: Option<String>,
) -> anyhow::Result<()> {
    if api.spec.protocol == Some(causeway_crds::api::ApiProtocol::Websocket) {
        anyhow::bail!(
            "Api {} is a WebSocket Api: OpenAPI describes request/response APIs only (API Gateway \
             exports REST and HTTP APIs, not WebSocket ones); its Routes are the description",
            api.metadata.name.as_deref().unwrap_or_default()
        );
    }
    let options = ExportOptions {
        format: match args.format {
            FormatArg::Oas30 => ExportFormat::Oas30,
            FormatArg::Swagger20 => ExportFormat::Swagger20,
        },
        aws_extensions: args.extensions == ExtensionsArg::Aws,
        server_url,
    };
    let exported = openapi::export(api, routes, authorizers, &options);
    for n in &exported.notes {
        eprintln!("note: {n}");
    }
    let text = if args.output == "json" {
        serde_json::to_string_pretty(&exported.document)? + "\n"
    } else {
        serde_saphyr::to_string(&exported.document)?
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
