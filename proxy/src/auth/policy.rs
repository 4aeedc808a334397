//! The resource policy: source CIDR allow and deny lists of an Api. Deny wins; a non-empty
//! allow list admits only its members. IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, as a
//! dual-stack listener reports IPv4 clients) are checked as the IPv4 address they carry.

use std::net::IpAddr;

use causeway_snapshot::SourcePolicy;
use ipnet::IpNet;

use crate::error::AuthApplyError;

/// A parsed policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl Policy {
    pub fn build(api: &str, policy: &SourcePolicy) -> Result<Self, AuthApplyError> {
        let parse = |items: &[String]| {
            items
                .iter()
                .map(|c| {
                    c.parse::<IpNet>()
                        .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| AuthApplyError::Cidr {
                            api: api.to_string(),
                            cidr: c.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: parse(&policy.allow)?,
            deny: parse(&policy.deny)?,
        })
    }

    /// Whether a client at `ip` may call the Api.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        let p = SourcePolicy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        Policy::build("default/api", &p).expect("valid policy")
    }

    #[test]
    fn deny_wins_over_allow_and_an_allow_list_admits_only_its_members() {
        let table: [(&[&str], &[&str], &str, bool); 9] = [
            (&[], &[], "203.0.113.9", true),
            (&["10.0.0.0/8"], &[], "10.1.2.3", true),
            (&["10.0.0.0/8"], &[], "192.168.1.1", false),
            (&["10.0.0.0/8"], &["10.9.0.0/16"], "10.9.1.1", false),
            (&["10.0.0.0/8"], &["10.9.0.0/16"], "10.8.1.1", true),
            (&[], &["192.0.2.7"], "192.0.2.7", false),
            (&[], &["192.0.2.7"], "192.0.2.8", true),
            (&["2001:db8::/32"], &[], "2001:db8::1", true),
            (&["127.0.0.0/8"], &[], "::ffff:127.0.0.1", true),
        ];
        for (allow, deny, ip, expected) in table {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(
                policy(allow, deny).admits(ip),
                expected,
                "allow {allow:?} deny {deny:?} ip {ip}"
            );
        }
    }
}
