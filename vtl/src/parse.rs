//! The parser: template text → nodes. Hand-written, recursive descent, bounded in depth.
//!
//! Text mode reads literal text, references (`$x.y`), directives (`#if(…)`) and comments.
//! Expression mode (inside directive parentheses, method arguments and index brackets) reads
//! literals, references and operators. Double-quoted string literals are parsed again in text
//! mode (they interpolate), with positions relative to the whole template.

use crate::{MAX_PARSE_DEPTH, MAX_TEMPLATE_BYTES};

/// A syntax error, with the 1-based line and column (in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// A position in the source, for runtime errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub column: u32,
}

/// One node of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// Literal text.
    Text(String),
    /// `$ref`: rendered; an undefined value renders the source text (or nothing if quiet).
    Ref(Reference),
    /// `#set($target = value)`.
    Set { target: Reference, value: Expr },
    /// `#if … #elseif … #else … #end`.
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    /// `#foreach($var in iterable) … #end`.
    Foreach {
        var: String,
        iterable: Expr,
        body: Vec<Node>,
        pos: Pos,
    },
    /// `#break`.
    Break,
}

/// A reference: `$name` followed by property, method and index accesses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reference {
    pub quiet: bool,
    pub name: String,
    pub chain: Vec<Access>,
    /// The text as written, rendered when the value is undefined.
    pub source: String,
    pub pos: Pos,
}

