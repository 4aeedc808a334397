//! kube-local (`../shared/tools/kube-local`): a real kube-apiserver 1.20 + etcd on 127.0.0.1,
//! without Docker. [`KubeLocal::private`] starts one of its own (own state directory, own free
//! ports) so that it can run next to other tests and other checkouts using the shared one; it
//! is stopped and its state deleted on drop.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{port_for_external_server, repo_root};

/// kube-local's scripts, next to the repository (`../shared/tools/kube-local`), or
/// `KUBE_LOCAL_TOOLS`.
pub fn tools() -> PathBuf {
    std::env::var_os("KUBE_LOCAL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/tools/kube-local"))
}

/// Where kube-local's `build.sh` puts `kube-apiserver` and `kubectl`.
pub fn bin_dir() -> PathBuf {
    let home = std::env::var_os("KUBE_LOCAL_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("kube-local")
        });
    home.join("bin")
}

/// A running kube-apiserver of this test's own.
pub struct KubeLocal {
    /// Its kubeconfig (cluster-admin).
    pub kubeconfig: PathBuf,
    /// kubectl 1.20, next to the server.
    pub kubectl: PathBuf,
    env: Vec<(String, String)>,
    _state: tempfile::TempDir,
}

impl KubeLocal {
    /// Starts a private kube-apiserver; `None` (after saying why) when the test should be
    /// skipped: kube-local is not built and `CAUSEWAY_KUBE_E2E` is unset. With
    /// `CAUSEWAY_KUBE_E2E=1` it builds kube-local first if needed, and failures are failures.
    pub fn private() -> Option<Self> {
        let wanted = std::env::var_os("CAUSEWAY_KUBE_E2E").is_some_and(|v| v != "0");
        Self::start(wanted)
    }

    /// Starts a private kube-apiserver, building kube-local first if it is not built (about 8
    /// minutes, once per machine); never skips: a failure names the command that builds it.
    pub fn required() -> Self {
        Self::start(true)
            .unwrap_or_else(|| panic!("kube-local is needed: run {}/ensure.sh", tools().display()))
    }

    fn start(wanted: bool) -> Option<Self> {
        let tools = tools();
        let bin = bin_dir();
        if !bin.join("kube-apiserver").exists() {
            if !wanted {
                println!(
                    "SKIPPED: kube-local is not built ({} missing) and CAUSEWAY_KUBE_E2E is unset; \
                     run {}/ensure.sh or set CAUSEWAY_KUBE_E2E=1",
                    bin.join("kube-apiserver").display(),
                    tools.display()
                );
                return None;
            }
            let status = Command::new("bash")
                .arg(tools.join("ensure.sh"))
                .status()
                .unwrap_or_else(|e| panic!("cannot run {}/ensure.sh: {e}", tools.display()));
            assert!(
                status.success(),
                "kube-local ensure.sh failed; run {}/ensure.sh to see why",
                tools.display()
            );
        }
        let state = tempfile::Builder::new()
            .prefix("kube-local-")
            .tempdir()
            .expect("state dir");
        let env: Vec<(String, String)> = vec![
            (
                "KUBE_LOCAL_STATE".into(),
                state.path().display().to_string(),
            ),
            (
                "KUBE_LOCAL_API_PORT".into(),
                port_for_external_server().to_string(),
            ),
            (
                "KUBE_LOCAL_ETCD_PORT".into(),
                port_for_external_server().to_string(),
            ),
            (
                "KUBE_LOCAL_ETCD_PEER_PORT".into(),
                port_for_external_server().to_string(),
            ),
        ];
        let out = Command::new("bash")
            .arg(tools.join("up.sh"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run up.sh");
        let local = Self {
            kubeconfig: state.path().join("kubeconfig"),
            kubectl: bin.join("kubectl"),
            env,
            _state: state,
        };
        assert!(
            out.status.success(),
            "kube-local up.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(local)
    }

    /// Rotates the API server's service-account signing key: stops the server (etcd data and
    /// the rest of the PKI are kept), makes a new key pair, and starts it again on the same
    /// ports, so the kubeconfig stays valid. Tokens signed with the old key no longer verify.
    pub fn rotate_service_account_key(&self) {
        let tools = tools();
        let envs = || self.env.iter().map(|(k, v)| (k.clone(), v.clone()));
        let down = Command::new("bash")
            .arg(tools.join("down.sh"))
            .envs(envs())
            .output()
            .expect("run down.sh");
        assert!(
            down.status.success(),
            "down.sh failed:\n{}",
            String::from_utf8_lossy(&down.stderr)
        );
        let pki = self._state.path().join("pki");
        let key = pki.join("sa.key");
        let made = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("run openssl (apt-get install -y openssl)");
        assert!(made.status.success(), "openssl genrsa failed");
        let public = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(pki.join("sa.pub"))
            .output()
            .expect("run openssl");
        assert!(public.status.success(), "openssl rsa -pubout failed");
        let up = Command::new("bash")
            .arg(tools.join("up.sh"))
            .envs(envs())
            .env("KUBE_LOCAL_KEEP_DATA", "1")
            .output()
            .expect("run up.sh");
        assert!(
            up.status.success(),
            "up.sh after the key rotation failed:\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
    }

    /// Runs kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for KubeLocal {
    fn drop(&mut self) {
        // down.sh stops exactly the two processes up.sh started (pids from the state dir).
        let _ = Command::new("bash")
            .arg(tools().join("down.sh"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("KUBE_LOCAL_PURGE", "1")
            .output();
    }
}
