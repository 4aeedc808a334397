//! Runtime values. Lists and maps live in an arena owned by one evaluation and are referred to
//! by index, so they can be shared and mutated (`$list.add(…)`, `$map.put(…)`) as in Java, and
//! cycles cost nothing: everything is dropped with the arena.

use std::collections::HashMap;
use std::rc::Rc;

/// A value during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Undefined or Java `null`.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    /// Index into [`Arena::lists`].
    List(usize),
    /// Index into [`Arena::maps`].
    Map(usize),
    /// `$input`.
    Input,
    /// `$util`.
    Util,
    /// `$context` and its dotted sub-paths, resolved only when their value is needed.
    Context(Rc<str>),
    /// `$foreach` of the innermost loop.
    Loop(LoopInfo),
}

/// The state of a `#foreach`, as `$foreach` shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopInfo {
    pub index: usize,
    pub has_next: bool,
}

impl Value {
    pub(crate) fn str(s: impl Into<Rc<str>>) -> Self {
        Value::Str(s.into())
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A map that keeps insertion order (Java's `LinkedHashMap`, which API Gateway uses for JSON
/// objects).
#[derive(Debug, Default)]
pub(crate) struct MapData {
    pub entries: Vec<(Rc<str>, Value)>,
    index: HashMap<Rc<str>, usize>,
    /// Keys are found whatever their case (request headers).
    pub case_insensitive: bool,
}

impl MapData {
    fn key(&self, k: &str) -> Rc<str> {
        if self.case_insensitive {
            k.to_ascii_lowercase().into()
        } else {
            k.into()
        }
    }

    pub(crate) fn get(&self, k: &str) -> Option<&Value> {
        let i = if self.case_insensitive {
            *self.index.get(k.to_ascii_lowercase().as_str())?
        } else {
            *self.index.get(k)?
        };
        self.entries.get(i).map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the previous value and whether an element was added.
    pub(crate) fn put(&mut self, k: &str, v: Value) -> (Option<Value>, bool) {
        let key = self.key(k);
        match self.index.get(&key) {
            Some(&i) => (Some(std::mem::replace(&mut self.entries[i].1, v)), false),
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push((k.into(), v));
                (None, true)
            }
        }
    }

    pub(crate) fn remove(&mut self, k: &str) -> Option<Value> {
        let key = self.key(k);
        let i = self.index.remove(&key)?;
        let (_, v) = self.entries.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(v)
    }
}

/// Every list and map of one evaluation.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    pub lists: Vec<Vec<Value>>,
    pub maps: Vec<MapData>,
}

/// Java's `Double.toString`: plain notation from 10^-3 to 10^7, otherwise `1.0E10`.
pub(crate) fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = x.abs();
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = format!("{x}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}
