//! REST API non-proxy integrations: request templates, passthrough behavior and integration
//! responses, checked and turned into [`IntegrationMapping`].
//!
//! Every template is parsed with `causeway-vtl` (the parser the proxy uses), every selection
//! pattern compiled with `causeway_vtl::selection_pattern` (the proxy's compilation), every
//! JSONPath of a response parameter checked: a snapshot never carries a template, pattern or
//! path the proxy would refuse.

use std::collections::BTreeMap;

use causeway_crds::common::StringMap;
use causeway_crds::route::{
    ContentHandling as SpecContentHandling, IntegrationResponseSpec, IntegrationSpec,
    PassthroughBehavior as SpecPassthrough,
};
use causeway_snapshot::{
    ContentHandling, IntegrationMapping, IntegrationResponse, PassthroughBehavior, ResponseValue,
};

use super::Problem;
use crate::reasons;

/// Whether the integration sets any mapping field.
pub(crate) fn has_mapping(spec: &IntegrationSpec) -> bool {
    !spec.request_templates.is_empty()
        || !spec.integration_responses.is_empty()
        || spec.passthrough_behavior.is_some()
        || spec.content_handling.is_some()
}

/// Checks and converts the mapping fields of an `HTTP`, `MOCK` or `LAMBDA` integration;
/// `None` when none is set.
pub(crate) fn compile_mapping(
    spec: &IntegrationSpec,
) -> Result<Option<IntegrationMapping>, Problem> {
    if !has_mapping(spec) {
        return Ok(None);
    }
    let request_templates =
        templates("spec.integration.requestTemplates", &spec.request_templates)?;
    let mut patterned = Vec::new();
    let mut default: Option<IntegrationResponse> = None;
    for (i, response) in spec.integration_responses.iter().enumerate() {
        let field = format!("spec.integration.integrationResponses[{i}]");
        let compiled = integration_response(&field, response)?;
        if compiled.selection_pattern.is_some() {
            patterned.push(compiled);
        } else if default.replace(compiled).is_some() {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "{field}: a second integration response without selectionPattern; only one may be the default"
                ),
            ));
        }
    }
    patterned.extend(default);
    Ok(Some(IntegrationMapping {
        request_templates,
        passthrough_behavior: match spec.passthrough_behavior {
            None | Some(SpecPassthrough::WhenNoMatch) => PassthroughBehavior::WhenNoMatch,
            Some(SpecPassthrough::WhenNoTemplates) => PassthroughBehavior::WhenNoTemplates,
            Some(SpecPassthrough::Never) => PassthroughBehavior::Never,
        },
        content_handling: spec.content_handling.map(content_handling),
        responses: patterned,
    }))
}

fn content_handling(c: SpecContentHandling) -> ContentHandling {
    match c {
        SpecContentHandling::ConvertToBinary => ContentHandling::ConvertToBinary,
        SpecContentHandling::ConvertToText => ContentHandling::ConvertToText,
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

/// Checks templates by media type: keys are `type/subtype`, lowercased, each template parses.
fn templates(field: &str, specs: &StringMap) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    for (media, source) in specs {
        let normalized = media.trim().to_ascii_lowercase();
        let valid = normalized
            .split_once('/')
            .is_some_and(|(t, s)| is_token(t) && is_token(s));
        if !valid {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}: {media:?} is not a media type such as application/json"),
            ));
        }
        if let Err(e) = causeway_vtl::Template::parse(source) {
            return Err(Problem::invalid(
                reasons::INVALID_MAPPING_TEMPLATE,
                format!("{field}[{media:?}]: the template does not parse: {e}"),
            ));
        }
        if out.insert(normalized, source.clone()).is_some() {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}: media type {media:?} is listed twice"),
            ));
        }
    }
    Ok(out)
}

