//! The `[state]` section (what replicas share through Redis) and `[streams]` (resumable streams).

use std::time::Duration;

use switchyard_providers::Secret;

use super::raw::{RawState, RawStreams};
use super::{ConfigError, Env, err, secret};

/// The prefix of every key Switchyard writes in Redis unless `state.prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = "switchyard:";
/// How long an ended stream can be resumed unless `streams.ttl` says otherwise.
const DEFAULT_STREAM_TTL: Duration = Duration::from_secs(600);
/// The in-process stream buffers' default bound.
const DEFAULT_STREAM_MB: u64 = 64;

/// `[state]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePolicy {
    /// `state.redis`: counters, cache, breakers and stream buffers shared by replicas. `None`:
    /// everything stays in this process.
    pub redis: Option<Secret>,
    pub prefix: String,
}

impl Default for StatePolicy {
    fn default() -> Self {
        Self {
            redis: None,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// `[streams]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamsPolicy {
    /// Buffer every stream, not only those that ask with `x-switchyard-resumable: true`.
    pub resumable: bool,
    /// How long an ended stream can still be read.
    pub ttl: Duration,
    /// The in-process buffers' bound, in bytes.
    pub max_bytes: u64,
    /// The upstream call runs to the end when its caller goes away.
    pub detach: bool,
}

impl Default for StreamsPolicy {
    fn default() -> Self {
        Self {
            resumable: false,
            ttl: DEFAULT_STREAM_TTL,
            max_bytes: DEFAULT_STREAM_MB * 1024 * 1024,
            detach: true,
        }
    }
}

/// A Redis URL under `key`, written literally or as a reference (`env:REDIS_URL`, `file:…`).
pub(super) fn redis_url(key: &str, raw: &str, env: &Env) -> Result<Secret, ConfigError> {
    let url = if raw.starts_with("env:") || raw.starts_with("file:") {
        secret(key, raw, env)?
    } else {
        Secret::new(raw.to_owned())
    };
    if !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://")) {
        return Err(err(
            key,
            "is not a redis:// URL, e.g. redis://127.0.0.1:6379",
        ));
    }
    Ok(url)
}

pub(super) fn state(raw: RawState, env: &Env) -> Result<StatePolicy, ConfigError> {
    let redis = raw
        .redis
        .as_deref()
        .map(|u| redis_url("state.redis", u, env))
        .transpose()?;
    let prefix = match raw.prefix {
        None => DEFAULT_PREFIX.to_owned(),
        Some(p)
            if !p.is_empty()
                && p.len() <= 64
                && p.chars()
                    .all(|c| c.is_ascii_graphic() && c != '{' && c != '}') =>
        {
            p
        }
        Some(p) => {
            return Err(err(
                "state.prefix",
                format!(
                    "`{p}`: use 1 to 64 printable characters without spaces or braces, e.g. `switchyard:`"
                ),
            ));
        }
    };
    Ok(StatePolicy { redis, prefix })
}

pub(super) fn streams(raw: RawStreams) -> Result<StreamsPolicy, ConfigError> {
    let d = StreamsPolicy::default();
    let ttl = match &raw.ttl {
        Some(t) => super::cache::span("streams.ttl", t)?,
        None => d.ttl,
    };
    let max_bytes = match raw.max_mb {
        Some(0) => {
            return Err(err(
                "streams.max_mb",
                "0 would keep no stream; use at least 1, e.g. 64",
            ));
        }
        Some(mb) => mb.saturating_mul(1024 * 1024),
        None => d.max_bytes,
    };
    Ok(StreamsPolicy {
        resumable: raw.resumable.unwrap_or(d.resumable),
        ttl,
        max_bytes,
        detach: raw.detach.unwrap_or(d.detach),
    })
}
