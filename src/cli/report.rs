//! How a client command's failure is said on stderr.

use super::Target;

/// Prints a client command's failure: the gRPC code and message, then why the transport
/// failed and what usually fixes it.
pub fn report_error(e: &anyhow::Error, target: &Target) {
    match e.downcast_ref::<tonic::Status>() {
        Some(status) => {
            let causes = transport_causes(status);
            eprintln!(
                "error: {:?}: {}{causes}{}",
                code(status),
                status.message(),
                transport_hint(&causes, target)
            )
        }
        None => eprintln!("error: {e:#}"),
    }
}

/// The code to name. tonic gives UNKNOWN to a connection lost mid-call (the server killed,
/// the network gone), and CANCELLED to a call whose connection closed before it was ready
/// (a TLS handshake the server ended): statuses made here from a transport error, not
/// ones the server sent. That is UNAVAILABLE, the code scripts retry on, as other gRPC
/// clients say it.
fn code(status: &tonic::Status) -> tonic::Code {
    let made_here = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Cancelled);
    if made_here && lost_connection(status) {
        tonic::Code::Unavailable
    } else {
        status.code()
    }
}

/// Whether the status's sources hold a transport failure (HTTP/2, I/O): a status the
/// server sent has no source.
fn lost_connection(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(inner) = cause {
        if inner.is::<hyper::Error>()
            || inner.is::<std::io::Error>()
            || inner.is::<tonic::transport::Error>()
        {
            return true;
        }
        cause = inner.source();
    }
    false
}

/// What usually makes a connection fail this way, for the two mistakes that end in a bare
/// closed connection or an HTTP/2 framing error.
fn transport_hint(causes: &str, target: &Target) -> &'static str {
    if target.url.starts_with("http://") && causes.contains("frame with invalid size") {
        " (is the server using TLS? then give https:// and --tls-ca)"
    } else if target.url.starts_with("https://")
        && target.tls_identity.is_none()
        && [
            "connection closed",
            "connection was not ready",
            "broken pipe",
            "CertificateRequired",
        ]
        .iter()
        .any(|sign| causes.contains(sign))
    {
        " (a server that requires client certificates closes the connection without one: give --tls-cert and --tls-key)"
    } else {
        ""
    }
}

/// Why a call failed below gRPC (a TLS alert, a closed connection), from the status's
/// sources: its own message is then only "transport error".
fn transport_causes(status: &tonic::Status) -> String {
    let mut said = status.message().to_string();
    let mut causes = String::new();
    let mut cause = std::error::Error::source(status);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !said.contains(&text) {
            causes.push_str(": ");
            causes.push_str(&text);
            said.push_str(&text);
        }
        cause = inner.source();
    }
    causes
}
