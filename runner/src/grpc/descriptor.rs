//! Service descriptions (.proto files, inline .proto text, descriptor sets) and the
//! conversion of JSON data into request messages through the message descriptor.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor};
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};
use serde_json::Value;

use super::GrpcError;

/// The name under which inline .proto text (`protoText`) is compiled.
pub const INLINE_PROTO_NAME: &str = "inline.proto";

/// Compile a .proto file. Imports are looked up in `import_paths`, then in the file's own
/// directory, then among Google's well-known types (`google/protobuf/*.proto`).
pub fn compile_proto_file(
    path: &Path,
    import_paths: &[PathBuf],
) -> Result<DescriptorPool, GrpcError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(GrpcError::Proto(format!(
            "cannot read {}: {e}",
            path.display()
        )));
    }
    let mut includes: Vec<PathBuf> = import_paths.to_vec();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    includes.push(parent);
    let mut resolver = ChainFileResolver::new();
    for dir in includes {
        resolver.add(CappedInclude::new(dir));
    }
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_file(path)
        .map_err(|e| GrpcError::Proto(format!("{}: {}", path.display(), protox_message(&e))))?;
    Ok(compiler.descriptor_pool())
}

/// Compile inline .proto source (`protoText`); imports are looked up in `import_paths` and
/// among Google's well-known types.
pub fn compile_proto_text(
    source: &str,
    import_paths: &[PathBuf],
) -> Result<DescriptorPool, GrpcError> {
    let inline = File::from_source(INLINE_PROTO_NAME, source)
        .map_err(|e| GrpcError::Proto(format!("protoText: {}", protox_message(&e))))?;
    let mut resolver = ChainFileResolver::new();
    resolver.add(InlineResolver(inline));
    for p in import_paths {
        resolver.add(CappedInclude::new(p.clone()));
    }
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_file(INLINE_PROTO_NAME)
        .map_err(|e| GrpcError::Proto(format!("protoText: {}", protox_message(&e))))?;
    Ok(compiler.descriptor_pool())
}

/// A compiled `FileDescriptorSet` (`protoc --include_imports -o x.protoset`).
pub fn decode_protoset(bytes: &[u8], what: &str) -> Result<DescriptorPool, GrpcError> {
    DescriptorPool::decode(bytes).map_err(|e| {
        GrpcError::Proto(format!(
            "{what}: not a valid FileDescriptorSet ({e}); create one with `protoc --include_imports -o file.protoset file.proto`"
        ))
    })
}

/// The bytes of a `FileDescriptorSet` holding a compiled pool (used by tests and tools).
pub fn encode_pool(pool: &DescriptorPool) -> Vec<u8> {
    pool.encode_to_vec()
}

fn protox_message(e: &protox::Error) -> String {
    // protox errors carry a miette diagnostic; its Display is one line.
    e.to_string()
}

/// Largest .proto file read (the main one or an import).
pub const MAX_PROTO_BYTES: u64 = 16 << 20;

/// An include directory (protox's own resolver) whose files are read only when they are
/// regular files of at most [`MAX_PROTO_BYTES`]: a `protoFile` (or an import) naming
/// `/dev/zero`, a FIFO or a huge file is an error, not an endless read.
struct CappedInclude {
    dir: PathBuf,
    inner: IncludeFileResolver,
}

impl CappedInclude {
    fn new(dir: PathBuf) -> Self {
        let inner = IncludeFileResolver::new(dir.clone());
        CappedInclude { dir, inner }
    }
}

impl FileResolver for CappedInclude {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let path = self.dir.join(name);
        if let Ok(m) = std::fs::metadata(&path) {
            if !m.is_file() {
                return Err(protox::Error::new(format!(
                    "{} is not a regular file; name a .proto file",
                    path.display()
                )));
            }
            if m.len() > MAX_PROTO_BYTES {
                return Err(protox::Error::new(format!(
                    "{} is {} bytes; .proto files of at most {MAX_PROTO_BYTES} bytes are read",
                    path.display(),
                    m.len()
                )));
            }
        }
        self.inner.open_file(name)
    }
}

struct InlineResolver(File);

