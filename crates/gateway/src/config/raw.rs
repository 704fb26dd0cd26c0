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
    /// Named models that spread calls over several targets.
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
    /// Retry defaults for every call (routes and plain slugs).
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub circuit_breaker: RawBreaker,
    /// Prices and capabilities by `provider/model`, added to (or replacing) the built-in catalog.
    #[serde(default)]
    pub catalog: BTreeMap<String, switchyard_providers::catalog::CatalogEntry>,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub logs: RawLogs,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    pub firewall: Option<RawFirewall>,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub streams: RawStreams,
}

/// `[state]`: state shared by replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `redis://…` or a reference to one (`env:REDIS_URL`): rate-limit and budget counters,
    /// the response cache, circuit breakers and stream buffers, shared by every replica that
    /// names the same server.
    pub redis: Option<String>,
    /// Put before every key Switchyard writes in Redis (default `switchyard:`), so that several
    /// deployments can share one server.
    pub prefix: Option<String>,
}

/// `[streams]`: buffering streamed answers so that a caller can resume them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreams {
    /// Buffer every streamed answer (default `false`: only calls that send
    /// `x-switchyard-resumable: true`).
    pub resumable: Option<bool>,
    /// How long a buffered stream can be resumed after it ended, e.g. `"10m"`.
    pub ttl: Option<String>,
    /// The in-process buffers' bound, in mebibytes (oldest ended streams go first).
    pub max_mb: Option<u64>,
    /// Let the upstream call run to the end when the caller goes away (default `true`), so
    /// that the answer can be collected later; `false` cancels it as an unbuffered call would.
    pub detach: Option<bool>,
}

/// `[firewall]`: screening of requests and answers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    /// The policy of calls whose key and route name none (default: `default`, if defined).
    pub policy: Option<String>,
    /// Bytes a stream screen may hold back while a possible finding is still arriving.
    pub hold_max: Option<usize>,
    /// Also read user turns and tool results with the injection classifier (a linear model
    /// over the local all-MiniLM-L6-v2 embeddings), where a policy screens for injection.
    pub classifier: Option<bool>,
    /// The classifier's score, 0 to 1, at or above which a text is an injection attempt
    /// (default: the one chosen when it was trained).
    pub classifier_threshold: Option<f32>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawFirewallPolicy>,
    #[serde(default)]
    pub custom: RawFirewallCustom,
}

/// `[firewall.policies.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewallPolicy {
    /// Detector (or `pii`, `all`) → `block`, `redact`, `flag` or `off`, for requests.
    #[serde(default)]
    pub input: BTreeMap<String, String>,
    /// The same, for answers.
    #[serde(default)]
    pub output: BTreeMap<String, String>,
    /// Put redacted request values back into the answer.
    pub restore: Option<bool>,
}

/// `[firewall.custom]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewallCustom {
    /// Whole words or phrases, case-insensitive.
    #[serde(default)]
    pub terms: Vec<String>,
    /// Regular expressions.
    #[serde(default)]
    pub patterns: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// The collector's OTLP/HTTP URL, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: Option<String>,
    /// Headers sent with every export; values may be `env:NAME` or `file:/path`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Cache every call's answer unless its route or model says otherwise.
    pub enabled: Option<bool>,
    /// How long answers are kept, e.g. `"1h"`.
    pub ttl: Option<String>,
    /// The in-process cache's size bound, in mebibytes.
    pub max_mb: Option<u64>,
    /// `key` (each virtual key its own; the default), `shared`, or a group name.
    pub namespace: Option<String>,
    /// `redis://…` or a reference to one (`env:REDIS_URL`): keep answers in Redis, shared by
    /// every replica, instead of in this process.
    pub redis_url: Option<String>,
    /// By route, alias or `provider/model`: `true`, `false` or a time such as `"10m"`.
    #[serde(default)]
    pub models: BTreeMap<String, RawCacheSetting>,
    pub semantic: Option<RawSemantic>,
}

