//! Request matching: host → stage (exact host, then `*.suffix` wildcards; routing rules by
//! priority, then base-path mappings, longest first) and method + path → route.
//!
//! Route precedence follows API Gateway HTTP APIs: the most specific path wins (static segments
//! over `{param}` over greedy `{proxy+}`), then a method-specific route over `ANY` for the same
//! path, then `$default`. `matchit` cannot hold `/a/{x}` and `/a/{*rest}` in one tree, so each
//! method has two trees: one without greedy routes, asked first, and one with only greedy routes.

use std::collections::{BTreeMap, HashSet};

use causeway_snapshot::{RouteMatch, RouteMethod};
use http::Method;

/// A route table that cannot be built (the snapshot is rejected).
#[derive(Debug, thiserror::Error)]
#[error("route {pattern:?} cannot be added: {source}")]
pub struct RouteError {
    /// The offending pattern.
    pub pattern: String,
    /// What matchit said.
    #[source]
    pub source: matchit::InsertError,
}

/// Methods that have their own tree; every other method only sees `ANY` routes.
const METHODS: [RouteMethod; 7] = [
    RouteMethod::Get,
    RouteMethod::Post,
    RouteMethod::Put,
    RouteMethod::Patch,
    RouteMethod::Delete,
    RouteMethod::Head,
    RouteMethod::Options,
];
/// Index of the tree for methods outside [`METHODS`].
const OTHER: usize = METHODS.len();

#[derive(Default)]
struct MethodTrees {
    plain: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
}

/// The routes of one deployment, looked up by method and path.
pub(crate) struct RouteTable<T> {
    values: Vec<T>,
    trees: Vec<MethodTrees>,
    default: Option<usize>,
}

/// A matched route and its path parameters (raw, as they appear in the path).
pub(crate) struct RouteHit<'a, T> {
    pub value: &'a T,
    pub params: Vec<(String, String)>,
}

impl<T> RouteTable<T> {
    /// Builds the trees. `routes` yields each route's matcher with its value.
    pub fn build(routes: impl IntoIterator<Item = (RouteMatch, T)>) -> Result<Self, RouteError> {
        let mut values = Vec::new();
        let mut default = None;
        let mut specific: Vec<(RouteMethod, String, usize)> = Vec::new();
        let mut any: Vec<(String, usize)> = Vec::new();
        for (matcher, value) in routes {
            let index = values.len();
            values.push(value);
            match matcher {
                RouteMatch::Default => default = Some(index),
                RouteMatch::Path {
                    method: RouteMethod::Any,
                    pattern,
                } => any.push((pattern, index)),
                RouteMatch::Path { method, pattern } => specific.push((method, pattern, index)),
            }
        }
        let mut trees: Vec<MethodTrees> = (0..=OTHER).map(|_| MethodTrees::default()).collect();
        for (slot, trees) in trees.iter_mut().enumerate() {
            // Method-specific routes first; an ANY route whose path shape is already taken by
            // a method-specific route is shadowed for this method.
            let mut taken = HashSet::new();
            for (method, pattern, index) in &specific {
                if METHODS.get(slot) == Some(method) {
                    insert(trees, pattern, *index)?;
                    taken.insert(shape(pattern));
                }
            }
            for (pattern, index) in &any {
                if !taken.contains(&shape(pattern)) {
                    insert(trees, pattern, *index)?;
                }
            }
        }
        Ok(Self {
            values,
            trees,
            default,
        })
    }

    /// The route for this request, or `None` when not even `$default` exists.
    pub fn lookup(&self, method: &Method, path: &str) -> Option<RouteHit<'_, T>> {
        let slot = METHODS
            .iter()
            .position(|m| m.as_str() == method.as_str())
            .unwrap_or(OTHER);
        let trees = self.trees.get(slot)?;
        let found = trees.plain.at(path).or_else(|_| trees.greedy.at(path));
        match found {
            Ok(m) => Some(RouteHit {
                value: self.values.get(*m.value)?,
                params: m
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            Err(_) => self
                .default
                .and_then(|i| self.values.get(i))
                .map(|value| RouteHit {
                    value,
                    params: Vec::new(),
                }),
        }
    }
}

fn insert(trees: &mut MethodTrees, pattern: &str, index: usize) -> Result<(), RouteError> {
    let tree = if pattern.contains("{*") {
        &mut trees.greedy
    } else {
        &mut trees.plain
    };
    tree.insert(pattern, index).map_err(|source| RouteError {
        pattern: pattern.to_string(),
        source,
    })
}

/// The pattern with parameter names erased: `/pets/{id}` and `/pets/{petId}` have one shape.
fn shape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            '*' if in_param => out.push('*'),
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Where a host's request goes: which stage, and the path the stage sees.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostHit<S> {
    pub stage: S,
    /// The request path with the matched base path removed (always starts with `/`).
    pub path: String,
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
                    });
                }
            }
        }
        routes.mappings.iter().find_map(|(base, stage)| {
            strip_base(path, base).map(|path| HostHit {
                stage: stage.clone(),
                path,
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

    fn path(method: RouteMethod, pattern: &str) -> RouteMatch {
        RouteMatch::Path {
            method,
            pattern: pattern.to_string(),
        }
    }

    fn table() -> RouteTable<&'static str> {
        RouteTable::build([
            (path(RouteMethod::Get, "/pets/{id}"), "get-id"),
            (path(RouteMethod::Get, "/pets/{*proxy}"), "get-greedy"),
            (path(RouteMethod::Get, "/pets/dogs"), "get-dogs"),
            (path(RouteMethod::Any, "/pets/{petId}"), "any-id"),
            (RouteMatch::Default, "default"),
        ])
        .expect("routes build")
    }

    fn hit(t: &RouteTable<&'static str>, m: Method, p: &str) -> &'static str {
        t.lookup(&m, p).map(|h| *h.value).unwrap_or("none")
    }

    #[test]
    fn static_beats_param_beats_greedy_and_method_beats_any() {
        let t = table();
        assert_eq!(hit(&t, Method::GET, "/pets/dogs"), "get-dogs");
        assert_eq!(hit(&t, Method::GET, "/pets/7"), "get-id");
        assert_eq!(hit(&t, Method::GET, "/pets/7/toys"), "get-greedy");
        assert_eq!(hit(&t, Method::POST, "/pets/7"), "any-id");
        assert_eq!(
            hit(&t, Method::from_bytes(b"PURGE").unwrap(), "/pets/7"),
            "any-id"
        );
        assert_eq!(hit(&t, Method::POST, "/pets/7/toys"), "default");
        assert_eq!(hit(&t, Method::GET, "/cats"), "default");
    }

    #[test]
    fn hosts_match_exactly_then_by_longest_wildcard_and_strip_base_paths() {
        let routes = |mappings: Vec<(&str, &'static str)>| HostRoutes {
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
