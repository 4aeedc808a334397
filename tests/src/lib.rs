//! Helpers for Causeway's end-to-end tests: find the built binaries, start them as child
//! processes on port 0 of 127.0.0.1 and read back the addresses they bound (the `listening`
//! event of their logs), and talk to them with a real HTTP client.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod kube_local;
pub mod processes;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of a workspace binary (`causeway`, `petstore-backend`), built if it is missing.
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    if !path.exists() {
        let package = if name == "causeway" {
            "causeway"
        } else {
            "causeway-example-backend"
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", package])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {package} failed");
    }
    path
}

/// The `causeway` binary (`CAUSEWAY_BIN` overrides it, for a target directory shared by
/// several checkouts).
pub fn causeway() -> PathBuf {
    std::env::var_os("CAUSEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin("causeway"))
}

/// A port on 127.0.0.1 that was free a moment ago (bound and released), for the servers of
/// other projects that cannot take port 0 and say what they bound: `redis-server` (its
/// `--port 0` turns TCP off) and kube-local's etcd and API server. Another process may take
/// it in between; Causeway's own binaries and the test servers bind port 0 instead.
pub fn port_for_external_server() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A port nothing listens on, for configuration that must name one (a backend that is never
/// started): the discard port, which nothing on a test machine serves.
pub const NOTHING_LISTENS: u16 = 9;

/// The addresses announced for `role` in `log`, in order: the `listening` event of the
/// binaries (README, "Ports"), as text (`listening role=traffic addr=127.0.0.1:40123`, also
/// printed by `petstore-backend` and `invoke.py`) or as a JSON log line
/// (`"message":"listening","role":"traffic","addr":"127.0.0.1:40123"`).
pub fn announced(log: &str, role: &str) -> Vec<SocketAddr> {
    log.lines()
        .filter_map(|line| {
            let (r, addr) = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) if v["message"] == "listening" => (
                    v["role"].as_str()?.to_string(),
                    v["addr"].as_str()?.to_string(),
                ),
                Ok(_) => return None,
                Err(_) => {
                    const EVENT: &str = "listening role=";
                    let rest = &line[line.find(EVENT)? + EVENT.len()..];
                    let (r, rest) = rest.split_once(' ')?;
                    let addr = rest.strip_prefix("addr=")?.split_whitespace().next()?;
                    (r.to_string(), addr.to_string())
                }
            };
            (r == role).then(|| addr.parse().ok()).flatten()
        })
        .collect()
}

/// A child process killed when dropped.
pub struct ChildGuard {
    /// The process.
    pub child: Child,
    /// What it printed on stderr, when captured to a file.
    pub stderr_path: Option<PathBuf>,
}

