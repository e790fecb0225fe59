//! TLS for the tools' outgoing HTTPS (the `http_request` tool, MCP servers at `https://`
//! URLs): rustls on ring, the provider the gRPC server's TLS already builds, with the
//! system's root certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).

use std::sync::Once;

/// Makes ring the process's rustls provider, once, before any HTTPS client is built. A
/// provider installed earlier by the embedding program is kept.
pub fn use_ring_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
