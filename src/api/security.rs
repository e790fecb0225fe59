//! What the server needs to be safe on a network, from the configuration: the token
//! checker, the refusal to expose an open server, and TLS.

use std::sync::Arc;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::auth::Authenticator;
use crate::config::Config;

/// Builds the token checker from `auth.tokens` and `auth.tokens_file`.
pub fn authenticator(config: &Config) -> Result<Arc<Authenticator>, String> {
    let mut entries = config.auth.tokens.clone();
    if let Some(path) = &config.auth.tokens_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
        let from_file = Authenticator::parse_tokens_file(&text)
            .map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
        // A tokens file is the operator asking for auth: an empty one must not turn it off.
        if from_file.is_empty() {
            return Err(format!(
                "auth.tokens_file {} has no token, so auth would be off: add `ID ROLE SHA256` lines \
                 (`wfm token create --role admin --id ops` prints one) or remove auth.tokens_file",
                path.display()
            ));
        }
        entries.extend(from_file);
    }
    Authenticator::new(entries).map(Arc::new)
}

/// Secure by default: without tokens the server only listens on loopback, unless the
/// operator said `insecure` — and then it says so loudly.
pub fn check_exposure(config: &Config, auth: &Authenticator) -> Result<(), String> {
    if auth.enabled() {
        if !config.listen.ip().is_loopback() && config.tls.is_none() {
            tracing::warn!(
                listen = %config.listen,
                "bearer tokens travel in clear text on this non-loopback address: anyone on the path can read one and reuse it; configure [tls] cert and key"
            );
        }
        return Ok(());
    }
    if config.listen.ip().is_loopback() {
        tracing::info!(
            listen = %config.listen,
            "auth is off (no tokens configured): only the user running wfm may call it; configure [auth] tokens to let other users in"
        );
        return Ok(());
    }
    if !config.auth.insecure {
        return Err(format!(
            "refusing to listen on {} without authentication: anyone who reaches the port could register, run and shut down workflows. \
             Configure tokens ([auth] tokens or tokens_file; `wfm token create --role admin` makes one), \
             listen on a loopback address, or pass --insecure to accept the risk",
            config.listen
        ));
    }
    tracing::warn!(
        listen = %config.listen,
        "INSECURE: listening on a non-loopback address WITHOUT AUTHENTICATION (--insecure): anyone who reaches this port can register, run and shut down workflows"
    );
    Ok(())
}

/// The server with TLS on, or why the configured files cannot serve TLS (a key that is not
/// the certificate's, a file that is not PEM), naming them.
pub fn with_tls(
    builder: tonic::transport::Server,
    tls: ServerTlsConfig,
    config: &Config,
) -> Result<tonic::transport::Server, String> {
    builder.tls_config(tls).map_err(|e| {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let files = config.tls.as_ref().map_or(String::new(), |t| {
            let ca = t.client_ca.as_ref().map_or(String::new(), |ca| {
                format!(", tls.client_ca {}", ca.display())
            });
            format!(
                " (tls.cert {}, tls.key {}{ca})",
                t.cert.display(),
                t.key.display()
            )
        });
        format!("cannot serve TLS with the configured files{files}: {cause}")
    })
}

/// TLS from `tls.cert` and `tls.key`, requiring client certificates signed by
/// `tls.client_ca` when it is set (mutual TLS).
pub fn tls(config: &Config) -> Result<Option<ServerTlsConfig>, String> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("tls.{what} {}: {e}", path.display()))
    };
    let mut server = ServerTlsConfig::new().identity(Identity::from_pem(
        read("cert", &tls.cert)?,
        read("key", &tls.key)?,
    ));
    if let Some(ca) = &tls.client_ca {
        server = server.client_ca_root(Certificate::from_pem(read("client_ca", ca)?));
    }
    Ok(Some(server))
}
