//! Per-caller request rate limit: a token bucket per token id (GCRA, from `governor`), so
//! one client looping on the service cannot starve the others. When auth is off every
//! caller is the one caller "anonymous". Health and reflection are not counted.
//!
//! The limiter is keyed by token id, never by anything the client makes up, so it holds
//! one small state per configured token (and "anonymous"): its memory is bounded.

use std::{
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use tonic::{Status, codegen::http};

use super::auth::{Caller, GUARDED};
use crate::config::Limits;
use crate::manager::ManagerError;

/// Who a request is counted against when auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// The limiter and the configured values it reports in its refusals.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    per_second: u32,
    burst: u32,
}

impl RateLimiter {
    /// None when `limits.requests_per_second_per_token` is 0 (off).
    pub fn from_limits(limits: &Limits) -> Option<Arc<Self>> {
        let per_second = NonZeroU32::new(limits.requests_per_second_per_token)?;
        let burst = NonZeroU32::new(limits.request_burst_per_token).unwrap_or(per_second);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Some(Arc::new(RateLimiter {
            limiter: governor::RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            per_second: per_second.get(),
            burst: burst.get(),
        }))
    }

    /// Counts one request of `caller`; past the limit, RESOURCE_EXHAUSTED naming the limit,
    /// its value and when to retry.
    pub fn check(&self, caller: &str) -> Result<(), Status> {
        let key = caller.to_string();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let retry_ms = wait.as_millis().max(1);
            let mut status = Status::from(ManagerError::ResourceExhausted {
                limit: "limits.requests_per_second_per_token",
                value: self.per_second.to_string(),
                detail: format!(
                    "rate limit exceeded for token '{caller}' (burst limits.request_burst_per_token is {}); retry after {retry_ms} ms",
                    self.burst
                ),
            });
            // gRPC's retry pushback: clients with a retry policy wait this long.
            if let Ok(value) = retry_ms.to_string().parse() {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
            status
        })
    }
}

/// The tower layer; it sits inside the auth layer, which has put the [`Caller`] in the
/// request's extensions.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<RateLimiter>>,
}

impl RateLimitLayer {
    pub fn new(limiter: Option<Arc<RateLimiter>>) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<Arc<RateLimiter>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RateLimitService<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(limiter) = &self.limiter
            && request.uri().path().starts_with(GUARDED)
        {
            let caller = request
                .extensions()
                .get::<Caller>()
                .map_or(ANONYMOUS, |c| c.token_id.as_str());
            if let Err(status) = limiter.check(caller) {
                tracing::debug!(caller, path = request.uri().path(), "rate limited");
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_bucket() {
        let limits = Limits {
            requests_per_second_per_token: 1,
            request_burst_per_token: 3,
            ..Limits::default()
        };
        let limiter = RateLimiter::from_limits(&limits).unwrap();
        for _ in 0..3 {
            limiter.check("ci").unwrap();
        }
        let refused = limiter.check("ci").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().starts_with(
                "limits.requests_per_second_per_token is 1: rate limit exceeded for token 'ci'"
            ),
            "{}",
            refused.message()
        );
        assert!(
            refused.message().contains("retry after"),
            "{}",
            refused.message()
        );
        limiter.check("dash").unwrap();
        let off = Limits {
            requests_per_second_per_token: 0,
            ..Limits::default()
        };
        assert!(RateLimiter::from_limits(&off).is_none());
    }
}