impl FileResolver for InlineResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == INLINE_PROTO_NAME {
            Ok(self.0.clone())
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// `package.Service.Method` or `package.Service/Method` (a leading `/` is accepted too):
/// returns (`package.Service`, `Method`).
pub fn split_call(call: &str) -> Option<(String, String)> {
    let call = call.trim().trim_start_matches('/');
    let (service, method) = match call.rsplit_once('/') {
        Some(parts) => parts,
        None => call.rsplit_once('.')?,
    };
    if service.is_empty() || method.is_empty() || method.contains('.') || method.contains('/') {
        return None;
    }
    Some((service.to_string(), method.to_string()))
}

/// Find a unary method in a pool.
pub fn find_method(pool: &DescriptorPool, call: &str) -> Result<MethodDescriptor, GrpcError> {
    let (service_name, method_name) = split_call(call).ok_or_else(|| {
        GrpcError::Method(format!(
            "{call:?} is not a method name; use package.Service/Method, e.g. helloworld.Greeter/SayHello"
        ))
    })?;
    let service = pool.get_service_by_name(&service_name).ok_or_else(|| {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        GrpcError::Method(format!(
            "service {service_name:?} not found; the description has: {}",
            if known.is_empty() {
                "no services".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let method = service
        .methods()
        .find(|m| m.name() == method_name)
        .ok_or_else(|| {
            let known: Vec<String> = service.methods().map(|m| m.name().to_string()).collect();
            GrpcError::Method(format!(
                "method {method_name:?} not found in service {service_name}; it has: {}",
                known.join(", ")
            ))
        })?;
    Ok(method)
}

/// Turn the `data` value (one object, or an array of objects used round-robin) into encoded
/// request messages. `path` names the parameter in errors (e.g. `data`,
/// `endpoints.v1.data`).
pub fn encode_data(
    data: Option<&Value>,
    desc: &MessageDescriptor,
    path: &str,
) -> Result<Vec<Bytes>, GrpcError> {
    let items: Vec<(String, &Value)> = match data {
        None | Some(Value::Null) => {
            return Ok(vec![Bytes::from(
                DynamicMessage::new(desc.clone()).encode_to_vec(),
            )])
        }
        Some(v @ Value::Object(_)) => vec![(path.to_string(), v)],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(GrpcError::Data {
                    path: path.to_string(),
                    message: "empty array; give one object or a non-empty array of objects"
                        .to_string(),
                });
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()
        }
        Some(_) => {
            return Err(GrpcError::Data {
                path: path.to_string(),
                message: format!(
                    "must be a JSON object (one {} message) or an array of objects",
                    desc.full_name()
                ),
            })
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (item_path, value) in items {
        if !value.is_object() {
            return Err(GrpcError::Data {
                path: item_path,
                message: format!("must be a JSON object (a {} message)", desc.full_name()),
            });
        }
        check_fields(value, desc, &item_path)?;
        let msg =
            DynamicMessage::deserialize(desc.clone(), value).map_err(|e| GrpcError::Data {
                path: item_path.clone(),
                message: format!("does not fit message {}: {e}", desc.full_name()),
            })?;
        out.push(Bytes::from(msg.encode_to_vec()));
    }
    Ok(out)
}

/// Walk a JSON object along the message descriptor and report the first field that is not
/// in the message, with its full path.
fn check_fields(value: &Value, desc: &MessageDescriptor, path: &str) -> Result<(), GrpcError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    if desc.full_name().starts_with("google.protobuf.") {
        // Well-known types have special JSON forms (Timestamp as a string, Struct, ...).
        return Ok(());
    }
    for (key, v) in map {
        let field_path = format!("{path}.{key}");
        let field = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
            .ok_or_else(|| GrpcError::Data {
                path: field_path.clone(),
                message: format!(
                    "field {key:?} is not in message {}; its fields are: {}",
                    desc.full_name(),
                    desc.fields()
                        .map(|f| f.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        if field.is_map() {
            continue;
        }
        if let Kind::Message(inner) = field.kind() {
            match v {
                Value::Array(items) if field.is_list() => {
                    for (i, item) in items.iter().enumerate() {
                        check_fields(item, &inner, &format!("{field_path}[{i}]"))?;
                    }
                }
                Value::Object(_) => check_fields(v, &inner, &field_path)?,
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETER: &str = r#"
syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); rpc Chat (stream HelloRequest) returns (stream HelloReply); }
message Inner { string x = 1; }
message HelloRequest { string name = 1; int32 count = 2; Inner inner = 3; repeated Inner items = 4; }
message HelloReply { string message = 1; }
"#;

    /// Issue 14: a `protoFile` naming a device, a FIFO or a huge file is refused with its
    /// name, not read without end (protox reads whatever it is given).
    #[test]
    fn proto_files_that_are_not_regular_or_too_large_are_refused() {
        let e = compile_proto_file(Path::new("/dev/zero"), &[]).expect_err("a device");
        assert!(
            e.to_string().contains("/dev/zero is not a regular file"),
            "{e}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.proto");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_PROTO_BYTES + 1).expect("sparse file");
        let e = compile_proto_file(&big, &[]).expect_err("too large");
        assert!(e.to_string().contains("at most 16777216 bytes"), "{e}");
        // An import that is a device is refused the same way.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.proto")).expect("link");
        let main = dir.path().join("main.proto");
        std::fs::write(&main, "syntax = \"proto3\";\nimport \"zero.proto\";\n").expect("write");
        let e = compile_proto_file(&main, &[]).expect_err("import of a device");
        assert!(e.to_string().contains("is not a regular file"), "{e}");
        let pool = compile_proto_text(GREETER, &[dir.path().to_path_buf()]).expect("no import");
        assert!(find_method(&pool, "helloworld.Greeter/SayHello").is_ok());
    }

    #[test]
    fn calls_split_both_ways() {
        assert_eq!(
            split_call("helloworld.Greeter.SayHello"),
            Some(("helloworld.Greeter".into(), "SayHello".into()))
        );
        assert_eq!(
            split_call("helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter".into(), "SayHello".into()))
        );
        assert_eq!(split_call("/a.b.S/M"), Some(("a.b.S".into(), "M".into())));
        assert_eq!(split_call("SayHello"), None);
        assert_eq!(split_call("a.S/"), None);
    }

    #[test]
    fn inline_proto_methods_and_data() {
        let pool = compile_proto_text(GREETER, &[]).unwrap();
        let m = find_method(&pool, "helloworld.Greeter.SayHello").unwrap();
        assert_eq!(m.input().full_name(), "helloworld.HelloRequest");
        let e = find_method(&pool, "helloworld.Greeter/SayHi").unwrap_err();
        assert!(
            e.to_string().contains("SayHi") && e.to_string().contains("SayHello"),
            "{e}"
        );
        let e = find_method(&pool, "helloworld.Nope/SayHello").unwrap_err();
        assert!(e.to_string().contains("helloworld.Greeter"), "{e}");
        // Streaming methods are found too (the grpc task runs them as ghz does).
        let chat = find_method(&pool, "helloworld.Greeter/Chat").unwrap();
        assert!(chat.is_client_streaming() && chat.is_server_streaming());

        let data: Value =
            serde_json::json!([{"name": "a", "count": 3}, {"name": "b", "inner": {"x": "y"}}]);
        let encoded = encode_data(Some(&data), &m.input(), "data").unwrap();
        assert_eq!(encoded.len(), 2);
        let back = DynamicMessage::decode(m.input(), encoded[0].clone()).unwrap();
        assert_eq!(back.get_field_by_name("count").unwrap().as_i32(), Some(3));

        let bad = serde_json::json!({"nmae": "x"});
        let e = encode_data(Some(&bad), &m.input(), "data").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("data.nmae: field \"nmae\" is not in message helloworld.HelloRequest"),
            "{e}"
        );
        let bad = serde_json::json!([{"name": "x"}, {"items": [{"x": "1"}, {"z": 1}]}]);
        let e = encode_data(Some(&bad), &m.input(), "data").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("data[1].items[1].z: field \"z\" is not in message helloworld.Inner"),
            "{e}"
        );
        let bad = serde_json::json!({"count": "many"});
        let e = encode_data(Some(&bad), &m.input(), "data").unwrap_err();
        assert!(e.to_string().starts_with("data: does not fit"), "{e}");
        let e = encode_data(Some(&serde_json::json!(3)), &m.input(), "data").unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
    }

    #[test]
    fn bad_proto_text_is_a_clear_error() {
        let e = compile_proto_text("syntax = \"proto3\"; message {", &[]).unwrap_err();
        assert!(e.to_string().starts_with("protoText:"), "{e}");
        let e = compile_proto_file(Path::new("/nonexistent/x.proto"), &[]).unwrap_err();
        assert!(
            e.to_string().contains("cannot read /nonexistent/x.proto"),
            "{e}"
        );
        let e = decode_protoset(b"garbage", "protoset /tmp/x").unwrap_err();
        assert!(e.to_string().contains("FileDescriptorSet"), "{e}");
    }
}
