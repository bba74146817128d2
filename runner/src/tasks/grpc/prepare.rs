//! Before load: service description, request data and metadata (files and URLs), the
//! call; every error names its field.

use super::*;

pub(super) fn check_url(url: &str, field: &str) -> Result<(), TaskError> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .map(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(TaskError::invalid(
            field,
            format!("{url:?} is not an http(s) URL, e.g. https://example.com/hello.proto"),
        ))
    }
}

pub(super) fn check_data_shape(data: &serde_json::Value, field: &str) -> Result<(), TaskError> {
    use serde_json::Value;
    match data {
        Value::Null | Value::Object(_) => Ok(()),
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(TaskError::invalid(
                        format!("{field}[{i}]"),
                        "must be a JSON object (one request message)",
                    ));
                }
            }
            Ok(())
        }
        Value::Array(_) => Err(TaskError::invalid(
            field,
            "empty array; give one object or a non-empty array of objects",
        )),
        _ => Err(TaskError::invalid(
            field,
            "must be a JSON object (one request message) or an array of objects (used round-robin)",
        )),
    }
}

pub(super) fn invalid(field: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::invalid(field, e.to_string())
}

pub(super) async fn prepare(t: &Target) -> Result<GrpcSender, TaskError> {
    // Metadata (also used by reflection).
    let mut metadata_pairs = t.metadata.value.clone();
    if let Some(u) = &t.metadata_url {
        let body = fetch::fetch(&u.value, FETCH_TIMEOUT)
            .await
            .map_err(|e| invalid(&u.field, e))?;
        let fetched: BTreeMap<String, String> = serde_json::from_slice(&body).map_err(|e| {
            invalid(
                &u.field,
                format!("the document is not a JSON object of string values: {e}"),
            )
        })?;
        metadata_pairs.extend(fetched);
    }
    if let Some(f) = &t.metadata_file {
        let body = read_capped(Path::new(&f.value), MAX_PAYLOAD_BYTES)
            .map_err(|e| invalid(&f.field, format!("cannot read {}: {e}", f.value)))?;
        let read: BTreeMap<String, String> = serde_json::from_slice(&body).map_err(|e| {
            invalid(
                &f.field,
                format!("{} is not a JSON object of string values: {e}", f.value),
            )
        })?;
        metadata_pairs.extend(read);
    }
    let metadata: MetadataMap = metadata_map(&metadata_pairs)
        .map_err(|(k, m)| TaskError::invalid(format!("{}.{k}", t.metadata.field), m))?;

    let tls = match &t.tls {
        None => None,
        Some((cacert, cname)) => {
            let ca_pem = match cacert {
                Some(c) => Some(
                    read_capped(Path::new(&c.value), MAX_PEM_BYTES)
                        .map_err(|e| invalid(&c.field, format!("cannot read {}: {e}", c.value)))?,
                ),
                None => None,
            };
            Some(TlsConfig {
                ca_pem,
                server_name: cname.clone(),
            })
        }
    };
    let channel_config = ChannelConfig {
        host: t.host.value.clone(),
        tls,
        connect_timeout: t.connect_timeout,
    };

    let pool: DescriptorPool = match &t.source.value {
        Source::ProtoFile(path) => {
            descriptor::compile_proto_file(std::path::Path::new(path), &t.import_paths)
                .map_err(|e| invalid(&t.source.field, e))?
        }
        Source::ProtoText(text) => descriptor::compile_proto_text(text, &t.import_paths)
            .map_err(|e| invalid(&t.source.field, e))?,
        Source::ProtoUrl(url) => {
            let body = fetch::fetch(url, FETCH_TIMEOUT)
                .await
                .map_err(|e| invalid(&t.source.field, e))?;
            let text = String::from_utf8(body.to_vec()).map_err(|_| {
                invalid(
                    &t.source.field,
                    format!("{url}: the document is not UTF-8 text"),
                )
            })?;
            descriptor::compile_proto_text(&text, &t.import_paths)
                .map_err(|e| invalid(&t.source.field, e))?
        }
        Source::Protoset(path) => {
            let bytes = read_capped(Path::new(path), MAX_PAYLOAD_BYTES)
                .map_err(|e| invalid(&t.source.field, format!("cannot read {path}: {e}")))?;
            descriptor::decode_protoset(&bytes, path).map_err(|e| invalid(&t.source.field, e))?
        }
        Source::Reflection => {
            let channel = channel_config.connect().await.map_err(|e| {
                TaskError::Failed(format!(
                    "{}: {e} (needed to ask the server for its service description by reflection; or give proto, protoText or protoset)",
                    t.host.field
                ))
            })?;
            reflection::describe_service(
                &channel,
                &t.service,
                &metadata,
                t.connect_timeout.max(t.timeout),
            )
            .await
            .map_err(|e| match e {
                GrpcError::Method(m) => TaskError::invalid(&t.call.field, m),
                other => TaskError::Failed(format!("{}: {other}", t.host.value)),
            })?
        }
    };
    let method =
        descriptor::find_method(&pool, &t.call.value).map_err(|e| invalid(&t.call.field, e))?;

    let data_value = match &t.data_file {
        Some(f) => {
            let body = read_capped(Path::new(&f.value), MAX_PAYLOAD_BYTES)
                .map_err(|e| invalid(&f.field, format!("cannot read {}: {e}", f.value)))?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| invalid(&f.field, format!("{} is not JSON: {e}", f.value)))?;
            check_data_shape(&v, &f.field)?;
            Some(At {
                value: Some(v),
                field: f.field.clone(),
            })
        }
        None => None,
    };
    let data_value = match (&t.data_url, data_value) {
        (_, Some(from_file)) => from_file,
        (data_url, None) => match data_url {
            Some(u) => {
                let body = fetch::fetch(&u.value, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| invalid(&u.field, e))?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| invalid(&u.field, format!("the document is not JSON: {e}")))?;
                check_data_shape(&v, &u.field)?;
                At {
                    value: Some(v),
                    field: u.field.clone(),
                }
            }
            None => t.data.clone(),
        },
    };
    let requests = match &t.binary {
        // A serialized message, sent as it is (checked against the request type).
        Some(b) => {
            let bytes = match &b.value {
                Binary::File(path) => read_capped(Path::new(path), MAX_PAYLOAD_BYTES)
                    .map(bytes::Bytes::from)
                    .map_err(|e| invalid(&b.field, format!("cannot read {path}: {e}")))?,
                Binary::Url(url) => fetch::fetch(url, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| invalid(&b.field, e))?,
            };
            prost_reflect::DynamicMessage::decode(method.input(), bytes.clone()).map_err(|e| {
                invalid(
                    &b.field,
                    format!(
                        "not a serialized {} message: {e}",
                        method.input().full_name()
                    ),
                )
            })?;
            vec![bytes]
        }
        None => descriptor::encode_data(
            data_value.value.as_ref(),
            &method.input(),
            &data_value.field,
        )
        .map_err(|e| match e {
            GrpcError::Data { path, message } => TaskError::invalid(path, message),
            other => invalid(&data_value.field, other),
        })?,
    };

    // Check the address and TLS settings now (connections open in the load).
    let connector = channel_config.connector().map_err(|e| {
        let field = match &t.tls {
            Some((Some(ca), _)) if e.to_string().starts_with("TLS") => &ca.field,
            _ => &t.host.field,
        };
        invalid(field, e)
    })?;
    let unary = UnaryCall::new(
        &connector,
        &t.service,
        &t.method,
        method.output(),
        metadata,
        t.timeout,
    )
    .map_err(|e| invalid(&t.call.field, e))?;
    let call = match Streaming::of(&method) {
        None => {
            if let Some(f) = &t.stream_field {
                tracing::warn!(
                    call = t.call.value.as_str(),
                    "grpc: {f} has no effect: the method is unary"
                );
            }
            Call::Unary(unary)
        }
        Some(kind) => {
            tracing::info!(
                call = t.call.value.as_str(),
                "grpc: {kind:?} streaming method; every stream counts as one call"
            );
            if t.stream_dynamic_messages {
                tracing::warn!(
                    "grpc: stream-dynamic-messages has no effect: data has no call templates, so every message of a stream is as given"
                );
            }
            Call::Streaming(StreamingCall::new(unary, kind, t.stream))
        }
    };
    Ok(GrpcSender {
        call,
        requests: requests.iter().map(|r| frame(r)).collect(),
        next: AtomicU64::new(0),
        connector,
        connections: (0..t.connections)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect(),
        generation: AtomicU64::new(0),
    })
}
