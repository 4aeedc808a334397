//! Routes of WebSocket Apis: route keys (`$connect`, `$disconnect`, `$default`, custom keys
//! matched against the route selection expression's value) and what such a route may use.
//!
//! AWS lets only `$connect` carry authorization (an upgrade is authorized once; messages
//! ride on it), so an authorizer or API key on another route is refused rather than ignored.
//! What is not built for WebSocket routes (mapping templates, request validation, route
//! response selection other than `$default`) is refused by name.

use causeway_crds::route::RouteSpec;
use causeway_snapshot::RouteMatch;

use super::Problem;
use super::templates::has_mapping;
use super::text::ParsedRouteKey;
use crate::reasons;

/// The route keys AWS reserves.
pub(crate) const CONNECT: &str = "$connect";
/// Called when a connection ends.
pub(crate) const DISCONNECT: &str = "$disconnect";
/// Messages whose selected key matches no route.
pub(crate) const DEFAULT: &str = "$default";

/// The longest custom route key (AWS's limit).
const MAX_KEY_LEN: usize = 128;

/// Parses a WebSocket route key.
pub(crate) fn parse_key(key: &str) -> Result<ParsedRouteKey, String> {
    let matcher = match key {
        DEFAULT => RouteMatch::Default,
        CONNECT | DISCONNECT => RouteMatch::Key,
        k if k.starts_with('$') => {
            return Err(format!(
                "{k:?}: the route keys starting with '$' are $connect, $disconnect and $default"
            ));
        }
        k if k.is_empty() || k.len() > MAX_KEY_LEN => {
            return Err(format!(
                "a custom route key has 1 to {MAX_KEY_LEN} characters"
            ));
        }
        k if k.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(format!(
                "{k:?}: a WebSocket route key is $connect, $disconnect, $default or a custom key without spaces (not METHOD /path)"
            ));
        }
        _ => RouteMatch::Key,
    };
    Ok(ParsedRouteKey {
        matcher,
        params: Vec::new(),
    })
}

/// Checks what a route of a WebSocket Api may use; returns its parsed key.
pub(crate) fn check_route(spec: &RouteSpec) -> Result<ParsedRouteKey, Problem> {
    let parsed = parse_key(&spec.route_key)
        .map_err(|e| Problem::invalid(reasons::INVALID_ROUTE_KEY, format!("spec.routeKey: {e}")))?;
    let key = spec.route_key.as_str();
    if key != CONNECT {
        if spec.authorizer_ref.is_some() {
            return Err(Problem::invalid(
                reasons::INVALID,
                "spec.authorizerRef: on a WebSocket Api only the $connect route is authorized (messages ride on the authorized connection)",
            ));
        }
        if spec.api_key_required == Some(true) {
            return Err(Problem::invalid(
                reasons::INVALID,
                "spec.apiKeyRequired: on a WebSocket Api only the $connect route takes an API key",
            ));
        }
    }
    if spec.request_validation.is_some() {
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_FEATURE,
            "spec.requestValidation: validating WebSocket messages is not built",
        ));
    }
    if spec.integration.type_ == causeway_crds::route::IntegrationType::Lambda {
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_INTEGRATION,
            "spec.integration.type LAMBDA (non-proxy, mapping templates) is not built for WebSocket routes; use LAMBDA_PROXY",
        ));
    }
    if has_mapping(&spec.integration) {
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_FEATURE,
            "spec.integration: mapping templates (requestTemplates, integrationResponses, passthroughBehavior, contentHandling) on WebSocket routes are not built; messages are passed as they are",
        ));
    }
    match spec.route_response_selection_expression.as_deref() {
        None => {}
        Some("$default") if key == CONNECT || key == DISCONNECT => {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "spec.routeResponseSelectionExpression: {key} cannot be two-way (there is no message to answer)"
                ),
            ));
        }
        Some("$default") => {}
        Some(other) => {
            return Err(Problem::invalid(
                reasons::UNSUPPORTED_FEATURE,
                format!(
                    "spec.routeResponseSelectionExpression {other:?}: only $default (two-way) is built"
                ),
            ));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_custom_keys_parse_and_http_keys_do_not() {
        assert_eq!(parse_key("$connect").unwrap().matcher, RouteMatch::Key);
        assert_eq!(parse_key("$default").unwrap().matcher, RouteMatch::Default);
        assert_eq!(parse_key("sendmessage").unwrap().matcher, RouteMatch::Key);
        assert!(parse_key("$other").is_err());
        assert!(parse_key("GET /pets").is_err());
        assert!(parse_key("").is_err());
    }
}
