//! `if:` conditions in Iter8's vocabulary (Iter8 evaluated them with `expr` against the
//! experiment): `SLOs()`, `Completed()`, `NoFailure()`, `Result.NumLoops`,
//! `Result.NumCompletedTasks`, `Result.NumTasks`, `Result.Failure`,
//! `Result.Insights.NumVersions`; `not` / `!`, `and` / `&&`, `or` / `||`, parentheses,
//! comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`), arithmetic (`+ - * / %`), numbers and
//! `true` / `false`.
//!
//! A condition is parsed and type-checked once, before any task runs; evaluating a parsed
//! condition cannot fail.

use std::fmt;

use super::result::ExperimentResult;

/// Why a condition could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse {expression:?}: {message}")]
pub struct ConditionError {
    pub expression: String,
    pub message: String,
}

/// A parsed, type-checked condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Type {
    Bool,
    Num,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "a boolean",
            Type::Num => "a number",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Slos,
    Completed,
    NoFailure,
    Comparisons,
    Winner,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Var {
    NumLoops,
    NumCompletedTasks,
    NumTasks,
    Failure,
    NumVersions,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BinOp {
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

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Bool(bool),
    Num(f64),
    Call(Func),
    Var(Var),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Bool(bool),
    Num(f64),
}

impl Value {
    fn as_bool(self) -> bool {
        matches!(self, Value::Bool(true))
    }
    fn as_num(self) -> f64 {
        match self {
            Value::Num(n) => n,
            Value::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    LParen,
    RParen,
    Bang,
    AndAnd,
    OrOr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Bang => f.write_str("!"),
            Tok::AndAnd => f.write_str("&&"),
            Tok::OrOr => f.write_str("||"),
            Tok::Eq => f.write_str("=="),
            Tok::Ne => f.write_str("!="),
            Tok::Lt => f.write_str("<"),
            Tok::Le => f.write_str("<="),
            Tok::Gt => f.write_str(">"),
            Tok::Ge => f.write_str(">="),
            Tok::Plus => f.write_str("+"),
            Tok::Minus => f.write_str("-"),
            Tok::Star => f.write_str("*"),
            Tok::Slash => f.write_str("/"),
            Tok::Percent => f.write_str("%"),
        }
    }
}

const KNOWN: &str = "SLOs(), Completed(), NoFailure(), Comparisons(), Winner(), Result.NumLoops, Result.NumCompletedTasks, \
Result.NumTasks, Result.Failure, Result.Insights.NumVersions, true, false";

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let two = |t: Tok| (t, 2);
        let (tok, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('&', Some('&')) => two(Tok::AndAnd),
            ('|', Some('|')) => two(Tok::OrOr),
            ('=', Some('=')) => two(Tok::Eq),
            ('!', Some('=')) => two(Tok::Ne),
            ('<', Some('=')) => two(Tok::Le),
            ('>', Some('=')) => two(Tok::Ge),
            ('!', _) => (Tok::Bang, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('%', _) => (Tok::Percent, 1),
            ('=', _) => return Err(format!("`=` at column {col}: use `==` to compare")),
            ('&', _) => return Err(format!("`&` at column {col}: use `&&` or `and`")),
            ('|', _) => return Err(format!("`|` at column {col}: use `||` or `or`")),
            (c, _) if c.is_ascii_digit() || c == '.' => {
                let start = i;
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let text: String = chars[start..j].iter().collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("bad number {text:?} at column {col}"))?;
                (Tok::Num(n), j - start)
            }
            (c, _) if c.is_alphabetic() || c == '_' => {
                let start = i;
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                (Tok::Ident(chars[start..j].iter().collect()), j - start)
            }
            (c, _) => return Err(format!("unexpected character {c:?} at column {col}")),
        };
        out.push((col, tok));
        i += len;
    }
    Ok(out)
}

