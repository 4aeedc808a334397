//! Helpers for Causeway's end-to-end tests: find the built binaries, start them as child
//! processes on free 127.0.0.1 ports, and talk to them with a real HTTP client.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod kube_local;

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

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A child process killed when dropped.
pub struct ChildGuard {
    /// The process.
    pub child: Child,
    /// What it printed on stderr, when captured to a file.
    pub stderr_path: Option<PathBuf>,
}

impl ChildGuard {
    /// Starts `program args`, stderr to a temp file (read it with [`ChildGuard::stderr`]).
    pub fn spawn(program: &Path, args: &[&str], dir: &Path) -> Self {
        let stderr_path = dir.join(format!(
            "{}-{}.stderr",
            program
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("child"),
            free_port()
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

/// `causeway standalone -f dir` on free 127.0.0.1 ports, once `/readyz` says it is ready:
/// the guard (stderr in `logs`) and the traffic address.
pub async fn standalone(dir: &Path, logs: &Path) -> (ChildGuard, SocketAddr) {
    let traffic: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let gateway = ChildGuard::spawn(
        &bin("causeway"),
        &[
            "standalone",
            "-f",
            dir.to_str().expect("utf-8 path"),
            "--listen",
            &traffic.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ],
        logs,
    );
    let ready = eventually(Duration::from_secs(20), || async {
        let r = get(admin, "localhost", "/readyz").await.ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "gateway never became ready; stderr:\n{}",
        gateway.stderr()
    );
    (gateway, traffic)
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
    let port = free_port();
    let script = function_dir.join("invoke.py");
    let child = ChildGuard::spawn(
        Path::new("python3"),
        &[
            "-B",
            script.to_str().expect("utf-8 path"),
            &port.to_string(),
            "calc.handler",
        ],
        logs,
    );
    let up = eventually(Duration::from_secs(20), || async {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(
        up.is_some(),
        "invoke.py calc.handler did not start; stderr:\n{}",
        child.stderr()
    );
    (child, port)
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
