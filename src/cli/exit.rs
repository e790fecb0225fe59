//! The exit code of a command that fails, decided here by the type of its failure (README):
//! 2 for a command line or configuration refused before anything is done, 1 for a failure
//! after that.

use crate::api::ServeError;
use crate::client::ClientError;

/// A command line or configuration refused before anything is done.
pub const REFUSED: u8 = 2;
/// A failure after that: a call the server refused, a lost connection, a server that
/// could not start.
pub const FAILED: u8 = 1;

/// What the client refuses before it sends any request: a flag's value (`--input`,
/// `--metadata`, `--arguments`, `--label`, `--status`), a file one names (a definition
/// for `register -f`, `--tls-ca`), the server's address.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Refused(pub anyhow::Error);

impl Refused {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Refused(anyhow::anyhow!("{message}"))
    }
}

/// Why connecting failed: a server address, token or TLS option that cannot be used is
/// refused before anything is sent; a server that does not answer is a failure.
pub fn connect_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Address(..) | ClientError::Token(_) | ClientError::MissingCa => {
            Refused(e.into()).into()
        }
        ClientError::Connect(..) => e.into(),
    }
}

/// The exit code of a client command that failed.
pub fn of_client(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Refused>().is_some() {
        REFUSED
    } else {
        FAILED
    }
}

/// The exit code of `wfm serve` when it could not serve: its security configuration
/// (tokens, TLS files, an open non-loopback address) is refused before it starts; a port
/// taken, a data directory in use or a failure while serving is a failure.
pub fn of_serve(e: &ServeError) -> u8 {
    match e {
        ServeError::Security(_) => REFUSED,
        ServeError::DataDir { .. }
        | ServeError::Bind { .. }
        | ServeError::Store(_)
        | ServeError::Recovery(_)
        | ServeError::Metrics(_)
        | ServeError::Reflection(_)
        | ServeError::Transport(_) => FAILED,
    }
}
