//! The compile benchmark behind `bench/compile.sh` (not a test: it prints timings).
//!
//!   bench_compile gen DIR [--apis 100] [--routes 100] [--keys 0]
//!       writes a configuration a large tenant might have: per Api a file with the Api, a
//!       Service and a static EndpointSlice, a Stage and `--routes` Routes (HTTP_PROXY with
//!       path parameters and stage variables, some MOCK, some needing an API key); `--keys`
//!       API keys in ten UsagePlans, each bound to every stage, keys in one Secret per plan.
//!   bench_compile snapshot DIR FILE
//!       compiles DIR and writes the snapshot's wire encoding to FILE (a proxy's state file).
//!   bench_compile time DIR [--runs 7]
//!       loads DIR, then reports the median (and min/max) of: parsing, a full compile, and an
//!       incremental compile after one Route changed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use causeway_compile::load::parse_documents;

// The allocator of the `causeway` binary, so that the times are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use causeway_compile::{CompileOptions, Compiler, Inventory, compile};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("gen"), Some(dir)) => generate(
            Path::new(dir),
            flag("--apis", 100),
            flag("--routes", 100),
            flag("--keys", 0),
        ),
        (Some("snapshot"), Some(dir)) => {
            let Some(file) = args.get(3) else {
                eprintln!("usage: bench_compile snapshot DIR FILE");
                std::process::exit(2);
            };
            let files = read_files(Path::new(dir));
            let compiled = compile(&load(&files), &CompileOptions::default());
            std::fs::write(file, compiled.snapshot.to_bytes()).expect("write the snapshot");
        }
        (Some("time"), Some(dir)) => {
            let runs = flag("--runs", 7);
            time(Path::new(dir), runs, flag("--full-runs", runs))
        }
        _ => {
            eprintln!(
                "usage: bench_compile gen DIR [--apis N] [--routes N] [--keys N] | snapshot DIR FILE | time DIR [--runs N]"
            );
            std::process::exit(2);
        }
    }
}

/// The YAML of route `j` of Api `i`.
fn route_yaml(out: &mut String, ns: &str, api: &str, j: usize, body: &str) {
    let _ = write!(
        out,
        "---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {{name: {api}-r{j}, namespace: {ns}}}\nspec:\n  apiRef: {{name: {api}}}\n"
    );
    match j % 4 {
        0 => {
            let _ = write!(
                out,
                "  routeKey: GET /items{j}\n  integration: {{type: MOCK, mock: {{statusCode: 200, body: '{body}'}}}}\n"
            );
        }
        1 => {
            let _ = write!(
                out,
                "  routeKey: GET /items{j}/{{id}}\n  apiKeyRequired: {}\n  integration:\n    type: HTTP_PROXY\n    backendRef: {{name: {api}-svc, port: 80}}\n    path: /${{stageVariables.version}}/items{j}/{{id}}\n    requestHeaders: {{x-route: r{j}}}\n",
                j % 10 == 1
            );
        }
        2 => {
            let _ = write!(
                out,
                "  routeKey: POST /items{j}\n  integration:\n    type: HTTP_PROXY\n    backendRef: {{name: {api}-svc, port: 80}}\n    timeoutMillis: 5000\n"
            );
        }
        _ => {
            let _ = write!(
                out,
                "  routeKey: ANY /items{j}/{{proxy+}}\n  integration:\n    type: HTTP_PROXY\n    backendRef: {{name: {api}-svc, port: 80}}\n"
            );
        }
    }
}