/// Deepest nesting of parentheses and unary operators accepted.
const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end_col: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn col(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(c, _)| *c)
            .unwrap_or(self.end_col)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    /// The binary operator at the cursor with its binding power.
    fn binop(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek()? {
            Tok::OrOr => BinOp::Or,
            Tok::AndAnd => BinOp::And,
            Tok::Ident(s) if s == "or" => BinOp::Or,
            Tok::Ident(s) if s == "and" => BinOp::And,
            Tok::Eq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Plus => BinOp::Add,
            Tok::Minus => BinOp::Sub,
            Tok::Star => BinOp::Mul,
            Tok::Slash => BinOp::Div,
            Tok::Percent => BinOp::Rem,
            _ => return None,
        };
        let bp = match op {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        };
        Some((op, bp))
    }

    fn expr(&mut self, min_bp: u8) -> Result<(Expr, Type), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        let r = self.expr_inner(min_bp);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<(Expr, Type), String> {
        let mut lhs = self.prefix()?;
        while let Some((op, bp)) = self.binop() {
            if bp <= min_bp {
                break;
            }
            let col = self.col();
            self.next();
            let rhs = self.expr(bp)?;
            lhs = combine(op, lhs, rhs, col)?;
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<(Expr, Type), String> {
        let col = self.col();
        let Some(tok) = self.next() else {
            return Err(format!(
                "the expression ends early at column {col}; expected a value such as {KNOWN}"
            ));
        };
        match tok {
            Tok::Num(n) => Ok((Expr::Num(n), Type::Num)),
            Tok::LParen => {
                let inner = self.expr(0)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    Some(t) => Err(format!(
                        "expected `)` at column {}, found `{t}`",
                        self.toks[self.pos - 1].0
                    )),
                    None => Err(format!("missing `)` for the `(` at column {col}")),
                }
            }
            Tok::Bang => self.not(col),
            Tok::Ident(s) if s == "not" => self.not(col),
            Tok::Minus => {
                let (e, t) = self.expr(6)?;
                if t != Type::Num {
                    return Err(format!("`-` at column {col} needs a number, found {t}"));
                }
                Ok((Expr::Neg(Box::new(e)), Type::Num))
            }
            Tok::Ident(s) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.next();
                    match self.next() {
                        Some(Tok::RParen) => {}
                        None => return Err(format!("missing `)` after {s}( at column {col}")),
                        Some(_) => return Err(format!("{s}() at column {col} takes no arguments")),
                    }
                    let f = match s.to_ascii_lowercase().as_str() {
                        "slos" => Func::Slos,
                        "completed" => Func::Completed,
                        "nofailure" => Func::NoFailure,
                        "comparisons" => Func::Comparisons,
                        "winner" => Func::Winner,
                        _ => {
                            return Err(format!(
                                "unknown function {s}() at column {col}; known: SLOs(), Completed(), NoFailure(), Comparisons(), Winner()"
                            ))
                        }
                    };
                    return Ok((Expr::Call(f), Type::Bool));
                }
                match s.to_ascii_lowercase().as_str() {
                    "true" => Ok((Expr::Bool(true), Type::Bool)),
                    "false" => Ok((Expr::Bool(false), Type::Bool)),
                    "result.numloops" => Ok((Expr::Var(Var::NumLoops), Type::Num)),
                    "result.numcompletedtasks" => {
                        Ok((Expr::Var(Var::NumCompletedTasks), Type::Num))
                    }
                    "result.numtasks" => Ok((Expr::Var(Var::NumTasks), Type::Num)),
                    "result.failure" => Ok((Expr::Var(Var::Failure), Type::Bool)),
                    "result.insights.numversions" => Ok((Expr::Var(Var::NumVersions), Type::Num)),
                    "slos" | "completed" | "nofailure" | "comparisons" | "winner" => {
                        Err(format!("{s} at column {col} is a function: write {s}()"))
                    }
                    _ => Err(format!(
                        "unknown name `{s}` at column {col}; known: {KNOWN}"
                    )),
                }
            }
            t => Err(format!(
                "unexpected `{t}` at column {col}; expected a value such as {KNOWN}"
            )),
        }
    }

    fn not(&mut self, col: usize) -> Result<(Expr, Type), String> {
        let (e, t) = self.expr(6)?;
        if t != Type::Bool {
            return Err(format!(
                "`not` at column {col} needs a boolean, found {t} (compare it first, e.g. `Result.NumLoops > 1`)"
            ));
        }
        Ok((Expr::Not(Box::new(e)), Type::Bool))
    }
}

