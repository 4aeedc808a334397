//! Schemas → `Api.spec.models`: the document's named schemas (local `$ref`s copied into each
//! model's `definitions`) and the inline body schemas of operations.

use super::*;

impl Importer<'_> {
    pub(super) fn import_models(&mut self) {
        let base = self.dialect.schemas_pointer();
        let Some(schemas) = self.doc.pointer(base).and_then(Value::as_object) else {
            return;
        };
        for (name, schema) in schemas {
            let at = child(base, name);
            if let Some(exact) = schema.get(cx::MODEL) {
                let mut exact = exact.clone();
                if let Some(o) = exact.as_object_mut() {
                    o.insert("name".into(), Value::String(name.clone()));
                }
                match serde_json::from_value::<ModelSpec>(exact) {
                    Ok(m) => {
                        self.model_names.insert(m.name.clone());
                        self.models.push(m);
                    }
                    Err(e) => self
                        .notes
                        .dropped(&child(&at, cx::MODEL), format!("not a model: {e}")),
                }
                continue;
            }
            if let Some(model) = self.model_schema(name, schema, &at) {
                self.model_names.insert(name.clone());
                self.models.push(ModelSpec {
                    name: name.clone(),
                    content_type: None,
                    schema: model,
                });
            }
        }
    }

    /// A self-contained JSON Schema for a named schema: references to other named schemas
    /// become `#/definitions/NAME`, and those schemas are copied into `definitions`.
    pub(super) fn model_schema(&mut self, name: &str, schema: &Value, at: &str) -> Option<Value> {
        let base = self.dialect.schemas_pointer();
        let mut deps = BTreeSet::new();
        let mut root = schema.clone();
        if let Err(r) = rewrite_refs(&mut root, base, &mut deps) {
            self.notes.dropped(
                at,
                format!("model {name} refers to {r:?} outside this document's schemas; nothing is fetched, so the model is not carried over"),
            );
            return None;
        }
        let mut definitions = Map::new();
        let mut queue: Vec<String> = deps.iter().cloned().collect();
        let mut seen = deps.clone();
        while let Some(dep) = queue.pop() {
            if definitions.len() > 1000 {
                break;
            }
            let Some(target) = self.doc.pointer(&child(base, &dep)) else {
                self.notes.dropped(
                    at,
                    format!("model {name} refers to schema {dep:?}, which does not exist"),
                );
                return None;
            };
            let mut copy = target.clone();
            let mut more = BTreeSet::new();
            if rewrite_refs(&mut copy, base, &mut more).is_err() {
                self.notes.dropped(
                    at,
                    format!("model {name} depends on {dep:?}, which refers outside this document"),
                );
                return None;
            }
            if let Some(o) = copy.as_object_mut() {
                o.remove(cx::MODEL);
            }
            for m in more {
                if seen.insert(m.clone()) {
                    queue.push(m);
                }
            }
            definitions.insert(dep, copy);
        }
        if !definitions.is_empty()
            && let Some(o) = root.as_object_mut()
        {
            let entry = o
                .entry("definitions")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(d) = entry.as_object_mut() {
                for (k, v) in definitions {
                    d.entry(k).or_insert(v);
                }
            }
        }
        Some(root)
    }

    /// The model a body schema names (a `$ref` to a named schema), or a new model for an
    /// inline schema.
    pub(super) fn body_model(
        &mut self,
        schema: &Value,
        at: &str,
        route_name: &str,
        index: usize,
    ) -> Option<String> {
        let base = self.dialect.schemas_pointer();
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix('#')
                .and_then(|p| p.strip_prefix(base))
                .and_then(|p| p.strip_prefix('/'))
                .map(|n| n.replace("~1", "/").replace("~0", "~"));
            return match target {
                Some(n) if self.model_names.contains(&n) => Some(n),
                _ => {
                    self.notes.dropped(
                        at,
                        format!("the body schema {r:?} is not an imported model: the body is not validated"),
                    );
                    None
                }
            };
        }
        let name = if index == 0 {
            format!("{route_name}-body")
        } else {
            format!("{route_name}-body-{index}")
        };
        let schema = self.model_schema(&name, schema, at)?;
        self.model_names.insert(name.clone());
        self.models.push(ModelSpec {
            name: name.clone(),
            content_type: None,
            schema,
        });
        Some(name)
    }
}
