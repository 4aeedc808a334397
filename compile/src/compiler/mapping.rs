//! Parameter mapping of `HTTP_PROXY` and `HTTP` integrations (`requestParameters`,
//! `responseParameters`, API Gateway HTTP API style), checked with the snapshot's own parser
//! so that the proxy can build whatever compile accepts. A bad key or value is
//! `Accepted=False, InvalidMapping`, naming the key.

use std::collections::BTreeMap;

use causeway_snapshot::ParameterMapping;
use causeway_snapshot::mapping::{
    MappingAction, MappingSide, MappingTarget, ValuePart, parse_key, parse_value,
};

use super::Problem;
use super::text::stage_variables;
use crate::reasons;

/// Compiles one mapping table (`field` is `spec.integration.requestParameters` or
/// `...responseParameters`); `params` are the route's path parameters.
pub(crate) fn compile_mappings(
    field: &str,
    table: &BTreeMap<String, String>,
    side: MappingSide,
    params: &[String],
) -> Result<Vec<ParameterMapping>, Problem> {
    let bad = |key: &str, message: String| {
        Problem::invalid(
            reasons::INVALID_MAPPING,
            format!("{field}[{key:?}]: {message}"),
        )
    };
    let mut out = Vec::with_capacity(table.len());
    for (key, value) in table {
        let (action, target) = parse_key(key, side).map_err(|e| bad(key, e))?;
        stage_variables(value).map_err(|e| bad(key, e))?;
        let parts = parse_value(value, side).map_err(|e| bad(key, e))?;
        for part in &parts {
            if let ValuePart::RequestPathParam(name) = part
                && !params.iter().any(|p| p == name)
            {
                return Err(bad(
                    key,
                    format!("$request.path.{name} is not a path parameter of the route key"),
                ));
            }
        }
        match (&action, &target) {
            (MappingAction::Remove, _) => {}
            (_, MappingTarget::StatusCode) => {
                let literal: String = parts
                    .iter()
                    .map(|p| match p {
                        ValuePart::Literal(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect::<Option<String>>()
                    .unwrap_or_default();
                let all_literal = parts.iter().all(|p| matches!(p, ValuePart::Literal(_)));
                if all_literal
                    && !literal
                        .trim()
                        .parse::<u16>()
                        .is_ok_and(|c| (100..=599).contains(&c))
                {
                    return Err(bad(
                        key,
                        format!("{value:?} is not a status code in 100-599"),
                    ));
                }
            }
            (_, MappingTarget::Path) if value.is_empty() => {
                return Err(bad(key, "the path cannot be empty".into()));
            }
            _ => {}
        }
        out.push(ParameterMapping {
            action,
            target,
            value: if action == MappingAction::Remove {
                String::new()
            } else {
                value.clone()
            },
        });
    }
    Ok(out)
}
