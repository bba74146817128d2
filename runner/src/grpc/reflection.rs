//! A gRPC server reflection client: asks the server for the file that defines a service
//! and, file by file, for its imports; tries `grpc.reflection.v1` first and falls back to
//! `grpc.reflection.v1alpha` (older servers).

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use protox::file::{FileResolver, GoogleFileResolver};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Code;

use super::GrpcError;

/// What one reflection query returned.
enum Answer {
    Files(Vec<Vec<u8>>),
    Services(Vec<String>),
    Error(i32, String),
    Other,
}

/// One reflection request.
enum Query {
    Symbol(String),
    File(String),
    ListServices,
}

macro_rules! reflection_version {
    ($modname:ident, $pb:path) => {
        mod $modname {
            use super::*;
            use pb::server_reflection_client::ServerReflectionClient;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use $pb as pb;

            pub(super) async fn query(
                channel: &Channel,
                metadata: &MetadataMap,
                q: &Query,
            ) -> Result<Answer, tonic::Status> {
                let message_request = match q {
                    Query::Symbol(s) => MessageRequest::FileContainingSymbol(s.clone()),
                    Query::File(f) => MessageRequest::FileByFilename(f.clone()),
                    Query::ListServices => MessageRequest::ListServices(String::new()),
                };
                let req = pb::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(message_request),
                };
                let mut request = tonic::Request::new(futures::stream::iter(vec![req]));
                *request.metadata_mut() = metadata.clone();
                let mut client = ServerReflectionClient::new(channel.clone());
                let mut stream = client.server_reflection_info(request).await?.into_inner();
                let reply = stream.message().await?;
                Ok(match reply.and_then(|r| r.message_response) {
                    Some(MessageResponse::FileDescriptorResponse(f)) => {
                        Answer::Files(f.file_descriptor_proto)
                    }
                    Some(MessageResponse::ListServicesResponse(l)) => {
                        Answer::Services(l.service.into_iter().map(|s| s.name).collect())
                    }
                    Some(MessageResponse::ErrorResponse(e)) => {
                        Answer::Error(e.error_code, e.error_message)
                    }
                    _ => Answer::Other,
                })
            }
        }
    };
}

reflection_version!(v1, tonic_reflection::pb::v1);
reflection_version!(v1alpha, tonic_reflection::pb::v1alpha);

#[derive(Clone, Copy)]
enum Version {
    V1,
    V1Alpha,
}

async fn query(
    version: Version,
    channel: &Channel,
    metadata: &MetadataMap,
    timeout: Duration,
    q: &Query,
) -> Result<Answer, tonic::Status> {
    let fut = async {
        match version {
            Version::V1 => v1::query(channel, metadata, q).await,
            Version::V1Alpha => v1alpha::query(channel, metadata, q).await,
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no reply in time")))
}

/// Describe `service` (a full name, `package.Service`) by asking the server.
pub async fn describe_service(
    channel: &Channel,
    service: &str,
    metadata: &MetadataMap,
    timeout: Duration,
) -> Result<DescriptorPool, GrpcError> {
    let first = Query::Symbol(service.to_string());
    let (version, answer) = match query(Version::V1, channel, metadata, timeout, &first).await {
        Ok(a) => (Version::V1, Ok(a)),
        Err(s) if s.code() == Code::Unimplemented => {
            match query(Version::V1Alpha, channel, metadata, timeout, &first).await {
                Err(s) if s.code() == Code::Unimplemented => {
                    return Err(GrpcError::Reflection(
                        "the server does not offer reflection (grpc.reflection.v1 or v1alpha); give the service description with proto, protoText or protoset".to_string(),
                    ))
                }
                other => (Version::V1Alpha, other),
            }
        }
        Err(s) => (Version::V1, Err(s)),
    };
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    // Servers answer an unknown symbol with an error response (or, like tonic's, with a
    // NOT_FOUND status).
    let not_found = match answer {
        Ok(Answer::Files(raw)) => {
            add_files(&mut files, raw)?;
            None
        }
        Ok(Answer::Error(code, msg)) => Some(format!("{}: {msg}", code_label(code))),
        Err(s) if s.code() == Code::NotFound => Some(format!("NOT_FOUND: {}", s.message())),
        Err(s) => return Err(status_error(&s)),
        Ok(_) => {
            return Err(GrpcError::Reflection(format!(
                "unexpected answer to a request for {service:?}"
            )))
        }
    };
    if let Some(why) = not_found {
        let known = match query(version, channel, metadata, timeout, &Query::ListServices).await {
            Ok(Answer::Services(names)) => names.join(", "),
            _ => "(could not list)".to_string(),
        };
        return Err(GrpcError::Method(format!(
            "service {service:?} not found by server reflection ({why}); the server has: {known}"
        )));
    }
    // Fetch missing imports, file by file (bounded).
    let google = GoogleFileResolver::new();
    for _ in 0..1000 {
        let missing: Vec<String> = files
            .values()
            .flat_map(|f| f.dependency.iter())
            .filter(|d| !files.contains_key(*d))
            .cloned()
            .collect();
        let Some(name) = missing.into_iter().next() else {
            break;
        };
        let answer = query(
            version,
            channel,
            metadata,
            timeout,
            &Query::File(name.clone()),
        )
        .await
        .map_err(|s| status_error(&s))?;
        match answer {
            Answer::Files(raw) if !raw.is_empty() => add_files(&mut files, raw)?,
            _ => {
                // Servers often leave out Google's well-known types: we know them.
                let file = google.open_file(&name).map_err(|_| {
                    GrpcError::Reflection(format!(
                        "the server did not return imported file {name:?}"
                    ))
                })?;
                files.insert(name.clone(), file.file_descriptor_proto().clone());
            }
        }
        if !files.contains_key(&name) {
            return Err(GrpcError::Reflection(format!(
                "the server did not return imported file {name:?}"
            )));
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files.into_values())
        .map_err(|e| GrpcError::Reflection(format!("invalid descriptors from the server: {e}")))?;
    Ok(pool)
}

fn add_files(
    files: &mut BTreeMap<String, FileDescriptorProto>,
    raw: Vec<Vec<u8>>,
) -> Result<(), GrpcError> {
    for bytes in raw {
        let fdp = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
            GrpcError::Reflection(format!("invalid file descriptor from the server: {e}"))
        })?;
        files.insert(fdp.name().to_string(), fdp);
    }
    Ok(())
}

fn status_error(s: &tonic::Status) -> GrpcError {
    GrpcError::Reflection(format!(
        "{}: {}",
        super::client::code_name(s.code()),
        s.message()
    ))
}

fn code_label(code: i32) -> &'static str {
    super::client::code_name(Code::from_i32(code))
}
