//! One HTTP request of a delivery: built, signed, sent to a checked address, and judged.

use std::error::Error as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Url, redirect};

use super::schedule::{AttemptVerdict, parse_retry_after};
use super::settings::{HeaderSetting, HttpMethod};
use super::targets::{TargetPolicy, TargetRefusal};

/// How much of a response body is kept.
pub const MAX_KEPT_BODY: usize = 1024;
/// The `user-agent` of every request.
pub const USER_AGENT_VALUE: &str = concat!("keyproof/", env!("CARGO_PKG_VERSION"));

/// Sends webhook requests; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: TargetPolicy,
    timeout: Duration,
}

/// One request to send. The signature covers `webhook_id`, `timestamp` and `body`.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub method: HttpMethod,
    pub headers: &'a [HeaderSetting],
    pub webhook_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

/// What came of one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status: Option<u16>,
    /// The first [`MAX_KEPT_BODY`] bytes of the body, lossily decoded.
    pub body: Option<String>,
    /// Why it failed, in keyproof's own words (never a library's error text).
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub verdict: AttemptVerdict,
}

impl Sender {
    /// A client that never follows redirects, uses no proxy, gives each request `timeout`, and
    /// resolves names through the target guard.
    pub fn new(policy: TargetPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(std::sync::Arc::new(policy.resolver()))
            .user_agent(USER_AGENT_VALUE)
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }

    /// Sends one request and reports how it went; never fails.
    pub async fn send(&self, outgoing: Outgoing<'_>) -> Answer {
        let started_at = Utc::now();
        let clock = Instant::now();
        let failed = |error: String| Answer {
            started_at,
            duration: clock.elapsed(),
            status: None,
            body: None,
            error: Some(error),
            retry_after: None,
            verdict: AttemptVerdict::Failed,
        };

        let url = match Url::parse(outgoing.url) {
            Ok(url) => url,
            Err(_) => return failed("the stored URL is not valid".to_owned()),
        };
        // Address literals never reach the resolver, so they are checked here, before any
        // connection; host names are checked by the resolver, whose answer is what the client
        // connects to.
        if let Err(refusal) = self.policy.check_literal(&url) {
            return failed(refusal.to_string());
        }
        let request = match self.build(url, &outgoing) {
            Ok(request) => request,
            Err(error) => return failed(error),
        };

        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(error) => return failed(self.explain(&error)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, Utc::now()));
        let body = read_prefix(response).await;

        let (verdict, error) = if status.is_success() {
            (AttemptVerdict::Delivered, None)
        } else if status.is_redirection() {
            let error = "the receiver answered with a redirect, which is not followed";
            (AttemptVerdict::Failed, Some(error.to_owned()))
        } else if status == reqwest::StatusCode::GONE {
            let error = "the receiver answered 410 Gone: no more retries";
            (AttemptVerdict::Gone, Some(error.to_owned()))
        } else {
            let error = format!("the receiver answered {}", status.as_u16());
            (AttemptVerdict::Failed, Some(error))
        };
        Answer {
            started_at,
            duration: clock.elapsed(),
            status: Some(status.as_u16()),
            body,
            error,
            retry_after,
            verdict,
        }
    }

    fn build(&self, url: Url, outgoing: &Outgoing<'_>) -> Result<reqwest::Request, String> {
        let method = match outgoing.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
        };
        let mut headers = HeaderMap::new();
        for header in outgoing.headers {
            // Validated when configured; anything unusable now is skipped rather than sent.
            let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
                continue;
            };
            for value in &header.values {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.append(name.clone(), value);
                }
            }
        }
        // Inserted after the custom headers, so they replace anything of the same name.
        let ours = [
            (CONTENT_TYPE, "application/json".to_owned()),
            (USER_AGENT, USER_AGENT_VALUE.to_owned()),
            (
                HeaderName::from_static("webhook-id"),
                outgoing.webhook_id.clone(),
            ),
            (
                HeaderName::from_static("webhook-timestamp"),
                outgoing.timestamp.to_string(),
            ),
            (
                HeaderName::from_static("webhook-signature"),
                outgoing.signature.clone(),
            ),
        ];
        for (name, value) in ours {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| "an internal header could not be encoded".to_owned())?;
            headers.insert(name, value);
        }

        self.client
            .request(method, url)
            .headers(headers)
            .body(outgoing.body.clone())
            .build()
            .map_err(|_| "the request could not be built".to_owned())
    }

    /// A safe description of a failed request; the library's text goes to the debug log only.
    fn explain(&self, error: &reqwest::Error) -> String {
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(refusal) = cause.downcast_ref::<TargetRefusal>() {
                return refusal.to_string();
            }
            source = cause.source();
        }
        tracing::debug!(error = %error, "webhook request failed");

        if error.is_timeout() {
            format!("no answer within {} s", self.timeout.as_secs_f64())
        } else if error.is_connect() {
            "could not connect to the target".to_owned()
        } else {
            "the request failed before an answer arrived".to_owned()
        }
    }
}

/// Reads at most [`MAX_KEPT_BODY`] bytes of the body and drops the rest unread.
async fn read_prefix(mut response: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < MAX_KEPT_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    kept.truncate(MAX_KEPT_BODY);

    Some(String::from_utf8_lossy(&kept).into_owned())
}

/// The origin of `url` (scheme, host and port), for logs and for client tokens.
pub fn loggable_url(url: &str) -> String {
    // Only the origin: besides queries and credentials, paths can hold secrets too (chat
    // services put the webhook's token in the path).
    match Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_keep_only_their_origin() {
        assert_eq!(
            loggable_url("https://u:p@hooks.example.com:8443/T0/B0/secret?token=secret#frag"),
            "https://hooks.example.com:8443"
        );
    }
}
