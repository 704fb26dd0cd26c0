//! The gateway's error: where it came from, the one status mapping, and the caller-shaped body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchyard_protocol::error::ErrorBody;
use switchyard_providers::ProviderError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The caller's request is wrong; `param` names the field.
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// No key, or not a live one (401).
    #[error("{message}")]
    Unauthorized { message: String },
    /// The key may not do this (403).
    #[error("{message}")]
    Forbidden { message: String },
    /// The admin API is off: no admin token is configured (403, `admin_disabled`).
    #[error("{message}")]
    AdminDisabled { message: String },
    /// A virtual key's budget is spent (429, OpenAI's `insufficient_quota`).
    #[error("{message}")]
    QuotaExceeded { message: String },
    /// A virtual key's rate limit (429).
    #[error("{}", .0.message)]
    RateLimited(Box<crate::limits::Refusal>),
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    ModelNotFound { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    #[error(transparent)]
    Upstream(#[from] ProviderError),
    /// Every attempt of a call failed: `last` decides the status, `message` lists the attempts.
    #[error("{message}")]
    Attempts {
        message: String,
        last: ProviderError,
    },
    #[error("{message}")]
    Unavailable { message: String },
    #[error("internal error: {message}")]
    Internal { message: String },
    /// The firewall stopped the call (403). `tokens`: what the provider had already used, when
    /// it was the answer that was stopped.
    #[error("{message}")]
    Blocked {
        message: String,
        tokens: Option<crate::logs::Tokens>,
    },
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// The one mapping from error to HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::RateLimited(_) | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden { .. } | Self::Blocked { .. } | Self::AdminDisabled { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::ModelNotFound { .. } | Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream(e) | Self::Attempts { last: e, .. } => match e {
                ProviderError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                ProviderError::Status(s) => match s.status {
                    // The caller's request was refused for what it asked: pass the status on.
                    400 | 404 | 409 | 413 | 422 | 429 => {
                        StatusCode::from_u16(s.status).unwrap_or(StatusCode::BAD_GATEWAY)
                    }
                    // 401/403 concern the gateway's provider key, not the caller; 5xx are
                    // upstream failures.
                    _ => StatusCode::BAD_GATEWAY,
                },
                ProviderError::Unsupported { .. } | ProviderError::Request { .. } => {
                    StatusCode::BAD_REQUEST
                }
                ProviderError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                ProviderError::Blocked { .. } => StatusCode::FORBIDDEN,
                ProviderError::Connect { .. }
                | ProviderError::Decode { .. }
                | ProviderError::Interrupted { .. } => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The error body in OpenAI's shape.
    pub fn openai_body(&self) -> ErrorBody {
        match self {
            Self::BadRequest { message, param } => ErrorBody::new(
                message.clone(),
                "invalid_request_error",
                param.clone(),
                None,
            ),
            Self::Unauthorized { message } => ErrorBody::new(
                message.clone(),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            Self::QuotaExceeded { message } => ErrorBody::new(
                message.clone(),
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
            Self::RateLimited(r) => {
                ErrorBody::new(r.message.clone(), r.kind, None, Some("rate_limit_exceeded"))
            }
            Self::Forbidden { message } => ErrorBody::new(
                message.clone(),
                "invalid_request_error",
                Some("model".to_owned()),
                Some("model_not_allowed"),
            ),
            Self::AdminDisabled { message } => ErrorBody::new(
                message.clone(),
                "invalid_request_error",
                None,
                Some("admin_disabled"),
            ),
            Self::PayloadTooLarge { .. } => ErrorBody::new(
                format!("{self}; send a smaller body or raise server.max_body_bytes"),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            Self::ModelNotFound { message } => ErrorBody::new(
                message.clone(),
                "invalid_request_error",
                Some("model".to_owned()),
                Some("model_not_found"),
            ),
            Self::NotFound { message } | Self::MethodNotAllowed { message } => {
                ErrorBody::new(message.clone(), "invalid_request_error", None, None)
            }
            Self::Unavailable { message } => {
                ErrorBody::new(message.clone(), "server_error", None, None)
            }
            Self::Internal { .. } => ErrorBody::new(self.to_string(), "server_error", None, None),
            Self::Blocked { message, .. } => blocked_body(message),
            Self::Upstream(e) => upstream_body(e),
            Self::Attempts { message, last } => {
                let mut body = upstream_body(last);
                body.error.message.clone_from(message);
                body
            }
        }
    }

    /// The upstream failure behind this error, if any.
    pub fn upstream(&self) -> Option<&ProviderError> {
        match self {
            Self::Upstream(e) | Self::Attempts { last: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// What the caller is told of an upstream failure (credential problems are not echoed).
pub fn upstream_message(e: &ProviderError) -> String {
    upstream_body(e).error.message
}

fn upstream_body(e: &ProviderError) -> ErrorBody {
    match e {
        ProviderError::Status(s) => match s.status {
            401 | 403 => ErrorBody::new(
                format!(
                    "provider `{}` rejected the gateway's credentials (HTTP {}); check the provider's API key in the gateway's configuration",
                    s.provider, s.status
                ),
                "api_error",
                None,
                Some("upstream_auth"),
            ),
            400 | 404 | 409 | 413 | 422 | 429 => ErrorBody {
                error: switchyard_protocol::error::ErrorDetail {
                    message: format!("{}: {}", s.provider, s.message),
                    kind: s
                        .kind
                        .clone()
                        .or_else(|| Some(default_kind(s.status).to_owned())),
                    param: s.param.clone(),
                    code: s.code.clone(),
                },
            },
            _ => ErrorBody::new(e.to_string(), "api_error", None, Some("upstream_error")),
        },
        ProviderError::Request { param, message, .. } => ErrorBody::new(
            message.clone(),
            "invalid_request_error",
            Some(param.clone()),
            None,
        ),
        ProviderError::Timeout { .. } => {
            ErrorBody::new(e.to_string(), "api_error", None, Some("upstream_timeout"))
        }
        ProviderError::Unsupported { .. } => {
            ErrorBody::new(e.to_string(), "invalid_request_error", None, None)
        }
        ProviderError::Internal { .. } => ErrorBody::new(e.to_string(), "server_error", None, None),
        ProviderError::Blocked { message } => blocked_body(message),
        ProviderError::Connect { .. }
        | ProviderError::Decode { .. }
        | ProviderError::Interrupted { .. } => {
            ErrorBody::new(e.to_string(), "api_error", None, Some("upstream_error"))
        }
    }
}

fn blocked_body(message: &str) -> ErrorBody {
    ErrorBody::new(
        message.to_owned(),
        "invalid_request_error",
        None,
        Some("firewall_blocked"),
    )
}

fn default_kind(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_error",
        404 => "not_found_error",
        _ => "invalid_request_error",
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.openai_body()).unwrap_or_default();
        let mut resp = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(e) = self.upstream()
            && let Some(after) = e.retry_after()
        {
            let secs = after.as_secs_f64().ceil() as u64;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Self::RateLimited(r) = &self {
            let secs = r.retry_after_ms.div_ceil(1000);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            crate::limits::headers(resp.headers_mut(), &r.state);
        }
        // The middleware that logs requests reads the class from here.
        resp.extensions_mut().insert(ErrorKind(self.kind()));
        resp
    }
}

impl GatewayError {
    /// The same error for the Anthropic surface: same status and headers, Anthropic's body
    /// (`{"type":"error","error":{"type","message"}}`).
    pub fn into_anthropic_response(self) -> Response {
        let status = self.status();
        let message = self.openai_body().error.message;
        let mut resp = self.into_response();
        let body =
            switchyard_protocol::anthropic::ErrorResponse::for_status(status.as_u16(), message);
        *resp.body_mut() = axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default());
        resp
    }
}

/// Low-cardinality label of an error, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);

impl GatewayError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited(_) => "rate_limited",
            Self::QuotaExceeded { .. } => "insufficient_quota",
            Self::Forbidden { .. } | Self::AdminDisabled { .. } => "forbidden",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal { .. } => "internal",
            Self::Blocked { .. } => "firewall_blocked",
            Self::Upstream(e) | Self::Attempts { last: e, .. } => e.class().as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchyard_providers::UpstreamStatus;

    fn status_err(status: u16) -> GatewayError {
        GatewayError::Upstream(ProviderError::Status(Box::new(UpstreamStatus {
            provider: "openai".into(),
            status,
            message: "Incorrect API key provided: sk-abc***xyz".into(),
            kind: Some("invalid_request_error".into()),
            code: Some("invalid_api_key".into()),
            param: None,
            retry_after: Some(Duration::from_millis(1500)),
        })))
    }

    #[test]
    fn upstream_statuses_map_once() {
        assert_eq!(status_err(429).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_err(400).status(), StatusCode::BAD_REQUEST);
        assert_eq!(status_err(401).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(status_err(503).status(), StatusCode::BAD_GATEWAY);
        let timeout = GatewayError::Upstream(ProviderError::Timeout {
            provider: "p".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn upstream_auth_failures_do_not_echo_the_upstream_message() {
        let body = status_err(401).openai_body();
        assert!(
            !body.error.message.contains("sk-abc"),
            "{}",
            body.error.message
        );
        assert_eq!(body.error.code.as_deref(), Some("upstream_auth"));
    }

    #[test]
    fn rate_limits_carry_retry_after_rounded_up() {
        let resp = status_err(429).into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }
}
