//! Parsing YAML documents (as a user would `kubectl apply` them) into inventory objects.
//!
//! Pure: the caller reads the files and passes their text. Unknown kinds are skipped (a
//! directory may hold Deployments and other objects Causeway does not read); a document of a
//! known kind that does not parse is an error naming the source, the document and the object.
//!
//! Limits: the YAML reader's budget is derived from the size of the input (see [`YamlLimits`]),
//! so a file of any honest size loads (a UsagePlan with 100,000 keys and a Secret per key is
//! some 20 MB and 2 million nodes), while the work a hostile file can cause stays proportional
//! to its size: alias expansion (billion laughs) has a fixed budget that does not grow with the
//! file, and one file is at most [`MAX_YAML_BYTES`]. A limit that is hit is a
//! [`LoadError::Limit`] naming the file and the limit.

use causeway_crds::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use crate::Inventory;

/// One object read from YAML.
#[derive(Debug, Clone)]
pub enum Object {
    /// An Api.
    Api(Box<Api>),
    /// A Route.
    Route(Box<Route>),
    /// A Stage.
    Stage(Box<Stage>),
    /// A UsagePlan.
    UsagePlan(Box<UsagePlan>),
    /// An Authorizer.
    Authorizer(Box<Authorizer>),
    /// A VpcLink.
    VpcLink(Box<VpcLink>),
    /// A Service.
    Service(Box<Service>),
    /// An EndpointSlice (v1, or v1beta1 converted to v1).
    EndpointSlice(Box<EndpointSlice>),
    /// A Secret.
    Secret(Box<Secret>),
    /// A ConfigMap (read for `Api.spec.definition`).
    ConfigMap(Box<ConfigMap>),
}

/// Why a YAML source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not YAML.
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        /// File name or other label of the source.
        source_name: String,
        /// Parser message (with line and column).
        message: String,
    },
    /// A document of a known kind that does not match its schema.
    #[error("{source_name}: document {index} ({kind} {name}): {message}")]
    Object {
        /// File name or other label of the source.
        source_name: String,
        /// 1-based index of the document in the source.
        index: usize,
        /// `kind` of the document.
        kind: String,
        /// `metadata.name`, or `<unnamed>`.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The source is larger or more complex than the reader allows.
    #[error("{source_name}: YAML limit exceeded: {limit} (limit {max}){where_}; {hint}")]
    Limit {
        /// File name or other label of the source.
        source_name: String,
        /// Which limit, in words (`alias expansion`, `documents per file`, ...).
        limit: &'static str,
        /// The limit's value for this source.
        max: usize,
        /// ` at line L column C`, or empty.
        where_: String,
        /// What to do about it.
        hint: &'static str,
    },
}

/// Largest YAML source (one file), bytes.
pub const MAX_YAML_BYTES: usize = 256 * 1024 * 1024;
/// Alias expansion budget: parser events replayed from `*alias` references (and copied into
/// anchors) in one source. Fixed, not derived from the input size: an honest file needs few, a
/// billion-laughs file needs all. Below the smallest node budget, so that a bomb is named as one.
pub const MAX_ALIAS_REPLAYED_NODES: usize = 100_000;
/// Alias references in one source.
pub const MAX_ALIASES: usize = 50_000;
/// Nesting depth of mappings and sequences.
pub const MAX_DEPTH: usize = 64;
/// The floor of every size-derived limit: what small files always get.
const MIN_NODES: usize = 250_000;
const MIN_DOCUMENTS: usize = 1_024;

/// The YAML reader's budget for one source, derived from its size in bytes. Every node of a
/// YAML stream without aliases takes at least one byte of input (a document at least four,
/// `---\n`), so these limits never refuse an honest file, yet bound the work per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Documents in the source.
    pub max_documents: usize,
    /// Nodes (mappings, sequences, scalars).
    pub max_nodes: usize,
    /// Parser events (nodes, their ends, document and stream markers).
    pub max_events: usize,
    /// Bytes of scalar text.
    pub max_scalar_bytes: usize,
}

impl YamlLimits {
    /// The limits for a source of `len` bytes.
    pub fn for_input(len: usize) -> Self {
        Self {
            max_documents: MIN_DOCUMENTS.max(len / 4 + 1),
            max_nodes: MIN_NODES.max(len.saturating_mul(2)),
            max_events: (4 * MIN_NODES).max(len.saturating_mul(4)),
            max_scalar_bytes: (64 * 1024 * 1024).max(len.saturating_mul(2)),
        }
    }

