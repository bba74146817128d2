//! Provider specs (what a template renders to) and querying one metric: the HTTP call and
//! the jq expression that turns the response into a number.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::httpcall;
use crate::tasks::bounded;

/// A provider spec: what a template renders to.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    /// Query endpoint.
    pub url: String,
    /// GET (default) or POST.
    #[serde(default)]
    pub method: Option<String>,
    /// Headers of every query.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The metrics.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// Ignored (Iter8's templates carried the provider's name).
    #[serde(default)]
    pub provider: Option<String>,
}

/// One metric of a provider spec.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub params: Option<Vec<Param>>,
    #[serde(default)]
    pub body: Option<String>,
    pub jq_expression: String,
}

/// A query parameter.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    pub value: String,
}

pub(super) async fn query_metric(
    spec: &ProviderSpec,
    method: &str,
    metric: &MetricSpec,
    auth: Option<&str>,
    call: &httpcall::CallOptions,
) -> Result<f64, String> {
    let params: Vec<(String, String)> = metric
        .params
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let url = httpcall::with_query(spec.url.trim(), &params);
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push((
            "Content-Type".into(),
            "application/json;charset=utf-8".into(),
        ));
    }
    if let Some(a) = auth {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".into(), a.to_string()));
    }
    let body = metric.body.as_ref().map(|b| b.as_bytes().to_vec());
    let resp = httpcall::send_with(method, &url, &headers, body, call).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!(
            "HTTP {} from {}: {}",
            resp.status,
            httpcall::redact_url(spec.url.trim()),
            resp.body_snippet(200)
        ));
    }
    let expr = metric.jq_expression.clone();
    let body = resp.body;
    // In a child process with a memory limit where the runner enabled it (tasks/isolated.rs).
    crate::tasks::isolated::jq_first_number(expr, body.to_vec(), call.timeout).await
}

/// Apply a jq expression to a JSON document; the first output, as a number.
pub fn jq_first_number(expr: &str, json: &[u8]) -> Result<f64, String> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
    use jaq_json::Val;

    bounded::check_jq(expr).map_err(|e| format!("jq expression {expr:?} {e}"))?;
    bounded::check_json_nesting(json).map_err(|e| format!("the response is not accepted: {e}"))?;
    let input =
        jaq_json::read::parse_single(json).map_err(|e| format!("the response is not JSON: {e}"))?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: expr,
        path: (),
    };
    let modules = loader
        .load(&arena, program)
        .map_err(|_| format!("jq expression {expr:?} does not parse"))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|_| format!("jq expression {expr:?} does not compile (unknown filter?)"))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = filter.id.run((ctx, input)).map(unwrap_valr);
    let first = match out.next() {
        None => return Err(format!("no data (jq expression {expr:?} gave no output)")),
        Some(Err(e)) => return Err(format!("jq expression {expr:?} failed: {e}")),
        Some(Ok(v)) => v,
    };
    let value = match &first {
        Val::Null => return Err(format!("no data (jq expression {expr:?} gave null)")),
        Val::Num(n) => n.to_string().parse::<f64>().ok(),
        Val::TStr(b) | Val::BStr(b) => {
            let s = String::from_utf8_lossy(b);
            s.trim().parse::<f64>().ok()
        }
        _ => None,
    };
    match value {
        Some(v) if v.is_nan() => Err(format!("not a number: NaN (jq expression {expr:?})")),
        Some(v) => Ok(v),
        None => {
            let mut shown = first.to_string();
            if shown.len() > 100 {
                shown.truncate(100);
                shown.push_str("...");
            }
            Err(format!("not a number: {shown} (jq expression {expr:?})"))
        }
    }
}
