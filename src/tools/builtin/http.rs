use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::tools::{Tool, ToolError, ToolSpec, arg, error::with_cause, required_arg};

/// Largest response body the tool returns (1 MiB); a longer one fails the call.
const MAX_BODY_BYTES: usize = 1 << 20;

/// `http_request {method, url, headers, body}`: one HTTP request; a JSON body is parsed.
pub struct HttpRequest {
    spec: ToolSpec,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpRequest {
    pub fn new(timeout: Duration) -> Self {
        crate::tools::tls::use_ring_provider();
        HttpRequest {
            spec: super::spec(
                "http_request",
                "Sends an HTTP request and returns {status, headers, body}; a JSON body is returned parsed. Bodies over 1 MiB fail.",
                json!({"type": "object", "required": ["url"], "properties": {
                    "method": {"type": "string", "default": "GET"},
                    "url": {"type": "string"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {}}}),
            ),
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("HTTP client with default settings"),
            timeout,
        }
    }
}

#[async_trait]
impl Tool for HttpRequest {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        const TOOL: &str = "http_request";
        let url: String = required_arg(TOOL, &arguments, "url")?;
        let method: String = arg(TOOL, &arguments, "method")?.unwrap_or_else(|| "GET".into());
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
            .map_err(|_| ToolError::invalid(TOOL, format!("'{method}' is not an HTTP method")))?;
        let headers: Map<String, Value> = arg(TOOL, &arguments, "headers")?.unwrap_or_default();
        let mut request = self.client.request(method, &url);
        for (name, value) in &headers {
            let value = value.as_str().ok_or_else(|| {
                ToolError::invalid(TOOL, format!("header '{name}' must be a string"))
            })?;
            request = request.header(name, value);
        }
        match arguments.get("body") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => request = request.body(s.clone()),
            Some(other) => request = request.json(other),
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| failed(&url, e, self.timeout))?;
        let status = response.status().as_u16();
        let response_headers: Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(&url, e, self.timeout))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(ToolError::failed(
                    TOOL,
                    format!("{url}: response body is over {MAX_BODY_BYTES} bytes"),
                ));
            }
        }
        let body = serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok(json!({ "status": status, "headers": response_headers, "body": body }))
    }
}

/// "URL: what failed: why", the why being the innermost cause (a refused connection, an
/// untrusted certificate) that reqwest's own message leaves out.
fn failed(url: &str, error: reqwest::Error, timeout: Duration) -> ToolError {
    let limit = if error.is_timeout() {
        format!(
            " (tools.http_timeout is {})",
            humantime::format_duration(timeout)
        )
    } else {
        String::new()
    };
    ToolError::failed(
        "http_request",
        format!("{url}: {}{limit}", with_cause(&error.without_url())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts the connection and never answers: the call fails naming the
    /// setting that bounds it.
    #[tokio::test]
    async fn a_timeout_names_its_setting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let err = HttpRequest::new(Duration::from_millis(200))
            .call(json!({"url": url}))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("(tools.http_timeout is 200ms)"), "{err}");
    }
}
