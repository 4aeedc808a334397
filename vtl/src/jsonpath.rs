//! The JSONPath subset of `$input.json(…)` and `$input.path(…)`: `$`, `.name`, `['name']`,
//! `["name"]`, `[n]` (negative from the end), `[*]` and `.*`.

use serde_json::Value as Json;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(i64),
    Wildcard,
}

/// Parses a path; the message says what is wrong.
pub(crate) fn parse(path: &str) -> Result<Vec<Seg>, String> {
    let chars: Vec<char> = path.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return Err(format!("JSONPath {path:?} must start with '$'"));
    }
    let mut segs = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'*') {
                    segs.push(Seg::Wildcard);
                    i += 1;
                    continue;
                }
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[') {
                    i += 1;
                }
                if start == i {
                    return Err(format!("JSONPath {path:?}: empty name after '.'"));
                }
                segs.push(Seg::Key(chars[start..i].iter().collect()));
            }
            '[' => {
                i += 1;
                match chars.get(i) {
                    Some(&q @ ('\'' | '"')) => {
                        i += 1;
                        let start = i;
                        while i < chars.len() && chars[i] != q {
                            i += 1;
                        }
                        if chars.get(i + 1) != Some(&']') {
                            return Err(format!("JSONPath {path:?}: unterminated ['name']"));
                        }
                        segs.push(Seg::Key(chars[start..i].iter().collect()));
                        i += 2;
                    }
                    Some('*') if chars.get(i + 1) == Some(&']') => {
                        segs.push(Seg::Wildcard);
                        i += 2;
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        let text: String = chars[start..i].iter().collect();
                        let n = text.trim().parse::<i64>().map_err(|_| {
                            format!(
                                "JSONPath {path:?}: [{text}] is not an index, a quoted name or *"
                            )
                        })?;
                        if i >= chars.len() {
                            return Err(format!("JSONPath {path:?}: missing ']'"));
                        }
                        segs.push(Seg::Index(n));
                        i += 1;
                    }
                }
            }
            c => return Err(format!("JSONPath {path:?}: unexpected {c:?}")),
        }
    }
    Ok(segs)
}

/// Selects from `root`. A path without wildcards gives the one value (or `None`); a path with
/// wildcards gives the array of every match.
pub(crate) fn select(root: &Json, segs: &[Seg]) -> Option<Json> {
    if !segs.contains(&Seg::Wildcard) {
        let mut current = root;
        for seg in segs {
            current = step(current, seg).into_iter().next()?;
        }
        return Some(current.clone());
    }
    let mut current = vec![root];
    for seg in segs {
        current = current.into_iter().flat_map(|v| step(v, seg)).collect();
    }
    Some(Json::Array(current.into_iter().cloned().collect()))
}

fn step<'j>(value: &'j Json, seg: &Seg) -> Vec<&'j Json> {
    match (seg, value) {
        (Seg::Key(k), Json::Object(m)) => m.get(k).into_iter().collect(),
        (Seg::Index(n), Json::Array(items)) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let i = if *n < 0 { len + n } else { *n };
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .into_iter()
                .collect()
        }
        (Seg::Wildcard, Json::Array(items)) => items.iter().collect(),
        (Seg::Wildcard, Json::Object(m)) => m.values().collect(),
        _ => Vec::new(),
    }
}
