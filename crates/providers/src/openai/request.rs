//! Building upstream requests.

use serde::Serialize;

use crate::{AuthStyle, ProviderError, ProviderSettings};

pub(super) fn encode<T: Serialize>(provider: &str, body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|e| ProviderError::Internal {
        detail: format!("encoding the request for `{provider}`: {e}"),
    })
}

/// Adds the provider's credential and configured headers. The caller's own credentials are
/// never forwarded: upstream requests are built from scratch.
pub(super) fn authorize(
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
