//! Parameter mapping syntax (API Gateway HTTP API style), parsed here once for compile (which
//! rejects what does not parse, naming the key) and the proxy (which builds its tables with the
//! same parser, so the two cannot disagree).
//!
//! Keys: `overwrite:header.NAME`, `append:header.NAME`, `remove:header.NAME`,
//! `overwrite:querystring.NAME`, `append:querystring.NAME`, `remove:querystring.NAME`,
//! `overwrite:path` (requests) and `overwrite:statuscode` (responses).
//!
//! Values: literal text mixed with `$request.header.NAME`, `$request.querystring.NAME`,
//! `$request.path.NAME`, `$request.path`, `$context.NAME` (dots allowed, for example
//! `$context.identity.sourceIp` or `$context.authorizer.claims.sub`), `$stageVariables.NAME`,
//! and in responses `$response.header.NAME`. A reference may be braced, `${request.path.id}`,
//! to end it before text that could continue a name. `$` followed by anything else is literal.

use serde::{Deserialize, Serialize};

/// What a mapping does to its target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MappingAction {
    /// Set the value, replacing any present.
    Overwrite,
    /// Add the value after those present.
    Append,
    /// Remove every value.
    Remove,
}

/// What a mapping changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum MappingTarget {
    /// A header (lowercase name).
    Header(String),
    /// A query-string parameter.
    Querystring(String),
    /// The whole path sent to the backend.
    Path,
    /// The response status code.
    StatusCode,
}

/// Which side of the exchange a mapping applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingSide {
    /// `requestParameters`: headers, query strings, path.
    Request,
    /// `responseParameters`: headers and status code.
    Response,
}

/// One piece of a value template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValuePart {
    /// Literal text.
    Literal(String),
    /// `$request.header.NAME` (lowercase name).
    RequestHeader(String),
    /// `$request.querystring.NAME`.
    RequestQuery(String),
    /// `$request.path.NAME`.
    RequestPathParam(String),
    /// `$request.path`: the request path after the base path.
    RequestPath,
    /// `$context.NAME`.
    Context(String),
    /// `$stageVariables.NAME`.
    StageVariable(String),
    /// `$response.header.NAME` (lowercase name).
    ResponseHeader(String),
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

/// Parses a mapping key such as `append:querystring.tag`.
pub fn parse_key(key: &str, side: MappingSide) -> Result<(MappingAction, MappingTarget), String> {
    let (action, target) = key
        .split_once(':')
        .ok_or_else(|| format!("{key:?} is not ACTION:TARGET (for example overwrite:header.x)"))?;
    let action = match action {
        "overwrite" => MappingAction::Overwrite,
        "append" => MappingAction::Append,
        "remove" => MappingAction::Remove,
        other => {
            return Err(format!(
                "{key:?}: action {other:?} is not overwrite, append or remove"
            ));
        }
    };
    let target = if let Some(name) = target.strip_prefix("header.") {
        if !is_token(name) {
            return Err(format!("{key:?}: {name:?} is not a header name"));
        }
        MappingTarget::Header(name.to_ascii_lowercase())
    } else if let Some(name) = target.strip_prefix("querystring.") {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || "&=#".contains(c)) {
            return Err(format!("{key:?}: {name:?} is not a query-string name"));
        }
        MappingTarget::Querystring(name.to_string())
    } else if target == "path" {
        MappingTarget::Path
    } else if target == "statuscode" {
        MappingTarget::StatusCode
    } else {
        return Err(format!(
            "{key:?}: target {target:?} is not header.NAME, querystring.NAME, path or statuscode"
        ));
    };
    let allowed = !matches!(
        (side, &target),
        (MappingSide::Request, MappingTarget::StatusCode)
            | (
                MappingSide::Response,
                MappingTarget::Querystring(_) | MappingTarget::Path
            )
    );
    if !allowed {
        let which = match side {
            MappingSide::Request => "request",
            MappingSide::Response => "response",
        };
        return Err(format!(
            "{key:?}: this target cannot be mapped in a {which}"
        ));
    }
    if matches!(target, MappingTarget::Path | MappingTarget::StatusCode)
        && action != MappingAction::Overwrite
    {
        return Err(format!(
            "{key:?}: path and statuscode can only be overwritten"
        ));
    }
    Ok((action, target))
}

