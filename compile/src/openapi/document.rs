//! Reading a document: parsing, the version, JSON pointers and local `$ref`s.

use serde_json::Value;

use super::report::{ImportError, Notes};

/// Largest document accepted, in bytes (AWS's own limit for an imported definition is 6 MB
/// on REST APIs).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// How many `$ref`s are followed in a row before giving up (cycles, long chains).
const MAX_REF_HOPS: usize = 32;

/// The dialect of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Swagger 2.0.
    Swagger2,
    /// OpenAPI 3.0.x.
    Oas30,
    /// OpenAPI 3.1.x.
    Oas31,
}

impl Dialect {
    /// Where named schemas live.
    pub(crate) fn schemas_pointer(self) -> &'static str {
        match self {
            Dialect::Swagger2 => "/definitions",
            _ => "/components/schemas",
        }
    }

    /// Where security schemes live.
    pub(crate) fn security_schemes_pointer(self) -> &'static str {
        match self {
            Dialect::Swagger2 => "/securityDefinitions",
            _ => "/components/securitySchemes",
        }
    }
}

/// Parses YAML or JSON text into a value (JSON is read as YAML 1.2, of which it is a subset).
pub(crate) fn parse(text: &str) -> Result<Value, ImportError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ImportError::Parse(format!(
            "the document is {} bytes, more than the {MAX_DOCUMENT_BYTES} accepted",
            text.len()
        )));
    }
    let trimmed = text.trim_start_matches('\u{feff}');
    if trimmed.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(trimmed)
    {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(trimmed).map_err(|e| ImportError::Parse(e.to_string()))
}

/// The dialect, from `openapi` / `swagger`.
pub(crate) fn dialect(doc: &Value) -> Result<Dialect, ImportError> {
    let not = |pointer: &str, message: String| ImportError::NotOpenApi {
        pointer: pointer.to_string(),
        message,
    };
    let Some(root) = doc.as_object() else {
        return Err(not(
            "#",
            "an OpenAPI document is a mapping with `openapi` or `swagger`".into(),
        ));
    };
    let version = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(v) = root.get("openapi") {
        let v = version(v).ok_or_else(|| not("/openapi", "must be a string".into()))?;
        if v.starts_with("3.0") {
            return Ok(Dialect::Oas30);
        }
        if v.starts_with("3.1") {
            return Ok(Dialect::Oas31);
        }
        return Err(not(
            "/openapi",
            format!("version {v:?} is not supported (3.0.x, 3.1.x or Swagger 2.0)"),
        ));
    }
    if let Some(v) = root.get("swagger") {
        let v = version(v).ok_or_else(|| not("/swagger", "must be a string".into()))?;
        if v == "2.0" || v == "2" {
            return Ok(Dialect::Swagger2);
        }
        return Err(not(
            "/swagger",
            format!("version {v:?} is not supported (only 2.0)"),
        ));
    }
    Err(not(
        "#",
        "neither `openapi` nor `swagger` is set: not an OpenAPI document".into(),
    ))
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `base` + `/token`, escaped.
pub(crate) fn child(base: &str, token: &str) -> String {
    format!("{base}/{}", escape(token))
}

/// Follows local `$ref`s from `value` (found at `pointer`). Returns the target and its
/// pointer, or `None` (with a note) for a remote, missing or cyclic reference.
pub(crate) fn resolve<'a>(
    doc: &'a Value,
    value: &'a Value,
    pointer: &str,
    notes: &mut Notes,
) -> Option<(&'a Value, String)> {
    let mut current = value;
    let mut at = pointer.to_string();
    for _ in 0..MAX_REF_HOPS {
        let Some(reference) = current.get("$ref") else {
            return Some((current, at));
        };
        let Some(reference) = reference.as_str() else {
            notes.dropped(&child(&at, "$ref"), "`$ref` must be a string");
            return None;
        };
        let Some(local) = reference.strip_prefix('#') else {
            notes.dropped(
                &child(&at, "$ref"),
                format!(
                    "{reference:?} is not a reference inside this document; nothing is fetched"
                ),
            );
            return None;
        };
        let target = percent_decode(local);
        match doc.pointer(&target) {
            Some(next) => {
                current = next;
                at = target;
            }
            None => {
                notes.dropped(
                    &child(&at, "$ref"),
                    format!("{reference:?} names nothing in this document"),
                );
                return None;
            }
        }
    }
    notes.dropped(
        pointer,
        format!("more than {MAX_REF_HOPS} `$ref`s in a row (a cycle?)"),
    );
    None
}

/// Decodes `%XX` escapes in a URI fragment (JSON pointers in `$ref` are URI fragments).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reports every key of `object` that is neither handled nor documentation.
pub(crate) fn leftover_keys(
    object: &serde_json::Map<String, Value>,
    pointer: &str,
    handled: &[&str],
    documentation: &[&str],
    notes: &mut Notes,
) {
    for key in object.keys() {
        if handled.contains(&key.as_str()) {
            continue;
        }
        let at = child(pointer, key);
        if documentation.contains(&key.as_str()) {
            notes.ignored(&at, "documentation only; no effect on what is served");
        } else if key.starts_with("x-amazon-apigateway-") {
            notes.dropped(&at, format!("the extension {key} is not supported here"));
        } else if key.starts_with("x-") {
            notes.ignored(&at, "a vendor extension Causeway does not read");
        } else {
            notes.dropped(&at, format!("`{key}` is not carried over"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        assert_eq!(child("/paths", "/pets/{id}"), "/paths/~1pets~1{id}");
        assert_eq!(child("", "a~b"), "/a~0b");
    }

    #[test]
    fn refs_are_followed_inside_the_document_and_cycles_stop() {
        let doc = serde_json::json!({
            "a": {"$ref": "#/b"}, "b": {"x": 1},
            "c": {"$ref": "#/d"}, "d": {"$ref": "#/c"},
            "e": {"$ref": "http://example.com/x.json"}
        });
        let mut notes = Notes::default();
        let (v, at) = resolve(&doc, &doc["a"], "/a", &mut notes).unwrap();
        assert_eq!((v, at.as_str()), (&serde_json::json!({"x": 1}), "/b"));
        assert!(resolve(&doc, &doc["c"], "/c", &mut notes).is_none());
        assert!(resolve(&doc, &doc["e"], "/e", &mut notes).is_none());
        assert_eq!(notes.into_sorted().len(), 2);
    }

    #[test]
    fn json_and_yaml_both_parse_and_a_version_is_required() {
        assert_eq!(
            dialect(&parse(r#"{"openapi":"3.0.1"}"#).unwrap()),
            Ok(Dialect::Oas30)
        );
        assert_eq!(
            dialect(&parse("swagger: '2.0'\n").unwrap()),
            Ok(Dialect::Swagger2)
        );
        assert!(dialect(&parse("openapi: 4.0.0\n").unwrap()).is_err());
        assert!(dialect(&parse("- a\n").unwrap()).is_err());
    }
}