fn integration_response(
    field: &str,
    spec: &IntegrationResponseSpec,
) -> Result<IntegrationResponse, Problem> {
    let selection_pattern = match spec.selection_pattern.as_deref() {
        None | Some("") => None,
        Some(p) => {
            causeway_vtl::selection_pattern(p).map_err(|e| {
                Problem::invalid(
                    reasons::INVALID_SELECTION_PATTERN,
                    format!(
                        "{field}.selectionPattern {p:?} is not a valid regular expression: {e}"
                    ),
                )
            })?;
            Some(p.to_string())
        }
    };
    if !(100..=599).contains(&spec.status_code) {
        return Err(Problem::invalid(
            reasons::INVALID,
            format!("{field}.statusCode {} is not in 100-599", spec.status_code),
        ));
    }
    let mut headers = BTreeMap::new();
    for (key, value) in &spec.response_parameters {
        let name = key
            .strip_prefix("method.response.header.")
            .filter(|n| is_token(n))
            .ok_or_else(|| {
                Problem::invalid(
                    reasons::INVALID_MAPPING,
                    format!(
                        "{field}.responseParameters[{key:?}]: keys are method.response.header.NAME"
                    ),
                )
            })?;
        let source = response_value(value).map_err(|why| {
            Problem::invalid(
                reasons::INVALID_MAPPING,
                format!("{field}.responseParameters[{key:?}]: {value:?} {why}"),
            )
        })?;
        headers.insert(name.to_ascii_lowercase(), source);
    }
    Ok(IntegrationResponse {
        selection_pattern,
        status: spec.status_code,
        headers,
        templates: templates(
            &format!("{field}.responseTemplates"),
            &spec.response_templates,
        )?,
        content_handling: spec.content_handling.map(content_handling),
    })
}

