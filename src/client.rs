//! The Rust client: the generated `WorkflowServiceClient` with a bearer token and TLS
//! options. The `wfm` CLI is its first user.

use std::io;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::{
    Request, Status,
    codegen::http::Uri,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{coalesce::Coalescing, proto::workflow_service_client::WorkflowServiceClient};

pub type Client = WorkflowServiceClient<InterceptedService<Channel, Bearer>>;

/// How to reach the server beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// PEM CA to trust for an `https://` server.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key to present (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address '{0}': {1}")]
    Address(String, String),
    #[error("the token cannot be sent as a header: {0}")]
    Token(String),
    #[error("an https:// server needs a CA certificate to trust (--tls-ca)")]
    MissingCa,
    #[error("cannot connect to wfm at {0}: {1}")]
    Connect(String, String),
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// Connects to `url` (`http://` or `https://`).
pub async fn connect(url: &str, options: ConnectOptions) -> Result<Client, ClientError> {
    let bearer = Bearer::new(options.token.as_deref())?;
    let channel = connect_channel(url, options).await?;
    Ok(
        WorkflowServiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(64 << 20),
    )
}

/// One connection to `url`, for callers that put several services on it (the benchmark
/// sends Health/Check and workflow calls over the same connections).
pub async fn connect_channel(url: &str, options: ConnectOptions) -> Result<Channel, ClientError> {
    if !url.contains("://") {
        return Err(ClientError::Address(
            url.into(),
            format!("give its scheme: http://{url}, or https://{url} for a TLS server"),
        ));
    }
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| ClientError::Address(url.into(), e.to_string()))?;
    if url.starts_with("https://") {
        let ca = options.ca_pem.ok_or(ClientError::MissingCa)?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = options.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| ClientError::Address(url.into(), e.to_string()))?;
    }
    endpoint
        .connect_with_connector(tower::service_fn(open_tcp))
        .await
        .map_err(|e| ClientError::Connect(url.into(), causes(&e)))
}

/// The TCP connection under a channel (TLS, when asked for, goes on top of it). Its small
/// flushes wait for the tasks ready on this thread, so a request's headers and body leave
/// in one write instead of waking the server twice (see [`Coalescing::batching`]).
async fn open_tcp(uri: Uri) -> io::Result<TokioIo<Coalescing<TcpStream>>> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address has no host"))?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    // An IPv6 literal keeps its brackets in the URI's host.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(Coalescing::batching(stream)))
}

/// An error and its causes, outermost first: tonic's own text ("transport error") says
/// nothing of why.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text = format!("{text}: {inner_text}");
        }
        cause = inner.source();
    }
    text
}

impl Bearer {
    /// The `authorization` value for `token`; none sends no header.
    pub fn new(token: Option<&str>) -> Result<Bearer, ClientError> {
        token
            .map(|t| format!("Bearer {t}").parse::<MetadataValue<Ascii>>())
            .transpose()
            .map(Bearer)
            .map_err(|e| ClientError::Token(e.to_string()))
    }
}
