//! What can go wrong talking to a provider, and whether trying again can help.

use std::time::Duration;

/// A provider call that failed. Messages never contain credentials; upstream URLs are not
/// included (a base URL may carry user-info).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to provider `{provider}`: {detail}")]
    Connect { provider: String, detail: String },
    #[error("provider `{provider}` did not answer within {after:?}")]
    Timeout { provider: String, after: Duration },
    #[error("provider `{}` answered {}: {}", .0.provider, .0.status, .0.message)]
    Status(Box<UpstreamStatus>),
    #[error("provider `{provider}` sent an answer that could not be read: {detail}")]
    Decode { provider: String, detail: String },
    #[error("the stream from provider `{provider}` broke off: {detail}")]
    Interrupted { provider: String, detail: String },
    /// The request cannot be expressed in the provider's API; `param` names the field.
    #[error("{message}")]
    Request {
        provider: String,
        param: String,
        message: String,
    },
    #[error("provider `{provider}` does not support {what}")]
    Unsupported { provider: String, what: String },
    #[error("internal error: {detail}")]
    Internal { detail: String },
    /// The gateway's firewall stopped an answer mid-stream; the message names what it found.
    #[error("{message}")]
    Blocked { message: String },
}

/// An upstream's non-2xx answer, with what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    pub provider: String,
    pub status: u16,
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

/// Low-cardinality class of a failure, for metrics labels and log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Connect,
    Timeout,
    RateLimited,
    UpstreamClient,
    UpstreamAuth,
    UpstreamServer,
    Decode,
    Interrupted,
    Unsupported,
    Internal,
    /// Stopped by the gateway's firewall.
    Blocked,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::UpstreamClient => "upstream_client",
            Self::UpstreamAuth => "upstream_auth",
            Self::UpstreamServer => "upstream_server",
            Self::Decode => "decode",
            Self::Interrupted => "interrupted",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
            Self::Blocked => "firewall_blocked",
        }
    }
}

impl ProviderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Connect { .. } => ErrorClass::Connect,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Status(s) => match s.status {
                429 => ErrorClass::RateLimited,
                401 | 403 => ErrorClass::UpstreamAuth,
                500.. => ErrorClass::UpstreamServer,
                _ => ErrorClass::UpstreamClient,
            },
            Self::Decode { .. } => ErrorClass::Decode,
            Self::Interrupted { .. } => ErrorClass::Interrupted,
            Self::Unsupported { .. } | Self::Request { .. } => ErrorClass::Unsupported,
            Self::Internal { .. } => ErrorClass::Internal,
            Self::Blocked { .. } => ErrorClass::Blocked,
        }
    }

    /// Whether another attempt (here or at another target) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Interrupted { .. } => true,
            Self::Status(s) => {
                matches!(s.status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
            }
            Self::Decode { .. }
            | Self::Unsupported { .. }
            | Self::Request { .. }
            | Self::Internal { .. }
            | Self::Blocked { .. } => false,
        }
    }

    /// The request could not be made for this provider at all (it cannot express it, or the
    /// call's own limits forbid it at this target's prices): refused before anything was sent,
    /// so it says nothing about the provider's health, and another target may take it.
    pub fn is_refused_here(&self) -> bool {
        matches!(self, Self::Unsupported { .. } | Self::Request { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status(s) => s.retry_after,
            _ => None,
        }
    }

    /// A failure of the proxied transport (reqwest). Its only own timeout is the connect
    /// timeout, which is a connect failure, as on the direct transport.
    pub(crate) fn from_reqwest(provider: &str, err: reqwest::Error) -> Self {
        let provider = provider.to_owned();
        let err = err.without_url();
        let detail = crate::client::chain(&err);
        if err.is_body() || err.is_decode() {
            Self::Interrupted { provider, detail }
        } else {
            Self::Connect { provider, detail }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> ProviderError {
        ProviderError::Status(Box::new(UpstreamStatus {
            provider: "p".into(),
            status: s,
            message: "m".into(),
            kind: None,
            code: None,
            param: None,
            retry_after: None,
        }))
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert_eq!(status(429).class(), ErrorClass::RateLimited);
        assert_eq!(status(401).class(), ErrorClass::UpstreamAuth);
        assert_eq!(status(503).class(), ErrorClass::UpstreamServer);
    }
}
