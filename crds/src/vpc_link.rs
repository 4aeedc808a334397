//! `VpcLink`: grants Apis in other namespaces access to this namespace's backends.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, SecretRef};

/// Lives in a backend's namespace and grants named Api namespaces access to its Services or
/// addresses; owns the TLS settings used to reach them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "causeway.dev",
    version = "v1alpha1",
    kind = "VpcLink",
    plural = "vpclinks",
    shortname = "cwlink",
    category = "causeway",
    namespaced,
    status = "VpcLinkStatus",
    derive = "PartialEq",
    cel,
    doc = "Grants Apis in other namespaces access to backends in this one (API Gateway's VPC link).",
    printcolumn(
        name = "Namespaces",
        type_ = "string",
        json_path = ".spec.allowedNamespaces"
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VpcLinkSpec {
    /// Namespaces whose Apis may use this link; `*` allows every namespace.
    pub allowed_namespaces: Vec<String>,
    /// Services of this namespace reachable through the link; empty allows all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Addresses reachable through the link: CIDRs (`10.0.0.0/8`), IP addresses or host names,
    /// each optionally with `:port` (`10.1.2.3:443`, `[fd00::1]:443`, `api.example.com:443`;
    /// without a port, every port). A Route `uri` that is an IP address or `localhost` is
    /// accepted only through a link that allows its namespace and lists the address here, and a
    /// Route naming this link in `vpcLinkRef` with a `uri` may reach only these addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// TLS origination towards the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsSpec>,
}

/// TLS settings for connections to backends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTlsSpec {
    /// A Secret with `ca.crt` used to verify the backend (default: the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// Server name sent in SNI and verified in the certificate (default: the Service host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) presented as client certificate to
    /// backends that require mutual TLS. Checked by the controller: PEM, and the key belongs to
    /// the first certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretRef>,
}

/// Observed state of a VpcLink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcLinkStatus {
    /// The `metadata.generation` last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
