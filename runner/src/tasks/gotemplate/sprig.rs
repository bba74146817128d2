//! The Sprig functions (Helm's argument order) and Go builtins gtmpl lacks.

use base64::Engine as _;
use gtmpl::{Func, FuncError, Value};
use gtmpl_value::Number;

use super::from_gtmpl;

/// The Sprig functions (and aliases) added to every template.
pub(super) const SPRIG: &[(&str, Func)] = &[
    ("urlquery", urlquery as Func),
    ("default", default as Func),
    ("empty", empty as Func),
    ("coalesce", coalesce as Func),
    ("required", required as Func),
    ("fail", fail as Func),
    ("ternary", ternary as Func),
    ("quote", quote as Func),
    ("squote", squote as Func),
    ("toJson", to_json as Func),
    ("toJSON", to_json as Func),
    ("toPrettyJson", to_pretty_json as Func),
    ("toString", to_string as Func),
    ("upper", upper as Func),
    ("lower", lower as Func),
    ("title", title as Func),
    ("trim", trim as Func),
    ("trimAll", trim_all as Func),
    ("trimPrefix", trim_prefix as Func),
    ("trimSuffix", trim_suffix as Func),
    ("replace", replace as Func),
    ("contains", contains as Func),
    ("hasPrefix", has_prefix as Func),
    ("hasSuffix", has_suffix as Func),
    ("split", split as Func),
    ("join", join as Func),
    ("list", list as Func),
    ("dict", dict as Func),
    ("hasKey", has_key as Func),
    ("keys", keys as Func),
    ("get", get as Func),
    ("add", add as Func),
    ("add1", add1 as Func),
    ("sub", sub as Func),
    ("mul", mul as Func),
    ("div", div as Func),
    ("mod", modulo as Func),
    ("addf", addf as Func),
    ("subf", subf as Func),
    ("mulf", mulf as Func),
    ("divf", divf as Func),
    ("max", max as Func),
    ("min", min as Func),
    ("int", int as Func),
    ("int64", int as Func),
    ("float64", float64 as Func),
    ("round", round as Func),
    ("b64enc", b64enc as Func),
    ("b64dec", b64dec as Func),
    ("indent", indent as Func),
    ("nindent", nindent as Func),
    ("kindOf", kind_of as Func),
    ("typeOf", kind_of as Func),
];

// ---- helpers ---------------------------------------------------------------------------

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn exactly(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() != n {
        return Err(FuncError::ExactlyXArgs(name.to_string(), n));
    }
    Ok(())
}

fn at_least(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() < n {
        return Err(FuncError::AtLeastXArgs(name.to_string(), n));
    }
    Ok(())
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) | Value::Map(m) => m.is_empty(),
        Value::Number(n) => num_f64(n) == Some(0.0),
        Value::Function(_) => false,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::NoValue | Value::Nil => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Map(_) | Value::Object(_) => from_gtmpl(v).to_string(),
        other => other.to_string(),
    }
}

fn float(name: &str, v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Number(n) => num_f64(n).ok_or_else(|| err(format!("{name}: not a number: {v}"))),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| err(format!("{name}: not a number: {s:?}"))),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::NoValue | Value::Nil => Ok(0.0),
        _ => Err(err(format!("{name}: not a number: {v}"))),
    }
}

fn num_f64(n: &Number) -> Option<f64> {
    n.as_f64()
        .or_else(|| n.as_i64().map(|i| i as f64))
        .or_else(|| n.as_u64().map(|u| u as f64))
}

fn is_int(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some())
        || matches!(v, Value::String(s) if s.trim().parse::<i64>().is_ok())
        || matches!(v, Value::Bool(_) | Value::NoValue | Value::Nil)
}

