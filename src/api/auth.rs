//! Bearer tokens with roles. Tokens are stored as SHA-256 hashes of random tokens and
//! compared in constant time; health and reflection stay open. With no token configured
//! auth is off, and the server then only binds to loopback unless told `insecure`.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Status, codegen::http};

/// The gRPC path prefix of the service that auth guards.
pub(crate) const GUARDED: &str = "/workflow.v1.WorkflowService/";

/// What a token may do: each role includes the ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// List, Get, ListTools, ListWorkflowTypes, GetStats, and reading and watching executions.
    Reader,
    /// Everything a reader does, plus Execute, StartExecution and CancelExecution.
    Operator,
    /// Everything, including Register, Unregister and Shutdown.
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One accepted token, as configured: an id for the logs, a role, the token's SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub id: String,
    pub role: Role,
    pub sha256: String,
}

/// Who made a request: put in the request's extensions, where handlers can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub role: Role,
}

/// Calls that change state, for the audit log.
fn changes_state(method: &str) -> bool {
    matches!(
        method,
        "Register" | "Unregister" | "Execute" | "StartExecution" | "CancelExecution" | "Shutdown"
    )
}

/// The role a method needs.
pub fn required_role(method: &str) -> Role {
    match method {
        "Register" | "Unregister" | "Shutdown" => Role::Admin,
        "Execute" | "StartExecution" | "CancelExecution" => Role::Operator,
        _ => Role::Reader,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    /// SHA-256 digest → entry.
    tokens: Vec<([u8; 32], TokenEntry)>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Longest token id: it is a name for the logs.
const MAX_TOKEN_ID_CHARS: usize = 64;

/// A token id is one word of the tokens file (`ID ROLE SHA256`, `#` starting a comment),
/// so an id `wfm token create` prints always reads back.
fn check_token_id(id: &str) -> Result<(), String> {
    let fine = |c: char| !c.is_whitespace() && !c.is_control() && c != '#';
    if id.is_empty() || id.chars().count() > MAX_TOKEN_ID_CHARS || !id.chars().all(fine) {
        return Err(format!(
            "token id '{}' must be 1 to {MAX_TOKEN_ID_CHARS} characters without spaces or '#' (it is a word of the tokens file)",
            id.escape_debug()
        ));
    }
    Ok(())
}

impl Authenticator {
    /// Builds from configured entries; refuses malformed hashes and duplicate ids.
    pub fn new(entries: Vec<TokenEntry>) -> Result<Self, String> {
        let mut seen = HashMap::new();
        let mut tokens = Vec::with_capacity(entries.len());
        for entry in entries {
            check_token_id(&entry.id)?;
            let hash = unhex(&entry.sha256.to_ascii_lowercase()).ok_or_else(|| {
                format!("auth token '{}': sha256 must be 64 hex digits", entry.id)
            })?;
            if seen.insert(entry.id.clone(), ()).is_some() {
                return Err(format!("auth token id '{}' is used twice", entry.id));
            }
            tokens.push((hash, entry));
        }
        Ok(Authenticator { tokens })
    }

    /// Reads a tokens file: one `ID ROLE SHA256` per line; `#` starts a comment.
    pub fn parse_tokens_file(text: &str) -> Result<Vec<TokenEntry>, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, role, sha256] = fields[..] else {
                return Err(format!("line {}: expected `ID ROLE SHA256`", n + 1));
            };
            let role = <Role as clap::ValueEnum>::from_str(role, true).map_err(|_| {
                format!(
                    "line {}: role '{role}' is not admin, operator or reader",
                    n + 1
                )
            })?;
            entries.push(TokenEntry {
                id: id.to_string(),
                role,
                sha256: sha256.to_string(),
            });
        }
        Ok(entries)
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks a request's path and `authorization` header.
    pub fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Caller>, Refusal> {
        let Some(method) = path.strip_prefix(GUARDED) else {
            return Ok(None); // health, reflection
        };
        if !self.enabled() {
            return Ok(None);
        }
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::unauthenticated(
                    "missing bearer token: send `authorization: Bearer <token>`",
                )
            })?;
        let presented = digest(presented.trim());
        // Every entry is compared, in constant time, whatever matches.
        let mut found: Option<&TokenEntry> = None;
        for (hash, entry) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        let entry =
            found.ok_or_else(|| Status::unauthenticated("the bearer token is not valid"))?;
        let needed = required_role(method);
        if entry.role < needed {
            return Err(Refusal {
                status: Status::permission_denied(format!(
                    "{method} needs the {} role; token '{}' has {}",
                    needed.name(),
                    entry.id,
                    entry.role.name()
                )),
                token_id: Some(entry.id.clone()),
            });
        }
        Ok(Some(Caller {
            token_id: entry.id.clone(),
            role: entry.role,
        }))
    }
}

/// A request the authenticator turned away, and whose valid token it carried if any (for
/// the audit log: a refusal names its caller like an accepted call does).
#[derive(Debug)]
pub struct Refusal {
    pub status: Status,
    pub token_id: Option<String>,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Refusal {
            status,
            token_id: None,
        }
    }
}

