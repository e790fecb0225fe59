//! tonic answers a request it cannot decode (garbage bytes, nesting past prost's recursion
//! limit) with INTERNAL. The client sent it, so it is INVALID_ARGUMENT: this rewrites it.

use tonic::codegen::http;

const DECODE_FAILURE: &str = "failed to decode Protobuf message";

pub fn decode_failure_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if let Some(status) = tonic::Status::from_header_map(headers)
        && status.code() == tonic::Code::Internal
        && status.message().starts_with(DECODE_FAILURE)
    {
        // prost names every level it descended; the last few say where and why.
        let parts: Vec<&str> = status.message().rsplitn(4, ": ").collect();
        let detail = parts
            .into_iter()
            .take(3)
            .rev()
            .collect::<Vec<_>>()
            .join(": ");
        let fixed = tonic::Status::invalid_argument(format!(
            "the request is not a valid message: {detail}"
        ));
        if fixed.add_header(headers).is_err() {
            tracing::warn!("could not rewrite a decode failure's status");
        }
    }
    response
}
