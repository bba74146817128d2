//! A tonic codec for messages known only at run time. Requests are encoded once, before
//! load starts, and sent as bytes; every reply is decoded as a [`DynamicMessage`] of the
//! method's output type (so a reply that does not parse is an error, as with ghz).
//! `DynamicMessage` has no `Default`, so tonic's prost codec cannot be used.

use bytes::{Buf, BufMut, Bytes};
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// Sends pre-encoded request bytes; decodes replies with the output descriptor.
#[derive(Clone, Debug)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
    }
}

impl Codec for DynamicCodec {
    type Encode = Bytes;
    type Decode = DynamicMessage;
    type Encoder = BytesEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// Writes already encoded message bytes.
#[derive(Clone, Copy, Debug)]
pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// Decodes a reply as a dynamic message of the given type.
#[derive(Clone, Debug)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let len = src.remaining();
        let bytes = src.copy_to_bytes(len);
        DynamicMessage::decode(self.0.clone(), bytes)
            .map(Some)
            .map_err(|e| {
                Status::internal(format!(
                    "reply is not a valid {} message: {e}",
                    self.0.full_name()
                ))
            })
    }
}
