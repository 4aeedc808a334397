//! The evaluator: nodes + facts → text, within [`Limits`].
//!
//! Velocity 1.7 semantics where API Gateway users rely on them: an undefined reference renders
//! as written (`$!x` renders nothing), `#set` to an undefined value leaves the variable as it
//! was, any value but `null` and `false` is true in `#if`, `==` compares numbers by value and
//! other values of different kinds by their text, and a method that Java would throw from
//! (index out of range, bad regular expression) fails the evaluation. Two extensions: `+`
//! concatenates when one side is a string, and strings compare with `<`/`>` (Velocity 2).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use regex::{Regex, RegexBuilder};
use serde_json::Value as Json;

use crate::jsonpath;
use crate::parse::{Access, BinOp, Expr, Node, Pos, Reference};
use crate::util;
use crate::value::{Arena, LoopInfo, MapData, Value, format_float};
use crate::{EvalError, Facts, Limits, Rendered};

type Result<T> = std::result::Result<T, EvalError>;

/// Renders a template.
pub(crate) fn render(nodes: &[Node], facts: &Facts<'_>, limits: &Limits) -> Result<Rendered> {
    let mut eval = Eval {
        facts,
        limits,
        vars: HashMap::new(),
        arena: Arena::default(),
        elements: 0,
        steps: 0,
        started: limits.max_time.map(|_| Instant::now()),
        depth: 0,
        regexes: HashMap::new(),
        body_json: None,
        params: None,
        stage_variables: None,
        overrides: BTreeMap::new(),
    };
    let mut out = String::new();
    eval.block(nodes, &mut out, Sink::Output)?;
    Ok(Rendered {
        body: out,
        overrides: eval.overrides,
    })
}

/// Where text is written, which decides its bound.
#[derive(Debug, Clone, Copy)]
enum Sink {
    /// The template's output.
    Output,
    /// A string being built (an interpolated string literal).
    Str,
}

/// Whether a block ran to its end or hit `#break`.
enum Flow {
    Normal,
    Break,
}

/// Most compiled regular expressions kept per evaluation.
const MAX_CACHED_REGEXES: usize = 64;
/// Size limit of one compiled regular expression, bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

struct Eval<'a> {
    facts: &'a Facts<'a>,
    limits: &'a Limits,
    vars: HashMap<String, Value>,
    arena: Arena,
    elements: usize,
    steps: u64,
    started: Option<Instant>,
    depth: usize,
    regexes: HashMap<String, Regex>,
    body_json: Option<Rc<Json>>,
    params: Option<Value>,
    stage_variables: Option<Value>,
    overrides: BTreeMap<String, String>,
}

fn method_error(r: &Reference, method: &str, message: impl Into<String>) -> EvalError {
    EvalError::Method {
        method: method.to_string(),
        message: message.into(),
        line: r.pos.line,
        column: r.pos.column,
    }
}

