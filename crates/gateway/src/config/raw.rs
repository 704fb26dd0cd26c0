//! The configuration file as written: every key optional, unknown keys rejected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    /// Bare model names (no `provider/`) go to this provider, e.g. `"openai"`.
    pub default_provider: Option<String>,
    /// `name = "provider/model"`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: Option<usize>,
    pub connect_timeout_ms: Option<u64>,
    /// Default time allowed for a whole upstream answer (or a stream's first byte).
    pub request_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Wire family: `"openai"` (required for providers that are not presets).
    pub kind: Option<String>,
    pub base_url: Option<String>,
    /// `"env:NAME"` or `"file:/path"`.
    pub api_key: Option<String>,
    /// Send the key in this header instead of `Authorization: Bearer`.
    pub auth_header: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Models listed by `GET /v1/models` as `provider/model`.
    #[serde(default)]
    pub models: Vec<String>,
    pub request_timeout_ms: Option<u64>,
    pub enabled: Option<bool>,
    /// Whether the upstream accepts `stream_options.include_usage`.
    pub stream_usage: Option<bool>,
}
