//! Backends: Services resolved through their EndpointSlices, URLs, and the VpcLink grants that
//! let a Route use a Service of another namespace.
//!
//! Backend ids (keys of `Snapshot.backends`): `svc/<ns>/<name>:<port>` for a Service port over
//! HTTP (`svc+https/...` over TLS), `url/<scheme>://<host>:<port>` for anything else. A Service
//! port maps to the `targetPort` published in the slice's `ports` entry of the same name
//! (falling back to a numeric `targetPort`); only ready endpoints (`conditions.ready` absent or
//! true) are listed. A Service without ready endpoints is still a valid backend: the proxy
//! answers 503 for it.
//!
//! Grants hold for every way a backend can be named ([`Cluster::grant_origin`]):
//! - a Service of another namespace, by `backendRef` or by a `uri` host in one of the cluster
//!   forms (`svc.ns`, `svc.ns.svc`, `svc.ns.svc.<cluster domain>`, any port) — also when the
//!   Service is not (yet) known, as long as the host is unambiguously a cluster name — needs a
//!   VpcLink in that namespace that grants the Route's namespace ([`Cluster::permit`]);
//! - an IP literal or `localhost` (pod and node addresses, the proxy's own admin port) needs a
//!   VpcLink that allows the Route's namespace and lists the address in `spec.addresses`;
//! - any host through a named VpcLink (`vpcLinkRef`) must be listed in that link's `addresses`.
//!
//! Other host names (the public internet) need no grant. Host forms that resolvers read as IPv4
//! in disguise (`2130706433`, `0x7f.1`) are refused as invalid.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use causeway_crds::VpcLink;
use causeway_crds::common::ObjectRef;
use causeway_snapshot::{Backend, LoadBalancing, UpstreamScheme, UpstreamTls};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Input;
use super::text::{Origin, default_port};
use super::{ObjKey, Problem, Verdict, cel, obj_key};
use crate::CompileOptions;
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `appProtocol` of a Service port that speaks HTTP/2 without TLS (h2c, prior knowledge).
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";
/// Service annotation choosing the proxy's load balancing: `round-robin` (default) or
/// `least-request` (power of two choices).
pub const LOAD_BALANCING_ANNOTATION: &str = "causeway.dev/load-balancing";

/// The policy a Service asks for; unknown values fall back to the default.
fn load_balancing(service: &Service) -> LoadBalancing {
    match service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LOAD_BALANCING_ANNOTATION))
        .map(String::as_str)
    {
        Some("least-request") => LoadBalancing::LeastRequest,
        _ => LoadBalancing::RoundRobin,
    }
}

/// Indexes of the cluster objects backends are resolved against.
#[derive(Debug)]
pub(crate) struct Cluster<'a> {
    services: BTreeMap<ObjKey, &'a Service>,
    slices: BTreeMap<ObjKey, Vec<&'a EndpointSlice>>,
    vpc_links: BTreeMap<ObjKey, &'a VpcLink>,
    /// TLS origination settings of accepted VpcLinks that have `tls`.
    link_tls: BTreeMap<ObjKey, UpstreamTls>,
    /// The parsed `addresses` of accepted VpcLinks.
    link_addresses: BTreeMap<ObjKey, Vec<AddressGrant>>,
    /// Namespaces that hold at least one Service (a `svc.ns` host names a cluster Service only
    /// when `ns` is one of them).
    service_namespaces: BTreeSet<String>,
    cluster_domain: String,
}

/// What a `uri` host needs, decided by [`Cluster::grant_origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginGrant {
    /// The host names this known Service (grant checked).
    Service(ObjKey),
    /// Reached through this VpcLink (it allows the namespace and lists the address).
    Link(ObjKey),
    /// A host name that needs no grant (resolved by the proxy).
    Open,
}

/// A `uri` host as the grant checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginHost {
    /// An IP literal.
    Ip(IpAddr),
    /// `localhost` or a name under it: the loopback addresses.
    Loopback,
    /// Any other host name, lowercase.
    Name(String),
}

impl std::fmt::Display for OriginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "IP address {ip}"),
            Self::Loopback => f.write_str("localhost"),
            Self::Name(n) => write!(f, "host {n}"),
        }
    }
}