impl Eval<'_> {
    // ----- bounds -----

    fn tick(&mut self, n: u64) -> Result<()> {
        let before = self.steps;
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(EvalError::StepBudget {
                limit: self.limits.max_steps,
            });
        }
        if let (Some(limit), Some(started)) = (self.limits.max_time, self.started)
            && before / 1024 != self.steps / 1024
            && started.elapsed() > limit
        {
            return Err(EvalError::TimeBudget { limit });
        }
        Ok(())
    }

    /// Charges for touching `bytes` bytes of text.
    fn tick_bytes(&mut self, bytes: usize) -> Result<()> {
        self.tick(1 + u64::try_from(bytes / 16).unwrap_or(u64::MAX))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(EvalError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.limits.max_string_bytes {
            return Err(EvalError::StringTooLarge {
                limit: self.limits.max_string_bytes,
            });
        }
        Ok(())
    }

    fn string(&mut self, s: String) -> Result<Value> {
        self.check_len(s.len())?;
        self.tick_bytes(s.len())?;
        Ok(Value::str(s))
    }

    fn add_elements(&mut self, n: usize) -> Result<()> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > self.limits.max_elements {
            return Err(EvalError::TooManyElements {
                limit: self.limits.max_elements,
            });
        }
        self.tick(1 + u64::try_from(n / 16).unwrap_or(u64::MAX))
    }

    fn new_list(&mut self, items: Vec<Value>) -> Result<Value> {
        self.add_elements(items.len())?;
        self.arena.lists.push(items);
        Ok(Value::List(self.arena.lists.len() - 1))
    }

    fn new_map(&mut self, map: MapData) -> Result<Value> {
        self.add_elements(map.entries.len())?;
        self.arena.maps.push(map);
        Ok(Value::Map(self.arena.maps.len() - 1))
    }

    fn write(&mut self, out: &mut String, text: &str, sink: Sink) -> Result<()> {
        let limit = match sink {
            Sink::Output => self.limits.max_output_bytes,
            Sink::Str => self.limits.max_string_bytes,
        };
        if out.len() + text.len() > limit {
            return Err(match sink {
                Sink::Output => EvalError::OutputTooLarge { limit },
                Sink::Str => EvalError::StringTooLarge { limit },
            });
        }
        self.tick_bytes(text.len())?;
        out.push_str(text);
        Ok(())
    }

    // ----- nodes -----

    fn block(&mut self, nodes: &[Node], out: &mut String, sink: Sink) -> Result<Flow> {
        self.enter()?;
        for node in nodes {
            self.tick(1)?;
            match node {
                Node::Text(text) => self.write(out, text, sink)?,
                Node::Ref(r) => {
                    let v = self.reference(r)?;
                    if v.is_null() {
                        if !r.quiet {
                            self.write(out, &r.source, sink)?;
                        }
                    } else {
                        let text = self.display(&v)?;
                        self.write(out, &text, sink)?;
                    }
                }
                Node::Set { target, value } => self.set(target, value)?,
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut chosen = otherwise.as_ref();
                    for (cond, body) in branches {
                        let v = self.expr(cond)?;
                        if self.truthy(&v) {
                            chosen = Some(body);
                            break;
                        }
                    }
                    if let Some(body) = chosen
                        && let Flow::Break = self.block(body, out, sink)?
                    {
                        self.leave();
                        return Ok(Flow::Break);
                    }
                }
                Node::Foreach {
                    var,
                    iterable,
                    body,
                    pos,
                } => self.foreach(var, iterable, body, *pos, out, sink)?,
                Node::Break => {
                    self.leave();
                    return Ok(Flow::Break);
                }
            }
        }
        self.leave();
        Ok(Flow::Normal)
    }

    fn foreach(
        &mut self,
        var: &str,
        iterable: &Expr,
        body: &[Node],
        pos: Pos,
        out: &mut String,
        sink: Sink,
    ) -> Result<()> {
        let source = self.expr(iterable)?;
        let items: Vec<Value> = match source {
            Value::List(id) => self.arena.lists[id].clone(),
            Value::Map(id) => self.arena.maps[id]
                .entries
                .iter()
                .map(|(_, v)| v.clone())
                .collect(),
            _ => Vec::new(),
        };
        self.tick(1 + u64::try_from(items.len() / 16).unwrap_or(u64::MAX))?;
        let saved: Vec<(&str, Option<Value>)> = [var, "foreach", "velocityCount"]
            .into_iter()
            .map(|name| (name, self.vars.get(name).cloned()))
            .collect();
        let len = items.len();
        for (index, item) in items.into_iter().enumerate() {
            if index >= self.limits.max_loop_iterations {
                return Err(EvalError::TooManyIterations {
                    limit: self.limits.max_loop_iterations,
                    line: pos.line,
                    column: pos.column,
                });
            }
            self.vars.insert(var.to_string(), item);
            self.vars.insert(
                "foreach".into(),
                Value::Loop(LoopInfo {
                    index,
                    has_next: index + 1 < len,
                }),
            );
            self.vars.insert(
                "velocityCount".into(),
                Value::Int(i64::try_from(index + 1).unwrap_or(i64::MAX)),
            );
            if let Flow::Break = self.block(body, out, sink)? {
                break;
            }
        }
        for (name, old) in saved {
            match old {
                Some(v) => self.vars.insert(name.to_string(), v),
                None => self.vars.remove(name),
            };
        }
        Ok(())
    }

    fn set(&mut self, target: &Reference, value: &Expr) -> Result<()> {
        let v = self.expr(value)?;
        if v.is_null() {
            // Velocity 1.7: assigning null leaves the variable as it was.
            return Ok(());
        }
        let Some((last, prefix)) = target.chain.split_last() else {
            self.vars.insert(target.name.clone(), v);
            return Ok(());
        };
        if target.name == "context" && !self.vars.contains_key("context") {
            let mut path = Vec::new();
            for access in &target.chain {
                match access {
                    Access::Property(p) => path.push(p.clone()),
                    Access::Index(e) => {
                        let k = self.expr(e)?;
                        path.push(self.display(&k)?);
                    }
                    Access::Method(..) => return Ok(()),
                }
            }
            let path = path.join(".");
            if path.starts_with("requestOverride.") || path.starts_with("responseOverride.") {
                let text = self.display(&v)?;
                self.overrides.insert(path, text);
            }
            return Ok(());
        }
        let base = self.lookup(&target.name)?;
        let base = self.walk(base, prefix, target)?;
        match (base, last) {
            (Value::Map(id), Access::Property(k)) => {
                let (_, added) = self.arena.maps[id].put(k, v);
                if added {
                    self.add_elements(1)?;
                }
            }
            (Value::Map(id), Access::Index(e)) => {
                let k = self.expr(e)?;
                let k = self.display(&k)?;
                let (_, added) = self.arena.maps[id].put(&k, v);
                if added {
                    self.add_elements(1)?;
                }
            }
            (Value::List(id), Access::Index(e)) => {
                let i = self.expr(e)?;
                if let Some(i) = as_index(&i)
                    && let Some(slot) = self.arena.lists[id].get_mut(i)
                {
                    *slot = v;
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- references -----

    fn lookup(&mut self, name: &str) -> Result<Value> {
        if let Some(v) = self.vars.get(name) {
            return Ok(v.clone());
        }
        Ok(match name {
            "input" => Value::Input,
            "util" => Value::Util,
            "context" => Value::Context("".into()),
            "stageVariables" => self.stage_variables()?,
            _ => Value::Null,
        })
    }

    fn stage_variables(&mut self) -> Result<Value> {
        if let Some(v) = &self.stage_variables {
            return Ok(v.clone());
        }
        let mut map = MapData::default();
        for (k, v) in self.facts.stage_variables {
            map.put(k, Value::str(v.as_str()));
        }
        let v = self.new_map(map)?;
        self.stage_variables = Some(v.clone());
        Ok(v)
    }

    /// A reference's value (`Null` when undefined), `$context` values resolved.
    fn reference(&mut self, r: &Reference) -> Result<Value> {
        self.enter()?;
        let base = self.lookup(&r.name)?;
        let v = self.walk(base, &r.chain, r)?;
        let v = self.concrete(v);
        self.leave();
        Ok(v)
    }

    fn walk(&mut self, mut v: Value, chain: &[Access], r: &Reference) -> Result<Value> {
        for access in chain {
            self.tick(1)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            v = match access {
                Access::Property(p) => self.property(v, p),
                Access::Index(e) => {
                    let key = self.expr(e)?;
                    self.index(v, &key)?
                }
                Access::Method(name, args) => {
                    let mut values = Vec::with_capacity(args.len());
                    for a in args {
                        values.push(self.expr(a)?);
                    }
                    self.method(v, name, &values, r)?
                }
            };
        }
        Ok(v)
    }

    /// Resolves `$context.…` to its text (or `Null`); other values are returned as they are.
    fn concrete(&self, v: Value) -> Value {
        match v {
            Value::Context(path) => {
                if path.is_empty() {
                    return Value::Null;
                }
                if path.starts_with("requestOverride.") || path.starts_with("responseOverride.") {
                    return self
                        .overrides
                        .get(&*path)
                        .map_or(Value::Null, |s| Value::str(s.as_str()));
                }
                (self.facts.context)(&path).map_or(Value::Null, Value::str)
            }
            v => v,
        }
    }

    fn property(&mut self, v: Value, name: &str) -> Value {
        match v {
            Value::Map(id) => self.arena.maps[id]
                .get(name)
                .cloned()
                .unwrap_or(Value::Null),
            Value::Context(path) => {
                let joined = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                Value::Context(joined.into())
            }
            Value::Input if name == "body" => Value::str(self.facts.body),
            Value::Loop(info) => loop_property(info, name),
            Value::Str(s) if name == "empty" => Value::Bool(s.is_empty()),
            Value::List(id) if name == "empty" => Value::Bool(self.arena.lists[id].is_empty()),
            _ => Value::Null,
        }
    }

    fn index(&mut self, v: Value, key: &Value) -> Result<Value> {
        Ok(match self.concrete(v) {
            Value::List(id) => as_index(key)
                .and_then(|i| self.arena.lists[id].get(i).cloned())
                .unwrap_or(Value::Null),
            Value::Map(id) => {
                let k = self.display(key)?;
                self.arena.maps[id].get(&k).cloned().unwrap_or(Value::Null)
            }
            v @ (Value::Input | Value::Loop(_)) => {
                let k = self.display(key)?;
                self.property(v, &k)
            }
            _ => Value::Null,
        })
    }

    // ----- expressions -----

    fn expr(&mut self, e: &Expr) -> Result<Value> {
        self.tick(1)?;
        self.enter()?;
        let v = match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(i) => Value::Int(*i),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::str(s.as_str()),
            Expr::Interp(nodes) => {
                let mut s = String::new();
                // A #break inside a string literal ends the string.
                self.block(nodes, &mut s, Sink::Str)?;
                Value::str(s)
            }
            Expr::Ref(r) => self.reference(r)?,
            Expr::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.expr(item)?);
                }
                self.new_list(values)?
            }
            Expr::Range(a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                match (as_int(&a), as_int(&b)) {
                    (Some(a), Some(b)) => {
                        let count = usize::try_from(a.abs_diff(b)).unwrap_or(usize::MAX);
                        if count >= self.limits.max_elements {
                            return Err(EvalError::TooManyElements {
                                limit: self.limits.max_elements,
                            });
                        }
                        let items: Vec<Value> = if a <= b {
                            (a..=b).map(Value::Int).collect()
                        } else {
                            (b..=a).rev().map(Value::Int).collect()
                        };
                        self.new_list(items)?
                    }
                    _ => Value::Null,
                }
            }
            Expr::Map(entries) => {
                let mut map = MapData::default();
                for (k, v) in entries {
                    let k = self.expr(k)?;
                    let k = self.display(&k)?;
                    let v = self.expr(v)?;
                    map.put(&k, v);
                }
                self.new_map(map)?
            }
            Expr::Not(inner) => {
                let v = self.expr(inner)?;
                Value::Bool(!self.truthy(&v))
            }
            Expr::Neg(inner) => match self.expr(inner)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map_or(Value::Float(-(i as f64)), Value::Int),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::Binary(op, a, b) => self.binary(*op, a, b)?,
        };
        self.leave();
        Ok(v)
    }

    fn truthy(&self, v: &Value) -> bool {
        !matches!(v, Value::Null | Value::Bool(false))
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<Value> {
        match op {
            BinOp::And => {
                let l = self.expr(a)?;
                if !self.truthy(&l) {
                    return Ok(Value::Bool(false));
                }
                let r = self.expr(b)?;
                return Ok(Value::Bool(self.truthy(&r)));
            }
            BinOp::Or => {
                let l = self.expr(a)?;
                if self.truthy(&l) {
                    return Ok(Value::Bool(true));
                }
                let r = self.expr(b)?;
                return Ok(Value::Bool(self.truthy(&r)));
            }
            _ => {}
        }
        let l = self.expr(a)?;
        let r = self.expr(b)?;
        Ok(match op {
            BinOp::Eq => Value::Bool(self.loose_eq(&l, &r)?),
            BinOp::Ne => Value::Bool(!self.loose_eq(&l, &r)?),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ord = match (&l, &r) {
                    (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                    _ => match (as_f64(&l), as_f64(&r)) {
                        (Some(x), Some(y)) => x.partial_cmp(&y),
                        _ => None,
                    },
                };
                Value::Bool(ord.is_some_and(|o| match op {
                    BinOp::Lt => o.is_lt(),
                    BinOp::Le => o.is_le(),
                    BinOp::Gt => o.is_gt(),
                    _ => o.is_ge(),
                }))
            }
            BinOp::Add if matches!(l, Value::Str(_)) || matches!(r, Value::Str(_)) => {
                if l.is_null() || r.is_null() {
                    return Ok(Value::Null);
                }
                let x = self.display(&l)?;
                let y = self.display(&r)?;
                self.check_len(x.len() + y.len())?;
                self.string(x + &y)?
            }
            _ => arithmetic(op, &l, &r),
        })
    }

    /// Velocity's `==`: numbers by value, same kinds by value, other kinds by their text.
    fn loose_eq(&mut self, l: &Value, r: &Value) -> Result<bool> {
        Ok(match (l, r) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::List(x), Value::List(y)) if x == y => true,
            (Value::Map(x), Value::Map(y)) if x == y => true,
            _ => match (as_f64(l), as_f64(r)) {
                (Some(x), Some(y)) => match (l, r) {
                    (Value::Int(a), Value::Int(b)) => a == b,
                    _ => x == y,
                },
                _ => self.display(l)? == self.display(r)?,
            },
        })
    }

    /// Java's `equals`: same kind and same value.
    fn strict_eq(&mut self, l: &Value, r: &Value) -> Result<bool> {
        Ok(match (l, r) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(_), _)
            | (Value::Float(_), _)
            | (_, Value::Int(_))
            | (_, Value::Float(_)) => false,
            _ => self.loose_eq(l, r)?,
        })
    }

    // ----- text -----

    /// The text of a value, as Java's `toString` writes it.
    fn display(&mut self, v: &Value) -> Result<String> {
        let mut out = String::new();
        self.display_into(v, &mut out)?;
        Ok(out)
    }

    fn display_into(&mut self, v: &Value, out: &mut String) -> Result<()> {
        self.enter()?;
        self.tick(1)?;
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&format_float(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(id) => {
                out.push('[');
                let len = self.arena.lists[*id].len();
                for i in 0..len {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let item = self.arena.lists[*id].get(i).cloned().unwrap_or(Value::Null);
                    self.display_into(&item, out)?;
                    self.check_len(out.len())?;
                }
                out.push(']');
            }
            Value::Map(id) => {
                out.push('{');
                let len = self.arena.maps[*id].entries.len();
                for i in 0..len {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let Some((k, item)) = self.arena.maps[*id].entries.get(i).cloned() else {
                        break;
                    };
                    out.push_str(&k);
                    out.push('=');
                    self.display_into(&item, out)?;
                    self.check_len(out.len())?;
                }
                out.push('}');
            }
            Value::Context(_) => {
                let resolved = self.concrete(v.clone());
                if !matches!(resolved, Value::Context(_)) {
                    self.display_into(&resolved, out)?;
                }
            }
            Value::Input => out.push_str("input"),
            Value::Util => out.push_str("util"),
            Value::Loop(_) => out.push_str("foreach"),
        }
        self.check_len(out.len())?;
        self.leave();
        Ok(())
    }

    /// The text of an argument that Java would take as a `String` (`None` for null).
    fn arg_str(&mut self, args: &[Value], i: usize) -> Result<Option<String>> {
        match args.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let v = v.clone();
                self.display(&v).map(Some)
            }
        }
    }

    // ----- JSON -----

    fn body_json(&mut self, r: &Reference) -> Result<Rc<Json>> {
        if let Some(j) = &self.body_json {
            return Ok(j.clone());
        }
        let body = self.facts.body;
        self.tick_bytes(body.len())?;
        let json = if body.trim().is_empty() {
            Json::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(body).map_err(|e| EvalError::InvalidJson {
                what: "the body",
                message: e.to_string(),
                line: r.pos.line,
                column: r.pos.column,
            })?
        };
        let json = Rc::new(json);
        self.body_json = Some(json.clone());
        Ok(json)
    }

    fn json_value(&mut self, j: &Json) -> Result<Value> {
        self.enter()?;
        let v = match j {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => self.string(s.clone())?,
            Json::Array(items) => {
                self.add_elements(items.len())?;
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.json_value(item)?);
                }
                self.elements -= items.len();
                self.new_list(values)?
            }
            Json::Object(m) => {
                self.add_elements(m.len())?;
                let mut map = MapData::default();
                for (k, v) in m {
                    let v = self.json_value(v)?;
                    map.put(k, v);
                }
                self.elements -= m.len();
                self.new_map(map)?
            }
        };
        self.leave();
        Ok(v)
    }

    fn select(&mut self, path: &str, r: &Reference, method: &str) -> Result<Option<Json>> {
        let segs = jsonpath::parse(path).map_err(|m| method_error(r, method, m))?;
        let root = self.body_json(r)?;
        let selected = jsonpath::select(&root, &segs);
        if let Some(j) = &selected {
            self.tick_bytes(approximate_size(j))?;
        }
        Ok(selected)
    }

    // ----- methods -----

    fn method(&mut self, v: Value, name: &str, args: &[Value], r: &Reference) -> Result<Value> {
        self.tick(1)?;
        let v = self.concrete(v);
        match v {
            Value::Input => self.input_method(name, args, r),
            Value::Util => self.util_method(name, args, r),
            Value::Str(s) => self.string_method(&s, name, args, r),
            Value::List(id) => self.list_method(id, name, args, r),
            Value::Map(id) => self.map_method(id, name, args),
            Value::Loop(info) => Ok(match name {
                "hasNext" => Value::Bool(info.has_next),
                "getIndex" => loop_property(info, "index"),
                "getCount" => loop_property(info, "count"),
                "isFirst" => loop_property(info, "first"),
                "isLast" => loop_property(info, "last"),
                _ => Value::Null,
            }),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => match name {
                "toString" => {
                    let s = self.display(&v)?;
                    Ok(Value::str(s))
                }
                "equals" => match args.first() {
                    Some(other) => Ok(Value::Bool(self.strict_eq(&v, other)?)),
                    None => Ok(Value::Null),
                },
                "intValue" | "longValue" => {
                    Ok(as_f64(&v).map_or(Value::Null, |f| Value::Int(f as i64)))
                }
                "doubleValue" | "floatValue" => Ok(as_f64(&v).map_or(Value::Null, Value::Float)),
                "compareTo" => Ok(match (as_f64(&v), args.first().and_then(as_f64)) {
                    (Some(a), Some(b)) => a
                        .partial_cmp(&b)
                        .map_or(Value::Null, |o| Value::Int(o as i64)),
                    _ => Value::Null,
                }),
                _ => Ok(Value::Null),
            },
            Value::Null | Value::Context(_) => Ok(Value::Null),
        }
    }

    fn input_method(&mut self, name: &str, args: &[Value], r: &Reference) -> Result<Value> {
        match (name, args.len()) {
            ("json", 1) => {
                let Some(path) = self.arg_str(args, 0)? else {
                    return Ok(Value::Null);
                };
                match self.select(&path, r, "$input.json")? {
                    // A path that selects nothing gives an empty JSON string.
                    None => Ok(Value::str("\"\"")),
                    Some(j) => {
                        let text = serde_json::to_string(&j).unwrap_or_default();
                        self.string(text)
                    }
                }
            }
            ("path", 1) => {
                let Some(path) = self.arg_str(args, 0)? else {
                    return Ok(Value::Null);
                };
                match self.select(&path, r, "$input.path")? {
                    None => Ok(Value::Null),
                    Some(j) => self.json_value(&j),
                }
            }
            ("params", 0) => self.params(),
            ("params", 1) => {
                let Some(key) = self.arg_str(args, 0)? else {
                    return Ok(Value::str(""));
                };
                let facts = self.facts;
                let found = facts
                    .path
                    .iter()
                    .find(|(k, _)| *k == key)
                    .or_else(|| facts.querystring.iter().find(|(k, _)| *k == key))
                    .or_else(|| {
                        facts
                            .header
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                    });
                Ok(Value::str(found.map_or("", |(_, v)| v.as_str())))
            }
            ("getBody", 0) => Ok(Value::str(self.facts.body)),
            _ => Ok(Value::Null),
        }
    }

    /// `$input.params()`: `{path: {…}, querystring: {…}, header: {…}}`, built once.
    fn params(&mut self) -> Result<Value> {
        if let Some(v) = &self.params {
            return Ok(v.clone());
        }
        let facts = self.facts;
        let mut all = MapData::default();
        for (kind, items, case_insensitive) in [
            ("path", facts.path, false),
            ("querystring", facts.querystring, false),
            ("header", facts.header, true),
        ] {
            let mut map = MapData::default();
            map.case_insensitive = case_insensitive;
            for (k, v) in items {
                map.put(k, Value::str(v.as_str()));
            }
            let v = self.new_map(map)?;
            all.put(kind, v);
        }
        let v = self.new_map(all)?;
        self.params = Some(v.clone());
        Ok(v)
    }

    fn util_method(&mut self, name: &str, args: &[Value], r: &Reference) -> Result<Value> {
        if args.len() != 1 {
            return Ok(Value::Null);
        }
        let Some(s) = self.arg_str(args, 0)? else {
            return Ok(Value::Null);
        };
        self.tick_bytes(s.len())?;
        let method = format!("$util.{name}");
        match name {
            "escapeJavaScript" => self.string(util::escape_javascript(&s)),
            "urlEncode" => self.string(util::url_encode(&s)),
            "urlDecode" => {
                let decoded = util::url_decode(&s).map_err(|m| method_error(r, &method, m))?;
                self.string(decoded)
            }
            "base64Encode" => self.string(util::base64_encode(&s)),
            "base64Decode" => {
                let decoded = util::base64_decode(&s).map_err(|m| method_error(r, &method, m))?;
                self.string(decoded)
            }
            "parseJson" => {
                let j: Json = serde_json::from_str(&s).map_err(|e| EvalError::InvalidJson {
                    what: "the argument of $util.parseJson",
                    message: e.to_string(),
                    line: r.pos.line,
                    column: r.pos.column,
                })?;
                self.json_value(&j)
            }
            _ => Ok(Value::Null),
        }
    }

    fn regex(&mut self, pattern: &str, whole: bool, r: &Reference, method: &str) -> Result<Regex> {
        let key = if whole {
            format!("\\A(?:{pattern})\\z")
        } else {
            pattern.to_string()
        };
        if let Some(re) = self.regexes.get(&key) {
            return Ok(re.clone());
        }
        self.tick_bytes(key.len() * 64)?;
        let re = RegexBuilder::new(&key)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map_err(|e| method_error(r, method, format!("bad regular expression: {e}")))?;
        if self.regexes.len() >= MAX_CACHED_REGEXES {
            self.regexes.clear();
        }
        self.regexes.insert(key, re.clone());
        Ok(re)
    }

    fn string_method(
        &mut self,
        s: &Rc<str>,
        name: &str,
        args: &[Value],
        r: &Reference,
    ) -> Result<Value> {
        let out_of_range = |what: String| method_error(r, name, what);
        let int_arg = |i: usize| args.get(i).and_then(as_int);
        self.tick_bytes(s.len())?;
        Ok(match (name, args.len()) {
            ("length", 0) => Value::Int(char_len(s)),
            ("isEmpty", 0) => Value::Bool(s.is_empty()),
            ("toString", 0) | ("intern", 0) => Value::Str(s.clone()),
            ("toLowerCase", 0) => self.string(s.to_lowercase())?,
            ("toUpperCase", 0) => self.string(s.to_uppercase())?,
            ("trim", 0) => Value::str(s.trim_matches(|c: char| c <= ' ')),
            ("strip", 0) => Value::str(s.trim()),
            ("isBlank", 0) => Value::Bool(s.trim().is_empty()),
            ("hashCode", 0) => Value::Int(java_hash(s)),
            ("charAt", 1) => {
                let i = int_arg(0).unwrap_or(-1);
                match usize::try_from(i).ok().and_then(|i| s.chars().nth(i)) {
                    Some(c) => Value::str(c.to_string()),
                    None => return Err(out_of_range(format!("index {i} is out of range"))),
                }
            }
            ("substring", 1 | 2) => {
                let len = char_len(s);
                let begin = int_arg(0).unwrap_or(-1);
                let end = if args.len() == 2 {
                    int_arg(1).unwrap_or(-1)
                } else {
                    len
                };
                if begin < 0 || end > len || begin > end {
                    return Err(out_of_range(format!(
                        "begin {begin}, end {end}, length {len}"
                    )));
                }
                let (b, e) = (char_to_byte(s, begin), char_to_byte(s, end));
                Value::str(&s[b..e])
            }
            ("indexOf" | "lastIndexOf", 1 | 2) => {
                let Some(needle) = self.arg_str(args, 0)? else {
                    return Ok(Value::Null);
                };
                let from = if args.len() == 2 {
                    int_arg(1).unwrap_or(0).clamp(0, char_len(s))
                } else if name == "indexOf" {
                    0
                } else {
                    char_len(s)
                };
                let from_byte = char_to_byte(s, from);
                let found = if name == "indexOf" {
                    s[from_byte..].find(&needle).map(|b| b + from_byte)
                } else {
                    let limit = (from_byte + needle.len()).min(s.len());
                    let limit = (0..=limit)
                        .rev()
                        .find(|i| s.is_char_boundary(*i))
                        .unwrap_or(0);
                    s[..limit].rfind(&needle)
                };
                Value::Int(found.map_or(-1, |b| byte_to_char(s, b)))
            }
            ("contains", 1) => match self.arg_str(args, 0)? {
                Some(n) => Value::Bool(s.contains(n.as_str())),
                None => Value::Null,
            },
            ("startsWith", 1) => match self.arg_str(args, 0)? {
                Some(n) => Value::Bool(s.starts_with(n.as_str())),
                None => Value::Null,
            },
            ("startsWith", 2) => match (self.arg_str(args, 0)?, int_arg(1)) {
                (Some(n), Some(off)) if off >= 0 && off <= char_len(s) => {
                    Value::Bool(s[char_to_byte(s, off)..].starts_with(n.as_str()))
                }
                (Some(_), Some(_)) => Value::Bool(false),
                _ => Value::Null,
            },
            ("endsWith", 1) => match self.arg_str(args, 0)? {
                Some(n) => Value::Bool(s.ends_with(n.as_str())),
                None => Value::Null,
            },
            ("equals", 1) => match args.first() {
                Some(Value::Str(o)) => Value::Bool(**o == **s),
                _ => Value::Bool(false),
            },
            ("equalsIgnoreCase", 1) => match args.first() {
                Some(Value::Str(o)) => Value::Bool(o.to_lowercase() == s.to_lowercase()),
                _ => Value::Bool(false),
            },
            ("compareTo", 1) => match args.first() {
                Some(Value::Str(o)) => Value::Int(s.cmp(o) as i64),
                _ => Value::Null,
            },
            ("concat", 1) => match self.arg_str(args, 0)? {
                Some(o) => {
                    self.check_len(s.len() + o.len())?;
                    self.string(format!("{s}{o}"))?
                }
                None => Value::Null,
            },
            ("replace", 2) => match (self.arg_str(args, 0)?, self.arg_str(args, 1)?) {
                (Some(from), Some(to)) => self.replace_literal(s, &from, &to)?,
                _ => Value::Null,
            },
            ("replaceAll" | "replaceFirst", 2) => {
                match (self.arg_str(args, 0)?, self.arg_str(args, 1)?) {
                    (Some(pattern), Some(rep)) => {
                        let re = self.regex(&pattern, false, r, name)?;
                        let rep =
                            util::java_replacement(&rep).map_err(|m| method_error(r, name, m))?;
                        self.replace_regex(s, &re, &rep, name == "replaceFirst")?
                    }
                    _ => Value::Null,
                }
            }
            ("matches", 1) => match self.arg_str(args, 0)? {
                Some(pattern) => {
                    let re = self.regex(&pattern, true, r, name)?;
                    Value::Bool(re.is_match(s))
                }
                None => Value::Null,
            },
            ("split", 1 | 2) => match self.arg_str(args, 0)? {
                Some(pattern) => {
                    let limit = if args.len() == 2 {
                        int_arg(1).unwrap_or(0)
                    } else {
                        0
                    };
                    let re = self.regex(&pattern, false, r, name)?;
                    self.split(s, &re, limit)?
                }
                None => Value::Null,
            },
            _ => Value::Null,
        })
    }

    fn replace_literal(&mut self, s: &str, from: &str, to: &str) -> Result<Value> {
        let count = if from.is_empty() {
            s.chars().count() + 1
        } else {
            s.matches(from).count()
        };
        let len = (s.len() - count.saturating_mul(from.len()).min(s.len()))
            .saturating_add(count.saturating_mul(to.len()));
        self.check_len(len)?;
        self.string(s.replace(from, to))
    }

    fn replace_regex(&mut self, s: &str, re: &Regex, rep: &str, first: bool) -> Result<Value> {
        let mut out = String::new();
        let mut last = 0;
        for caps in re.captures_iter(s) {
            self.tick(1)?;
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&s[last..m.start()]);
            caps.expand(rep, &mut out);
            last = m.end();
            self.check_len(out.len())?;
            if first {
                break;
            }
        }
        out.push_str(&s[last..]);
        self.string(out)
    }

    /// Java's `String.split`: a zero-width match at the start gives no leading empty string;
    /// with limit 0 trailing empty strings are removed.
    fn split(&mut self, s: &str, re: &Regex, limit: i64) -> Result<Value> {
        if s.is_empty() {
            return self.new_list(vec![Value::str("")]);
        }
        let mut parts: Vec<&str> = match usize::try_from(limit) {
            Ok(n) if n > 0 => re.splitn(s, n).collect(),
            _ => re.split(s).collect(),
        };
        if re.find(s).is_some_and(|m| m.start() == 0 && m.end() == 0) && parts.first() == Some(&"")
        {
            parts.remove(0);
        }
        if limit == 0 {
            while parts.len() > 1 && parts.last() == Some(&"") {
                parts.pop();
            }
            if parts.len() == 1 && parts[0].is_empty() && re.is_match(s) {
                parts.clear();
            }
        }
        self.add_elements(parts.len())?;
        self.elements -= parts.len();
        let items = parts.into_iter().map(Value::str).collect();
        self.new_list(items)
    }

    fn list_method(
        &mut self,
        id: usize,
        name: &str,
        args: &[Value],
        r: &Reference,
    ) -> Result<Value> {
        let len = self.arena.lists[id].len();
        Ok(match (name, args.len()) {
            ("size", 0) => Value::Int(i64::try_from(len).unwrap_or(i64::MAX)),
            ("isEmpty", 0) => Value::Bool(len == 0),
            ("get", 1) => match args.first().and_then(as_index) {
                Some(i) if i < len => self.arena.lists[id][i].clone(),
                _ => {
                    return Err(method_error(
                        r,
                        name,
                        format!("index out of range for a list of {len}"),
                    ));
                }
            },
            ("add", 1) => {
                self.add_elements(1)?;
                self.arena.lists[id].push(args[0].clone());
                Value::Bool(true)
            }
            ("add", 2) => match args.first().and_then(as_index) {
                Some(i) if i <= len => {
                    self.add_elements(1)?;
                    self.arena.lists[id].insert(i, args[1].clone());
                    Value::Null
                }
                _ => return Err(method_error(r, name, "index out of range")),
            },
            ("set", 2) => match args.first().and_then(as_index) {
                Some(i) if i < len => {
                    std::mem::replace(&mut self.arena.lists[id][i], args[1].clone())
                }
                _ => return Err(method_error(r, name, "index out of range")),
            },
            ("addAll", 1) => match &args[0] {
                Value::List(other) => {
                    let items = self.arena.lists[*other].clone();
                    self.add_elements(items.len())?;
                    self.arena.lists[id].extend(items);
                    Value::Bool(true)
                }
                _ => Value::Null,
            },
            ("contains" | "indexOf", 1) => {
                let mut found = None;
                for i in 0..len {
                    let item = self.arena.lists[id][i].clone();
                    self.tick(1)?;
                    if self.strict_eq(&item, &args[0])? {
                        found = Some(i);
                        break;
                    }
                }
                if name == "contains" {
                    Value::Bool(found.is_some())
                } else {
                    Value::Int(found.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)))
                }
            }
            ("remove", 1) => match &args[0] {
                Value::Int(_) => match as_index(&args[0]) {
                    Some(i) if i < len => self.arena.lists[id].remove(i),
                    _ => return Err(method_error(r, name, "index out of range")),
                },
                other => {
                    let other = other.clone();
                    let mut removed = false;
                    for i in 0..len {
                        let item = self.arena.lists[id][i].clone();
                        if self.strict_eq(&item, &other)? {
                            self.arena.lists[id].remove(i);
                            removed = true;
                            break;
                        }
                    }
                    Value::Bool(removed)
                }
            },
            ("clear", 0) => {
                self.arena.lists[id].clear();
                Value::Null
            }
            ("toString", 0) => {
                let s = self.display(&Value::List(id))?;
                Value::str(s)
            }
            _ => Value::Null,
        })
    }

    fn map_method(&mut self, id: usize, name: &str, args: &[Value]) -> Result<Value> {
        let len = self.arena.maps[id].entries.len();
        Ok(match (name, args.len()) {
            ("size", 0) => Value::Int(i64::try_from(len).unwrap_or(i64::MAX)),
            ("isEmpty", 0) => Value::Bool(len == 0),
            ("get", 1) => match self.arg_str(args, 0)? {
                Some(k) => self.arena.maps[id].get(&k).cloned().unwrap_or(Value::Null),
                None => Value::Null,
            },
            ("containsKey", 1) => match self.arg_str(args, 0)? {
                Some(k) => Value::Bool(self.arena.maps[id].get(&k).is_some()),
                None => Value::Bool(false),
            },
            ("containsValue", 1) => {
                let mut found = false;
                for i in 0..len {
                    let item = self.arena.maps[id].entries[i].1.clone();
                    self.tick(1)?;
                    if self.strict_eq(&item, &args[0])? {
                        found = true;
                        break;
                    }
                }
                Value::Bool(found)
            }
            ("put", 2) => match self.arg_str(args, 0)? {
                Some(k) => {
                    let (old, added) = self.arena.maps[id].put(&k, args[1].clone());
                    if added {
                        self.add_elements(1)?;
                    }
                    old.unwrap_or(Value::Null)
                }
                None => Value::Null,
            },
            ("putAll", 1) => {
                if let Value::Map(other) = &args[0] {
                    let entries = self.arena.maps[*other].entries.clone();
                    for (k, v) in entries {
                        let (_, added) = self.arena.maps[id].put(&k, v);
                        if added {
                            self.add_elements(1)?;
                        }
                    }
                }
                Value::Null
            }
            ("remove", 1) => match self.arg_str(args, 0)? {
                Some(k) => self.arena.maps[id].remove(&k).unwrap_or(Value::Null),
                None => Value::Null,
            },
            ("keySet", 0) => {
                let keys = self.arena.maps[id]
                    .entries
                    .iter()
                    .map(|(k, _)| Value::Str(k.clone()))
                    .collect();
                self.new_list(keys)?
            }
            ("values", 0) => {
                let values = self.arena.maps[id]
                    .entries
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect();
                self.new_list(values)?
            }
            ("entrySet", 0) => {
                let entries = self.arena.maps[id].entries.clone();
                let mut items = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let mut entry = MapData::default();
                    entry.put("key", Value::Str(k));
                    entry.put("value", v);
                    items.push(self.new_map(entry)?);
                }
                self.new_list(items)?
            }
            ("toString", 0) => {
                let s = self.display(&Value::Map(id))?;
                Value::str(s)
            }
            _ => Value::Null,
        })
    }
}

