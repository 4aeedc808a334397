//! Templates with `{name}` placeholders, filled per request (path parameters).
//!
//! Only `{` + a name of letters, digits and `_` + `}` is a placeholder; any other brace is
//! literal, so JSON bodies such as `{"id":"{id}"}` work as written.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed template. It serializes as its source text.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

/// One part of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text copied as is.
    Literal(String),
    /// A placeholder, by name.
    Param(String),
}

/// A template that names a placeholder the route does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template refers to unknown parameter {{{0}}}")]
pub struct TemplateError(pub String);

impl Template {
    /// Parses template text. Never fails: unknown brace forms are literal.
    pub fn parse(text: &str) -> Self {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                literal.push_str(&rest[..open]);
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Param(after[..name_len].to_string()));
                rest = &after[name_len + 1..];
            } else {
                literal.push_str(&rest[..=open]);
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Self { parts }
    }

    /// A template that is only literal text.
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        let parts = if text.is_empty() {
            vec![]
        } else {
            vec![TemplatePart::Literal(text)]
        };
        Self { parts }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The placeholder names, in order of appearance.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Param(name) => Some(name.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// Whether the template has no placeholder.
    pub fn is_literal(&self) -> bool {
        self.params().next().is_none()
    }

    /// Checks that every placeholder is one of `known`.
    pub fn check_params<'a>(&self, known: impl Fn(&str) -> bool + 'a) -> Result<(), TemplateError> {
        match self.params().find(|p| !known(p)) {
            Some(unknown) => Err(TemplateError(unknown.to_string())),
            None => Ok(()),
        }
    }

    /// Fills the placeholders; an unknown one becomes the empty string.
    pub fn render<'v>(&self, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Param(name) => out.push_str(lookup(name).unwrap_or_default()),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => f.write_str(text)?,
                TemplatePart::Param(name) => write!(f, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_names_in_braces_and_other_braces_are_literal() {
        let t = Template::parse(r#"{"id":"{id}","rest":"{proxy}"}"#);
        assert_eq!(t.params().collect::<Vec<_>>(), vec!["id", "proxy"]);
        let out = t.render(|n| match n {
            "id" => Some("7"),
            "proxy" => Some("a/b"),
            _ => None,
        });
        assert_eq!(out, r#"{"id":"7","rest":"a/b"}"#);
    }

    #[test]
    fn display_round_trips_the_source() {
        for text in ["/pets/{id}", "{", "}{", "/a/{b}/{c}x", "{not valid}", ""] {
            assert_eq!(Template::parse(text).to_string(), text);
        }
    }
}
