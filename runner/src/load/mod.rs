//! The load engine: a protocol-agnostic pacer shared by the http and grpc tasks.
