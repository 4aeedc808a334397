//! Parsing YAML documents (as a user would `kubectl apply` them) into inventory objects.
//!
//! Pure: the caller reads the files and passes their text. Unknown kinds are skipped (a
//! directory may hold Deployments and other objects Causeway does not read); a document of a
//! known kind that does not parse is an error naming the source, the document and the object.

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
}

/// Parses every document of a YAML stream. `default_namespace` is given to namespaced objects
/// that have none (as `kubectl apply -n` would).
pub fn parse_documents(
    source_name: &str,
    text: &str,
    default_namespace: &str,
) -> Result<Vec<Object>, LoadError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| LoadError::Yaml {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })?;
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
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut)
            && !meta.contains_key("namespace")
        {
            meta.insert(
                "namespace".into(),
                Value::String(default_namespace.to_string()),
            );
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
