//! The route table: method + path → route. Compile uses it to reject routes that cannot be
//! held (so a rejection names the Route object), the proxy uses it to match requests; one
//! implementation, so the two can never disagree.
//!
//! Precedence follows API Gateway HTTP APIs: the most specific path wins (static segments over
//! `{param}`, and any full-length match over a greedy `{proxy+}`), then a method-specific route
//! over `ANY` for the same path shape, then `$default`.
//!
//! Layout: one pair of `matchit` trees per method (GET, POST, PUT, PATCH, DELETE, HEAD,
//! OPTIONS, and one for every other method, which sees only `ANY` routes). A method without
//! routes of its own would hold exactly the `ANY` routes, so until its first own route it uses
//! the shared pair of `ANY` routes, and gets a copy of that pair then: an `ANY` route is stored
//! once per method that has routes, plus once, not eight times. Each pair is a tree
//! without greedy routes, asked first, and a tree with only greedy routes, because matchit cannot
//! hold `/a/{x}` and `/a/{*rest}` together. Parameters are inserted under positional names
//! (`{p0}`, `{p1}`, …) and renamed on lookup, so `/pets/{id}` and `/pets/{petId}/toys` coexist.

use std::collections::HashMap;

use crate::{RouteMatch, RouteMethod};

/// Methods with their own trees; every other method only sees `ANY` routes.
const METHODS: [RouteMethod; 7] = [
    RouteMethod::Get,
    RouteMethod::Post,
    RouteMethod::Put,
    RouteMethod::Patch,
    RouteMethod::Delete,
    RouteMethod::Head,
    RouteMethod::Options,
];
/// Index of the trees for methods outside [`METHODS`].
const OTHER: usize = METHODS.len();

/// Why a route cannot join the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteConflict {
    /// Another route has the same method and path shape (parameter names aside).
    #[error("same method and path as route {other:?}")]
    Duplicate {
        /// Route key of the route already in the table.
        other: String,
    },
    /// The path cannot share a tree with another route's path.
    #[error("path conflicts with route {other:?}")]
    Conflict {
        /// Route key (or pattern) of the route already in the table.
        other: String,
    },
    /// The pattern is not valid.
    #[error("invalid path pattern: {0}")]
    Invalid(String),
}

/// One route in a tree: which value, whether it came from `ANY`, its parameter names.
#[derive(Clone)]
struct Slot {
    value: usize,
    any: bool,
    names: Vec<String>,
}

#[derive(Default, Clone)]
struct Trees {
    plain: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
    /// Normalized pattern → index into `slots`.
    by_pattern: HashMap<String, usize>,
    slots: Vec<Slot>,
}

impl Trees {
    fn tree(&mut self, normalized: &str) -> &mut matchit::Router<usize> {
        if normalized.contains("{*") {
            &mut self.greedy
        } else {
            &mut self.plain
        }
    }
}

/// A matched route and its path parameters (raw, as they appear in the path).
#[derive(Debug, PartialEq, Eq)]
pub struct RouteHit<'a, T> {
    /// The route's value.
    pub value: &'a T,
    /// `(name, value)` in path order; names as the route key wrote them.
    pub params: Vec<(String, String)>,
}

/// The routes of one deployment, looked up by method and path.
pub struct RouteTable<T> {
    values: Vec<(String, T)>,
    /// `trees[0]` holds only the `ANY` routes; the others are copies of it that a method's own
    /// routes joined.
    trees: Vec<Trees>,
    /// Per method (index in [`METHODS`], then [`OTHER`]): its trees in `trees`.
    tree_of: [usize; OTHER + 1],
    default: Option<usize>,
    /// WebSocket route keys ([`RouteMatch::Key`]) → index into `values`.
    keys: HashMap<String, usize>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            trees: vec![Trees::default()],
            tree_of: [0; OTHER + 1],
            default: None,
            keys: HashMap::new(),
        }
    }
}