fn loop_property(info: LoopInfo, name: &str) -> Value {
    let count = |n: usize| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match name {
        "index" => count(info.index),
        "count" => count(info.index + 1),
        "hasNext" => Value::Bool(info.has_next),
        "first" => Value::Bool(info.index == 0),
        "last" => Value::Bool(!info.has_next),
        _ => Value::Null,
    }
}

fn arithmetic(op: BinOp, l: &Value, r: &Value) -> Value {
    if let (Value::Int(a), Value::Int(b)) = (l, r) {
        let (a, b) = (*a, *b);
        let exact = match op {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            BinOp::Div if b == 0 => return Value::Null,
            BinOp::Div => a.checked_div(b),
            BinOp::Rem if b == 0 => return Value::Null,
            BinOp::Rem => a.checked_rem(b),
            _ => return Value::Null,
        };
        if let Some(v) = exact {
            return Value::Int(v);
        }
    }
    match (as_f64(l), as_f64(r)) {
        (Some(a), Some(b)) => match op {
            BinOp::Add => Value::Float(a + b),
            BinOp::Sub => Value::Float(a - b),
            BinOp::Mul => Value::Float(a * b),
            BinOp::Div if b == 0.0 => Value::Null,
            BinOp::Div => Value::Float(a / b),
            BinOp::Rem if b == 0.0 => Value::Null,
            BinOp::Rem => Value::Float(a % b),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_index(v: &Value) -> Option<usize> {
    as_int(v).and_then(|i| usize::try_from(i).ok())
}

fn char_len(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

/// The byte offset of character `n` (clamped to the end).
fn char_to_byte(s: &str, n: i64) -> usize {
    let n = usize::try_from(n).unwrap_or(0);
    s.char_indices().nth(n).map_or(s.len(), |(b, _)| b)
}

fn byte_to_char(s: &str, b: usize) -> i64 {
    i64::try_from(s[..b].chars().count()).unwrap_or(i64::MAX)
}

/// Java's `String.hashCode` (over UTF-16 units).
fn java_hash(s: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    i64::from(h)
}

/// A cheap upper estimate of a JSON value's size, for the step budget.
fn approximate_size(j: &Json) -> usize {
    match j {
        Json::String(s) => s.len(),
        Json::Array(a) => a.len() * 8,
        Json::Object(m) => m.len() * 16,
        _ => 8,
    }
}
