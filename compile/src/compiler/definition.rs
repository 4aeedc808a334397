//! `Api.spec.definition`: the Api's OpenAPI document, imported before anything is compiled.
//!
//! The import is the one `causeway import openapi` runs ([`crate::openapi`]), never with
//! `--allow-insecure-drop`. Its Routes and Authorizers join the inventory as if the user had
//! written them, with these rules on conflicts: a Route CR of the Api wins over an operation
//! with the same route key; an Authorizer CR wins over a scheme that imports to the same name;
//! a field set in the Api's spec wins over the document's (models merge by name, the CR's
//! first). The generated objects have no status of their own (they do not exist in the
//! cluster): what happened to them is the Api's `DefinitionImported` condition.

use std::borrow::Cow;
use std::collections::BTreeSet;

use causeway_crds::common::condition_type;
use causeway_crds::{Api, ApiSpec, Condition};

use super::{ObjKey, obj_key};
use crate::openapi::{ImportMapping, ImportOptions, NoteKind, StageChoice, import};
use crate::status::{Kind, ObjectStatus};
use crate::{Inventory, reasons};

/// Prefix of the names of Routes generated from a definition (never a user's name: Route
/// names of users are DNS subdomains too, but this one says where it came from).
const GENERATED_PREFIX: &str = "definition.";

/// What importing one Api's definition gave.
#[derive(Debug)]
pub(crate) struct DefinitionResult {
    api: ObjKey,
    routes: BTreeSet<String>,
    authorizers: BTreeSet<String>,
    outcome: Result<String, (&'static str, String)>,
}

/// The inventory with every definition imported, and what each import gave.
pub(crate) fn expand(inventory: &Inventory) -> (Cow<'_, Inventory>, Vec<DefinitionResult>) {
    if inventory.apis.iter().all(|a| a.spec.definition.is_none()) {
        return (Cow::Borrowed(inventory), Vec::new());
    }
    let mut out = inventory.clone();
    let mut results = Vec::new();
    for (i, api) in inventory.apis.iter().enumerate() {
        let Some(definition) = &api.spec.definition else {
            continue;
        };
        let key = obj_key(&api.metadata);
        let mut result = DefinitionResult {
            api: key.clone(),
            routes: BTreeSet::new(),
            authorizers: BTreeSet::new(),
            outcome: Ok(String::new()),
        };
        let text = match (&definition.config_map_ref, &definition.inline) {
            (Some(_), Some(_)) | (None, None) => Err((
                reasons::INVALID_DEFINITION,
                "spec.definition: set exactly one of configMapRef and inline".to_string(),
            )),
            (None, Some(text)) => Ok(text.clone()),
            (Some(r), None) => inventory
                .config_maps
                .iter()
                .find(|cm| obj_key(&cm.metadata) == (key.0.clone(), r.name.clone()))
                .and_then(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned())
                .ok_or_else(|| {
                    (
                        reasons::DEFINITION_NOT_FOUND,
                        format!(
                            "spec.definition.configMapRef: ConfigMap {}/{} (labelled causeway.dev/definition=true) has no key {:?}",
                            key.0, r.name, r.key
                        ),
                    )
                }),
        };
        let mapping = match definition.mapping.as_deref().map(ImportMapping::parse) {
            None => Ok(ImportMapping::default()),
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err((
                reasons::INVALID_DEFINITION,
                format!("spec.definition.mapping: {e}"),
            )),
        };
        let imported = text
            .and_then(|t| mapping.map(|m| (t, m)))
            .and_then(|(text, mapping)| {
                import(
                    &text,
                    &ImportOptions {
                        namespace: key.0.clone(),
                        api_name: Some(key.1.clone()),
                        stage: StageChoice::None,
                        mapping,
                        allow_insecure_drop: false,
                    },
                )
                .map_err(|e| (reasons::INVALID_DEFINITION, format!("spec.definition: {e}")))
            });
        let imported = match imported {
            Ok(i) => i,
            Err(e) => {
                result.outcome = Err(e);
                results.push(result);
                continue;
            }
        };
        // The Api: fields set in the CR win.
        out.apis[i].spec = merge_spec(&api.spec, imported.api.spec);
        // Authorizers: a CR of the same name wins.
        let existing_authorizers: BTreeSet<ObjKey> = inventory
            .authorizers
            .iter()
            .map(|a| obj_key(&a.metadata))
            .collect();
        for mut a in imported.authorizers {
            if existing_authorizers.contains(&obj_key(&a.metadata)) {
                continue;
            }
            a.metadata.creation_timestamp = api.metadata.creation_timestamp.clone();
            result
                .authorizers
                .insert(a.metadata.name.clone().unwrap_or_default());
            out.authorizers.push(a);
        }
        // Routes: a CR of the Api with the same route key wins.
        let cr_keys: BTreeSet<&str> = inventory
            .routes
            .iter()
            .filter(|r| obj_key(&r.metadata).0 == key.0 && r.spec.api_ref.name == key.1)
            .map(|r| r.spec.route_key.as_str())
            .collect();
        let mut overridden = Vec::new();
        for mut r in imported.routes {
            if cr_keys.contains(r.spec.route_key.as_str()) {
                overridden.push(r.spec.route_key.clone());
                continue;
            }
            let name = format!(
                "{GENERATED_PREFIX}{}",
                r.metadata.name.clone().unwrap_or_default()
            );
            r.metadata.name = Some(name.clone());
            r.metadata.creation_timestamp = api.metadata.creation_timestamp.clone();
            result.routes.insert(name);
            out.routes.push(r);
        }
        let dropped = imported
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Dropped)
            .map(|n| n.to_string())
            .collect::<Vec<_>>();
        let mut message = format!(
            "{} operations and {} authorizers imported from spec.definition",
            result.routes.len(),
            result.authorizers.len()
        );
        if !overridden.is_empty() {
            message.push_str(&format!("; Route CRs replace {}", overridden.join(", ")));
        }
        if !dropped.is_empty() {
            message.push_str(&format!(
                "; {} constructs not carried over: {}",
                dropped.len(),
                dropped.join("; ")
            ));
        }
        result.outcome = Ok(message);
        results.push(result);
    }
    (Cow::Owned(out), results)
}