fn num_result(all_int: bool, x: f64) -> Value {
    if all_int && x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn arith(name: &str, args: &[Value], op: fn(f64, f64) -> f64) -> Result<Value, FuncError> {
    at_least(name, args, 2)?;
    let all_int = args.iter().all(is_int);
    let mut acc = float(name, &args[0])?;
    for a in &args[1..] {
        acc = op(acc, float(name, a)?);
    }
    Ok(num_result(all_int, acc))
}

/// Go's `url.QueryEscape`: what `urlquery` and query parameters use.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `urlquery` (gtmpl's own does not escape `&`, `=` or `+`).
fn urlquery(args: &[Value]) -> Result<Value, FuncError> {
    let joined: Vec<String> = args.iter().map(text).collect();
    Ok(Value::String(query_escape(&joined.concat())))
}

// ---- Sprig functions -------------------------------------------------------------------

fn default(args: &[Value]) -> Result<Value, FuncError> {
    at_least("default", args, 1)?;
    match args.get(1) {
        Some(v) if !is_empty(v) => Ok(v.clone()),
        _ => Ok(args[0].clone()),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    exactly("empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

fn required(args: &[Value]) -> Result<Value, FuncError> {
    exactly("required", args, 2)?;
    match &args[1] {
        Value::NoValue | Value::Nil => Err(err(format!("required: \"{}\"", text(&args[0])))),
        v => Ok(v.clone()),
    }
}

fn fail(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fail", args, 1)?;
    Err(err(format!("fail: \"{}\"", text(&args[0]))))
}

fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    exactly("ternary", args, 3)?;
    Ok(if !is_empty(&args[2]) {
        args[0].clone()
    } else {
        args[1].clone()
    })
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| serde_json::Value::String(text(v)).to_string())
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| format!("'{}'", text(v)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toJson", args, 1)?;
    Ok(Value::String(from_gtmpl(&args[0]).to_string()))
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toPrettyJson", args, 1)?;
    serde_json::to_string_pretty(&from_gtmpl(&args[0]))
        .map(Value::String)
        .map_err(|e| err(format!("toPrettyJson: {e}")))
}

fn to_string(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toString", args, 1)?;
    Ok(Value::String(text(&args[0])))
}

fn str_fn(name: &str, args: &[Value], f: fn(&str) -> String) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    Ok(Value::String(f(&text(&args[0]))))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("upper", args, |s| s.to_uppercase())
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("lower", args, |s| s.to_lowercase())
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("title", args, |s| {
        s.split(' ')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("trim", args, |s| s.trim().to_string())
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimAll", args, 2)?;
    let cut: Vec<char> = text(&args[0]).chars().collect();
    Ok(Value::String(
        text(&args[1]).trim_matches(cut.as_slice()).to_string(),
    ))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let (p, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(s.strip_prefix(&p).unwrap_or(&s).to_string()))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let (p, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(s.strip_suffix(&p).unwrap_or(&s).to_string()))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exactly("replace", args, 3)?;
    Ok(Value::String(
        text(&args[2]).replace(&text(&args[0]), &text(&args[1])),
    ))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    exactly("contains", args, 2)?;
    Ok(Value::Bool(text(&args[1]).contains(&text(&args[0]))))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasPrefix", args, 2)?;
    Ok(Value::Bool(text(&args[1]).starts_with(&text(&args[0]))))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasSuffix", args, 2)?;
    Ok(Value::Bool(text(&args[1]).ends_with(&text(&args[0]))))
}

/// Sprig's `split` returns a dict `_0`, `_1`, ...; `splitList` a list. We return the dict.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    exactly("split", args, 2)?;
    let sep = text(&args[0]);
    let s = text(&args[1]);
    Ok(Value::Map(
        s.split(sep.as_str())
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::String(p.to_string())))
            .collect(),
    ))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    exactly("join", args, 2)?;
    let sep = text(&args[0]);
    match &args[1] {
        Value::Array(a) => Ok(Value::String(
            a.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        v => Ok(Value::String(text(v))),
    }
}

fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.to_vec()))
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() % 2 != 0 {
        return Err(err(
            "dict: needs key/value pairs (an even number of arguments)",
        ));
    }
    Ok(Value::Map(
        args.chunks(2)
            .map(|kv| (text(&kv[0]), kv[1].clone()))
            .collect(),
    ))
}

fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasKey", args, 2)?;
    match &args[0] {
        Value::Map(m) | Value::Object(m) => Ok(Value::Bool(m.contains_key(&text(&args[1])))),
        _ => Ok(Value::Bool(false)),
    }
}

fn keys(args: &[Value]) -> Result<Value, FuncError> {
    let mut out: Vec<String> = Vec::new();
    for a in args {
        if let Value::Map(m) | Value::Object(m) = a {
            out.extend(m.keys().cloned());
        }
    }
    out.sort();
    Ok(Value::Array(out.into_iter().map(Value::String).collect()))
}

fn get(args: &[Value]) -> Result<Value, FuncError> {
    exactly("get", args, 2)?;
    match &args[0] {
        Value::Map(m) | Value::Object(m) => Ok(m
            .get(&text(&args[1]))
            .cloned()
            .unwrap_or(Value::String(String::new()))),
        _ => Ok(Value::String(String::new())),
    }
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    arith("add", args, |a, b| a + b)
}

