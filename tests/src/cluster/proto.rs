//! Protobuf request bodies for Secrets (how Helm stores its release records): the body is
//! `k8s\0` followed by a `runtime.Unknown` whose `raw` bytes are a `v1.Secret`.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::core::v1::{ConfigMap, Secret};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Map, Value};

use super::store::ApiError;

const MAGIC: &[u8] = b"k8s\0";

fn map_json(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn meta_json(md: k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    let mut meta = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|s| !s.is_empty()) {
            meta.insert(k.to_string(), json!(v));
        }
    };
    put("name", md.name);
    put("generateName", md.generate_name);
    put("namespace", md.namespace);
    put("resourceVersion", md.resource_version);
    put("uid", md.uid);
    if !md.labels.is_empty() {
        meta.insert("labels".into(), map_json(&md.labels.into_iter().collect()));
    }
    if !md.annotations.is_empty() {
        meta.insert(
            "annotations".into(),
            map_json(&md.annotations.into_iter().collect()),
        );
    }
    if !md.finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(md.finalizers));
    }
    Value::Object(meta)
}

fn bytes_json(m: &BTreeMap<String, Vec<u8>>) -> Value {
    let enc = base64::engine::general_purpose::STANDARD;
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), json!(enc.encode(v))))
            .collect(),
    )
}

/// Decodes a protobuf body (Secrets and ConfigMaps, what Helm and `kubectl create
/// secret|configmap` send) into the JSON object the store keeps.
pub fn decode(plural: &str, body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("protobuf body does not start with the k8s\\0 magic prefix")
    })?;
    let unknown = Unknown::decode(rest)
        .map_err(|e| ApiError::bad_request(format!("decoding runtime.Unknown: {e}")))?;
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm
        .api_version
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "v1".into());
    let raw = unknown.raw.unwrap_or_default();
    match plural {
        "secrets" => {
            let secret = Secret::decode(raw.as_slice())
                .map_err(|e| ApiError::bad_request(format!("decoding v1.Secret: {e}")))?;
            let mut obj = json!({
                "apiVersion": api_version,
                "kind": tm.kind.filter(|s| !s.is_empty()).unwrap_or_else(|| "Secret".into()),
                "metadata": meta_json(secret.metadata.unwrap_or_default()),
            });
            if !secret.data.is_empty() {
                obj["data"] = bytes_json(&secret.data);
            }
            if !secret.string_data.is_empty() {
                obj["stringData"] = map_json(&secret.string_data);
            }
            if let Some(t) = secret.r#type.filter(|t| !t.is_empty()) {
                obj["type"] = json!(t);
            }
            if let Some(i) = secret.immutable {
                obj["immutable"] = json!(i);
            }
            Ok(obj)
        }
        "configmaps" => {
            let cm = ConfigMap::decode(raw.as_slice())
                .map_err(|e| ApiError::bad_request(format!("decoding v1.ConfigMap: {e}")))?;
            let mut obj = json!({
                "apiVersion": api_version,
                "kind": tm.kind.filter(|s| !s.is_empty()).unwrap_or_else(|| "ConfigMap".into()),
                "metadata": meta_json(cm.metadata.unwrap_or_default()),
            });
            if !cm.data.is_empty() {
                obj["data"] = map_json(&cm.data);
            }
            if !cm.binary_data.is_empty() {
                obj["binaryData"] = bytes_json(&cm.binary_data);
            }
            if let Some(i) = cm.immutable {
                obj["immutable"] = json!(i);
            }
            Ok(obj)
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (this test server decodes protobuf for secrets and configmaps only, not {other})"),
        )),
    }
}

/// Encodes a Secret as a protobuf request body (used by this crate's tests).
pub fn encode_secret(name: &str, namespace: &str, data: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let secret = Secret {
        metadata: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }),
        data: data.clone(),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    let unknown = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
        }),
        raw: Some(secret.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_secret() {
        let mut data = BTreeMap::new();
        data.insert("release".to_string(), b"H4sI".to_vec());
        let body = encode_secret("sh.helm.release.v1.x.v1", "ns", &data);
        let v = decode("secrets", &body).unwrap();
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.x.v1");
        assert_eq!(v["data"]["release"], "SDRzSQ==");
        assert_eq!(v["kind"], "Secret");
        assert!(decode("secrets", b"{}").is_err());
    }
}
