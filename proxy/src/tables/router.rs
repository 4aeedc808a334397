//! Request matching: host → stage (exact host, then `*.suffix` wildcards; routing rules by
//! priority, then base-path mappings, longest first). Method + path → route is
//! [`causeway_snapshot::RouteTable`], shared with `compile` so that what compile accepts is
//! exactly what the proxy can hold.

use std::collections::BTreeMap;

/// Where a host's request goes: which stage, and the path the stage sees.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostHit<S> {
    pub stage: S,
    /// The request path with the matched base path removed (always starts with `/`).
    pub path: String,
    /// The host wants plain-HTTP requests redirected to HTTPS.
    pub redirect_to_https: bool,
}

/// A header-based routing rule, compiled.
pub(crate) struct Rule<S> {
    pub headers: Vec<(http::HeaderName, Glob)>,
    pub base_paths: Vec<String>,
    pub strip_base_path: bool,
    pub stage: S,
}

/// The rules and mappings of one hostname.
pub(crate) struct HostRoutes<S> {
    /// Sorted by ascending priority.
    pub rules: Vec<Rule<S>>,
    /// `(base path, stage)`, longest base path first.
    pub mappings: Vec<(String, S)>,
    /// Plain-HTTP requests get a 308 to HTTPS.
    pub redirect_to_https: bool,
}

/// Every hostname of the snapshot.
pub(crate) struct HostTable<S> {
    exact: BTreeMap<String, HostRoutes<S>>,
    /// `(suffix including the leading dot, routes)`, longest suffix first.
    wildcards: Vec<(String, HostRoutes<S>)>,
}

impl<S: Clone> HostTable<S> {
    /// Builds the table; hostnames are lowercased, `*.x` entries become wildcards.
    pub fn new(hosts: impl IntoIterator<Item = (String, HostRoutes<S>)>) -> Self {
        let mut exact = BTreeMap::new();
        let mut wildcards = Vec::new();
        for (name, mut routes) in hosts {
            let name = name.to_ascii_lowercase();
            routes
                .mappings
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
            match name.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    wildcards.push((suffix.to_string(), routes))
                }
                _ => {
                    exact.insert(name, routes);
                }
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Self { exact, wildcards }
    }

    /// The stage for a request to `host` (already lowercase, without port) with this path.
    pub fn find(&self, host: &str, path: &str, headers: &http::HeaderMap) -> Option<HostHit<S>> {
        let routes = self.exact.get(host).or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|(_, routes)| routes)
        })?;
        for rule in &routes.rules {
            let headers_match = rule.headers.iter().all(|(name, glob)| {
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| glob.matches(v)))
            });
            if !headers_match {
                continue;
            }
            if rule.base_paths.is_empty() {
                return Some(HostHit {
                    stage: rule.stage.clone(),
                    path: path.to_string(),
                    redirect_to_https: routes.redirect_to_https,
                });
            }
            for base in &rule.base_paths {
                if let Some(rest) = strip_base(path, base) {
                    let path = if rule.strip_base_path {
                        rest
                    } else {
                        path.to_string()
                    };
                    return Some(HostHit {
                        stage: rule.stage.clone(),
                        path,
                        redirect_to_https: routes.redirect_to_https,
                    });
                }
            }
        }
        routes.mappings.iter().find_map(|(base, stage)| {
            strip_base(path, base).map(|path| HostHit {
                stage: stage.clone(),
                path,
                redirect_to_https: routes.redirect_to_https,
            })
        })
    }
}

/// `path` without the leading segment(s) `base` (no slashes around it); `""` matches any path.
fn strip_base(path: &str, base: &str) -> Option<String> {
    if base.is_empty() {
        return Some(path.to_string());
    }
    let rest = path.strip_prefix('/')?.strip_prefix(base)?;
    if rest.is_empty() {
        Some("/".to_string())
    } else if rest.starts_with('/') {
        Some(rest.to_string())
    } else {
        None
    }
}

/// A glob with an optional leading and/or trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Any,
}

impl Glob {
    pub fn parse(text: &str) -> Self {
        if text == "*" {
            return Self::Any;
        }
        let (lead, rest) = match text.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (trail, inner) = match rest.strip_suffix('*') {
            Some(inner) => (true, inner),
            None => (false, rest),
        };
        let inner = inner.to_string();
        match (lead, trail) {
            (true, true) => Self::Contains(inner),
            (true, false) => Self::Suffix(inner),
            (false, true) => Self::Prefix(inner),
            (false, false) => Self::Exact(inner),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => value == s,
            Self::Prefix(s) => value.starts_with(s.as_str()),
            Self::Suffix(s) => value.ends_with(s.as_str()),
            Self::Contains(s) => value.contains(s.as_str()),
            Self::Any => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_then_by_longest_wildcard_and_strip_base_paths() {
        let routes = |mappings: Vec<(&str, &'static str)>| HostRoutes {
            redirect_to_https: false,
            rules: vec![],
            mappings: mappings
                .into_iter()
                .map(|(b, s)| (b.to_string(), s))
                .collect(),
        };
        let table = HostTable::new([
            (
                "api.example.com".to_string(),
                routes(vec![("", "root"), ("v1", "v1")]),
            ),
            ("*.example.com".to_string(), routes(vec![("", "wild")])),
            ("*.eu.example.com".to_string(), routes(vec![("", "eu")])),
        ]);
        let h = http::HeaderMap::new();
        let find = |host: &str, p: &str| table.find(host, p, &h).map(|h| (h.stage, h.path));
        assert_eq!(find("api.example.com", "/v1/x"), Some(("v1", "/x".into())));
        assert_eq!(find("api.example.com", "/v1"), Some(("v1", "/".into())));
        assert_eq!(
            find("api.example.com", "/v10"),
            Some(("root", "/v10".into()))
        );
        assert_eq!(find("a.b.example.com", "/"), Some(("wild", "/".into())));
        assert_eq!(find("x.eu.example.com", "/"), Some(("eu", "/".into())));
        assert_eq!(find("example.com", "/"), None);
    }

    #[test]
    fn globs_have_optional_leading_and_trailing_stars() {
        assert!(Glob::parse("beta*").matches("beta-2"));
        assert!(Glob::parse("*-2").matches("beta-2"));
        assert!(Glob::parse("*ta-*").matches("beta-2"));
        assert!(Glob::parse("*").matches(""));
        assert!(!Glob::parse("beta").matches("beta-2"));
    }
}
