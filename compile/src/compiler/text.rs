//! Text handling shared by routes and stages: `${stageVariables.name}` references, route keys
//! and integration URIs.

use std::collections::BTreeMap;

use causeway_snapshot::{RouteMatch, RouteMethod, UpstreamScheme};

const STAGE_VAR_OPEN: &str = "${stageVariables.";

/// Whether `name` is a valid stage variable or path parameter name (`[A-Za-z0-9_]+`).
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The stage variables `text` refers to, or why a reference is malformed.
pub(crate) fn stage_variables(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(STAGE_VAR_OPEN) {
        let after = &rest[open + STAGE_VAR_OPEN.len()..];
        let Some(close) = after.find('}') else {
            return Err(format!("unterminated stage variable reference in {text:?}"));
        };
        let name = &after[..close];
        if !is_name(name) {
            return Err(format!(
                "stage variable name {name:?} in {text:?} may hold letters, digits and '_' only"
            ));
        }
        names.push(name.to_string());
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Substitutes every `${stageVariables.name}`. A variable the stage does not define becomes
/// the empty string, as in API Gateway. Call only on text [`stage_variables`] accepted.
pub(crate) fn substitute(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(STAGE_VAR_OPEN) {
        let after = &rest[open + STAGE_VAR_OPEN.len()..];
        let Some(close) = after.find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(variables.get(&after[..close]).map_or("", String::as_str));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// `text` with every stage variable reference removed: what remains must be valid on its own.
pub(crate) fn without_stage_variables(text: &str) -> String {
    substitute(text, &BTreeMap::new())
}

/// A parsed route key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedRouteKey {
    /// What the route matches.
    pub matcher: RouteMatch,
    /// Path parameter names (`proxy` for a greedy `{proxy+}`).
    pub params: Vec<String>,
}

/// Parses `$default` or `METHOD /path` (segments literal, `{name}`, or a greedy last `{name+}`).
pub(crate) fn parse_route_key(key: &str) -> Result<ParsedRouteKey, String> {
    if key == "$default" {
        return Ok(ParsedRouteKey {
            matcher: RouteMatch::Default,
            params: vec![],
        });
    }
    let Some((method, path)) = key.split_once(' ') else {
        return Err(format!("{key:?} is neither '$default' nor 'METHOD /path'"));
    };
    let method = RouteMethod::parse(method).ok_or_else(|| {
        format!("method {method:?} is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY")
    })?;
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} must start with '/'"));
    };
    let mut params: Vec<String> = Vec::new();
    let mut pattern = String::new();
    if rest.is_empty() {
        pattern.push('/');
    }
    let segments: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.split('/').collect()
    };
    for (i, segment) in segments.iter().enumerate() {
        pattern.push('/');
        if segment.is_empty() {
            return Err(format!("path {path:?} has an empty segment"));
        }
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(name) => (name, true),
                None => (inner, false),
            };
            if !is_name(name) {
                return Err(format!(
                    "path parameter {segment:?} must be {{name}} or {{name+}} with letters, digits and '_'"
                ));
            }
            if params.iter().any(|p| p == name) {
                return Err(format!("path parameter {{{name}}} appears twice"));
            }
            if greedy {
                if i + 1 != segments.len() {
                    return Err(format!(
                        "greedy parameter {segment:?} must be the last segment"
                    ));
                }
                pattern.push_str(&format!("{{*{name}}}"));
            } else {
                pattern.push_str(&format!("{{{name}}}"));
            }
            params.push(name.to_string());
        } else if segment.chars().any(|c| {
            matches!(c, '{' | '}' | '?' | '#' | '%') || c.is_whitespace() || c.is_control()
        }) {
            return Err(format!(
                "path segment {segment:?} must be literal text or exactly one {{param}}"
            ));
        } else {
            pattern.push_str(segment);
        }
    }
    Ok(ParsedRouteKey {
        matcher: RouteMatch::Path { method, pattern },
        params,
    })
}

/// An integration URI split into its parts; stage variables may still be in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitUri {
    /// `scheme://authority`, as written.
    pub origin: String,
    /// The path (starting with `/`), or `None` when the URI has none (or only `/`).
    pub path: Option<String>,
}

/// Splits `http(s)://authority/path`. Rejects other schemes, queries and fragments.
pub(crate) fn split_uri(uri: &str) -> Result<SplitUri, String> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| format!("uri {uri:?} must start with http:// or https://"))?;
    if uri.contains('?') || uri.contains('#') {
        return Err(format!(
            "uri {uri:?} must not have a query or fragment (use requestParameters)"
        ));
    }
    // The authority ends at the first '/' outside a stage variable reference.
    let mut authority_len = rest.len();
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with(STAGE_VAR_OPEN) {
            i += rest[i..].find('}').map_or(rest.len() - i, |c| c + 1);
            continue;
        }
        if rest.as_bytes()[i] == b'/' {
            authority_len = i;
            break;
        }
        i += rest[i..].chars().next().map_or(1, char::len_utf8);
    }
    let origin = uri[..uri.len() - rest.len() + authority_len].to_string();
    let path = &rest[authority_len..];
    let path = (!path.is_empty() && path != "/").then(|| path.to_string());
    Ok(SplitUri { origin, path })
}

