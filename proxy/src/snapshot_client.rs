//! The proxy's side of the snapshot push (design.md §3): connect to the controller over HTTP/2
//! with a client certificate, hold `POST /v1/snapshots/stream` open, apply each snapshot with
//! [`Proxy::apply`], acknowledge it (`POST /v1/acks`, applied or rejected with the reason),
//! and reconnect with capped exponential backoff and jitter when the stream breaks.
//!
//! Static stability: every applied snapshot is written to the state file (write to a temporary
//! file, then rename), and [`load_state`] applies it at start-up, so a restarted proxy serves
//! at once even while the controller is unreachable. A snapshot that fails to apply is rejected
//! whole; the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use causeway_snapshot::Snapshot;
use causeway_snapshot::push::{
    ACK_PATH, Ack, Frame, STREAM_PATH, StreamRequest, USAGE_PATH, decode_frames,
};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn};

use crate::Proxy;

/// First reconnect delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Largest reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Time to connect and finish the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval of usage reports to the controller (the `UsagePlan.status` rollup).
pub const DEFAULT_USAGE_REPORT_EVERY: Duration = Duration::from_secs(60);
/// HTTP/2 PING interval on the stream's connection (notices a dead controller).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Errors of the snapshot client.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotClientError {
    /// A certificate or key file is missing or malformed.
    #[error("snapshot client TLS material {path}: {message}")]
    Tls {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The controller URL is not `https://host:port`.
    #[error("controller URL {0:?} must be https://HOST:PORT")]
    Url(String),
    /// The state file cannot be read or written.
    #[error("snapshot state file {path}: {message}")]
    State {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The connection or stream failed (the client reconnects).
    #[error("snapshot stream: {0}")]
    Stream(String),
}

/// Where to connect and how.
#[derive(Clone, Debug)]
pub struct SnapshotClientConfig {
    /// `https://host:port` of the controller's snapshot server.
    pub controller: Uri,
    /// TLS client configuration (CA and client certificate); see [`tls_from_dir`].
    pub tls: Arc<rustls::ClientConfig>,
    /// Where `tls` came from: read again before every connection, so that certificates the
    /// controller renewed (and the kubelet updated in the mounted Secret) are used without a
    /// restart. If reading fails, `tls` is used.
    pub tls_dir: Option<PathBuf>,
    /// This proxy's identity in acks and in the controller's status.
    pub proxy_id: String,
    /// Where the last applied snapshot is kept.
    pub state_file: Option<PathBuf>,
    /// How often to send today's usage to the controller ([`DEFAULT_USAGE_REPORT_EVERY`]).
    pub usage_report_every: Duration,
}

/// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir` (the proxies' Secret, mounted).
pub fn tls_from_dir(dir: &Path) -> Result<Arc<rustls::ClientConfig>, SnapshotClientError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| SnapshotClientError::Tls {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let bad = |name: &str, message: String| SnapshotClientError::Tls {
        path: dir.join(name).display().to_string(),
        message,
    };
    let ca = read("ca.crt")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| bad("ca.crt", e.to_string()))?;
        roots.add(cert).map_err(|e| bad("ca.crt", e.to_string()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("tls.crt")?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("tls.crt", e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read("tls.key")?)
        .map_err(|e| bad("tls.key", e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("tls.crt", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("tls.key", e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Applies the snapshot persisted in `path`, if there is one. Returns its version.
pub fn load_state(proxy: &Proxy, path: &Path) -> Result<Option<String>, SnapshotClientError> {
    let state_err = |message: String| SnapshotClientError::State {
        path: path.display().to_string(),
        message,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_err(e.to_string())),
    };
    let snapshot = Snapshot::from_bytes(&bytes).map_err(|e| state_err(e.to_string()))?;
    let version = snapshot.version.clone();
    proxy.apply(snapshot);
    info!(version = %version, "serving the persisted snapshot");
    Ok(Some(version))
}

fn save_state(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotClientError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, snapshot.to_bytes())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| SnapshotClientError::State {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Streams snapshots into `proxy` until `shutdown` resolves, reconnecting as needed.
pub async fn run(
    proxy: Proxy,
    config: SnapshotClientConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = MIN_BACKOFF;
    // The last snapshot received (applied or not): the base of backends-only frames.
    let mut received: Option<Snapshot> = None;
    loop {
        let session = stream_once(&proxy, &config, &mut received, &mut backoff);
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    warn!(controller = %config.controller, "{e}; reconnecting in {} ms", backoff.as_millis());
                }
            }
            () = &mut shutdown => return,
        }
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = &mut shutdown => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn stream_once(
    proxy: &Proxy,
    config: &SnapshotClientConfig,
    received: &mut Option<Snapshot>,
    backoff: &mut Duration,
) -> Result<(), SnapshotClientError> {
    let stream_err = |e: &dyn std::fmt::Display| SnapshotClientError::Stream(e.to_string());
    let host = config
        .controller
        .host()
        .ok_or_else(|| SnapshotClientError::Url(config.controller.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = config.controller.port_u16().unwrap_or(18000);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| SnapshotClientError::Url(config.controller.to_string()))?;
    let client_tls = match &config.tls_dir {
        Some(dir) => tls_from_dir(dir).unwrap_or_else(|e| {
            warn!("{e}; connecting with the certificates read before");
            Arc::clone(&config.tls)
        }),
        None => Arc::clone(&config.tls),
    };
    let connect = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(client_tls)
            .connect(server_name, tcp)
            .await
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| SnapshotClientError::Stream("connect timed out".into()))?
        .map_err(|e| stream_err(&e))?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_INTERVAL)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| stream_err(&e))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("snapshot connection ended: {e}");
        }
    });
    let result = session(proxy, config, sender, received, backoff).await;
    connection.abort();
    result
}

async fn session(
    proxy: &Proxy,
    config: &SnapshotClientConfig,
    mut sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    received: &mut Option<Snapshot>,
    backoff: &mut Duration,
) -> Result<(), SnapshotClientError> {
    let stream_err = |e: &dyn std::fmt::Display| SnapshotClientError::Stream(e.to_string());
    let open = StreamRequest {
        proxy_id: config.proxy_id.clone(),
        version: proxy.version(),
    };
    let request = post(&config.controller, STREAM_PATH, &open)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| stream_err(&e))?;
    if !response.status().is_success() {
        return Err(SnapshotClientError::Stream(format!(
            "controller answered {}",
            response.status()
        )));
    }
    info!(controller = %config.controller, proxy = %config.proxy_id, "snapshot stream open");
    *backoff = MIN_BACKOFF;
    let mut body = response.into_body();
    let mut buf = Vec::new();
    // Usage reports ride the same connection as the acks: each carries today's totals (not a
    // delta), so one that is lost costs nothing but freshness.
    let every = config.usage_report_every.max(Duration::from_millis(100));
    let mut reports = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = reports.tick() => {
                let report = proxy.usage_report(&config.proxy_id).await;
                let request = post(&config.controller, USAGE_PATH, &report)?;
                match sender.send_request(request).await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => warn!(status = %r.status(), "usage report refused"),
                    Err(e) => return Err(stream_err(&e)),
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| stream_err(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        for frame in decode_frames(&mut buf).map_err(|e| stream_err(&e))? {
            let (version, outcome) = match snapshot_of(frame, received.as_ref()) {
                Ok(snapshot) => {
                    let version = snapshot.version.clone();
                    let dropped = proxy.apply(snapshot.clone()).dropped;
                    if let Some(path) = &config.state_file
                        && let Err(e) = save_state(path, &snapshot)
                    {
                        warn!("{e}");
                    }
                    *received = Some(snapshot);
                    (version, Ok(dropped))
                }
                // A backends frame whose base we lack: start over with a full snapshot.
                Err(FrameProblem::Resync(why)) => {
                    return Err(SnapshotClientError::Stream(why));
                }
                Err(FrameProblem::Reject(version, why)) => (version, Err(why)),
            };
            let (applied, reason, dropped) = match outcome {
                Ok(dropped) => (true, None, dropped),
                Err(why) => (false, Some(why), Vec::new()),
            };
            let ack = Ack {
                proxy_id: config.proxy_id.clone(),
                version,
                applied,
                reason,
                dropped,
            };
            let request = post(&config.controller, ACK_PATH, &ack)?;
            match sender.send_request(request).await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => warn!(status = %r.status(), "ack refused"),
                Err(e) => return Err(stream_err(&e)),
            }
        }
    }
    Err(SnapshotClientError::Stream(
        "the controller closed the stream".into(),
    ))
}

