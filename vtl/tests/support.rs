//! Shared fixtures: a request's facts built with a builder.

#![allow(dead_code)]

use std::collections::BTreeMap;

use causeway_vtl::{EvalError, Facts, Limits, Rendered, Template};

/// The facts of one request, owned.
#[derive(Default)]
pub struct Request {
    pub body: String,
    pub path: Vec<(String, String)>,
    pub querystring: Vec<(String, String)>,
    pub header: Vec<(String, String)>,
    pub stage_variables: BTreeMap<String, String>,
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }

    pub fn path(mut self, k: &str, v: &str) -> Self {
        self.path.push((k.into(), v.into()));
        self
    }

    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.querystring.push((k.into(), v.into()));
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.header.push((k.into(), v.into()));
        self
    }

    pub fn stage_variable(mut self, k: &str, v: &str) -> Self {
        self.stage_variables.insert(k.into(), v.into());
        self
    }

    pub fn context(mut self, k: &str, v: &str) -> Self {
        self.context.insert(k.into(), v.into());
        self
    }

    /// Parses and renders `template` with default limits.
    pub fn render(&self, template: &str) -> Result<Rendered, EvalError> {
        self.render_with(template, &Limits::default())
    }

    pub fn render_with(&self, template: &str, limits: &Limits) -> Result<Rendered, EvalError> {
        let template = Template::parse(template).expect("the template parses");
        let context = |name: &str| self.context.get(name).cloned();
        let facts = Facts {
            body: &self.body,
            path: &self.path,
            querystring: &self.querystring,
            header: &self.header,
            stage_variables: &self.stage_variables,
            context: &context,
        };
        template.render(&facts, limits)
    }

    /// The output of `template`, which must render.
    pub fn out(&self, template: &str) -> String {
        self.render(template).expect("the template renders").body
    }
}

/// Renders with no facts at all.
pub fn out(template: &str) -> String {
    Request::new().out(template)
}

/// Parses output that must be JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}
