//! Unknown keys in an experiment: Iter8 ignored them (its own testdata has
//! `connect-timeeout`), so we do too, reporting each as a warning that names the nearest
//! known key; `--strict` turns them back into errors. The known keys come from serde's own
//! "unknown field" errors of the task types (`deny_unknown_fields`), so every task, nested
//! struct and endpoint is covered without a second list of keys.

use serde_yaml::Value;

use super::spec::TaskSpec;

/// Deserialize a task; unless `strict`, an unknown key is removed and reported in
/// `warnings` (with the nearest known key) and deserializing is tried again.
pub(super) fn deserialize_task(
    mut value: Value,
    strict: bool,
    label: &str,
    warnings: &mut Vec<String>,
) -> Result<TaskSpec, serde_path_to_error::Error<serde_yaml::Error>> {
    // every retry removes one key: the document bounds the number of rounds
    loop {
        let e = match serde_path_to_error::deserialize::<_, TaskSpec>(value.clone()) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let unknown = if strict {
            None
        } else {
            unknown_field(&message)
        };
        let Some((field, expected)) = unknown else {
            return Err(e);
        };
        let mut path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        if path.last() != Some(&field) {
            path.push(field.clone());
        }
        if !remove_at(&mut value, &path) {
            return Err(e);
        }
        let shown = e.path().to_string();
        let shown = if shown.ends_with(&field) {
            shown
        } else {
            format!("{shown}.{field}")
        };
        let known: Vec<&str> = expected.iter().map(String::as_str).collect();
        warnings.push(format!(
            "{label}: {shown}: unknown key ignored; {}",
            nearest_hint(&field, &known)
        ));
    }
}

/// `unknown field `x`, expected one of `a`, `b`` -> (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// Remove the key at `path` (map keys; sequence indexes as numbers). False when absent.
fn remove_at(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        cur = match cur {
            Value::Mapping(m) => match m.get_mut(seg.as_str()) {
                Some(v) => v,
                None => return false,
            },
            Value::Sequence(s) => match seg.parse::<usize>().ok().and_then(|i| s.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            Value::Tagged(t) => &mut t.value,
            _ => return false,
        };
    }
    match cur {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

/// `did you mean `connect-timeout`?` for the known key nearest to `key`.
pub fn nearest_hint(key: &str, known: &[&str]) -> String {
    let key = key.trim_matches('`');
    // ties go to the usual spelling (`limit` before its alias `Limit`)
    let nearest = known.iter().min_by_key(|k| {
        (
            strsim::levenshtein(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
            k.starts_with(|c: char| c.is_ascii_uppercase()),
        )
    });
    match nearest {
        Some(k) => format!("did you mean `{k}`?"),
        None => "this place takes no keys".to_string(),
    }
}