fn add1(args: &[Value]) -> Result<Value, FuncError> {
    exactly("add1", args, 1)?;
    Ok(num_result(is_int(&args[0]), float("add1", &args[0])? + 1.0))
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    arith("sub", args, |a, b| a - b)
}

fn mul(args: &[Value]) -> Result<Value, FuncError> {
    arith("mul", args, |a, b| a * b)
}

fn div(args: &[Value]) -> Result<Value, FuncError> {
    exactly("div", args, 2)?;
    let (a, b) = (float("div", &args[0])?, float("div", &args[1])?);
    if b == 0.0 {
        return Err(err("div: division by zero"));
    }
    if is_int(&args[0]) && is_int(&args[1]) {
        Ok(Value::from((a / b).trunc() as i64))
    } else {
        Ok(Value::from(a / b))
    }
}

fn addf(args: &[Value]) -> Result<Value, FuncError> {
    arith("addf", args, |a, b| a + b).map(|v| Value::from(float("addf", &v).unwrap_or(0.0)))
}

fn subf(args: &[Value]) -> Result<Value, FuncError> {
    arith("subf", args, |a, b| a - b).map(|v| Value::from(float("subf", &v).unwrap_or(0.0)))
}

fn mulf(args: &[Value]) -> Result<Value, FuncError> {
    arith("mulf", args, |a, b| a * b).map(|v| Value::from(float("mulf", &v).unwrap_or(0.0)))
}

/// Float division (Sprig's `divf`): `divf 99.9 100` is 0.999.
fn divf(args: &[Value]) -> Result<Value, FuncError> {
    exactly("divf", args, 2)?;
    let (a, b) = (float("divf", &args[0])?, float("divf", &args[1])?);
    if b == 0.0 {
        return Err(err("divf: division by zero"));
    }
    Ok(Value::from(a / b))
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    exactly("mod", args, 2)?;
    let (a, b) = (float("mod", &args[0])?, float("mod", &args[1])?);
    if b == 0.0 {
        return Err(err("mod: division by zero"));
    }
    Ok(num_result(true, (a % b).trunc()))
}

fn max(args: &[Value]) -> Result<Value, FuncError> {
    arith("max", args, f64::max)
}

fn min(args: &[Value]) -> Result<Value, FuncError> {
    arith("min", args, f64::min)
}

fn int(args: &[Value]) -> Result<Value, FuncError> {
    exactly("int", args, 1)?;
    Ok(Value::from(float("int", &args[0])?.trunc() as i64))
}

fn float64(args: &[Value]) -> Result<Value, FuncError> {
    exactly("float64", args, 1)?;
    Ok(Value::from(float("float64", &args[0])?))
}

fn round(args: &[Value]) -> Result<Value, FuncError> {
    at_least("round", args, 2)?;
    let x = float("round", &args[0])?;
    let places = float("round", &args[1])? as i32;
    let f = 10f64.powi(places);
    Ok(Value::from((x * f).round() / f))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64enc", args, 1)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text(&args[0])),
    ))
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64dec", args, 1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text(&args[0]))
        .map_err(|e| err(format!("b64dec: {e}")))?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Widest `indent` / `nindent` (a larger one is a mistake, and would allocate it per line).
const MAX_INDENT: usize = 1_000;

fn indent_width(name: &str, v: &Value) -> Result<usize, FuncError> {
    let n = float(name, v)?;
    if n > MAX_INDENT as f64 {
        return Err(err(format!(
            "{name}: {n} spaces is too wide; use at most {MAX_INDENT}"
        )));
    }
    Ok(n.max(0.0) as usize)
}

fn indent_text(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    exactly("indent", args, 2)?;
    let n = indent_width("indent", &args[0])?;
    Ok(Value::String(indent_text(n, &text(&args[1]))))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    exactly("nindent", args, 2)?;
    let n = indent_width("nindent", &args[0])?;
    Ok(Value::String(format!(
        "\n{}",
        indent_text(n, &text(&args[1]))
    )))
}

fn kind_of(args: &[Value]) -> Result<Value, FuncError> {
    exactly("kindOf", args, 1)?;
    let kind = match &args[0] {
        Value::NoValue | Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Map(_) | Value::Object(_) => "map",
        Value::Function(_) => "func",
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => "int",
        Value::Number(_) => "float64",
    };
    Ok(Value::String(kind.to_string()))
}