/// A concrete origin: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// `http` or `https`.
    pub scheme: UpstreamScheme,
    /// Host name or IP address (IPv6 with brackets), lowercase.
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
    /// Whether the port was written.
    pub explicit_port: bool,
}

impl Origin {
    /// `host[:port]` as the `Host` header: the port only when it is not the scheme's default.
    pub(crate) fn authority(&self) -> String {
        if self.explicit_port && self.port != default_port(self.scheme) {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }
}

/// 80 or 443.
pub(crate) fn default_port(scheme: UpstreamScheme) -> u16 {
    match scheme {
        UpstreamScheme::Http => 80,
        UpstreamScheme::Https => 443,
    }
}

/// Parses `scheme://host[:port]` once stage variables are substituted.
pub(crate) fn parse_origin(origin: &str) -> Result<Origin, String> {
    let (scheme, authority) = if let Some(a) = origin.strip_prefix("http://") {
        (UpstreamScheme::Http, a)
    } else if let Some(a) = origin.strip_prefix("https://") {
        (UpstreamScheme::Https, a)
    } else {
        return Err(format!("{origin:?} must start with http:// or https://"));
    };
    if authority.contains('@') {
        return Err(format!("{origin:?} must not carry user information"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("{origin:?} has an unterminated IPv6 address"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{origin:?} has an invalid IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{origin:?} has text after the IPv6 address"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("{origin:?} has no host"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!("{origin:?} has an invalid host {host:?}"));
    }
    let (port, explicit_port) = match port {
        None => (default_port(scheme), false),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => (p, true),
            _ => return Err(format!("{origin:?} has an invalid port {p:?}")),
        },
    };
    Ok(Origin {
        scheme,
        host,
        port,
        explicit_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_become_matchit_patterns() {
        let k = parse_route_key("GET /pets/{id}/files/{proxy+}").unwrap();
        assert_eq!(
            k.matcher,
            RouteMatch::Path {
                method: RouteMethod::Get,
                pattern: "/pets/{id}/files/{*proxy}".into()
            }
        );
        assert_eq!(k.params, vec!["id", "proxy"]);
        assert_eq!(
            parse_route_key("ANY /").unwrap().matcher,
            RouteMatch::Path {
                method: RouteMethod::Any,
                pattern: "/".into()
            }
        );
    }

    #[test]
    fn malformed_route_keys_are_refused() {
        for key in [
            "GET pets",
            "FETCH /pets",
            "GET /pets//x",
            "GET /pets/",
            "GET /{a+}/b",
            "GET /a-{b}",
            "GET /{a}/{a}",
            "GET /{a-b}",
            "$connect",
        ] {
            assert!(parse_route_key(key).is_err(), "{key}");
        }
    }

    #[test]
    fn stage_variables_are_found_and_substituted_with_empty_for_missing_ones() {
        let text = "http://${stageVariables.host}:8080/${stageVariables.v}/x";
        assert_eq!(stage_variables(text).unwrap(), vec!["host", "v"]);
        let vars = BTreeMap::from([("host".to_string(), "pets".to_string())]);
        assert_eq!(substitute(text, &vars), "http://pets:8080//x");
        assert!(stage_variables("${stageVariables.a-b}").is_err());
        assert!(stage_variables("${stageVariables.a").is_err());
    }

    #[test]
    fn uris_split_into_origin_and_path_even_with_variables_in_the_host() {
        let s = split_uri("http://${stageVariables.h}/v1/{id}").unwrap();
        assert_eq!(s.origin, "http://${stageVariables.h}");
        assert_eq!(s.path.as_deref(), Some("/v1/{id}"));
        let s = split_uri("https://example.com/").unwrap();
        assert_eq!(s.origin, "https://example.com");
        assert_eq!(s.path, None);
        assert!(split_uri("ftp://x").is_err());
        assert!(split_uri("http://x/?a=b").is_err());
    }

    #[test]
    fn origins_parse_with_default_ports_and_ipv6() {
        let o = parse_origin("http://Pets:8080").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.authority()),
            ("pets", 8080, "pets:8080".into())
        );
        let o = parse_origin("https://[::1]").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.authority()),
            ("[::1]", 443, "[::1]".into())
        );
        assert!(parse_origin("http://").is_err());
        assert!(parse_origin("http://a:0").is_err());
        assert!(parse_origin("http://a b").is_err());
    }
}