    fn options(&self) -> serde_saphyr::Options {
        serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_documents: self.max_documents,
                max_nodes: self.max_nodes,
                max_events: self.max_events,
                max_total_scalar_bytes: self.max_scalar_bytes,
                max_aliases: MAX_ALIASES,
                max_depth: MAX_DEPTH,
                max_recorded_anchor_events: MAX_ALIAS_REPLAYED_NODES,
            },
            alias_limits: serde_saphyr::alias_limits! {
                max_total_replayed_events: MAX_ALIAS_REPLAYED_NODES,
            },
        }
    }
}

/// Turns a reader error into [`LoadError::Limit`] when it is one, else [`LoadError::Yaml`].
fn yaml_error(source_name: &str, limits: &YamlLimits, error: &serde_saphyr::Error) -> LoadError {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let inner = unwrap_error(error);
    const ALIAS_HINT: &str =
        "alias expansion is bounded (billion-laughs protection); write the repeated parts out";
    const SPLIT_HINT: &str = "split the file into several files";
    let limit = |limit: &'static str, max: usize, hint: &'static str| {
        let where_ = inner
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        LoadError::Limit {
            source_name: source_name.to_string(),
            limit,
            max,
            where_,
            hint,
        }
    };
    match inner {
        E::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => limit(
            "alias expansion (nodes replayed from aliases)",
            *max_total_replayed_events,
            ALIAS_HINT,
        ),
        E::AliasExpansionLimitExceeded {
            max_expansions_per_anchor,
            ..
        } => limit(
            "alias expansions per anchor",
            *max_expansions_per_anchor,
            ALIAS_HINT,
        ),
        E::AliasReplayStackDepthExceeded { max_depth, .. } => {
            limit("alias nesting depth", *max_depth, ALIAS_HINT)
        }
        E::Budget { breach, .. } => match breach {
            B::Aliases { .. } => limit("aliases", MAX_ALIASES, ALIAS_HINT),
            B::RecordedAnchorEvents { .. } => limit(
                "alias expansion (events recorded for anchors)",
                MAX_ALIAS_REPLAYED_NODES,
                ALIAS_HINT,
            ),
            B::AliasAnchorRatio { .. } => limit(
                "aliases per anchor (ratio)",
                serde_saphyr::Budget::default().alias_anchor_ratio_multiplier,
                ALIAS_HINT,
            ),
            B::Documents { .. } => limit("documents per file", limits.max_documents, SPLIT_HINT),
            B::Nodes { .. } => limit("nodes per file", limits.max_nodes, SPLIT_HINT),
            B::Events { .. } => limit("parser events per file", limits.max_events, SPLIT_HINT),
            B::ScalarBytes { .. } => limit(
                "bytes of scalar text per file",
                limits.max_scalar_bytes,
                SPLIT_HINT,
            ),
            B::Depth { .. } => limit(
                "nesting depth",
                MAX_DEPTH,
                "no Causeway object nests this deep",
            ),
            _ => LoadError::Yaml {
                source_name: source_name.to_string(),
                message: error.to_string(),
            },
        },
        _ => LoadError::Yaml {
            source_name: source_name.to_string(),
            message: error.to_string(),
        },
    }
}

/// The error under the reader's wrappers (snippets, alias locations).
fn unwrap_error(mut error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    loop {
        match error {
            serde_saphyr::Error::WithSnippet { error: inner, .. }
            | serde_saphyr::Error::AliasError { error: inner, .. } => error = inner,
            _ => return error,
        }
    }
}

