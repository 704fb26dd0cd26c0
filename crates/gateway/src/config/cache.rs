//! The `[cache]` section and the `cache` setting of routes and models.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::{RawCache, RawCacheSetting, RawSemantic};
use switchyard_providers::Secret;

use super::{ConfigError, Env, err, parse_span_ms};

/// The in-process cache's default size bound.
const DEFAULT_MAX_MB: u64 = 256;
/// The semantic cache's embedding model unless configured: the local CPU model
/// (`switchyard models pull all-minilm-l6-v2`).
pub const DEFAULT_EMBEDDING_MODEL: &str = "local/all-minilm-l6-v2";
/// How long an answer is kept when nothing more specific says.
const DEFAULT_TTL: Duration = Duration::from_secs(3_600);

/// Which callers share cached answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Namespace {
    /// Each virtual key has its own (calls without a key share one).
    #[default]
    Key,
    /// Every caller shares one.
    Shared,
    /// The keys that name the same group share one.
    Group(String),
}

impl Namespace {
    /// `key`, `shared`, or a group name (letters, digits, `-`, `_`, `.`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "key" => Ok(Self::Key),
            "shared" => Ok(Self::Shared),
            g if !g.is_empty()
                && g.len() <= 64
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
            {
                Ok(Self::Group(g.to_owned()))
            }
            other => Err(format!(
                "`{other}`: use key (each key its own), shared (every caller), or a group name of letters, digits, - _ ."
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// Cache every call's answer, unless its route or model says otherwise.
    pub enabled: bool,
    /// How long answers are kept unless a route, model or header says otherwise.
    pub ttl: Duration,
    /// The in-process cache's bound on the answers it holds, in bytes (0 turns caching off).
    pub max_bytes: u64,
    /// The default namespace of a key (a key's own setting wins).
    pub namespace: Namespace,
    /// By route, alias or `provider/model`, as callers name them: the time to keep answers, or
    /// `None` for not cached.
    pub models: BTreeMap<String, Option<Duration>>,
    /// `[cache.semantic]`, when configured.
    pub semantic: Option<SemanticPolicy>,
    /// Keep answers in this Redis instead of in process.
    pub redis_url: Option<Secret>,
}

/// How similar requests are served from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticPolicy {
    pub embedding_model: String,
    pub dimensions: Option<u32>,
    pub threshold: f32,
    pub max_entries: usize,
    pub max_temperature: f64,
    pub tool_results: bool,
    pub images: bool,
    /// Slugs and aliases cached semantically.
    pub models: Vec<String>,
}

impl CachePolicy {
    /// Whether calls to `name` are served semantically: the route's `semantic_cache`, else
    /// whether `[cache.semantic] models` lists it.
    pub fn semantic_for(&self, route: Option<bool>, name: &str) -> bool {
        self.semantic
            .as_ref()
            .is_some_and(|s| route.unwrap_or_else(|| s.models.iter().any(|m| m == name)))
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl: DEFAULT_TTL,
            max_bytes: DEFAULT_MAX_MB * 1024 * 1024,
            namespace: Namespace::Key,
            models: BTreeMap::new(),
            semantic: None,
            redis_url: None,
        }
    }
}

impl CachePolicy {
    /// How long a call to `name` is cached by configuration: the setting of its route (when it
    /// has one), else the setting for `name` under `[cache.models]`, else `[cache] enabled`.
    pub fn ttl_for(&self, route: Option<Option<Duration>>, name: &str) -> Option<Duration> {
        route
            .or_else(|| self.models.get(name).copied())
            .unwrap_or(self.enabled.then_some(self.ttl))
    }
}

pub(super) fn policy(raw: RawCache, env: &Env) -> Result<CachePolicy, ConfigError> {
    let redis_url = raw
        .redis_url
        .as_deref()
        .map(|u| super::state::redis_url("cache.redis_url", u, env))
        .transpose()?;
    let ttl = match &raw.ttl {
        Some(t) => span("cache.ttl", t)?,
        None => DEFAULT_TTL,
    };
    let mut models = BTreeMap::new();
    for (name, s) in &raw.models {
        models.insert(
            name.clone(),
            setting(&format!("cache.models.\"{name}\""), s, ttl)?,
        );
    }
    let semantic = raw.semantic.map(semantic).transpose()?;
    Ok(CachePolicy {
        redis_url,
        semantic,
        enabled: raw.enabled.unwrap_or(false),
        ttl,
        max_bytes: raw
            .max_mb
            .unwrap_or(DEFAULT_MAX_MB)
            .saturating_mul(1024 * 1024),
        namespace: match &raw.namespace {
            Some(n) => Namespace::parse(n).map_err(|m| err("cache.namespace", m))?,
            None => Namespace::Key,
        },
        models,
    })
}

fn semantic(raw: RawSemantic) -> Result<SemanticPolicy, ConfigError> {
    let embedding_model = match raw.embedding_model {
        Some(m) if m.trim().is_empty() => {
            return Err(err(
                "cache.semantic.embedding_model",
                "is empty; name an embedding model, e.g. \"local/all-minilm-l6-v2\"",
            ));
        }
        Some(m) => m,
        None => DEFAULT_EMBEDDING_MODEL.to_owned(),
    };
    let threshold = raw.threshold.unwrap_or(0.95);
    if !(0.5..=1.0).contains(&threshold) {
        return Err(err(
            "cache.semantic.threshold",
            format!("{threshold} is not a cosine similarity from 0.5 to 1, e.g. 0.95"),
        ));
    }
    let max_entries = raw.max_entries.unwrap_or(100_000);
    if max_entries == 0 {
        return Err(err(
            "cache.semantic.max_entries",
            "0 would remember nothing; use e.g. 100000",
        ));
    }
    Ok(SemanticPolicy {
        embedding_model,
        dimensions: raw.dimensions,
        threshold,
        max_entries,
        max_temperature: raw.max_temperature.unwrap_or(1.0),
        tool_results: raw.tool_results.unwrap_or(false),
        images: raw.images.unwrap_or(false),
        models: raw.models,
    })
}

/// `true` (the default time), `false`, or a time such as `"10m"`.
pub(super) fn setting(
    key: &str,
    raw: &RawCacheSetting,
    default: Duration,
) -> Result<Option<Duration>, ConfigError> {
    match raw {
        RawCacheSetting::On(true) => Ok(Some(default)),
        RawCacheSetting::On(false) => Ok(None),
        RawCacheSetting::Ttl(t) => span(key, t).map(Some),
    }
}

pub(super) fn span(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_span_ms(text)
        .map(|ms| Duration::from_millis(ms as u64))
        .ok_or_else(|| {
            err(
                key,
                format!("`{text}` is not a time; use a number and a unit, like 30s, 10m, 1h or 7d"),
            )
        })
}