/// The CR's spec, with the document's values where the CR sets none.
fn merge_spec(cr: &ApiSpec, doc: ApiSpec) -> ApiSpec {
    let mut out = cr.clone();
    out.protocol = out.protocol.or(doc.protocol);
    out.api_type = out.api_type.or(doc.api_type);
    out.description = out.description.or(doc.description);
    out.execute_api_endpoint = out.execute_api_endpoint.or(doc.execute_api_endpoint);
    out.api_key_source = out.api_key_source.or(doc.api_key_source);
    out.policy = out.policy.or(doc.policy);
    if out.gateway_responses.is_empty() {
        out.gateway_responses = doc.gateway_responses;
    }
    out.cors = out.cors.or(doc.cors);
    if out.binary_media_types.is_empty() {
        out.binary_media_types = doc.binary_media_types;
    }
    out.max_body_bytes = out.max_body_bytes.or(doc.max_body_bytes);
    for m in doc.models {
        if !out.models.iter().any(|x| x.name == m.name) {
            out.models.push(m);
        }
    }
    out.route_selection_expression = out
        .route_selection_expression
        .or(doc.route_selection_expression);
    out
}

/// Removes the statuses of generated objects and adds `DefinitionImported` to each Api that
/// has a definition: `False` when the import failed or a generated object was rejected.
pub(crate) fn apply_statuses(
    statuses: &mut Vec<ObjectStatus>,
    results: &[DefinitionResult],
    apis: &[Api],
) {
    for result in results {
        let (ns, api) = &result.api;
        let mut rejected = Vec::new();
        statuses.retain(|s| {
            let generated = s.namespace == *ns
                && match s.kind {
                    Kind::Route => result.routes.contains(&s.name),
                    Kind::Authorizer => result.authorizers.contains(&s.name),
                    _ => false,
                };
            if generated && let Some(c) = s.problem() {
                rejected.push(format!(
                    "{} {}: {}: {}",
                    s.kind.as_str(),
                    s.name,
                    c.reason,
                    c.message
                ));
            }
            !generated
        });
        let generation = apis
            .iter()
            .find(|a| obj_key(&a.metadata) == result.api)
            .and_then(|a| a.metadata.generation);
        let (status, reason, message) = match &result.outcome {
            Err((reason, message)) => ("False", *reason, message.clone()),
            Ok(message) if rejected.is_empty() => {
                ("True", reasons::DEFINITION_IMPORTED, message.clone())
            }
            Ok(message) => (
                "False",
                reasons::DEFINITION_PARTLY_REJECTED,
                format!("{message}; rejected by compile: {}", rejected.join("; ")),
            ),
        };
        if let Some(s) = statuses
            .iter_mut()
            .find(|s| s.kind == Kind::Api && s.namespace == *ns && s.name == *api)
        {
            s.conditions.push(Condition {
                type_: condition_type::DEFINITION_IMPORTED.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: format!("Api {ns}/{api}: {message}"),
                observed_generation: generation,
                last_transition_time: None,
            });
        }
    }
}
