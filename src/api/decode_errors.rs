//! tonic answers a request it cannot decode (garbage bytes, nesting past prost's recursion
//! limit) with INTERNAL. The client sent it, so it is INVALID_ARGUMENT: this rewrites it,
//! naming the JSON nesting limit when the nesting was the problem.
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

/// Where prost's recursion limit stopped a decode, outermost field first
/// ("ExecuteRequest.input", "RegisterRequest.source > WorkflowDefinition.steps > …"), or
/// `None` for another decode failure. Only JSON (Struct, Value, ListValue) nests that deep,
/// so the limit to name is the JSON nesting limit, which is prost's (`convert.rs`).
fn too_deep(message: &str) -> Option<String> {
    let fields = message
        .strip_prefix(DECODE_FAILURE)?
        .strip_suffix("recursion limit reached")?;
    let mut place: Vec<&str> = fields
        .split(": ")
        .map(str::trim)
        .filter(|f| {
            !f.is_empty()
                && !["Struct.", "Value.", "ListValue."]
                    .iter()
                    .any(|json| f.starts_with(json))
        })
        .collect();
    place.reverse();
    Some(if place.is_empty() {
        "the request".to_string()
    } else {
        place.join(" > ")
    })
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
        let fixed = tonic::Status::invalid_argument(match too_deep(status.message()) {
            Some(place) => format!(
                "the request nests too deeply to decode ({place}: protobuf's recursion limit): JSON may nest at most {} levels of objects and arrays in input, metadata and native arguments, {} in a definition; flatten it",
                super::convert::MAX_JSON_DEPTH,
                super::convert::MAX_DEFINITION_JSON_DEPTH
            ),
            None => {
                // prost names every level it descended; the last few say where and why.
                let parts: Vec<&str> = status.message().rsplitn(4, ": ").collect();
                let detail = parts
                    .into_iter()
                    .take(3)
                    .rev()
                    .collect::<Vec<_>>()
                    .join(": ");
                format!("the request is not a valid message: {detail}")
            }
        });
        if fixed.add_header(headers).is_err() {
            tracing::warn!("could not rewrite a decode failure's status");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recursion_limit_names_the_fields_outermost_first() {
        let prost = "failed to decode Protobuf message: Value.kind: Struct.fields: Value.kind: Struct.fields: ToolAction.arguments: Step.action: WorkflowDefinition.steps: RegisterRequest.source: recursion limit reached";
        assert_eq!(
            too_deep(prost).unwrap(),
            "RegisterRequest.source > WorkflowDefinition.steps > Step.action > ToolAction.arguments"
        );
        assert_eq!(
            too_deep("failed to decode Protobuf message: Struct.fields: ExecuteRequest.input: recursion limit reached").unwrap(),
            "ExecuteRequest.input"
        );
        assert_eq!(
            too_deep("failed to decode Protobuf message: invalid wire type value: 7"),
            None
        );
    }
}
