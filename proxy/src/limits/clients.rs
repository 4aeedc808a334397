//! The per-client-address connection limit (`max_connections_per_client`): open connections
//! counted per client address, across every listener and worker of the proxy. IPv6 clients
//! are counted per /64, the prefix one host usually gets (so a single host cannot dodge the
//! limit by rotating through its addresses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address, and the most each may have.
#[derive(Debug)]
pub(crate) struct ClientConnections {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; counts against its client until dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    owner: Arc<ClientConnections>,
    key: IpAddr,
}

impl ClientConnections {
    /// A limit of `max` open connections per client address; `None` for 0 (no limit).
    pub(crate) fn new(max: usize) -> Option<Arc<Self>> {
        (max > 0).then(|| {
            Arc::new(Self {
                max,
                open: Mutex::new(HashMap::new()),
            })
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it already has `max` open.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = key_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: Arc::clone(self),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_max_connections_and_its_slots_come_back_when_closed() {
        let limit = ClientConnections::new(2).expect("a limit");
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = limit.admit(a).expect("first");
        let _second = limit.admit(a).expect("second");
        assert!(limit.admit(a).is_none());
        assert!(limit.admit(b).is_some(), "another client is not affected");
        drop(first);
        assert!(limit.admit(a).is_some());
        assert!(ClientConnections::new(0).is_none());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let limit = ClientConnections::new(1).expect("a limit");
        let _one = limit
            .admit("2001:db8::1".parse().expect("ip"))
            .expect("first");
        assert!(limit.admit("2001:db8::2".parse().expect("ip")).is_none());
        assert!(
            limit
                .admit("2001:db8:0:1::1".parse().expect("ip"))
                .is_some()
        );
    }
}
