//! Raw protobuf bytes as a request: garbage, invalid UTF-8, out-of-range enums and wrong
//! wire types that a generated client cannot send.

use bytes::{Buf, BufMut};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// Sends raw bytes as the message and reads raw bytes back.
#[derive(Clone, Default)]
pub struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// The streaming RPCs of the service.
pub fn is_stream(rpc: &str) -> bool {
    matches!(rpc, "Execute" | "WatchExecution")
}

/// Calls `rpc` of the WorkflowService with `bytes` as the request; a stream's first
/// message or status is its answer.
pub async fn call(channel: &Channel, rpc: &str, bytes: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path = format!("/workflow.v1.WorkflowService/{rpc}")
        .parse()
        .unwrap();
    if is_stream(rpc) {
        let mut stream = grpc
            .server_streaming(tonic::Request::new(bytes), path, RawBytes)
            .await?
            .into_inner();
        Ok(stream.message().await?.unwrap_or_default())
    } else {
        Ok(grpc
            .unary(tonic::Request::new(bytes), path, RawBytes)
            .await?
            .into_inner())
    }
}

/// A varint, as protobuf writes it.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A length-delimited field (`field` with wire type 2) holding `bytes`.
pub fn len_field(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3 | 2);
    out.extend(varint(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out
}

/// A varint field (`field` with wire type 0).
pub fn varint_field(field: u32, value: u64) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3);
    out.extend(varint(value));
    out
}
