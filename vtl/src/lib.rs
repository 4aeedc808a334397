//! The Velocity (VTL) subset that Amazon API Gateway mapping templates are written in: a parser
//! whose errors carry a line and a column, and an evaluator with hard bounds.
//!
//! `causeway-compile` parses every template of a route ([`Template::parse`]) and rejects the route
//! on a syntax error; the proxy parses the same source again when it builds its tables (parsing is
//! deterministic) and evaluates it per request with [`Template::render`]. The evaluator reads the
//! facts of a request only through [`Facts`] (body, parameters, stage variables and a `$context`
//! resolver), so the proxy's one request context stays the only resolver of `$context.*`.
//!
//! Bounds ([`Limits`]): iterations of each `#foreach` (1,000, API Gateway's quota), output size,
//! size of every string built, list and map elements, nesting depth, a step budget, and an
//! optional wall-clock budget. A template that exceeds one fails with an [`EvalError`]; it can
//! neither hang nor balloon a worker. Parsing is bounded too: source size and nesting depth.
//!
//! What is supported: `$var`, `${var}`, `$!var` (quiet), property, index and method access,
//! string (double-quoted strings interpolate), number, boolean, list, range and map literals,
//! `#set`, `#if`/`#elseif`/`#else`/`#end`, `#foreach` with `$foreach.index`, `.count`,
//! `.hasNext`, `.first`, `.last` and `$velocityCount`, `#break`, `##` and `#* *#` comments,
//! `#[[ ]]#` unparsed text, arithmetic, comparison and logical operators (also `and`, `or`,
//! `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`), the usual `String`, `List` and `Map` methods, and
//! API Gateway's `$input`, `$util`, `$context` and `$stageVariables`. Lines holding only a
//! directive or a comment leave no blank line behind (Velocity 2's "lines" space gobbling).
//! Other directives (`#macro`, `#define`, `#parse`, `#include`, `#evaluate`, `#stop`) are syntax
//! errors. No I/O, no async, no global state.

mod eval;
mod jsonpath;
mod parse;
mod util;
mod value;

use std::collections::BTreeMap;
use std::time::Duration;

pub use parse::ParseError;

/// Largest template source accepted, bytes (API Gateway's mapping template quota is 300 KB).
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;
/// Deepest nesting of blocks and expressions the parser accepts.
pub const MAX_PARSE_DEPTH: usize = 64;

/// A parsed template. Parse once, render many times; parsing the same text always gives the same
/// template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses a template. Errors name the line and column (1-based, in characters).
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        parse::parse(source).map(|nodes| Self { nodes })
    }

    /// Renders the template against the facts of one request, within `limits`.
    pub fn render(&self, facts: &Facts<'_>, limits: &Limits) -> Result<Rendered, EvalError> {
        eval::render(&self.nodes, facts, limits)
    }
}

/// The facts a template may read. `$input` reads the body and parameters, `$stageVariables` the
/// stage variables, `$context.a.b` calls `context("a.b")`.
pub struct Facts<'a> {
    /// The payload `$input.body`, `$input.json()` and `$input.path()` read: the request body in
    /// a request template, the integration's response body in a response template.
    pub body: &'a str,
    /// Path parameters, in route order.
    pub path: &'a [(String, String)],
    /// Query-string parameters (one value per name).
    pub querystring: &'a [(String, String)],
    /// Request headers (one value per name). `$input.params(name)` finds them whatever the case.
    pub header: &'a [(String, String)],
    /// Stage variables.
    pub stage_variables: &'a BTreeMap<String, String>,
    /// Resolves `$context.NAME` (dotted, for example `identity.sourceIp`); `None`: undefined.
    pub context: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("body_bytes", &self.body.len())
            .field("path", &self.path)
            .field("querystring", &self.querystring)
            .field("header", &self.header)
            .field("stage_variables", &self.stage_variables)
            .finish_non_exhaustive()
    }
}

