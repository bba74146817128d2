//! gRPC load testing without generated code: service descriptions from .proto text,
//! compiled descriptor sets or server reflection; requests built at run time from JSON
//! through the message descriptor; sent over our own HTTP/2 client connection ([`h2conn`];
//! tonic for reflection).
//!
//! - [`descriptor`]: load a [`prost_reflect::DescriptorPool`], find the method, turn JSON
//!   data into encoded request messages (with errors that name the field).
//! - [`reflection`]: a gRPC server reflection client (`grpc.reflection.v1`, falling back
//!   to `v1alpha`).
//! - [`client`]: connections (plaintext or rustls TLS), one unary call (replies decoded as
//!   dynamic messages of the output type), status codes.
//! - [`h2conn`]: the HTTP/2 client connection load calls run on (one driver task per
//!   connection, request heads encoded once, flow control, GOAWAY, cancellation).
//! - [`fetch`]: `protoURL` / `dataURL` / `metadataURL` fetched by the runner itself.

pub mod client;
pub mod descriptor;
pub mod fetch;
pub mod h2conn;
pub mod reflection;
pub mod streaming;

/// What can go wrong while describing or reaching a gRPC service (before load starts).
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A .proto file or a descriptor set could not be read or compiled.
    #[error("{0}")]
    Proto(String),
    /// The service or method is not in the description.
    #[error("{0}")]
    Method(String),
    /// The JSON data does not fit the request message; `path` is where (e.g. `data.nmae`).
    #[error("{path}: {message}")]
    Data { path: String, message: String },
    /// Server reflection failed.
    #[error("server reflection: {0}")]
    Reflection(String),
    /// The server could not be reached or the channel could not be configured.
    #[error("{0}")]
    Connect(String),
    /// A URL could not be fetched.
    #[error("{0}")]
    Fetch(String),
}
