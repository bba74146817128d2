//! One retry helper for Kubernetes API calls ([`call`]): every attempt is bounded by its own
//! timeout (well below the whole budget, so a hung request is retried), transient failures
//! (429, 5xx, timeouts, dropped or refused connections) are retried with jittered
//! exponential backoff (`backon`), a server's `Retry-After` is honoured, and the budget
//! bounds the whole call. Failures name the call (`GET secret ns/exp`) and tell a timeout,
//! a dropped connection, a refused connection and an API status apart.
//!
//! A call that failed and then succeeded is one WARN line with the attempt count; the
//! attempts in between are DEBUG lines.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use super::ErrorKind;

/// How API calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First backoff delay (doubled after each failure, with jitter).
    pub initial_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// The budget of one call: no retry starts after it (attempts, waits and timeouts
    /// included).
    pub max_elapsed: Duration,
    /// Timeout of one request (a hung request is abandoned and retried).
    pub request_timeout: Duration,
    /// Give up after this many 409 Conflicts in a row (writers that merge on conflict).
    pub max_conflicts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_conflicts: 16,
        }
    }
}

/// Why one attempt of an API call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No answer within the request timeout (the request may or may not have been applied).
    TimedOut(Duration),
    /// The connection broke after the request was sent (it may or may not have been applied).
    Dropped(String),
    /// No connection could be made (nothing was sent).
    Refused(String),
    /// The API server answered with an error status.
    Status {
        code: u16,
        reason: String,
        message: String,
        /// The server's `Retry-After` (`details.retryAfterSeconds`).
        retry_after: Option<Duration>,
    },
    /// Anything else (a response that could not be read, a client-side error).
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::TimedOut(d) => write!(f, "timed out after {}", fmt_duration(*d)),
            Failure::Dropped(m) => write!(f, "connection dropped: {m}"),
            Failure::Refused(m) => write!(f, "connection refused: {m}"),
            Failure::Status {
                code,
                reason,
                message,
                ..
            } => {
                write!(f, "{code}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Failure::Other(m) => f.write_str(m),
        }
    }
}

/// `300ms`, `10s`, `1.5s`.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

impl Failure {
    /// What the failure means for the caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::TimedOut(_) | Failure::Dropped(_) | Failure::Refused(_) => {
                ErrorKind::Transient
            }
            Failure::Status { code, .. } => super::status_kind(*code),
            Failure::Other(_) => ErrorKind::Permanent,
        }
    }

    /// True when a write may have been applied although no answer arrived.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Failure::TimedOut(_) | Failure::Dropped(_))
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Classify a kube error: an API status, or what happened to the connection.
pub fn classify(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) => Failure::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
            retry_after: s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            classify_transport(e)
        }
        other => Failure::Other(other.to_string()),
    }
}

fn classify_transport(e: &(dyn std::error::Error + 'static)) -> Failure {
    let mut chain = Vec::new();
    let mut connect = false;
    let mut dropped = false;
    let mut timed_out = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused | K::AddrNotAvailable | K::NotFound => connect = true,
                K::TimedOut | K::WouldBlock => timed_out = true,
                K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::NotConnected => dropped = true,
                _ => {}
            }
        }
        if let Some(h) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                connect = true;
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                dropped = true;
            }
            if h.is_timeout() {
                timed_out = true;
            }
        }
        cur = err.source();
    }
    let text = chain.join(": ");
    if connect {
        Failure::Refused(text)
    } else if timed_out {
        // hyper-timeout's read timeout (the client's own backstop)
        Failure::Dropped(format!("read timed out: {text}"))
    } else if dropped {
        Failure::Dropped(text)
    } else {
        Failure::Other(text)
    }
}

/// One request, bounded by the policy's request timeout.
pub async fn attempt<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Failure::TimedOut(timeout)),
    }
}