/// One step of a reference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Access {
    Property(String),
    Method(String, Vec<Expr>),
    Index(Expr),
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A double-quoted string with references or directives in it.
    Interp(Vec<Node>),
    Ref(Reference),
    List(Vec<Expr>),
    Range(Box<Expr>, Box<Expr>),
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Parses a whole template.
pub(crate) fn parse(source: &str) -> std::result::Result<Vec<Node>, ParseError> {
    let chars: Vec<char> = source.chars().collect();
    let lines = line_starts(&chars);
    let mut parser = Parser {
        chars: &chars,
        lines: &lines,
        pos: 0,
        end: chars.len(),
        depth: 0,
    };
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(parser.error_at(
            0,
            format!("the template is larger than {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    let (nodes, term) = parser.block()?;
    match term {
        Term::Eof => Ok(nodes),
        Term::End(at) => Err(parser.error_at(at, "#end without #if or #foreach")),
        Term::Else(at) => Err(parser.error_at(at, "#else without #if")),
        Term::ElseIf(at, _) => Err(parser.error_at(at, "#elseif without #if")),
    }
}

fn line_starts(chars: &[char]) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, c) in chars.iter().enumerate() {
        if *c == '\n' {
            starts.push(i + 1);
        }
    }
    starts
}

/// How a block ended.
enum Term {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(usize, Expr),
}

/// Directives the parser knows but does not support.
const UNSUPPORTED: &[&str] = &["macro", "define", "parse", "include", "evaluate", "stop"];

struct Parser<'s> {
    chars: &'s [char],
    lines: &'s [usize],
    pos: usize,
    /// One past the last character this parser may read (a string literal's closing quote).
    end: usize,
    depth: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Velocity 1.7 (API Gateway's) allows `-` inside reference names: `$header.X-Request-Id`.
fn ref_char(c: char) -> bool {
    ident_char(c) || c == '-'
}

impl Parser<'_> {
    fn position(&self, at: usize) -> Pos {
        let line = self.lines.partition_point(|start| *start <= at).max(1);
        let column = at - self.lines[line - 1] + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> ParseError {
        let pos = self.position(at);
        ParseError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.peek_at(0)
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        let i = self.pos + offset;
        (i < self.end).then(|| self.chars[i])
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.error_at(self.pos, format!("nesting deeper than {MAX_PARSE_DEPTH}")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ----- text mode -----

    /// Whether only spaces and tabs stand between the start of the line and `at`.
    fn line_start_before(&self, at: usize) -> bool {
        let mut i = at;
        while i > 0 {
            match self.chars[i - 1] {
                '\n' => return true,
                ' ' | '\t' => i -= 1,
                _ => return false,
            }
        }
        true
    }

    /// If only spaces and tabs follow up to the end of the line, the index after the newline.
    fn line_end_after(&self) -> Option<usize> {
        let mut i = self.pos;
        while i < self.end {
            match self.chars[i] {
                ' ' | '\t' | '\r' => i += 1,
                '\n' => return Some(i + 1),
                _ => return None,
            }
        }
        Some(i)
    }

    /// A directive or comment that started at `start` is over (self.pos is after it): when it
    /// is alone on its line, drop the line's indentation from `text` and skip its newline.
    fn gobble(&mut self, start: usize, text: &mut String) {
        if self.line_start_before(start)
            && let Some(next) = self.line_end_after()
        {
            while text.ends_with([' ', '\t']) {
                text.pop();
            }
            self.pos = next;
        }
    }

    /// Parses nodes up to the end of input, `#end`, `#else` or `#elseif`.
    fn block(&mut self) -> Result<(Vec<Node>, Term)> {
        self.enter()?;
        let mut nodes = Vec::new();
        let mut text = String::new();
        let flush = |text: &mut String, nodes: &mut Vec<Node>| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text)));
            }
        };
        while let Some(c) = self.peek() {
            match c {
                '#' => {
                    let start = self.pos;
                    if self.starts_with("##") {
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            if c == '\n' {
                                break;
                            }
                        }
                        if self.line_start_before(start) {
                            while text.ends_with([' ', '\t']) {
                                text.pop();
                            }
                        }
                    } else if self.starts_with("#*") {
                        self.pos += 2;
                        loop {
                            if self.starts_with("*#") {
                                self.pos += 2;
                                break;
                            }
                            if self.peek().is_none() {
                                return Err(self.error_at(start, "unterminated #* comment"));
                            }
                            self.pos += 1;
                        }
                        self.gobble(start, &mut text);
                    } else if self.starts_with("#[[") {
                        self.pos += 3;
                        loop {
                            if self.starts_with("]]#") {
                                self.pos += 3;
                                break;
                            }
                            match self.peek() {
                                None => {
                                    return Err(self.error_at(start, "unterminated #[[ text"));
                                }
                                Some(c) => {
                                    text.push(c);
                                    self.pos += 1;
                                }
                            }
                        }
                    } else if let Some(directive) = self.directive_name() {
                        match self.directive(start, &directive, &mut text, &mut nodes)? {
                            Some(term) => {
                                flush(&mut text, &mut nodes);
                                self.leave();
                                return Ok((nodes, term));
                            }
                            None => continue,
                        }
                    } else {
                        text.push('#');
                        self.pos += 1;
                    }
                }
                '$' => match self.reference(true)? {
                    Some(r) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(r));
                    }
                    None => {
                        text.push('$');
                        self.pos += 1;
                    }
                },
                '\\' if matches!(self.peek_at(1), Some('$' | '#')) => {
                    // `\$x` and `\#if` are literal text.
                    text.push(self.peek_at(1).unwrap_or('$'));
                    self.pos += 2;
                }
                c => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut text, &mut nodes);
        self.leave();
        Ok((nodes, Term::Eof))
    }

    /// At `#`: the name of a known directive (`set`, `if`, …) and moves past it (and past a
    /// closing `}` of `#{name}`); `None` (position unchanged) for other text.
    fn directive_name(&mut self) -> Option<String> {
        let braced = self.peek_at(1) == Some('{');
        let mut i = self.pos + if braced { 2 } else { 1 };
        let name_start = i;
        while i < self.end && ident_char(self.chars[i]) {
            i += 1;
        }
        if i == name_start || !ident_start(self.chars[name_start]) {
            return None;
        }
        let name: String = self.chars[name_start..i].iter().collect();
        let known = matches!(
            name.as_str(),
            "set" | "if" | "elseif" | "else" | "end" | "foreach" | "break"
        ) || UNSUPPORTED.contains(&name.as_str());
        if !known {
            return None;
        }
        if braced {
            if i < self.end && self.chars[i] == '}' {
                i += 1;
            } else {
                return None;
            }
        }
        self.pos = i;
        Some(name)
    }

    /// Parses the rest of a directive whose name has been read. Returns the block terminator
    /// for `#end`, `#else` and `#elseif`.
    fn directive(
        &mut self,
        start: usize,
        name: &str,
        text: &mut String,
        nodes: &mut Vec<Node>,
    ) -> Result<Option<Term>> {
        let flush = |text: &mut String, nodes: &mut Vec<Node>| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text)));
            }
        };
        match name {
            "end" => {
                self.gobble(start, text);
                Ok(Some(Term::End(start)))
            }
            "else" => {
                self.gobble(start, text);
                Ok(Some(Term::Else(start)))
            }
            "elseif" => {
                let cond = self.paren_expr("#elseif")?;
                self.gobble(start, text);
                Ok(Some(Term::ElseIf(start, cond)))
            }
            "break" => {
                self.gobble(start, text);
                flush(text, nodes);
                nodes.push(Node::Break);
                Ok(None)
            }
            "set" => {
                self.open_paren("#set")?;
                self.skip_ws();
                if self.peek() != Some('$') {
                    return Err(self.error_at(self.pos, "#set needs a reference like $name"));
                }
                let at = self.pos;
                let target = self
                    .reference(false)?
                    .ok_or_else(|| self.error_at(at, "#set needs a reference like $name"))?;
                if target.chain.iter().any(|a| matches!(a, Access::Method(..))) {
                    return Err(self.error_at(at, "#set cannot assign to a method call"));
                }
                self.skip_ws();
                if self.peek() != Some('=') {
                    return Err(self.error_at(self.pos, "expected '=' in #set"));
                }
                self.pos += 1;
                let value = self.expr()?;
                self.close_paren("#set")?;
                self.gobble(start, text);
                flush(text, nodes);
                nodes.push(Node::Set { target, value });
                Ok(None)
            }
            "if" => {
                let mut branches = Vec::new();
                let mut cond = self.paren_expr("#if")?;
                self.gobble(start, text);
                flush(text, nodes);
                let otherwise = loop {
                    let (body, term) = self.block()?;
                    branches.push((cond, body));
                    match term {
                        Term::End(_) => break None,
                        Term::ElseIf(_, next) => cond = next,
                        Term::Else(_) => {
                            let (body, term) = self.block()?;
                            match term {
                                Term::End(_) => break Some(body),
                                Term::Eof => {
                                    return Err(self.error_at(start, "#if without #end"));
                                }
                                Term::Else(at) | Term::ElseIf(at, _) => {
                                    return Err(self.error_at(at, "#else or #elseif after #else"));
                                }
                            }
                        }
                        Term::Eof => return Err(self.error_at(start, "#if without #end")),
                    }
                };
                nodes.push(Node::If {
                    branches,
                    otherwise,
                });
                Ok(None)
            }
            "foreach" => {
                self.open_paren("#foreach")?;
                self.skip_ws();
                let at = self.pos;
                let var = match self.reference(false)? {
                    Some(r) if r.chain.is_empty() && !r.quiet => r.name,
                    _ => return Err(self.error_at(at, "#foreach needs a variable like $item")),
                };
                self.skip_ws();
                if !self.keyword("in") {
                    return Err(self.error_at(self.pos, "expected 'in' in #foreach"));
                }
                let iterable = self.expr()?;
                self.close_paren("#foreach")?;
                self.gobble(start, text);
                flush(text, nodes);
                let (body, term) = self.block()?;
                match term {
                    Term::End(_) => {}
                    Term::Eof => return Err(self.error_at(start, "#foreach without #end")),
                    Term::Else(at) => return Err(self.error_at(at, "#else without #if")),
                    Term::ElseIf(at, _) => return Err(self.error_at(at, "#elseif without #if")),
                }
                nodes.push(Node::Foreach {
                    var,
                    iterable,
                    body,
                    pos: self.position(start),
                });
                Ok(None)
            }
            other => Err(self.error_at(start, format!("#{other} is not supported"))),
        }
    }

    fn open_paren(&mut self, what: &str) -> Result<()> {
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error_at(self.pos, format!("expected '(' after {what}")));
        }
        self.pos += 1;
        Ok(())
    }

    fn close_paren(&mut self, what: &str) -> Result<()> {
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.error_at(self.pos, format!("expected ')' to close {what}")));
        }
        self.pos += 1;
        Ok(())
    }

    fn paren_expr(&mut self, what: &str) -> Result<Expr> {
        self.open_paren(what)?;
        let e = self.expr()?;
        self.close_paren(what)?;
        Ok(e)
    }

    // ----- references -----

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(ref_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// At `$`: a reference, or `None` (position unchanged) when the `$` is literal text.
    /// In text mode a `[` that does not open a valid index ends the reference.
    fn reference(&mut self, in_text: bool) -> Result<Option<Reference>> {
        let start = self.pos;
        let mut i = 1;
        let quiet = self.peek_at(i) == Some('!');
        if quiet {
            i += 1;
        }
        let braced = self.peek_at(i) == Some('{');
        if braced {
            i += 1;
        }
        if !self.peek_at(i).is_some_and(ident_start) {
            return Ok(None);
        }
        self.enter()?;
        self.pos += i;
        let name = self.ident();
        let mut chain = Vec::new();
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1).is_some_and(ident_start) => {
                    self.pos += 1;
                    let id = self.ident();
                    if self.peek() == Some('(') {
                        self.pos += 1;
                        let args = self.args()?;
                        chain.push(Access::Method(id, args));
                    } else {
                        chain.push(Access::Property(id));
                    }
                }
                Some('[') => {
                    let save = self.pos;
                    self.pos += 1;
                    let index = self.expr().and_then(|e| {
                        self.skip_ws();
                        if self.peek() == Some(']') {
                            self.pos += 1;
                            Ok(e)
                        } else {
                            Err(self.error_at(self.pos, "expected ']'"))
                        }
                    });
                    match index {
                        Ok(e) => chain.push(Access::Index(e)),
                        Err(_) if in_text && !braced => {
                            self.pos = save;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => break,
            }
        }
        if braced {
            if self.peek() != Some('}') {
                return Err(self.error_at(self.pos, "expected '}' to close '${'"));
            }
            self.pos += 1;
        }
        self.leave();
        Ok(Some(Reference {
            quiet,
            name,
            chain,
            source: self.chars[start..self.pos].iter().collect(),
            pos: self.position(start),
        }))
    }

    /// Method arguments after `(`, through `)`.
    fn args(&mut self) -> Result<Vec<Expr>> {
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(args);
                }
                _ => return Err(self.error_at(self.pos, "expected ',' or ')' in arguments")),
            }
        }
    }

    // ----- expressions -----

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes the word `kw` if it stands here as a whole word.
    fn keyword(&mut self, kw: &str) -> bool {
        if self.starts_with(kw) && !self.peek_at(kw.len()).is_some_and(ident_char) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let e = self.or();
        self.leave();
        e
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        loop {
            self.skip_ws();
            if self.starts_with("||") {
                self.pos += 2;
            } else if !self.keyword("or") {
                return Ok(left);
            }
            let right = self.and()?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
        }
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.equality()?;
        loop {
            self.skip_ws();
            if self.starts_with("&&") {
                self.pos += 2;
            } else if !self.keyword("and") {
                return Ok(left);
            }
            let right = self.equality()?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
        }
    }

    fn equality(&mut self) -> Result<Expr> {
        let mut left = self.relation()?;
        loop {
            self.skip_ws();
            let op = if self.starts_with("==") {
                self.pos += 2;
                BinOp::Eq
            } else if self.starts_with("!=") {
                self.pos += 2;
                BinOp::Ne
            } else if self.keyword("eq") {
                BinOp::Eq
            } else if self.keyword("ne") {
                BinOp::Ne
            } else {
                return Ok(left);
            };
            let right = self.relation()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn relation(&mut self) -> Result<Expr> {
        let mut left = self.additive()?;
        loop {
            self.skip_ws();
            let op = if self.starts_with("<=") {
                self.pos += 2;
                BinOp::Le
            } else if self.starts_with(">=") {
                self.pos += 2;
                BinOp::Ge
            } else if self.starts_with("<") {
                self.pos += 1;
                BinOp::Lt
            } else if self.starts_with(">") {
                self.pos += 1;
                BinOp::Gt
            } else if self.keyword("lt") {
                BinOp::Lt
            } else if self.keyword("le") {
                BinOp::Le
            } else if self.keyword("gt") {
                BinOp::Gt
            } else if self.keyword("ge") {
                BinOp::Ge
            } else {
                return Ok(left);
            };
            let right = self.additive()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn additive(&mut self) -> Result<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            self.skip_ws();
            let op = match self.peek() {
                Some('+') => BinOp::Add,
                Some('-') => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.multiplicative()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            let op = match self.peek() {
                Some('*') => BinOp::Mul,
                Some('/') => BinOp::Div,
                Some('%') => BinOp::Rem,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.skip_ws();
        self.enter()?;
        let e = if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            Expr::Not(Box::new(self.unary()?))
        } else if self.keyword("not") {
            Expr::Not(Box::new(self.unary()?))
        } else if self.peek() == Some('-') && !self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            Expr::Neg(Box::new(self.unary()?))
        } else {
            self.primary()?
        };
        self.leave();
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            None => Err(self.error_at(at, "expected an expression")),
            Some('$') => match self.reference(false)? {
                Some(r) => Ok(Expr::Ref(r)),
                None => Err(self.error_at(at, "expected a reference after '$'")),
            },
            Some('"') => self.string('"'),
            Some('\'') => self.string('\''),
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.close_paren("'('")?;
                Ok(e)
            }
            Some('[') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(']') {
                    self.pos += 1;
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expr()?;
                self.skip_ws();
                if self.starts_with("..") {
                    self.pos += 2;
                    let last = self.expr()?;
                    self.skip_ws();
                    if self.peek() != Some(']') {
                        return Err(self.error_at(self.pos, "expected ']' to close a range"));
                    }
                    self.pos += 1;
                    return Ok(Expr::Range(Box::new(first), Box::new(last)));
                }
                let mut items = vec![first];
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => {
                            self.pos += 1;
                            items.push(self.expr()?);
                        }
                        Some(']') => {
                            self.pos += 1;
                            return Ok(Expr::List(items));
                        }
                        _ => return Err(self.error_at(self.pos, "expected ',' or ']' in a list")),
                    }
                }
            }
            Some('{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                self.skip_ws();
                if self.peek() == Some('}') {
                    self.pos += 1;
                    return Ok(Expr::Map(entries));
                }
                loop {
                    let key = self.expr()?;
                    self.skip_ws();
                    if self.peek() != Some(':') {
                        return Err(self.error_at(self.pos, "expected ':' in a map"));
                    }
                    self.pos += 1;
                    let value = self.expr()?;
                    entries.push((key, value));
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some('}') => {
                            self.pos += 1;
                            return Ok(Expr::Map(entries));
                        }
                        _ => return Err(self.error_at(self.pos, "expected ',' or '}' in a map")),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' => self.number(),
            Some(c) if ident_start(c) => {
                if self.keyword("true") {
                    Ok(Expr::Bool(true))
                } else if self.keyword("false") {
                    Ok(Expr::Bool(false))
                } else if self.keyword("null") {
                    Ok(Expr::Null)
                } else {
                    let word = self.ident();
                    Err(self.error_at(at, format!("unexpected word {word:?} in an expression")))
                }
            }
            Some(c) => Err(self.error_at(at, format!("unexpected {c:?} in an expression"))),
        }
    }

    fn number(&mut self) -> Result<Expr> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let mut float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if float {
            text.parse::<f64>()
                .map(Expr::Float)
                .map_err(|_| self.error_at(start, format!("bad number {text:?}")))
        } else {
            text.parse::<i64>()
                .map(Expr::Int)
                .map_err(|_| self.error_at(start, format!("number {text:?} is out of range")))
        }
    }

    /// A string literal. A backslash keeps the next character in the string (both stay, as in
    /// Velocity, so `'\\''` in a regular expression reaches the regex engine unchanged).
    fn string(&mut self, quote: char) -> Result<Expr> {
        let open = self.pos;
        self.pos += 1;
        let content_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some('\\') => self.pos += 2.min(self.end - self.pos),
                Some(c) if c == quote => break,
                Some(_) => self.pos += 1,
            }
        }
        let content_end = self.pos;
        self.pos += 1;
        let content = &self.chars[content_start..content_end];
        if quote == '"' && content.iter().any(|c| matches!(c, '$' | '#')) {
            let mut inner = Parser {
                chars: self.chars,
                lines: self.lines,
                pos: content_start,
                end: content_end,
                depth: self.depth,
            };
            let (nodes, term) = inner.block()?;
            return match term {
                Term::Eof => Ok(Expr::Interp(nodes)),
                Term::End(at) => Err(self.error_at(at, "#end without #if or #foreach")),
                Term::Else(at) => Err(self.error_at(at, "#else without #if")),
                Term::ElseIf(at, _) => Err(self.error_at(at, "#elseif without #if")),
            };
        }
        Ok(Expr::Str(content.iter().collect()))
    }
}
