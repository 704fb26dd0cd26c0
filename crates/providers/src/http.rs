//! Sending upstream requests and reading answers and errors (OpenAI's and Anthropic's error
//! bodies share the `error.message` / `error.type` fields that are read here).

use std::time::Duration;

use serde::de::DeserializeOwned;
use switchyard_protocol::error::ErrorBody;

use crate::{AuthStyle, ProviderError, ProviderSettings, UpstreamStatus};

/// An upstream endpoint, `{base}/{path}`, parsed once when the provider is built.
pub(crate) fn endpoint(
    provider: &str,
    base: &str,
    path: &str,
) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(&format!("{base}/{path}")).map_err(|e| ProviderError::Internal {
        detail: format!("provider `{provider}`: base URL `{base}` is not a valid URL: {e}"),
    })
}

/// Adds the provider's credential (as its wire family presents it) and configured headers.
/// The caller's own credentials are never forwarded: upstream requests are built from scratch.
pub(crate) fn authorize(
    mut http: reqwest::RequestBuilder,
    s: &ProviderSettings,
) -> reqwest::RequestBuilder {
    if let Some(key) = &s.api_key {
        http = match &s.auth {
            AuthStyle::Bearer => http.bearer_auth(key.expose()),
            AuthStyle::Header(name) => http.header(name.as_str(), key.expose()),
        };
    }
    for (name, value) in &s.headers {
        http = http.header(name.as_str(), value.as_str());
    }
    http
}

/// Sends the request and returns the response once its status is known to be a success.
pub(crate) async fn start(
    provider: &str,
    http: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, ProviderError> {
    let resp = match tokio::time::timeout(timeout, http.send()).await {
        Err(_) => {
            return Err(ProviderError::Timeout {
                provider: provider.to_owned(),
                after: timeout,
            });
        }
        Ok(Err(e)) => return Err(ProviderError::from_reqwest(provider, e, timeout)),
        Ok(Ok(resp)) => resp,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(provider, resp, timeout).await)
}

/// Sends the request and decodes a JSON answer, all within `timeout`.
pub(crate) async fn json<T: DeserializeOwned>(
    provider: &str,
    http: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<T, ProviderError> {
    let work = async {
        let resp = start(provider, http, Duration::MAX).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode {
            provider: provider.to_owned(),
            detail: format!("{e} (body starts with {:?})", preview(&bytes)),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::Timeout {
            provider: provider.to_owned(),
            after: timeout,
        }),
    }
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    s.into_owned()
}

/// Turns a non-2xx answer into an error, keeping the upstream's message and `retry-after`.
async fn status_error(provider: &str, resp: reqwest::Response, timeout: Duration) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = match tokio::time::timeout(timeout.min(Duration::from_secs(30)), resp.bytes()).await
    {
        Ok(Ok(b)) => b,
        _ => Default::default(),
    };
    let (message, kind, code, param) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.error.message, e.error.kind, e.error.code, e.error.param),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)])
                .trim()
                .to_owned();
            let message = if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            };
            (message, None, None, None)
        }
    };
    ProviderError::Status(Box::new(UpstreamStatus {
        provider: provider.to_owned(),
        status,
        message,
        kind,
        code,
        param,
        retry_after,
    }))
}

/// `retry-after` in seconds (or `retry-after-ms`, which OpenAI also sends).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}