fn combine(
    op: BinOp,
    (l, lt): (Expr, Type),
    (r, rt): (Expr, Type),
    col: usize,
) -> Result<(Expr, Type), String> {
    let (want, out) = match op {
        BinOp::Or | BinOp::And => (Some(Type::Bool), Type::Bool),
        BinOp::Eq | BinOp::Ne => (None, Type::Bool),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => (Some(Type::Num), Type::Bool),
        _ => (Some(Type::Num), Type::Num),
    };
    match want {
        Some(w) if lt != w || rt != w => {
            return Err(format!(
                "the operator at column {col} needs {w} on both sides, found {lt} and {rt}"
            ))
        }
        None if lt != rt => {
            return Err(format!(
                "the comparison at column {col} compares {lt} with {rt}"
            ))
        }
        _ => {}
    }
    Ok((Expr::Bin(op, Box::new(l), Box::new(r)), out))
}

impl Condition {
    /// Parse and type-check a condition; it must be boolean.
    pub fn parse(source: &str) -> Result<Self, ConditionError> {
        let fail = |message: String| ConditionError {
            expression: source.to_string(),
            message,
        };
        let toks = tokenize(source).map_err(fail)?;
        if toks.is_empty() {
            return Err(fail(format!(
                "the condition is empty; use e.g. SLOs() or Result.NumLoops > 1 (known: {KNOWN})"
            )));
        }
        let mut p = Parser {
            toks,
            pos: 0,
            end_col: source.chars().count() + 1,
            depth: 0,
        };
        let (expr, ty) = p.expr(0).map_err(fail)?;
        if let Some(t) = p.peek() {
            return Err(fail(format!(
                "unexpected `{t}` at column {}; expected an operator or the end",
                p.col()
            )));
        }
        if ty != Type::Bool {
            return Err(fail(
                "the condition is a number, not true/false; compare it, e.g. `Result.NumLoops > 1`"
                    .into(),
            ));
        }
        Ok(Self {
            source: source.to_string(),
            expr,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate against the result as it stands.
    pub fn eval(&self, result: &ExperimentResult) -> bool {
        eval(&self.expr, result).as_bool()
    }
}

fn eval(e: &Expr, r: &ExperimentResult) -> Value {
    match e {
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Num(n) => Value::Num(*n),
        Expr::Call(Func::Slos) => Value::Bool(r.slos_satisfied()),
        Expr::Call(Func::Completed) => Value::Bool(r.completed()),
        Expr::Call(Func::NoFailure) => Value::Bool(r.no_failure()),
        Expr::Call(Func::Comparisons) => Value::Bool(r.comparisons_ok()),
        Expr::Call(Func::Winner) => Value::Bool(r.has_winners()),
        Expr::Var(Var::NumLoops) => Value::Num(r.num_loops as f64),
        Expr::Var(Var::NumCompletedTasks) => Value::Num(r.num_completed_tasks as f64),
        Expr::Var(Var::NumTasks) => Value::Num(r.num_tasks as f64),
        Expr::Var(Var::Failure) => Value::Bool(r.failure),
        Expr::Var(Var::NumVersions) => Value::Num(
            r.insights
                .as_ref()
                .map(|i| i.num_versions as f64)
                .unwrap_or(0.0),
        ),
        Expr::Not(x) => Value::Bool(!eval(x, r).as_bool()),
        Expr::Neg(x) => Value::Num(-eval(x, r).as_num()),
        Expr::Bin(op, a, b) => {
            // `and` / `or` short-circuit.
            match op {
                BinOp::And => return Value::Bool(eval(a, r).as_bool() && eval(b, r).as_bool()),
                BinOp::Or => return Value::Bool(eval(a, r).as_bool() || eval(b, r).as_bool()),
                _ => {}
            }
            let (x, y) = (eval(a, r), eval(b, r));
            match op {
                BinOp::Eq => Value::Bool(x == y),
                BinOp::Ne => Value::Bool(x != y),
                BinOp::Lt => Value::Bool(x.as_num() < y.as_num()),
                BinOp::Le => Value::Bool(x.as_num() <= y.as_num()),
                BinOp::Gt => Value::Bool(x.as_num() > y.as_num()),
                BinOp::Ge => Value::Bool(x.as_num() >= y.as_num()),
                BinOp::Add => Value::Num(x.as_num() + y.as_num()),
                BinOp::Sub => Value::Num(x.as_num() - y.as_num()),
                BinOp::Mul => Value::Num(x.as_num() * y.as_num()),
                BinOp::Div => Value::Num(x.as_num() / y.as_num()),
                BinOp::Rem => Value::Num(x.as_num() % y.as_num()),
                BinOp::And | BinOp::Or => Value::Bool(false),
            }
        }
    }
}

#[cfg(test)]
mod tests;