/// Classifies an origin host; `Err` for a host that resolvers would read as a non-standard
/// IPv4 form (all-numeric last label), which would slip past the IP checks.
fn classify(host: &str) -> Result<OriginHost, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(OriginHost::Ip(ip));
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Ok(OriginHost::Loopback);
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty()
        && (last.chars().all(|c| c.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|hex| hex.chars().all(|c| c.is_ascii_hexdigit())));
    if numeric {
        return Err(format!(
            "host {host:?} is neither a standard IP address nor a host name (resolvers read it as an IPv4 address)"
        ));
    }
    Ok(OriginHost::Name(name))
}

/// One entry of `VpcLink.spec.addresses`: an IP network (`10.0.0.0/8`; an address is a /32 or
/// /128) or a host name, optionally with a port (`10.1.2.3:443`, `[fd00::1]:443`,
/// `api.example.com:443`); without one, every port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressGrant {
    target: GrantTarget,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GrantTarget {
    Net(IpNet),
    Host(String),
}

impl AddressGrant {
    /// Parses one entry.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let s = entry.trim();
        let net_of = |t: &str| {
            t.parse::<IpNet>()
                .ok()
                .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
        };
        if let Some(net) = net_of(s) {
            return Ok(Self {
                target: GrantTarget::Net(net),
                port: None,
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self {
                target: GrantTarget::Net(IpNet::from(sa.ip())),
                port: Some(sa.port()),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{entry:?}: the port {p:?} is not 1-65535"))?;
                (h, Some(port))
            }
            None => (s, None),
        };
        let inner = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(net) = net_of(inner) {
            return Ok(Self {
                target: GrantTarget::Net(net),
                port,
            });
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "{entry:?} is not a CIDR, an IP address or a host name (each optionally with :port)"
            ));
        }
        if classify(&name).is_err() {
            return Err(format!("{entry:?}: write IP addresses in standard form"));
        }
        Ok(Self {
            target: GrantTarget::Host(name),
            port,
        })
    }

    fn covers(&self, host: &OriginHost, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.target, host) {
            (GrantTarget::Net(net), OriginHost::Ip(ip)) => net.contains(ip),
            (GrantTarget::Net(net), OriginHost::Loopback) => {
                net.contains(&IpAddr::from([127, 0, 0, 1]))
                    || net.contains(&IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
            }
            (GrantTarget::Host(h), OriginHost::Loopback) => h == "localhost",
            (GrantTarget::Host(h), OriginHost::Name(n)) => h == n,
            _ => false,
        }
    }
}