/// A new random token and its configuration line.
pub fn create_token(id: &str, role: Role) -> Result<(String, TokenEntry), String> {
    check_token_id(id)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    let token = format!("wfm_{}", hex(&bytes));
    let entry = TokenEntry {
        id: id.to_string(),
        role,
        sha256: hex(&digest(&token)),
    };
    Ok((token, entry))
}

/// The uid of a loopback caller that is not the user running wfm, if this is one.
fn other_user<B>(request: &http::Request<B>) -> Option<u32> {
    use super::local_peer::PeerInfo;
    let extensions = request.extensions();
    extensions
        .get::<PeerInfo>()
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<PeerInfo>>()
                .map(|tls| tls.get_ref())
        })
        .and_then(|peer| peer.other_user)
}

/// The tower layer that checks every request before it reaches a service.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !self.auth.enabled()
            && request.uri().path().starts_with(GUARDED)
            && let Some(uid) = other_user(&request)
        {
            let status = Status::permission_denied(format!(
                "auth is off (no tokens configured), so only the user running wfm may call it; \
                 this caller is another user (uid {uid}): configure [auth] tokens to let other users in"
            ));
            tracing::warn!(target: "audit", caller = "anonymous", uid, path = request.uri().path(), code = ?status.code(), "refused");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        match self.auth.check(request.uri().path(), request.headers()) {
            Ok(caller) => {
                let method = request
                    .uri()
                    .path()
                    .strip_prefix(GUARDED)
                    .map(str::to_string);
                let audited = method.filter(|m| changes_state(m)).map(|m| {
                    let who = caller
                        .as_ref()
                        .map_or_else(|| "anonymous".to_string(), |c| c.token_id.clone());
                    (who, m)
                });
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                let response = self.inner.call(request);
                Box::pin(async move {
                    let response = response.await?;
                    if let Some((who, method)) = audited {
                        // A failed call answers with its status in the headers; a unary
                        // success (or an accepted stream) has none there.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i32>().ok())
                            .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                        tracing::info!(target: "audit", caller = %who, method = %method, result = ?code, "state-changing call");
                    }
                    Ok(response)
                })
            }
            Err(Refusal { status, token_id }) => {
                let caller = token_id.as_deref().unwrap_or("anonymous");
                tracing::warn!(target: "audit", caller, path = request.uri().path(), code = ?status.code(), "refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn roles_gate_methods() {
        let (admin, a) = create_token("ops", Role::Admin).unwrap();
        let (reader, r) = create_token("dash", Role::Reader).unwrap();
        let auth = Authenticator::new(vec![a, r]).unwrap();
        let path = |m: &str| format!("{GUARDED}{m}");
        assert_eq!(
            auth.check(&path("Shutdown"), &headers(&admin))
                .unwrap()
                .unwrap()
                .token_id,
            "ops"
        );
        assert!(
            auth.check(&path("List"), &headers(&reader))
                .unwrap()
                .is_some()
        );
        let refusal = auth.check(&path("Execute"), &headers(&reader)).unwrap_err();
        assert_eq!(refusal.token_id.as_deref(), Some("dash"));
        let denied = refusal.status;
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("needs the operator role"),
            "{}",
            denied.message()
        );
        let wrong = auth.check(&path("List"), &headers("wfm_nope")).unwrap_err();
        assert_eq!(wrong.status.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.token_id, None);
        let missing = auth
            .check(&path("List"), &http::HeaderMap::new())
            .unwrap_err();
        assert_eq!(missing.status.code(), tonic::Code::Unauthenticated);
        // Health and reflection stay open.
        assert!(
            auth.check("/grpc.health.v1.Health/Check", &http::HeaderMap::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn tokens_file_lines() {
        let entries = Authenticator::parse_tokens_file(
            "# comment\nci admin abc\n\nbot reader def # trailing\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].role, Role::Reader);
        assert!(
            Authenticator::parse_tokens_file("x superuser abc")
                .unwrap_err()
                .contains("line 1")
        );
        let bad = Authenticator::new(entries).unwrap_err();
        assert!(bad.contains("64 hex digits"), "{bad}");
    }

    /// What `wfm token create` prints always reads back from the tokens file; an id that
    /// would not is refused there, and in the configuration.
    #[test]
    fn created_tokens_read_back_and_unreadable_ids_are_refused() {
        let (token, entry) = create_token("ops@example.com", Role::Operator).unwrap();
        let line = format!("{} operator {}", entry.id, entry.sha256);
        let auth = Authenticator::new(Authenticator::parse_tokens_file(&line).unwrap()).unwrap();
        let caller = auth
            .check(&format!("{GUARDED}Execute"), &headers(&token))
            .unwrap()
            .unwrap();
        assert_eq!(caller.token_id, "ops@example.com");
        for bad in ["", "bad id", "a#b", "tab\there", &"x".repeat(65)] {
            let refused = create_token(bad, Role::Admin).unwrap_err();
            assert!(
                refused.contains("without spaces or '#'"),
                "{bad:?}: {refused}"
            );
            let configured = TokenEntry {
                id: bad.to_string(),
                role: Role::Admin,
                sha256: entry.sha256.clone(),
            };
            assert!(Authenticator::new(vec![configured]).is_err(), "{bad:?}");
        }
    }
}