/// Parses every document of a YAML stream. `default_namespace` is given to namespaced objects
/// that have none (as `kubectl apply -n` would).
pub fn parse_documents(
    source_name: &str,
    text: &str,
    default_namespace: &str,
) -> Result<Vec<Object>, LoadError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(LoadError::Limit {
            source_name: source_name.to_string(),
            limit: "bytes per file",
            max: MAX_YAML_BYTES,
            where_: String::new(),
            hint: "split the file into several files",
        });
    }
    let limits = YamlLimits::for_input(text.len());
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, limits.options())
        .map_err(|e| yaml_error(source_name, &limits, &e))?;
    let mut objects = Vec::new();
    for (i, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let error = |message: String| LoadError::Object {
            source_name: source_name.to_string(),
            index: i + 1,
            kind: kind.clone(),
            name: name.clone(),
            message,
        };
        if !doc.is_object() {
            return Err(error(
                "a document must be a mapping with apiVersion and kind".into(),
            ));
        }
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            if !meta.contains_key("namespace") {
                meta.insert(
                    "namespace".into(),
                    Value::String(default_namespace.to_string()),
                );
            }
            // A file has no resourceVersion of its own (one copied from `kubectl get` would
            // not change when the file does): it becomes a hash of the document, which is
            // what an incremental compile keys its memo by.
            meta.remove("resourceVersion");
        }
        let version = content_version(&doc);
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(version));
        }
        let object = match (api_version.as_str(), kind.as_str()) {
            (causeway_crds::API_VERSION, kind) => match kind {
                "Api" => Object::Api(typed(doc).map_err(error)?),
                "Route" => Object::Route(typed(doc).map_err(error)?),
                "Stage" => Object::Stage(typed(doc).map_err(error)?),
                "UsagePlan" => Object::UsagePlan(typed(doc).map_err(error)?),
                "Authorizer" => Object::Authorizer(typed(doc).map_err(error)?),
                "VpcLink" => Object::VpcLink(typed(doc).map_err(error)?),
                other => {
                    return Err(error(format!(
                        "unknown kind {other:?} in {}",
                        causeway_crds::API_VERSION
                    )));
                }
            },
            ("v1", "Service") => Object::Service(typed(doc).map_err(error)?),
            ("v1", "Secret") => Object::Secret(typed(doc).map_err(error)?),
            ("v1", "ConfigMap") => Object::ConfigMap(typed(doc).map_err(error)?),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                Object::EndpointSlice(typed(doc).map_err(error)?)
            }
            ("discovery.k8s.io/v1beta1", "EndpointSlice") => {
                Object::EndpointSlice(typed(endpoint_slice_v1beta1_to_v1(doc)).map_err(error)?)
            }
            _ => continue,
        };
        objects.push(object);
    }
    Ok(objects)
}

/// `yaml-` and 16 hex digits of SHA-256 over the document's JSON encoding.
fn content_version(doc: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    format!("yaml-{}", hex::encode(&Sha256::digest(&bytes)[..8]))
}

fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> Result<Box<T>, String> {
    serde_json::from_value(doc)
        .map(Box::new)
        .map_err(|e| e.to_string())
}

/// v1beta1 EndpointSlices differ from v1 only in `topology` (dropped in v1) and the API version.
pub fn endpoint_slice_v1beta1_to_v1(mut doc: Value) -> Value {
    doc["apiVersion"] = Value::String("discovery.k8s.io/v1".into());
    if let Some(endpoints) = doc.get_mut("endpoints").and_then(Value::as_array_mut) {
        for endpoint in endpoints {
            if let Some(e) = endpoint.as_object_mut() {
                e.remove("topology");
            }
        }
    }
    doc
}

impl Inventory {
    /// Adds one loaded object.
    pub fn add(&mut self, object: Object) {
        match object {
            Object::Api(o) => self.apis.push(*o),
            Object::Route(o) => self.routes.push(*o),
            Object::Stage(o) => self.stages.push(*o),
            Object::UsagePlan(o) => self.usage_plans.push(*o),
            Object::Authorizer(o) => self.authorizers.push(*o),
            Object::VpcLink(o) => self.vpc_links.push(*o),
            Object::Service(o) => self.services.push(*o),
            Object::EndpointSlice(o) => self.endpoint_slices.push(*o),
            Object::Secret(o) => self.secrets.push(*o),
            Object::ConfigMap(o) => self.config_maps.push(*o),
        }
    }

    /// Parses a YAML stream and adds its objects.
    pub fn add_yaml(&mut self, source_name: &str, text: &str) -> Result<(), LoadError> {
        for object in parse_documents(source_name, text, "default")? {
            self.add(object);
        }
        Ok(())
    }
}

impl Object {
    /// `(kind, namespace, name)`: what makes an object the same object.
    pub fn id(&self) -> (String, String, String) {
        fn of(
            kind: &str,
            meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) -> (String, String, String) {
            (
                kind.to_string(),
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            )
        }
        match self {
            Object::Api(o) => of("Api", &o.metadata),
            Object::Route(o) => of("Route", &o.metadata),
            Object::Stage(o) => of("Stage", &o.metadata),
            Object::UsagePlan(o) => of("UsagePlan", &o.metadata),
            Object::Authorizer(o) => of("Authorizer", &o.metadata),
            Object::VpcLink(o) => of("VpcLink", &o.metadata),
            Object::Service(o) => of("Service", &o.metadata),
            Object::EndpointSlice(o) => of("EndpointSlice", &o.metadata),
            Object::Secret(o) => of("Secret", &o.metadata),
            Object::ConfigMap(o) => of("ConfigMap", &o.metadata),
        }
    }
}