fn generate(dir: &Path, apis: usize, routes: usize, keys: usize) {
    std::fs::create_dir_all(dir).expect("create the directory");
    let mut stages = Vec::new();
    for i in 0..apis {
        let ns = format!("team{}", i % 10);
        let api = format!("api{i}");
        let mut out = String::new();
        let _ = write!(
            out,
            "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {{name: {api}, namespace: {ns}}}\nspec: {{description: generated}}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata: {{name: {api}-svc, namespace: {ns}}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 9080}}]\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {api}-svc-static\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {api}-svc}}\naddressType: IPv4\nendpoints:\n  - addresses: [\"127.0.0.1\"]\n    conditions: {{ready: true}}\nports: [{{name: http, port: 9080}}]\n\
             ---\napiVersion: causeway.dev/v1alpha1\nkind: Stage\nmetadata: {{name: {api}-prod, namespace: {ns}}}\nspec:\n  apiRef: {{name: {api}}}\n  stageName: prod\n  autoDeploy: true\n  variables: {{version: v1}}\n"
        );
        for j in 0..routes {
            route_yaml(&mut out, &ns, &api, j, "v0");
        }
        std::fs::write(dir.join(format!("api-{i:04}.yaml")), out).expect("write");
        stages.push((ns, api));
    }
    let plans = if keys == 0 { 0 } else { 10 };
    for p in 0..plans {
        // A plan per namespace, bound to the stages of its namespace.
        let ns = format!("team{p}");
        let per_plan = keys / plans + usize::from(p < keys % plans);
        let mut out = String::new();
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: plan{p}-keys, namespace: {ns}}}\nstringData:\n"
        );
        for k in 0..per_plan {
            let _ = writeln!(out, "  k{k}: key-{p:02}-{k:08}-0123456789abcdef");
        }
        let _ = write!(
            out,
            "---\napiVersion: causeway.dev/v1alpha1\nkind: UsagePlan\nmetadata: {{name: plan{p}, namespace: {ns}}}\nspec:\n  throttle: {{rateLimit: 1000, burstLimit: 2000}}\n  apiStages:\n"
        );
        for (sns, api) in &stages {
            if *sns == ns {
                let _ = writeln!(out, "    - {{api: {api}, stage: prod}}");
            }
        }
        out.push_str("  apiKeys:\n");
        for k in 0..per_plan {
            let _ = writeln!(
                out,
                "    - id: key{k}\n      secretRef: {{name: plan{p}-keys, key: k{k}}}"
            );
        }
        std::fs::write(dir.join(format!("plan-{p:02}.yaml")), out).expect("write");
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(files: &[(String, String)]) -> Inventory {
    let mut inventory = Inventory::default();
    for (name, text) in files {
        for object in parse_documents(name, text, "default").expect("the generated YAML parses") {
            inventory.add(object);
        }
    }
    inventory
}

struct Stats(Vec<Duration>);

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = self.0.clone();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{:.2} | {:.2} | {:.2}",
            ms(v[v.len() / 2]),
            ms(v[0]),
            ms(v[v.len() - 1])
        )
    }
}

fn read_files(dir: &Path) -> Vec<(String, String)> {
    yaml_files(dir)
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p.display().to_string(), text)
        })
        .collect()
}

fn time(dir: &Path, runs: usize, full_runs: usize) {
    let runs = runs.max(1);
    let full_runs = full_runs.max(1);
    let files = read_files(dir);
    let options = CompileOptions::default();

    let mut parse = Vec::new();
    let mut inventory = Inventory::default();
    for _ in 0..full_runs {
        let t = Instant::now();
        inventory = load(&files);
        parse.push(t.elapsed());
    }
    // Each time covers the call only: the previous result is dropped after the clock stops.
    let mut full = Vec::new();
    let mut compiled = compile(&inventory, &options);
    for _ in 0..full_runs {
        let t = Instant::now();
        let fresh = compile(&inventory, &options);
        full.push(t.elapsed());
        compiled = fresh;
    }
    // The first compile of a `Compiler` (what standalone and the controller run at start): a
    // full compile that also fills the memo.
    let mut first_of_compiler = Vec::new();
    for _ in 0..full_runs {
        let mut compiler = Compiler::new(options.clone());
        let t = Instant::now();
        let fresh = compiler.compile(&inventory);
        first_of_compiler.push(t.elapsed());
        drop((fresh, compiler));
    }

    // Incremental: a compiler that has seen the inventory, then one Route edited per run.
    let mut compiler = Compiler::new(options.clone());
    let first = compiler.compile(&inventory);
    assert_eq!(
        first.snapshot.version, compiled.snapshot.version,
        "the incremental compiler agrees with compile"
    );
    let mut one_route = Vec::new();
    let index = inventory.routes.len() / 2;
    for run in 0..runs {
        let route = &mut inventory.routes[index];
        route.spec.route_key = format!("GET /edited-{run}");
        route.metadata.resource_version = Some(format!("edited-{run}"));
        let t = Instant::now();
        let incremental = compiler.compile(&inventory);
        one_route.push(t.elapsed());
        assert_ne!(incremental.snapshot.version, compiled.snapshot.version);
    }
    let check = compile(&inventory, &options);
    let last = compiler.compile(&inventory);
    assert_eq!(
        last, check,
        "an incremental compile equals a full compile of the same inventory"
    );

    let keys: usize = compiled
        .snapshot
        .usage_plans
        .iter()
        .map(|p| p.keys.len())
        .sum();
    let routes: usize = compiled
        .snapshot
        .stages
        .iter()
        .map(|s| s.main.routes.len())
        .sum();
    println!(
        "apis={} routes={routes} keys={keys} objects={} snapshot_bytes={}",
        compiled.snapshot.apis.len(),
        compiled.statuses.len(),
        compiled.snapshot.to_bytes().len()
    );
    println!("| step | median ms | min ms | max ms |");
    println!("|---|---|---|---|");
    println!("| parse YAML ({} files) | {} |", files.len(), Stats(parse));
    println!("| full compile (`compile`) | {} |", Stats(full));
    println!(
        "| first compile of a `Compiler` (full, fills the memo) | {} |",
        Stats(first_of_compiler)
    );
    println!(
        "| incremental compile, one Route changed | {} |",
        Stats(one_route)
    );
}