impl<'a> Cluster<'a> {
    /// Indexes the inventory; VpcLinks are checked here and their statuses pushed.
    pub(crate) fn new(
        inventory: &'a Input<'_>,
        options: &CompileOptions,
        statuses: &mut Vec<ObjectStatus>,
    ) -> Self {
        let services = inventory
            .services
            .iter()
            .map(|s| (obj_key(&s.metadata), s))
            .collect();
        let mut slices: BTreeMap<ObjKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in &inventory.endpoint_slices {
            let (namespace, _) = obj_key(&slice.metadata);
            if let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices
                    .entry((namespace, service.clone()))
                    .or_default()
                    .push(slice);
            }
        }
        let mut vpc_links = BTreeMap::new();
        let mut link_tls = BTreeMap::new();
        let mut link_addresses = BTreeMap::new();
        for link in &inventory.vpc_links {
            let mut verdict = Verdict::default();
            verdict.check(cel::check(Kind::VpcLink, link));
            let addresses = verdict.check(
                link.spec
                    .addresses
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        AddressGrant::parse(a).map_err(|e| {
                            Problem::invalid(reasons::INVALID, format!("spec.addresses[{i}]: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>(),
            );
            let tls = verdict.check(upstream_tls(inventory, link)).flatten();
            if verdict.is_ok() {
                let key = obj_key(&link.metadata);
                vpc_links.insert(key.clone(), link);
                link_addresses.insert(key.clone(), addresses.unwrap_or_default());
                if let Some(tls) = tls {
                    link_tls.insert(key, tls);
                }
            }
            statuses.push(verdict.into_status(Kind::VpcLink, &link.metadata, StatusDetail::None));
        }
        let service_namespaces = inventory
            .services
            .iter()
            .map(|s| obj_key(&s.metadata).0)
            .collect();
        Self {
            services,
            slices,
            vpc_links,
            link_tls,
            link_addresses,
            service_namespaces,
            cluster_domain: options.cluster_domain.clone(),
        }
    }

    /// The TLS settings for an https backend in `namespace`: from the first VpcLink (by name)
    /// there that has `tls` and covers `service` (or `address` for URL backends).
    fn tls_for(&self, namespace: &str, matches: impl Fn(&VpcLink) -> bool) -> Option<UpstreamTls> {
        self.link_tls
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .find(|(key, _)| self.vpc_links.get(*key).is_some_and(|l| matches(l)))
            .map(|(_, tls)| tls.clone())
    }

    fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// Whether a Route in `from` may send requests to Service `name` in `to`: always within a
    /// namespace; across namespaces only through a VpcLink in `to` that lists `from` (or `*`)
    /// and the Service (or no Services at all). `link` narrows the search to one VpcLink.
    pub(crate) fn permit(
        &self,
        field: &str,
        from: &str,
        to: &str,
        name: &str,
        link: Option<&ObjectRef>,
    ) -> Result<(), Problem> {
        if from == to {
            return Ok(());
        }
        let grants = |l: &VpcLink| {
            l.spec
                .allowed_namespaces
                .iter()
                .any(|n| n == "*" || n == from)
                && (l.spec.services.is_empty() || l.spec.services.iter().any(|s| s == name))
        };
        let permitted = match link {
            Some(r) => {
                let link_ns = r.namespace.as_deref().unwrap_or(to);
                let Some(l) = self.vpc_links.get(&(link_ns.to_string(), r.name.clone())) else {
                    return Err(Problem::unresolved(
                        reasons::VPC_LINK_NOT_FOUND,
                        format!(
                            "spec.integration.vpcLinkRef: VpcLink {link_ns}/{} does not exist or is not accepted",
                            r.name
                        ),
                    ));
                };
                link_ns == to && grants(l)
            }
            None => self
                .vpc_links
                .range((to.to_string(), String::new())..)
                .take_while(|((ns, _), _)| ns == to)
                .any(|(_, l)| grants(l)),
        };
        if permitted {
            Ok(())
        } else {
            Err(Problem::unresolved(
                reasons::REF_NOT_PERMITTED,
                format!(
                    "{field}: Service {to}/{name} is in another namespace and no VpcLink in {to} grants namespace {from} access to it"
                ),
            ))
        }
    }

    /// Checks that Service `namespace/name` exists and has port `port`.
    pub(crate) fn check_service_port(
        &self,
        field: &str,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> Result<(), Problem> {
        let Some(service) = self.service(namespace, name) else {
            return Err(Problem::unresolved(
                reasons::BACKEND_NOT_FOUND,
                format!("{field}: Service {namespace}/{name} does not exist"),
            ));
        };
        if is_external_name(service) || service_port(service, port).is_some() {
            Ok(())
        } else {
            Err(Problem::unresolved(
                reasons::BACKEND_NOT_FOUND,
                format!("{field}: Service {namespace}/{name} has no port {port}"),
            ))
        }
    }

    /// The Service a URI host names in one of the cluster forms, and whether it exists: `svc`
    /// (this namespace; only a known Service), `svc.ns` (a known Service, or any name in a
    /// namespace that has Services), `svc.ns.svc` and `svc.ns.svc.<cluster domain>` (always).
    fn cluster_host(&self, host: &str, namespace: &str) -> Option<(ObjKey, bool)> {
        let labels: Vec<&str> = host.split('.').collect();
        let (key, certain) = match labels.as_slice() {
            [svc] => ((namespace.to_string(), svc.to_string()), false),
            [svc, ns] => (
                (ns.to_string(), svc.to_string()),
                self.service_namespaces.contains(*ns),
            ),
            [svc, ns, "svc"] => ((ns.to_string(), svc.to_string()), true),
            [svc, ns, "svc", rest @ ..] if rest.join(".") == self.cluster_domain => {
                ((ns.to_string(), svc.to_string()), true)
            }
            _ => return None,
        };
        let exists = self.services.contains_key(&key);
        (exists || certain).then_some((key, exists))
    }

    /// Whether VpcLink `key` allows namespace `from`.
    fn allows(&self, key: &ObjKey, from: &str) -> bool {
        self.vpc_links.get(key).is_some_and(|l| {
            l.spec
                .allowed_namespaces
                .iter()
                .any(|n| n == "*" || n == from)
        })
    }

    /// Whether VpcLink `key` lists `host:port` in its `addresses`.
    fn reaches(&self, key: &ObjKey, host: &OriginHost, port: u16) -> bool {
        self.link_addresses
            .get(key)
            .is_some_and(|a| a.iter().any(|g| g.covers(host, port)))
    }

    /// The grant check of a `uri` origin used from `namespace` (see the module docs): which
    /// Service it names, or which VpcLink grants it, or that it needs none.
    pub(crate) fn grant_origin(
        &self,
        field: &str,
        origin: &Origin,
        namespace: &str,
        link: Option<&ObjectRef>,
    ) -> Result<OriginGrant, Problem> {
        let host = classify(&origin.host)
            .map_err(|e| Problem::invalid(reasons::INVALID, format!("{field}: {e}")))?;
        if let OriginHost::Name(name) = &host
            && let Some(((ns, svc), exists)) = self.cluster_host(name, namespace)
        {
            self.permit(field, namespace, &ns, &svc, link)?;
            return Ok(if exists {
                OriginGrant::Service((ns, svc))
            } else {
                OriginGrant::Open
            });
        }
        let port = origin.port;
        let refused = |message: String| {
            Problem::unresolved(
                reasons::ADDRESS_NOT_PERMITTED,
                format!("{field}: {message}"),
            )
        };
        match link {
            Some(r) => {
                let key = (
                    r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                    r.name.clone(),
                );
                if !self.vpc_links.contains_key(&key) {
                    return Err(Problem::unresolved(
                        reasons::VPC_LINK_NOT_FOUND,
                        format!(
                            "spec.integration.vpcLinkRef: VpcLink {}/{} does not exist or is not accepted",
                            key.0, key.1
                        ),
                    ));
                }
                if !self.allows(&key, namespace) {
                    return Err(refused(format!(
                        "VpcLink {}/{} does not allow namespace {namespace}",
                        key.0, key.1
                    )));
                }
                if !self.reaches(&key, &host, port) {
                    return Err(refused(format!(
                        "{host} port {port} is not in spec.addresses of VpcLink {}/{}",
                        key.0, key.1
                    )));
                }
                Ok(OriginGrant::Link(key))
            }
            None if matches!(host, OriginHost::Name(_)) => Ok(OriginGrant::Open),
            None => self
                .vpc_links
                .keys()
                .find(|key| self.allows(key, namespace) && self.reaches(key, &host, port))
                .cloned()
                .map(OriginGrant::Link)
                .ok_or_else(|| {
                    refused(format!(
                        "{host} port {port} may be reached only through a VpcLink that allows namespace {namespace} and lists it in spec.addresses"
                    ))
                }),
        }
    }

    /// The backend for a Service port. A missing Service or port gives no endpoints (an older
    /// deployment may name a Service that is gone; the proxy answers 503).
    pub(crate) fn service_backend(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        scheme: UpstreamScheme,
    ) -> (String, Backend) {
        let prefix = match scheme {
            UpstreamScheme::Http => "svc",
            UpstreamScheme::Https => "svc+https",
        };
        let id = format!("{prefix}/{namespace}/{name}:{port}");
        let mut authority = format!("{name}.{namespace}.svc.{}", self.cluster_domain);
        let mut endpoints = BTreeSet::new();
        let mut policy = LoadBalancing::default();
        let mut http2 = false;
        if let Some(service) = self.service(namespace, name) {
            policy = load_balancing(service);
            if is_external_name(service) {
                let external = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.external_name.clone())
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                authority = if port == default_port(scheme) {
                    external.clone()
                } else {
                    format!("{external}:{port}")
                };
                endpoints.insert(format!("{external}:{port}"));
            } else if let Some(service_port) = service_port(service, port) {
                http2 = scheme == UpstreamScheme::Http
                    && service_port.app_protocol.as_deref() == Some(H2C_APP_PROTOCOL);
                for slice in self
                    .slices
                    .get(&(namespace.to_string(), name.to_string()))
                    .into_iter()
                    .flatten()
                {
                    let Some(target) = slice_port(slice, service_port) else {
                        continue;
                    };
                    for endpoint in &slice.endpoints {
                        let ready = endpoint
                            .conditions
                            .as_ref()
                            .and_then(|c| c.ready)
                            .unwrap_or(true);
                        if !ready {
                            continue;
                        }
                        for address in &endpoint.addresses {
                            endpoints.insert(host_port(address, target));
                        }
                    }
                }
            }
        }
        (
            id,
            Backend {
                scheme,
                authority,
                endpoints: endpoints.into_iter().collect(),
                load_balancing: policy,
                http2,
                tls: match scheme {
                    UpstreamScheme::Http => None,
                    UpstreamScheme::Https => self.tls_for(namespace, |l| {
                        l.spec.services.is_empty() || l.spec.services.iter().any(|s| s == name)
                    }),
                },
            },
        )
    }

    /// The backend for a concrete origin: a Service when the host names one, else the host
    /// itself (resolved by the proxy at connect time). Grants are checked
    /// ([`Cluster::grant_origin`]); TLS settings come from the granting VpcLink, else from a
    /// VpcLink of `namespace` whose `addresses` list the origin.
    pub(crate) fn origin_backend(
        &self,
        field: &str,
        origin: &Origin,
        namespace: &str,
        link: Option<&ObjectRef>,
    ) -> Result<(String, Backend), Problem> {
        let through = match self.grant_origin(field, origin, namespace, link)? {
            OriginGrant::Service((ns, name)) => {
                return Ok(self.service_backend(&ns, &name, origin.port, origin.scheme));
            }
            OriginGrant::Link(key) => Some(key),
            OriginGrant::Open => None,
        };
        let scheme = match origin.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
        };
        let tls = match (origin.scheme, through) {
            (UpstreamScheme::Http, _) => None,
            (UpstreamScheme::Https, Some(key)) => self.link_tls.get(&key).cloned(),
            (UpstreamScheme::Https, None) => {
                let host = classify(&origin.host).ok();
                self.tls_for(namespace, |l| {
                    let key = obj_key(&l.metadata);
                    host.as_ref()
                        .is_some_and(|h| self.reaches(&key, h, origin.port))
                })
            }
        };
        Ok((
            format!("url/{scheme}://{}:{}", origin.host, origin.port),
            Backend {
                scheme: origin.scheme,
                authority: origin.authority(),
                endpoints: vec![format!("{}:{}", origin.host, origin.port)],
                load_balancing: LoadBalancing::default(),
                http2: false,
                tls,
            },
        ))
    }
}

/// A VpcLink's TLS origination settings, with its CA Secret resolved.
fn upstream_tls(inventory: &Input<'_>, link: &VpcLink) -> Result<Option<UpstreamTls>, Problem> {
    let Some(tls) = &link.spec.tls else {
        return Ok(None);
    };
    let (namespace, _) = obj_key(&link.metadata);
    let client = match &tls.client_cert_secret_ref {
        Some(r) => Some(super::tls::client_certificate(
            inventory,
            "spec.tls.clientCertSecretRef",
            &namespace,
            &r.name,
        )?),
        None => None,
    };
    let ca_pem = match &tls.ca_secret_ref {
        Some(r) => Some(super::tls::ca_bundle(
            inventory,
            "spec.tls.caSecretRef",
            &namespace,
            &r.name,
        )?),
        None => None,
    };
    let (client_cert_pem, client_key_pem) = match client {
        Some(c) => (Some(c.cert_chain_pem), Some(c.private_key_pem)),
        None => (None, None),
    };
    Ok(Some(UpstreamTls {
        ca_pem,
        server_name: tls.sni.clone(),
        client_cert_pem,
        client_key_pem,
    }))
}

fn is_external_name(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "ExternalName")
}

fn service_port(service: &Service, port: u16) -> Option<&ServicePort> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == i32::from(port))
}

/// The port the slice publishes for a Service port: same name, else a numeric `targetPort`
/// (or the port itself when `targetPort` is unset) that the slice lists.
fn slice_port(slice: &EndpointSlice, service_port: &ServicePort) -> Option<u16> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let name = service_port.name.as_deref().unwrap_or_default();
    let by_name = ports
        .iter()
        .find(|p| p.name.as_deref().unwrap_or_default() == name)
        .and_then(|p| p.port);
    let number = match &service_port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        None => Some(service_port.port),
        Some(IntOrString::String(_)) => None,
    };
    let by_number = || number.filter(|n| ports.iter().any(|p| p.port == Some(*n)));
    by_name
        .or_else(by_number)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

fn host_port(address: &str, port: u16) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{address}:{port}"),
    }
}