/// A response parameter source, API Gateway style.
fn response_value(value: &str) -> Result<ResponseValue, String> {
    let v = value.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        return Ok(ResponseValue::Literal(v[1..v.len() - 1].to_string()));
    }
    if let Some(name) = v.strip_prefix("integration.response.header.") {
        return if is_token(name) {
            Ok(ResponseValue::IntegrationHeader(name.to_ascii_lowercase()))
        } else {
            Err("does not name a header".into())
        };
    }
    if v == "integration.response.body" {
        return Ok(ResponseValue::IntegrationBody);
    }
    if let Some(path) = v.strip_prefix("integration.response.body.") {
        let path = format!("$.{path}");
        causeway_vtl::check_json_path(&path)?;
        return Ok(ResponseValue::IntegrationBodyPath(path));
    }
    if let Some(name) = v.strip_prefix("context.").filter(|n| !n.is_empty()) {
        return Ok(ResponseValue::Context(name.to_string()));
    }
    if let Some(name) = v.strip_prefix("stageVariables.").filter(|n| !n.is_empty()) {
        return Ok(ResponseValue::StageVariable(name.to_string()));
    }
    Err("is not 'literal', integration.response.header.NAME, integration.response.body[.JSONPATH], context.NAME or stageVariables.NAME".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> IntegrationSpec {
        serde_saphyr::from_str(yaml).expect("integration YAML parses")
    }

    #[test]
    fn an_integration_without_mapping_fields_has_no_mapping() {
        let s = spec("{type: HTTP, uri: 'http://pets'}");
        assert_eq!(compile_mapping(&s), Ok(None));
    }

    #[test]
    fn templates_and_responses_become_the_snapshot_mapping() {
        let s = spec(
            r#"
type: HTTP
uri: http://pets
requestTemplates:
  Application/JSON: '{"id": "$input.params(''id'')"}'
passthroughBehavior: NEVER
contentHandling: CONVERT_TO_TEXT
integrationResponses:
  - statusCode: 200
    responseTemplates: {application/json: '$input.json(''$.items'')'}
    responseParameters:
      method.response.header.X-Source: "'backend'"
      method.response.header.X-Id: integration.response.header.X-Request-Id
      method.response.header.X-Name: integration.response.body.pet.name
      method.response.header.X-Req: context.requestId
      method.response.header.X-Stage: stageVariables.color
  - selectionPattern: '4\d{2}'
    statusCode: 400
    responseTemplates: {application/json: '{"error": "$input.path(''$.message'')"}'}
"#,
        );
        let mapping = compile_mapping(&s).expect("valid").expect("has mapping");
        assert_eq!(mapping.passthrough_behavior, PassthroughBehavior::Never);
        assert_eq!(
            mapping.content_handling,
            Some(ContentHandling::ConvertToText)
        );
        assert_eq!(
            mapping.request_templates.keys().collect::<Vec<_>>(),
            ["application/json"]
        );
        let patterns: Vec<_> = mapping
            .responses
            .iter()
            .map(|r| r.selection_pattern.clone())
            .collect();
        assert_eq!(
            patterns,
            [Some("4\\d{2}".to_string()), None],
            "the default comes last"
        );
        let default = &mapping.responses[1];
        assert_eq!(default.status, 200);
        assert_eq!(
            default.headers,
            BTreeMap::from([
                (
                    "x-id".to_string(),
                    ResponseValue::IntegrationHeader("x-request-id".into())
                ),
                (
                    "x-name".to_string(),
                    ResponseValue::IntegrationBodyPath("$.pet.name".into())
                ),
                (
                    "x-req".to_string(),
                    ResponseValue::Context("requestId".into())
                ),
                (
                    "x-source".to_string(),
                    ResponseValue::Literal("backend".into())
                ),
                (
                    "x-stage".to_string(),
                    ResponseValue::StageVariable("color".into())
                ),
            ])
        );
    }

    #[test]
    fn a_template_syntax_error_names_the_template_content_type_line_and_column() {
        let s = spec(
            r#"
type: MOCK
integrationResponses:
  - statusCode: 200
    responseTemplates:
      application/json: "{\n  #if($x)\n}"
"#,
        );
        let problem = compile_mapping(&s).unwrap_err();
        assert_eq!(problem.reason, reasons::INVALID_MAPPING_TEMPLATE);
        assert_eq!(
            problem.message,
            "spec.integration.integrationResponses[0].responseTemplates[\"application/json\"]: the template does not parse: line 2, column 3: #if without #end"
        );
    }

    #[test]
    fn a_bad_selection_pattern_is_rejected() {
        let s = spec(
            "{type: MOCK, integrationResponses: [{statusCode: 500, selectionPattern: '5(\\d'}]}",
        );
        let problem = compile_mapping(&s).unwrap_err();
        assert_eq!(problem.reason, reasons::INVALID_SELECTION_PATTERN);
        assert!(
            problem
                .message
                .contains("integrationResponses[0].selectionPattern"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn two_default_responses_are_rejected() {
        let s = spec(
            "{type: MOCK, integrationResponses: [{statusCode: 200}, {statusCode: 201, selectionPattern: ''}]}",
        );
        let problem = compile_mapping(&s).unwrap_err();
        assert!(
            problem.message.contains("integrationResponses[1]"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn response_parameters_must_be_api_gateway_expressions() {
        for (key, value) in [
            (
                "method.response.header.X",
                "integration.response.body.items[x]",
            ),
            ("method.response.header.X", "method.request.header.y"),
            ("method.response.body", "'x'"),
            (
                "method.response.header.X",
                "integration.response.header.bad name",
            ),
        ] {
            let yaml = format!(
                "{{type: MOCK, integrationResponses: [{{statusCode: 200, responseParameters: {{{key:?}: {value:?}}}}}]}}"
            );
            let problem = compile_mapping(&spec(&yaml)).unwrap_err();
            assert_eq!(problem.reason, reasons::INVALID_MAPPING, "{key} = {value}");
        }
    }

    #[test]
    fn media_types_must_be_type_and_subtype_and_not_repeat() {
        let bad = spec("{type: MOCK, requestTemplates: {json: '{}'}}");
        assert!(
            compile_mapping(&bad)
                .unwrap_err()
                .message
                .contains("not a media type")
        );
        let twice = spec(
            "{type: MOCK, requestTemplates: {application/json: '{}', Application/Json: '{}'}}",
        );
        assert!(
            compile_mapping(&twice)
                .unwrap_err()
                .message
                .contains("listed twice")
        );
    }
}