impl ChildGuard {
    /// Starts `program args`, stderr to a file in `dir` (read it with [`ChildGuard::stderr`]).
    pub fn spawn(program: &Path, args: &[&str], dir: &Path) -> Self {
        static SPAWNED: AtomicUsize = AtomicUsize::new(0);
        let stderr_path = dir.join(format!(
            "{}-{}-{}.stderr",
            program
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("child"),
            std::process::id(),
            SPAWNED.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self {
            child,
            stderr_path: Some(stderr_path),
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The first address the process announced for `role` on stderr ([`announced`]), once it
    /// has; panics with its stderr if it has not within 30 s.
    pub async fn listening(&self, role: &str) -> SocketAddr {
        self.listening_all(role, 1).await[0]
    }

    /// The first `n` addresses the process announced for `role` ([`ChildGuard::listening`]).
    pub async fn listening_all(&self, role: &str, n: usize) -> Vec<SocketAddr> {
        let found = eventually(Duration::from_secs(30), || async {
            let addrs = announced(&self.stderr(), role);
            (addrs.len() >= n).then(|| addrs[..n].to_vec())
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no `listening role={role}` from the process (x{n}); stderr:\n{}",
                self.stderr()
            )
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request to `addr` with the given Host header.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// GET with a Host header.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<Reply, String> {
    request(addr, "GET", host, path, "").await
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `GET admin/path` answers 200; panics with the process's stderr otherwise.
pub async fn wait_admin(process: &ChildGuard, admin: SocketAddr, path: &str, within: Duration) {
    let up = eventually(within, || async {
        let r = get(admin, "localhost", path).await.ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "{path} never answered 200 on {admin}; stderr:\n{}",
        process.stderr()
    );
}

/// A running `causeway standalone`: the process and the addresses it bound.
pub struct Standalone {
    /// The process (stderr in the `logs` directory it was started with).
    pub process: ChildGuard,
    /// The first traffic listener.
    pub traffic: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

impl Standalone {
    /// `causeway standalone -f dir` with traffic and admin on port 0 of 127.0.0.1 and the
    /// flags `more`, once `/readyz` says it is ready (stderr in `logs`).
    pub async fn start(dir: &Path, logs: &Path, more: &[&str]) -> Self {
        let dir = dir.to_str().expect("utf-8 path");
        let mut args = vec!["standalone", "-f", dir];
        if !more.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        args.extend(["--admin-listen", "127.0.0.1:0"]);
        args.extend_from_slice(more);
        let process = ChildGuard::spawn(&causeway(), &args, logs);
        let traffic = process.listening("traffic").await;
        let admin = process.listening("admin").await;
        wait_admin(&process, admin, "/readyz", Duration::from_secs(20)).await;
        Self {
            process,
            traffic,
            admin,
        }
    }
}

/// `causeway standalone -f dir` ([`Standalone::start`] with no more flags): the guard and the
/// traffic address.
pub async fn standalone(dir: &Path, logs: &Path) -> (ChildGuard, SocketAddr) {
    let gateway = Standalone::start(dir, logs, &[]).await;
    (gateway.process, gateway.traffic)
}

/// `petstore-backend` on port 0 of 127.0.0.1, once it has said which port it bound.
pub async fn petstore_backend(logs: &Path) -> (ChildGuard, SocketAddr) {
    let backend = ChildGuard::spawn(&bin("petstore-backend"), &["--listen", "127.0.0.1:0"], logs);
    let addr = backend.listening("backend").await;
    (backend, addr)
}

/// `python3 -B invoke.py 0 HANDLER` from `dir` (the example's stand-in for the Lambda Runtime
/// Interface Emulator; `-B`: no `__pycache__` in the repository), once it has said which port
/// it bound: the guard and the port.
pub async fn invoke_py(dir: &Path, handler: &str, logs: &Path) -> (ChildGuard, u16) {
    let script = dir.join("invoke.py");
    let child = ChildGuard::spawn(
        Path::new("python3"),
        &["-B", script.to_str().expect("utf-8 path"), "0", handler],
        logs,
    );
    let port = child.listening("function").await.port();
    (child, port)
}

/// Fails, naming the install command, unless `python3` can import every module.
pub fn require_python_modules(modules: &[&str]) {
    let script = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 cannot import {modules:?}: `python3 -m pip install -r tests/requirements.txt` \
             (scripts/test.sh does this)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 is needed by this test: {e}"),
    }
}

/// The Host of the calc Api (tests/fixtures/openapi/lambda-non-proxy-calc.yaml) in standalone.
pub const CALC_HOST: &str = "calc.default.localhost";

/// The calc function (tests/fixtures/lambda/calc.py, a Powertools handler) behind a copy of
/// the example's `invoke.py` (the Runtime Interface Emulator's protocol) in `dir/calc`, once it
/// accepts connections: the guard and its port.
pub async fn calc_function(dir: &Path, logs: &Path) -> (ChildGuard, u16) {
    let function_dir = dir.join("calc");
    std::fs::create_dir_all(&function_dir).expect("function dir");
    for (from, to) in [
        ("examples/lambda/invoke.py", "invoke.py"),
        ("tests/fixtures/lambda/calc.py", "calc.py"),
    ] {
        std::fs::copy(repo_root().join(from), function_dir.join(to)).expect("copy function");
    }
    invoke_py(&function_dir, "calc.handler", logs).await
}

/// `causeway import openapi` of tests/fixtures/openapi/lambda-non-proxy-calc.yaml with a
/// mapping file that runs `calc` at `function` on this machine, into `dir/crs`, plus the
/// VpcLink that lets namespace `default` reach 127.0.0.1 (as in a cluster). Returns `dir/crs`.
pub fn import_calc(dir: &Path, function: u16) -> PathBuf {
    let mapping = dir.join("calc.mapping.yaml");
    std::fs::write(
        &mapping,
        format!("lambda:\n  calc: {{uri: \"http://127.0.0.1:{function}\"}}\n"),
    )
    .expect("write mapping");
    let crs = dir.join("crs");
    let import = Command::new(bin("causeway"))
        .args(["import", "openapi"])
        .arg(repo_root().join("tests/fixtures/openapi/lambda-non-proxy-calc.yaml"))
        .arg("--mapping")
        .arg(&mapping)
        .arg("--out")
        .arg(&crs)
        .output()
        .expect("run causeway import");
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "import failed: {stderr}");
    assert!(stderr.contains("imported Api calc: 1 routes"), "{stderr}");
    std::fs::write(
        crs.join("local-functions.yaml"),
        "apiVersion: causeway.dev/v1alpha1\nkind: VpcLink\nmetadata: {name: local-functions, namespace: default}\nspec:\n  allowedNamespaces: [default]\n  addresses: [127.0.0.1]\n",
    )
    .expect("write VpcLink");
    crs
}