/// A call that failed for good.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{call}: {failure}{}", attempts_note(*.attempts))]
pub struct CallError {
    /// `GET secret ns/exp`
    pub call: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's failure.
    pub failure: Failure,
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl CallError {
    pub fn kind(&self) -> ErrorKind {
        self.failure.kind()
    }
}

/// Run `op` (one attempt per call; use [`attempt`] inside it) until it succeeds, fails with
/// an error that is not transient, or the policy's budget is spent. `call` names the call
/// in logs and errors.
pub async fn call<T, F, Fut>(call: &str, policy: &RetryPolicy, mut op: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    let mut failures: Vec<String> = Vec::new();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.initial_delay)
        .with_max_delay(policy.max_delay)
        .with_jitter()
        .without_max_times();
    let result = (|| {
        attempts += 1;
        op()
    })
    .retry(backoff)
    .when(|f: &Failure| f.kind() == ErrorKind::Transient)
    .adjust(|f: &Failure, next: Option<Duration>| {
        // The server's Retry-After wins over our backoff (it knows when it can take more).
        let wait = f.retry_after().or(next)?;
        (start.elapsed() + wait <= policy.max_elapsed).then_some(wait)
    })
    .notify(|f: &Failure, wait: Duration| {
        failures.push(f.to_string());
        tracing::debug!(call, error = %f, retry_in_ms = wait.as_millis() as u64, "API call failed; retrying");
    })
    .await;
    match result {
        Ok(v) => {
            if attempts > 1 {
                tracing::warn!(
                    call,
                    attempts,
                    "{call} succeeded on attempt {attempts} after: {}",
                    failures.join("; ")
                );
            }
            Ok(v)
        }
        Err(failure) => Err(CallError {
            call: call.to_string(),
            attempts,
            failure,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: u32) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: "TooManyRequests".into(),
            message: "slow down".into(),
            details: serde_json::from_value(
                serde_json::json!({ "retryAfterSeconds": retry_after }),
            )
            .ok(),
            ..Default::default()
        }))
    }

    #[test]
    fn statuses_carry_retry_after_and_say_what_failed() {
        let f = classify(&status(429, 3));
        assert_eq!(f.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(f.kind(), ErrorKind::Transient);
        assert_eq!(f.to_string(), "429 TooManyRequests: slow down");
        assert_eq!(classify(&status(422, 0)).kind(), ErrorKind::Permanent);
        assert_eq!(
            Failure::TimedOut(Duration::from_secs(5)).to_string(),
            "timed out after 5s"
        );
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_elapsed: Duration::from_secs(5),
            request_timeout: Duration::from_millis(50),
            max_conflicts: 2,
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_counted() {
        let mut n = 0;
        let v = call("GET secret ns/x", &fast(), || {
            n += 1;
            let k = n;
            async move {
                if k < 3 {
                    Err(Failure::Dropped("reset".into()))
                } else {
                    Ok(k)
                }
            }
        })
        .await
        .expect("third attempt");
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried_and_name_the_call() {
        let mut n = 0;
        let err = call("PATCH secret ns/x", &fast(), || {
            n += 1;
            async { Err::<(), _>(classify(&status(403, 0))) }
        })
        .await
        .expect_err("403");
        assert_eq!(n, 1);
        assert_eq!(err.attempts, 1);
        assert!(
            err.to_string().starts_with("PATCH secret ns/x: 403"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_the_budget_bounds_the_call() {
        let start = Instant::now();
        let mut n = 0;
        call("GET secret ns/x", &fast(), || {
            n += 1;
            let k = n;
            async move {
                if k == 1 {
                    Err(classify(&status(429, 2)))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("after Retry-After");
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );

        // a Retry-After beyond the budget ends the call at once, saying how often it tried
        let err = call("GET secret ns/x", &fast(), || async {
            Err::<(), _>(classify(&status(429, 60)))
        })
        .await
        .expect_err("over budget");
        assert_eq!(err.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_request_times_out_and_is_retried() {
        let mut n = 0;
        let policy = fast();
        let v = call("GET secret ns/x", &policy, || {
            n += 1;
            let k = n;
            attempt(policy.request_timeout, async move {
                if k == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, kube::Error>(k)
            })
        })
        .await
        .expect("second attempt");
        assert_eq!(v, 2);
    }
}