impl<T> std::fmt::Debug for RouteTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.values.len())
            .finish()
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a table from routes in order; the first conflict fails the whole build.
    pub fn build(
        routes: impl IntoIterator<Item = (String, RouteMatch, T)>,
    ) -> Result<Self, (String, RouteConflict)> {
        let mut table = Self::new();
        for (key, matcher, value) in routes {
            table
                .try_add(&key, &matcher, value)
                .map_err(|e| (key.clone(), e))?;
        }
        Ok(table)
    }

    /// Adds a route, or leaves the table unchanged and says why it cannot be added.
    pub fn try_add(
        &mut self,
        key: &str,
        matcher: &RouteMatch,
        value: T,
    ) -> Result<(), RouteConflict> {
        let index = self.values.len();
        let (method, pattern) = match matcher {
            RouteMatch::Default => {
                if let Some(other) = self.default {
                    return Err(RouteConflict::Duplicate {
                        other: self.values[other].0.clone(),
                    });
                }
                self.values.push((key.to_string(), value));
                self.default = Some(index);
                return Ok(());
            }
            RouteMatch::Key => {
                if let Some(&other) = self.keys.get(key) {
                    return Err(RouteConflict::Duplicate {
                        other: self.values[other].0.clone(),
                    });
                }
                self.values.push((key.to_string(), value));
                self.keys.insert(key.to_string(), index);
                return Ok(());
            }
            RouteMatch::Path { method, pattern } => (*method, pattern),
        };
        let (normalized, names) = normalize(pattern)?;
        let any = method == RouteMethod::Any;
        // Which trees: every one for `ANY` (the shared trees and each method's copy), else the
        // method's own, copied from the shared trees on its first route.
        let slots: Vec<usize> = if any {
            (0..self.trees.len()).collect()
        } else {
            let m = METHODS.iter().position(|m| *m == method).unwrap_or(OTHER);
            if self.tree_of[m] == 0 {
                self.trees.push(self.trees[0].clone());
                self.tree_of[m] = self.trees.len() - 1;
            }
            vec![self.tree_of[m]]
        };
        // Plan first, so that a conflict leaves nothing half-inserted.
        let mut plan = Vec::new();
        for &t in &slots {
            let trees = &self.trees[t];
            match trees.by_pattern.get(&normalized).map(|&s| &trees.slots[s]) {
                // A method route takes the shape from an ANY route in its own method's tree.
                Some(slot) if slot.any && !any => plan.push((t, Some(true))),
                // An ANY route gives way where a method route already has the shape.
                Some(slot) if !slot.any && any => {}
                Some(slot) => {
                    return Err(RouteConflict::Duplicate {
                        other: self.values[slot.value].0.clone(),
                    });
                }
                None => plan.push((t, None)),
            }
        }
        let mut inserted = Vec::new();
        for &(t, replace) in &plan {
            if replace.is_some() {
                continue;
            }
            let trees = &mut self.trees[t];
            let slot = trees.slots.len();
            if let Err(e) = trees.tree(&normalized).insert(normalized.clone(), slot) {
                for &u in &inserted {
                    let trees: &mut Trees = &mut self.trees[u];
                    trees.tree(&normalized).remove(normalized.clone());
                }
                return Err(match e {
                    matchit::InsertError::Conflict { with } => {
                        let other = self.trees[t]
                            .by_pattern
                            .get(&with)
                            .map(|&s| self.values[self.trees[t].slots[s].value].0.clone())
                            .unwrap_or(with);
                        RouteConflict::Conflict { other }
                    }
                    other => RouteConflict::Invalid(other.to_string()),
                });
            }
            inserted.push(t);
        }
        for (t, replace) in plan {
            let trees = &mut self.trees[t];
            let slot = Slot {
                value: index,
                any,
                names: names.clone(),
            };
            match replace {
                Some(_) => {
                    let s = trees.by_pattern[&normalized];
                    trees.slots[s] = slot;
                }
                None => {
                    trees
                        .by_pattern
                        .insert(normalized.clone(), trees.slots.len());
                    trees.slots.push(slot);
                }
            }
        }
        self.values.push((key.to_string(), value));
        Ok(())
    }

    /// Number of routes, `$default` included.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the table has no route at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The WebSocket route with exactly this key ([`RouteMatch::Key`]), if any.
    pub fn by_key(&self, key: &str) -> Option<&T> {
        self.keys
            .get(key)
            .and_then(|&i| self.values.get(i))
            .map(|v| &v.1)
    }

    /// The `$default` route, if any.
    pub fn default_route(&self) -> Option<&T> {
        self.default.and_then(|i| self.values.get(i)).map(|v| &v.1)
    }

    /// The route for this request (method as sent, upper case), or `None` when nothing
    /// matches and there is no `$default`.
    pub fn lookup(&self, method: &str, path: &str) -> Option<RouteHit<'_, T>> {
        let t = METHODS
            .iter()
            .position(|m| m.as_str() == method)
            .unwrap_or(OTHER);
        let trees = &self.trees[self.tree_of[t]];
        match trees.plain.at(path).or_else(|_| trees.greedy.at(path)) {
            Ok(m) => {
                let slot = trees.slots.get(*m.value)?;
                let params = m
                    .params
                    .iter()
                    .zip(&slot.names)
                    .map(|((_, v), name)| (name.clone(), v.to_string()))
                    .collect();
                Some(RouteHit {
                    value: &self.values.get(slot.value)?.1,
                    params,
                })
            }
            Err(_) => {
                let value = &self.values.get(self.default?)?.1;
                Some(RouteHit {
                    value,
                    params: Vec::new(),
                })
            }
        }
    }
}

