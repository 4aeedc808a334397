//! Binding and running a proxy's listeners (traffic, optional HTTPS, admin), shared by
//! `standalone` and `proxy`, with one stop for all of them; and the announcement of every
//! bound address ([`announce`]), also used by the controller.

use std::net::SocketAddr;

use anyhow::Context;
use causeway_proxy::Proxy;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// Logs that `listener` is bound, as the event `listening` with the fields `role` and `addr`
/// (the address really bound, so `--listen 127.0.0.1:0` tells the port it got), and returns
/// the address. This is the machine-readable contract of the binaries (README, "Ports"):
/// text logs show `listening role=traffic addr=127.0.0.1:40123`, JSON logs
/// `"message":"listening","role":"traffic","addr":"127.0.0.1:40123"`. Roles: `traffic`,
/// `https`, `admin` (proxy, standalone), `push`, `admin` (controller).
pub fn announce(role: &str, listener: &TcpListener) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    info!(role = %role, addr = %addr, "listening");
    Ok(addr)
}

/// Binds `address`; an IPv6 address gets an IPv6-only socket, so that `[::]:8080` and
/// `0.0.0.0:8080` can both be bound (dual stack as two listeners) and IPv4 clients never arrive
/// as IPv4-mapped IPv6 addresses.
async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = match address.parse() {
        Ok(a) => a,
        // A host name: let the resolver choose, as before.
        Err(_) => return TcpListener::bind(address).await,
    };
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => {
            let socket = tokio::net::TcpSocket::new_v6()?;
            socket2::SockRef::from(&socket).set_only_v6(true)?;
            socket
        }
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The HTTPS listener, bound early so its real port can go into the proxy's configuration.
pub async fn bind_https(addr: Option<&str>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => {
            Ok(Some(TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} (--https-listen)")
            })?))
        }
        None => Ok(None),
    }
}

/// The port of the HTTPS listener, or 443 when there is none.
pub fn https_port(https: Option<&TcpListener>) -> anyhow::Result<u16> {
    Ok(match https {
        Some(l) => l.local_addr()?.port(),
        None => 443,
    })
}

/// Running listeners.
pub struct Listeners {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    /// The traffic addresses really bound, in the order of `--listen`.
    pub traffic: Vec<SocketAddr>,
}

/// Binds the traffic addresses (one listener each: IPv4 and IPv6 for dual stack) and the admin
/// address, announces every listener ([`announce`]) and starts serving them (and `https`, if
/// given).
pub async fn start(
    proxy: &Proxy,
    listen: &[String],
    admin_listen: &str,
    https: Option<TcpListener>,
) -> anyhow::Result<Listeners> {
    anyhow::ensure!(!listen.is_empty(), "--listen needs at least one address");
    let mut traffic = Vec::with_capacity(listen.len());
    for address in listen {
        traffic.push(
            bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--listen)"))?,
        );
    }
    let admin = TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (--admin-listen)"))?;
    let mut bound = Vec::with_capacity(traffic.len());
    for listener in &traffic {
        bound.push(announce("traffic", listener)?);
    }
    if let Some(listener) = &https {
        announce("https", listener)?;
    }
    announce("admin", &admin)?;
    let (stop, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = Vec::new();
    for listener in traffic {
        let (p, done) = (proxy.clone(), stopped());
        tasks.push(tokio::spawn(async move { p.serve(listener, done).await }));
    }
    let (p, done) = (proxy.clone(), stopped());
    tasks.push(tokio::spawn(
        async move { p.serve_admin(admin, done).await },
    ));
    if let Some(listener) = https {
        let (p, done) = (proxy.clone(), stopped());
        tasks.push(tokio::spawn(
            async move { p.serve_tls(listener, done).await },
        ));
    }
    Ok(Listeners {
        stop,
        tasks,
        traffic: bound,
    })
}

impl Listeners {
    /// Stops accepting, lets in-flight requests drain, and waits for every listener.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
