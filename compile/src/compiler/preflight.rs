//! What a proxy checks when it builds its tables, checked here on a deployment materialized
//! for one stage (stage variables substituted), so that the stage alone is refused with a
//! reason instead of a proxy dropping it: a header value with a control character, a mapping
//! that no longer parses, a path or Lambda path that cannot be part of a URI. The route-level
//! checks (header names, methods, status codes) ran when the Route was compiled; these are the
//! ones that depend on the stage's variables.

use causeway_snapshot::mapping::{MappingSide, MappingTarget, ValuePart, parse_value};
use causeway_snapshot::{DeploymentConfig, Integration, ParameterMapping, Template, TemplatePart};

use super::Problem;
use crate::reasons;

/// Checks every value of `deployment` that stage variables may have changed. `field` names
/// where the variables came from (`spec.variables` or `spec.canary.stageVariableOverrides`).
pub(crate) fn check(field: &str, deployment: &DeploymentConfig) -> Result<(), Problem> {
    for route in &deployment.routes {
        let bad = |what: &str, value: &str, why: &str| {
            Problem::invalid(
                reasons::INVALID_STAGE_VARIABLE,
                format!(
                    "{field}: route {:?}: {what} renders to {value:?}, which {why}",
                    route.key
                ),
            )
        };
        match &route.integration {
            Integration::Mock(m) => {
                for (name, value) in &m.headers {
                    if !is_header_value(value) {
                        return Err(bad(
                            &format!("mock header {name}"),
                            value,
                            "is not a valid header value",
                        ));
                    }
                }
            }
            Integration::HttpProxy(h) => {
                for (name, value) in &h.request_headers {
                    if !is_header_value(value) {
                        return Err(bad(
                            &format!("request header {name}"),
                            value,
                            "is not a valid header value",
                        ));
                    }
                }
                if let Some(path) = &h.path {
                    let text = template_text(path);
                    if !is_uri_text(&text) {
                        return Err(bad(
                            "the integration path",
                            &text,
                            "holds a space or control character",
                        ));
                    }
                }
                mappings(&h.request_parameters, MappingSide::Request, &bad)?;
                mappings(&h.response_parameters, MappingSide::Response, &bad)?;
            }
            Integration::LambdaProxy(causeway_snapshot::LambdaProxyIntegration {
                path, ..
            })
            | Integration::Lambda(causeway_snapshot::LambdaIntegration { path, .. }) => {
                if !is_uri_text(path) {
                    return Err(bad(
                        "the invoke path",
                        path,
                        "holds a space or control character",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn mappings(
    table: &[ParameterMapping],
    side: MappingSide,
    bad: &dyn Fn(&str, &str, &str) -> Problem,
) -> Result<(), Problem> {
    for m in table {
        let what = format!("mapping of {:?}", m.target);
        let parts = parse_value(&m.value, side).map_err(|e| bad(&what, &m.value, &e))?;
        let literal_ok = |check: fn(&str) -> bool| {
            parts.iter().all(|p| match p {
                ValuePart::Literal(t) => check(t),
                _ => true,
            })
        };
        let ok = match &m.target {
            MappingTarget::Header(_) | MappingTarget::StatusCode => literal_ok(is_header_value),
            MappingTarget::Path | MappingTarget::Querystring(_) => literal_ok(is_uri_text),
        };
        if !ok {
            return Err(bad(&what, &m.value, "holds a control character"));
        }
    }
    Ok(())
}

/// The source text of a parsed template.
fn template_text(t: &Template) -> String {
    t.parts()
        .iter()
        .map(|p| match p {
            TemplatePart::Literal(s) => s.clone(),
            TemplatePart::Param(name) => format!("{{{name}}}"),
        })
        .collect()
}

/// What `http::HeaderValue::from_str` accepts: visible characters, space and tab.
pub(crate) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Text that can go into a URI once percent-encoded: no controls and no space.
fn is_uri_text(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() || c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_refuse_control_characters_but_allow_tab_and_utf8() {
        assert!(is_header_value("a b\tc é"));
        assert!(!is_header_value("a\r\nx-injected: 1"));
        assert!(!is_header_value("a\u{7f}"));
        assert!(!is_header_value("\0"));
    }
}