enum FrameProblem {
    Resync(String),
    Reject(String, String),
}

fn snapshot_of(frame: Frame, base: Option<&Snapshot>) -> Result<Snapshot, FrameProblem> {
    match frame {
        Frame::Snapshot { snapshot } => {
            if snapshot.version_matches() {
                Ok(*snapshot)
            } else {
                let actual = snapshot.content_hash();
                Err(FrameProblem::Reject(
                    snapshot.version.clone(),
                    format!("version does not match the content (hash {actual})"),
                ))
            }
        }
        Frame::Backends {
            base_version,
            version,
            backends,
        } => {
            let Some(base) = base.filter(|b| b.version == base_version) else {
                return Err(FrameProblem::Resync(format!(
                    "backends update for {base_version}, which this proxy does not have"
                )));
            };
            let snapshot = base.with_backends(backends);
            if snapshot.version == version {
                Ok(snapshot)
            } else {
                Err(FrameProblem::Resync(format!(
                    "backends update gives {} instead of {version}",
                    snapshot.version
                )))
            }
        }
    }
}

fn post<T: serde::Serialize>(
    base: &Uri,
    path: &str,
    body: &T,
) -> Result<Request<Full<Bytes>>, SnapshotClientError> {
    let authority = base
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let json = serde_json::to_vec(body).map_err(|e| SnapshotClientError::Stream(e.to_string()))?;
    Request::post(format!("https://{authority}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| SnapshotClientError::Stream(e.to_string()))
}