/// The bounds of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest output, bytes.
    pub max_output_bytes: usize,
    /// Largest string any operation may build (concatenation, `replace`, `$util` functions), bytes.
    pub max_string_bytes: usize,
    /// Most iterations of one `#foreach` (API Gateway: 1,000).
    pub max_loop_iterations: usize,
    /// Most list and map elements alive in one evaluation (including parsed JSON).
    pub max_elements: usize,
    /// Deepest nesting while evaluating (blocks, expressions, rendering nested collections).
    pub max_depth: usize,
    /// Evaluation steps (one per node, operator and method call, plus one per 16 bytes a string
    /// operation touches).
    pub max_steps: u64,
    /// Wall-clock budget, checked every 1,024 steps; `None`: steps only (deterministic).
    pub max_time: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_output_bytes: 1024 * 1024,
            max_string_bytes: 1024 * 1024,
            max_loop_iterations: 1000,
            max_elements: 100_000,
            max_depth: 64,
            max_steps: 2_000_000,
            max_time: Some(Duration::from_millis(200)),
        }
    }
}

/// The result of rendering a template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// The output text.
    pub body: String,
    /// Values set with `#set($context.requestOverride.… = …)` or
    /// `#set($context.responseOverride.… = …)`, by dotted path (for example
    /// `responseOverride.status`, `responseOverride.header.X-Id`), rendered as text.
    pub overrides: BTreeMap<String, String>,
}

/// Why an evaluation failed. Every bound has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The output grew past [`Limits::max_output_bytes`].
    #[error("template output exceeds {limit} bytes")]
    OutputTooLarge {
        /// The bound.
        limit: usize,
    },
    /// A string grew past [`Limits::max_string_bytes`].
    #[error("a string built by the template exceeds {limit} bytes")]
    StringTooLarge {
        /// The bound.
        limit: usize,
    },
    /// A `#foreach` ran more than [`Limits::max_loop_iterations`] times.
    #[error("the #foreach at line {line}, column {column} exceeds {limit} iterations")]
    TooManyIterations {
        /// The bound.
        limit: usize,
        /// Line of the `#foreach`.
        line: u32,
        /// Column of the `#foreach`.
        column: u32,
    },
    /// Lists and maps hold more than [`Limits::max_elements`] elements.
    #[error("the template holds more than {limit} list and map elements")]
    TooManyElements {
        /// The bound.
        limit: usize,
    },
    /// Nesting went deeper than [`Limits::max_depth`].
    #[error("the template nests deeper than {limit}")]
    TooDeep {
        /// The bound.
        limit: usize,
    },
    /// The step budget [`Limits::max_steps`] is spent.
    #[error("the template exceeds its budget of {limit} steps")]
    StepBudget {
        /// The bound.
        limit: u64,
    },
    /// The time budget [`Limits::max_time`] is spent.
    #[error("the template exceeds its time budget of {limit:?}")]
    TimeBudget {
        /// The bound.
        limit: Duration,
    },
    /// A payload that must be JSON is not (`$input.json`, `$input.path`, `$util.parseJson`).
    #[error("line {line}, column {column}: {what} is not valid JSON: {message}")]
    InvalidJson {
        /// What was parsed.
        what: &'static str,
        /// The JSON parser's message.
        message: String,
        /// Line of the reference.
        line: u32,
        /// Column of the reference.
        column: u32,
    },
    /// A method failed the way its Java counterpart throws (index out of range, bad regular
    /// expression, bad base64 or URL encoding, bad JSONPath).
    #[error("line {line}, column {column}: {method}: {message}")]
    Method {
        /// The method.
        method: String,
        /// What went wrong.
        message: String,
        /// Line of the reference.
        line: u32,
        /// Column of the reference.
        column: u32,
    },
}

/// Compiles an integration response's `selectionPattern` as API Gateway applies it: the regular
/// expression must match the whole subject (the backend status code, or a Lambda function's
/// error message), as Java's `String.matches`. Size-limited like the templates' own regexes.
pub fn selection_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("\\A(?:{pattern})\\z"))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
}

/// Selects from a JSON document with the JSONPath subset of `$input.json` (`$`, `.name`,
/// `['name']`, `[n]`, `[*]`); `Ok(None)` when nothing matches, `Err` (why) when the path is not
/// in the subset. Used for `integration.response.body.…` response parameters.
pub fn select_json_path(
    root: &serde_json::Value,
    path: &str,
) -> Result<Option<serde_json::Value>, String> {
    let segs = jsonpath::parse(path)?;
    Ok(jsonpath::select(root, &segs))
}

/// Checks that a JSONPath is in the supported subset, saying why not.
pub fn check_json_path(path: &str) -> Result<(), String> {
    jsonpath::parse(path).map(|_| ())
}