/// `/pets/{id}/toys/{*rest}` → (`/pets/{p0}/toys/{*p1}`, [`id`, `rest`]).
fn normalize(pattern: &str) -> Result<(String, Vec<String>), RouteConflict> {
    let mut out = String::with_capacity(pattern.len());
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(RouteConflict::Invalid(format!(
                "unclosed '{{' in {pattern:?}"
            )));
        };
        let inner = &rest[open + 1..open + close];
        let (star, name) = match inner.strip_prefix('*') {
            Some(name) => ("*", name),
            None => ("", inner),
        };
        out.push_str(&format!("{{{star}p{}}}", names.len()));
        names.push(name.to_string());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok((out, names))
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

    fn table(routes: &[(&str, RouteMatch)]) -> RouteTable<String> {
        RouteTable::build(
            routes
                .iter()
                .map(|(k, m)| (k.to_string(), m.clone(), k.to_string())),
        )
        .expect("table builds")
    }

    fn hit(
        t: &RouteTable<String>,
        method: &str,
        p: &str,
    ) -> Option<(String, Vec<(String, String)>)> {
        t.lookup(method, p).map(|h| (h.value.clone(), h.params))
    }

    #[test]
    fn the_most_specific_path_wins_then_method_over_any_then_default() {
        use RouteMethod::*;
        let t = table(&[
            ("GET /pets/{id}", path(Get, "/pets/{id}")),
            ("GET /pets/{proxy+}", path(Get, "/pets/{*proxy}")),
            ("GET /pets/dogs", path(Get, "/pets/dogs")),
            ("ANY /pets/{petId}", path(Any, "/pets/{petId}")),
            ("ANY /pets/{petId}/toys", path(Any, "/pets/{petId}/toys")),
            ("$default", RouteMatch::Default),
        ]);
        assert_eq!(hit(&t, "GET", "/pets/dogs").unwrap().0, "GET /pets/dogs");
        let (key, params) = hit(&t, "GET", "/pets/7").unwrap();
        assert_eq!(
            (key.as_str(), params),
            ("GET /pets/{id}", vec![("id".into(), "7".into())])
        );
        assert_eq!(hit(&t, "POST", "/pets/7").unwrap().0, "ANY /pets/{petId}");
        let (key, params) = hit(&t, "GET", "/pets/7/toys").unwrap();
        assert_eq!(key, "ANY /pets/{petId}/toys");
        assert_eq!(params, vec![("petId".to_string(), "7".to_string())]);
        let (key, params) = hit(&t, "GET", "/pets/7/a/b").unwrap();
        assert_eq!(
            (key.as_str(), params),
            ("GET /pets/{proxy+}", vec![("proxy".into(), "7/a/b".into())])
        );
        assert_eq!(
            hit(&t, "PROPFIND", "/pets/7").unwrap().0,
            "ANY /pets/{petId}"
        );
        assert_eq!(hit(&t, "GET", "/other").unwrap().0, "$default");
    }

    #[test]
    fn any_routes_reach_every_method_whether_added_before_or_after_its_own_routes() {
        use RouteMethod::*;
        let t = table(&[
            ("ANY /a/{x}", path(Any, "/a/{x}")),
            ("GET /b", path(Get, "/b")),
            ("ANY /c/{proxy+}", path(Any, "/c/{*proxy}")),
            ("DELETE /a/{x}", path(Delete, "/a/{x}")),
            ("ANY /d", path(Any, "/d")),
        ]);
        for method in ["GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "PROPFIND"] {
            assert_eq!(hit(&t, method, "/a/1").unwrap().0, "ANY /a/{x}", "{method}");
            assert_eq!(hit(&t, method, "/c/1/2").unwrap().0, "ANY /c/{proxy+}");
            assert_eq!(hit(&t, method, "/d").unwrap().0, "ANY /d", "{method}");
        }
        assert_eq!(hit(&t, "DELETE", "/a/1").unwrap().0, "DELETE /a/{x}");
        assert_eq!(hit(&t, "DELETE", "/d").unwrap().0, "ANY /d");
        assert_eq!(hit(&t, "DELETE", "/c/1").unwrap().0, "ANY /c/{proxy+}");
        assert_eq!(hit(&t, "GET", "/b").unwrap().0, "GET /b");
        assert!(hit(&t, "POST", "/b").is_none());
        assert!(hit(&t, "PROPFIND", "/b").is_none());
        // The shared trees and the two methods with routes of their own, not one per method.
        assert_eq!(t.trees.len(), 3);
    }

    #[test]
    fn a_method_route_added_after_an_any_route_of_the_same_shape_takes_its_method() {
        use RouteMethod::*;
        let t = table(&[
            ("ANY /a/{x}", path(Any, "/a/{x}")),
            ("GET /a/{y}", path(Get, "/a/{y}")),
        ]);
        assert_eq!(
            hit(&t, "GET", "/a/1").unwrap(),
            ("GET /a/{y}".into(), vec![("y".into(), "1".into())])
        );
        assert_eq!(hit(&t, "PUT", "/a/1").unwrap().0, "ANY /a/{x}");
    }

    #[test]
    fn the_same_method_and_shape_twice_is_a_duplicate_and_changes_nothing() {
        use RouteMethod::*;
        let mut t = table(&[("GET /a/{x}", path(Get, "/a/{x}"))]);
        let err = t
            .try_add("GET /a/{y}", &path(Get, "/a/{y}"), "second".into())
            .unwrap_err();
        assert_eq!(
            err,
            RouteConflict::Duplicate {
                other: "GET /a/{x}".into()
            }
        );
        assert_eq!(t.len(), 1);
        let err = t.try_add("$default", &RouteMatch::Default, "d".into());
        assert!(err.is_ok());
        assert!(
            t.try_add("$default", &RouteMatch::Default, "d2".into())
                .is_err()
        );
        assert_eq!(hit(&t, "GET", "/a/1").unwrap().0, "GET /a/{x}");
    }

    #[test]
    fn a_failed_any_route_leaves_no_tree_changed() {
        use RouteMethod::*;
        let mut t = table(&[("DELETE /a/{x}", path(Delete, "/a/{x}"))]);
        // Malformed: rejected before any tree is touched.
        assert!(matches!(
            t.try_add("ANY /a/{b", &path(Any, "/a/{b"), "bad".into()),
            Err(RouteConflict::Invalid(_))
        ));
        assert_eq!(hit(&t, "GET", "/a/1"), None);
        assert_eq!(hit(&t, "DELETE", "/a/1").unwrap().0, "DELETE /a/{x}");
    }
}