/// `[cache.semantic]`: answers for similar requests, not only identical ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSemantic {
    /// The model that embeds the last user turn: a slug, alias or route (default: the local
    /// `local/all-minilm-l6-v2`).
    pub embedding_model: Option<String>,
    /// Asked of the embedding model (OpenAI's `dimensions`), when set.
    pub dimensions: Option<u32>,
    /// The cosine similarity at or above which a stored answer is served, 0 to 1.
    pub threshold: Option<f32>,
    /// Requests the index remembers, at most.
    pub max_entries: Option<usize>,
    /// Requests with a higher temperature are not served semantically.
    pub max_temperature: Option<f64>,
    /// Serve conversations that carry tool results or images semantically too.
    pub tool_results: Option<bool>,
    pub images: Option<bool>,
    /// Slugs and aliases (as callers name them) cached semantically; routes say `semantic_cache`.
    #[serde(default)]
    pub models: Vec<String>,
}

/// `true` (the default time), `false`, or a time such as `"10m"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCacheSetting {
    On(bool),
    Ttl(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    /// Records waiting to be written, at most; beyond it records are dropped and counted.
    pub queue: Option<usize>,
    /// Records older than this many days are deleted (checked hourly).
    pub retention_days: Option<u64>,
    /// `none`, `metadata` (default) or `full` (request and response bodies, redacted).
    pub bodies: Option<String>,
    /// `false` turns request logging off (metrics still count calls).
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Let calls through without a virtual key even on a non-loopback address.
    pub open: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `"env:NAME"` or `"file:/path"`: the token of the `/admin` API.
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite:///path/file.db` or `postgres://…`, or a reference to one (`env:DATABASE_URL`).
    /// Default: `switchyard.db` in the data directory.
    pub url: Option<String>,
    /// `postgres://…` or a reference to one: the same as `url`, for a PostgreSQL store.
    pub postgres: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    /// Base of the exponential backoff between attempts on the same target.
    pub backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    /// Time allowed for one attempt (a whole answer, or a stream's first byte).
    pub attempt_timeout_ms: Option<u64>,
    /// Time allowed for the whole call, all attempts and waits included.
    pub deadline_ms: Option<u64>,
    /// A `retry-after` longer than this is not waited for.
    pub max_retry_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub enabled: Option<bool>,
    /// Opens after this many failures in a row.
    pub consecutive_failures: Option<u32>,
    /// Or when this share of the calls in the window failed…
    pub error_rate: Option<f64>,
    /// …and the window holds at least this many calls.
    pub min_calls: Option<u32>,
    pub window_ms: Option<u64>,
    /// How long an open circuit skips its target before one probe call is let through.
    pub cooldown_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// `fallback` (default), `weighted`, `least-latency` or `lowest-cost`.
    pub strategy: Option<String>,
    pub targets: Vec<RawTarget>,
    pub max_attempts: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub attempt_timeout_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    /// Start a second attempt when the first has not answered (first byte) in time:
    /// milliseconds, or `"p95"` for the first target's recent 95th percentile.
    pub hedge: Option<RawHedge>,
    /// `least-latency`: the share of calls sent to a random target to keep measuring the others.
    pub explore: Option<f64>,
    /// What the request log keeps of this route's calls: `none`, `metadata` or `full`.
    pub log_bodies: Option<String>,
    /// Whether answers are cached: `true`, `false` or a time such as `"10m"`.
    pub cache: Option<RawCacheSetting>,
    /// Whether similar (not only identical) requests are served from the cache.
    pub semantic_cache: Option<bool>,
    /// The firewall policy of this route's calls (a key's own wins), or `off`.
    pub firewall: Option<String>,
    /// Conditional routing: the first rule whose metadata all match sends the call elsewhere.
    #[serde(default)]
    pub when: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTarget {
    Slug(String),
    Full(RawTargetTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetTable {
    pub model: String,
    pub weight: Option<u32>,
    /// Request fields set for this target, e.g. `{ temperature = 0.2, max_tokens = 512 }`.
    pub overrides: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHedge {
    Millis(u64),
    Percentile(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Every key must equal the call's metadata value (strings compared as written).
    pub metadata: BTreeMap<String, String>,
    /// A route, alias or `provider/model` slug.
    pub route: String,
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
