//! Credentials of the HTTP calls of `custommetrics` and `notify`: bearer tokens and basic
//! authentication from files or environment variables only, never from the spec, and
//! scrubbed from every message.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TaskError;

/// Credentials of a provider, from files or environment variables only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderAuth {
    /// File holding a bearer token (`Authorization: Bearer <token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// Environment variable holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Basic authentication (`Authorization: Basic ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

/// Basic authentication: the password only from a file.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    /// File holding the password.
    pub password_file: String,
}

impl ProviderAuth {
    pub(crate) fn validate(&self, field: &str) -> Result<(), TaskError> {
        let n = [
            self.bearer_token_file.is_some(),
            self.bearer_token_env.is_some(),
            self.basic_auth.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            return Err(TaskError::invalid(
                field,
                "give exactly one of bearerTokenFile, bearerTokenEnv, basicAuth",
            ));
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_some() == b.username_file.is_some() {
                return Err(TaskError::invalid(
                    format!("{field}.basicAuth"),
                    "give exactly one of username, usernameFile",
                ));
            }
        }
        Ok(())
    }

    /// The `Authorization` header value. Errors name the file or variable, never the secret.
    pub fn header_value(&self) -> Result<String, String> {
        self.header_and_secrets().map(|(h, _)| h)
    }

    /// The `Authorization` header value, and the secret strings in it (to scrub from any
    /// message: a server may echo them back).
    pub fn header_and_secrets(&self) -> Result<(String, Vec<String>), String> {
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret_file(path)?;
            return Ok((format!("Bearer {token}"), vec![token]));
        }
        if let Some(var) = &self.bearer_token_env {
            let token = std::env::var(var)
                .map_err(|_| format!("environment variable {var} (bearer token) is not set"))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(format!(
                    "environment variable {var} (bearer token) is empty"
                ));
            }
            return Ok((format!("Bearer {token}"), vec![token]));
        }
        if let Some(b) = &self.basic_auth {
            let user = match (&b.username, &b.username_file) {
                (Some(u), _) => u.clone(),
                (None, Some(f)) => read_secret_file(f)?,
                (None, None) => return Err("basicAuth: no username".into()),
            };
            let pass = read_secret_file(&b.password_file)?;
            use base64::Engine as _;
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            return Ok((format!("Basic {enc}"), vec![enc, pass]));
        }
        Err("no credentials configured".into())
    }
}

/// Replace every secret in `msg` by `***`.
pub fn scrub(msg: &str, secrets: &[String]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Read a credential file (trailing newline removed). Errors name the path only.
pub fn read_secret_file(path: &str) -> Result<String, String> {
    use crate::model::limits::{read_text_capped, ReadError, MAX_PEM_BYTES};
    let s = read_text_capped(std::path::Path::new(path), MAX_PEM_BYTES).map_err(|e| match e {
        ReadError::Io(e) => format!("cannot read credential file {path}: {}", e.kind()),
        other => format!("cannot read credential file {path}: it {other}"),
    })?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(format!("credential file {path} is empty"));
    }
    Ok(s)
}
