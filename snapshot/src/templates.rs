//! Snapshot types of REST API non-proxy integrations (issue 13): request templates, passthrough
//! behavior and integration responses. Templates travel as Velocity source text: `compile`
//! parsed them (with `causeway-vtl`) before it wrote them here, and the proxy parses the same
//! text again when it builds its tables; parsing is deterministic, so it cannot fail there.
//! The choice of template by content type is made here, once, for both sides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The media type a request without `Content-Type` is mapped as (API Gateway's default).
pub const DEFAULT_MEDIA_TYPE: &str = "application/json";

/// Request templates and integration responses of an `HTTP` (non-proxy), `MOCK` or `LAMBDA`
/// (non-proxy) integration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationMapping {
    /// Velocity request templates by lowercase media type (`application/json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_templates: BTreeMap<String, String>,
    /// What a content type without a template does.
    #[serde(default)]
    pub passthrough_behavior: PassthroughBehavior,
    /// Conversion of the request body before it is sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,
    /// Integration responses: those with a selection pattern in the order written, then the
    /// default (the one without a pattern), if any. The first whose pattern matches the whole
    /// subject is used; otherwise the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<IntegrationResponse>,
}

/// What a request body whose content type has no template does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    /// Passed through unmapped.
    #[default]
    WhenNoMatch,
    /// Passed through only if there are no request templates at all; otherwise 415.
    WhenNoTemplates,
    /// Never passed through: 415.
    Never,
}

/// Conversion between text and binary payloads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandling {
    /// Decode base64 text to binary.
    ConvertToBinary,
    /// Encode binary as base64 text.
    ConvertToText,
}

/// One integration response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponse {
    /// The regular expression that must match the whole backend status code (`HTTP`, `MOCK`)
    /// or the function's whole error message (`LAMBDA`); `None` for the default response. Compile checked that `causeway_vtl::selection_pattern`
    /// accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_pattern: Option<String>,
    /// Status code sent to the client.
    pub status: u16,
    /// Response headers by lowercase name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, ResponseValue>,
    /// Velocity response templates by lowercase media type; empty: the body passes through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// Conversion of the response body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,
}

/// Where a response header's value comes from (API Gateway's response parameter sources).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ResponseValue {
    /// A fixed value (written `'text'`).
    Literal(String),
    /// A header of the integration's response (`integration.response.header.NAME`), lowercase.
    IntegrationHeader(String),
    /// The whole integration response body (`integration.response.body`).
    IntegrationBody,
    /// A JSONPath into the integration response body (`integration.response.body.a.b` is
    /// `$.a.b`), checked by compile with `causeway_vtl::check_json_path`.
    IntegrationBodyPath(String),
    /// A `$context` variable (`context.requestId`), without the prefix.
    Context(String),
    /// A stage variable (`stageVariables.name`), without the prefix.
    StageVariable(String),
}

/// Which request template applies to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTemplateChoice<'a> {
    /// Render this template (its media type, its source).
    Template(&'a str, &'a str),
    /// Send the body unmapped.
    Passthrough,
    /// Refuse with 415 Unsupported Media Type.
    Unsupported,
}

/// The lowercase media type of a `Content-Type` value, without parameters; `None` when empty.
pub fn media_type(content_type: &str) -> Option<String> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

impl IntegrationMapping {
    /// The request template for a request's `Content-Type` (absent: `application/json`), or
    /// what the passthrough behavior says to do without one, as API Gateway does.
    pub fn request_template(&self, content_type: Option<&str>) -> RequestTemplateChoice<'_> {
        let media = content_type
            .and_then(media_type)
            .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.to_string());
        if let Some((k, v)) = self.request_templates.get_key_value(&media) {
            return RequestTemplateChoice::Template(k, v);
        }
        match self.passthrough_behavior {
            PassthroughBehavior::WhenNoMatch => RequestTemplateChoice::Passthrough,
            PassthroughBehavior::WhenNoTemplates if self.request_templates.is_empty() => {
                RequestTemplateChoice::Passthrough
            }
            PassthroughBehavior::WhenNoTemplates | PassthroughBehavior::Never => {
                RequestTemplateChoice::Unsupported
            }
        }
    }
}

impl IntegrationResponse {
    /// The response template for a request's `Accept` header: the first listed media type
    /// that has a template, else `application/json`, else the first template; `None` when
    /// the response has no templates.
    pub fn template(&self, accept: Option<&str>) -> Option<(&str, &str)> {
        let listed = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(media_type)
            .find_map(|m| self.templates.get_key_value(&m));
        listed
            .or_else(|| self.templates.get_key_value(DEFAULT_MEDIA_TYPE))
            .or_else(|| self.templates.iter().next())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(behavior: PassthroughBehavior, types: &[&str]) -> IntegrationMapping {
        IntegrationMapping {
            request_templates: types
                .iter()
                .map(|t| (t.to_string(), format!("T {t}")))
                .collect(),
            passthrough_behavior: behavior,
            ..IntegrationMapping::default()
        }
    }

    #[test]
    fn a_request_without_content_type_is_mapped_as_json() {
        let m = mapping(PassthroughBehavior::Never, &["application/json"]);
        assert_eq!(
            m.request_template(None),
            RequestTemplateChoice::Template("application/json", "T application/json")
        );
        assert_eq!(
            m.request_template(Some("Application/JSON; charset=utf-8")),
            RequestTemplateChoice::Template("application/json", "T application/json")
        );
    }

    #[test]
    fn passthrough_behaviors_follow_api_gateway() {
        use PassthroughBehavior::*;
        use RequestTemplateChoice::*;
        let xml = Some("application/xml");
        assert_eq!(
            mapping(WhenNoMatch, &["application/json"]).request_template(xml),
            Passthrough
        );
        assert_eq!(mapping(WhenNoMatch, &[]).request_template(xml), Passthrough);
        assert_eq!(
            mapping(WhenNoTemplates, &[]).request_template(xml),
            Passthrough
        );
        assert_eq!(
            mapping(WhenNoTemplates, &["application/json"]).request_template(xml),
            Unsupported
        );
        assert_eq!(mapping(Never, &[]).request_template(xml), Unsupported);
        assert_eq!(
            mapping(Never, &["application/json"]).request_template(xml),
            Unsupported
        );
    }

    #[test]
    fn response_templates_follow_accept_then_json_then_the_first() {
        let response = IntegrationResponse {
            selection_pattern: None,
            status: 200,
            headers: BTreeMap::new(),
            templates: [
                ("application/json", "J"),
                ("application/xml", "X"),
                ("text/html", "H"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            content_handling: None,
        };
        assert_eq!(
            response.template(Some("text/html, application/xml")),
            Some(("text/html", "H"))
        );
        assert_eq!(
            response.template(Some("image/png")),
            Some(("application/json", "J"))
        );
        assert_eq!(response.template(None), Some(("application/json", "J")));
        let mut no_json = response.clone();
        no_json.templates.remove("application/json");
        assert_eq!(
            no_json.template(Some("*/*")),
            Some(("application/xml", "X"))
        );
    }
}
