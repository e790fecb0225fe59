//! tonic answers a request it cannot decode (garbage bytes, nesting past prost's recursion
//! limit) with INTERNAL. The client sent it, so it is INVALID_ARGUMENT: this rewrites it.
//! A request over the size limit keeps tonic's OUT_OF_RANGE, with a message that names the
//! setting to change.

use tonic::codegen::http;

const DECODE_FAILURE: &str = "failed to decode Protobuf message";
const TOO_LARGE: &str = "Error, decoded message length too large: found ";

/// "… found N bytes, the limit is: M bytes" → N and M.
fn sizes(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix(TOO_LARGE)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

pub fn decode_failure_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if let Some(status) = tonic::Status::from_header_map(headers)
        && status.code() == tonic::Code::OutOfRange
        && let Some((found, limit)) = sizes(status.message())
    {
        let fixed = tonic::Status::out_of_range(format!(
            "the request is {found} bytes; limits.max_message_bytes is {limit}: send less (large inputs belong in datasets or behind a URL) or raise the limit"
        ));
        if fixed.add_header(headers).is_err() {
            tracing::warn!("could not rewrite a message size failure's status");
        }
    } else if let Some(status) = tonic::Status::from_header_map(headers)
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