/// Parses a value template.
pub fn parse_value(value: &str, side: MappingSide) -> Result<Vec<ValuePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (reference, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(close) => (Some(&inner[..close]), close + 2),
                None => return Err(format!("{value:?}: unterminated ${{...}} reference")),
            }
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
                .unwrap_or(after.len());
            let mut len = len;
            while len > 0 && after[..len].ends_with(['.', '-']) {
                len -= 1;
            }
            (Some(&after[..len]), len)
        };
        let part = reference.and_then(|r| reference_part(r, side).transpose());
        match part {
            Some(Ok(part)) => {
                if !literal.is_empty() {
                    parts.push(ValuePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &after[consumed..];
            }
            Some(Err(e)) => return Err(format!("{value:?}: {e}")),
            None => {
                literal.push('$');
                rest = after;
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(ValuePart::Literal(literal));
    }
    Ok(parts)
}

/// A reference's part: `Ok(None)` when the text is not a reference at all (a literal `$`).
fn reference_part(r: &str, side: MappingSide) -> Result<Option<ValuePart>, String> {
    let named = |prefix: &str| r.strip_prefix(prefix).filter(|n| !n.is_empty());
    if let Some(n) = named("request.header.") {
        return Ok(Some(ValuePart::RequestHeader(n.to_ascii_lowercase())));
    }
    if let Some(n) = named("request.querystring.") {
        return Ok(Some(ValuePart::RequestQuery(n.to_string())));
    }
    if let Some(n) = named("request.path.") {
        return Ok(Some(ValuePart::RequestPathParam(n.to_string())));
    }
    if r == "request.path" {
        return Ok(Some(ValuePart::RequestPath));
    }
    if let Some(n) = named("context.") {
        return Ok(Some(ValuePart::Context(n.to_string())));
    }
    if let Some(n) = named("stageVariables.") {
        return Ok(Some(ValuePart::StageVariable(n.to_string())));
    }
    if let Some(n) = named("response.header.") {
        if side == MappingSide::Request {
            return Err("$response values are only available in response mappings".into());
        }
        return Ok(Some(ValuePart::ResponseHeader(n.to_ascii_lowercase())));
    }
    if r.starts_with("request.") || r.starts_with("response.") {
        return Err(format!("unsupported reference ${r}"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_into_actions_and_targets_and_bad_ones_are_named() {
        assert_eq!(
            parse_key("append:querystring.tag", MappingSide::Request),
            Ok((
                MappingAction::Append,
                MappingTarget::Querystring("tag".into())
            ))
        );
        assert_eq!(
            parse_key("overwrite:header.X-Id", MappingSide::Response),
            Ok((
                MappingAction::Overwrite,
                MappingTarget::Header("x-id".into())
            ))
        );
        for bad in [
            "overwrite",
            "replace:header.x",
            "overwrite:body",
            "append:path",
            "overwrite:statuscode",
        ] {
            let e = parse_key(bad, MappingSide::Request).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(parse_key("overwrite:path", MappingSide::Response).is_err());
    }

    #[test]
    fn values_mix_literals_and_references_and_a_lone_dollar_is_literal() {
        let parts = parse_value(
            "id=${request.path.id}-$context.requestId $5 $request.header.X-A.",
            MappingSide::Request,
        )
        .unwrap();
        assert_eq!(
            parts,
            vec![
                ValuePart::Literal("id=".into()),
                ValuePart::RequestPathParam("id".into()),
                ValuePart::Literal("-".into()),
                ValuePart::Context("requestId".into()),
                ValuePart::Literal(" $5 ".into()),
                ValuePart::RequestHeader("x-a".into()),
                ValuePart::Literal(".".into()),
            ]
        );
        assert!(parse_value("$request.body.x", MappingSide::Request).is_err());
        assert!(parse_value("$response.header.x", MappingSide::Request).is_err());
        assert!(parse_value("${request.path", MappingSide::Request).is_err());
    }
}
