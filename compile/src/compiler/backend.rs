//! Backends: Services resolved through their EndpointSlices, URLs, and the VpcLink grants that
//! let a Route use a Service of another namespace.
//!
//! Backend ids (keys of `Snapshot.backends`): `svc/<ns>/<name>:<port>` for a Service port over
//! HTTP (`svc+https/...` over TLS), `url/<scheme>://<host>:<port>` for anything else. A Service
//! port maps to the `targetPort` published in the slice's `ports` entry of the same name
//! (falling back to a numeric `targetPort`); only ready endpoints (`conditions.ready` absent or
//! true) are listed. A Service without ready endpoints is still a valid backend: the proxy
//! answers 503 for it.

use std::collections::{BTreeMap, BTreeSet};

use causeway_crds::VpcLink;
use causeway_crds::common::ObjectRef;
use causeway_snapshot::{Backend, LoadBalancing, UpstreamScheme, UpstreamTls};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::text::{Origin, default_port};
use super::{ObjKey, Problem, Verdict, cel, obj_key};
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};
use crate::{CompileOptions, Inventory};

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
    cluster_domain: String,
}

impl<'a> Cluster<'a> {
    /// Indexes the inventory; VpcLinks are checked here and their statuses pushed.
    pub(crate) fn new(
        inventory: &'a Inventory,
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
        for link in &inventory.vpc_links {
            let mut verdict = Verdict::default();
            verdict.check(cel::check(Kind::VpcLink, link));
            let tls = verdict.check(upstream_tls(inventory, link)).flatten();
            if verdict.is_ok() {
                vpc_links.insert(obj_key(&link.metadata), link);
                if let Some(tls) = tls {
                    link_tls.insert(obj_key(&link.metadata), tls);
                }
            }
            statuses.push(verdict.into_status(Kind::VpcLink, &link.metadata, StatusDetail::None));
        }
        Self {
            services,
            slices,
            vpc_links,
            link_tls,
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

    /// The Service a URI host names, if it names one that exists: `svc`, `svc.ns`,
    /// `svc.ns.svc` or `svc.ns.svc.<cluster domain>`.
    pub(crate) fn service_for_host(&self, host: &str, namespace: &str) -> Option<ObjKey> {
        let labels: Vec<&str> = host.split('.').collect();
        let key = match labels.as_slice() {
            [svc] => (namespace.to_string(), svc.to_string()),
            [svc, ns] => (ns.to_string(), svc.to_string()),
            [svc, ns, "svc"] => (ns.to_string(), svc.to_string()),
            [svc, ns, "svc", rest @ ..] if rest.join(".") == self.cluster_domain => {
                (ns.to_string(), svc.to_string())
            }
            _ => return None,
        };
        self.services.contains_key(&key).then_some(key)
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
    /// itself (resolved by the proxy at connect time).
    pub(crate) fn origin_backend(
        &self,
        field: &str,
        origin: &Origin,
        namespace: &str,
        link: Option<&ObjectRef>,
    ) -> Result<(String, Backend), Problem> {
        if let Some((ns, name)) = self.service_for_host(&origin.host, namespace) {
            self.permit(field, namespace, &ns, &name, link)?;
            return Ok(self.service_backend(&ns, &name, origin.port, origin.scheme));
        }
        let scheme = match origin.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
        };
        Ok((
            format!("url/{scheme}://{}:{}", origin.host, origin.port),
            Backend {
                scheme: origin.scheme,
                authority: origin.authority(),
                endpoints: vec![format!("{}:{}", origin.host, origin.port)],
                load_balancing: LoadBalancing::default(),
                http2: false,
                tls: match origin.scheme {
                    UpstreamScheme::Http => None,
                    UpstreamScheme::Https => {
                        let address = format!("{}:{}", origin.host, origin.port);
                        self.tls_for(namespace, |l| l.spec.addresses.contains(&address))
                    }
                },
            },
        ))
    }
}

/// A VpcLink's TLS origination settings, with its CA Secret resolved.
fn upstream_tls(inventory: &Inventory, link: &VpcLink) -> Result<Option<UpstreamTls>, Problem> {
    let Some(tls) = &link.spec.tls else {
        return Ok(None);
    };
    let (namespace, _) = obj_key(&link.metadata);
    let ca_pem = match &tls.ca_secret_ref {
        Some(r) => Some(super::tls::ca_bundle(
            inventory,
            "spec.tls.caSecretRef",
            &namespace,
            &r.name,
        )?),
        None => None,
    };
    Ok(Some(UpstreamTls {
        ca_pem,
        server_name: tls.sni.clone(),
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
