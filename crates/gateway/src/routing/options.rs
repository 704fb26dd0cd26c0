//! Per-call overrides a caller sends as headers, and the caller's metadata.
//!
//! | header                          | effect                                                  |
//! |---------------------------------|---------------------------------------------------------|
//! | `x-switchyard-max-attempts`     | attempts for this call, 1 (no retry) to 10               |
//! | `x-switchyard-request-timeout`  | deadline for the whole call, in milliseconds             |
//! | `x-switchyard-retry-backoff`    | base of the backoff between attempts, in milliseconds    |
//! | `x-switchyard-route`            | a route, alias or `provider/model` to use instead of `model` |
//! | `x-switchyard-metadata`         | a JSON object of tags (`{"tier":"free"}`) for routing rules |
//! | `x-switchyard-max-cost-usd`     | the most this call may cost at list prices (a runaway guard) |
//! | `x-switchyard-log-bodies`       | `none` or `metadata`: record less of this call than configured |
//! | `x-switchyard-cache-ttl`        | cache this call's answer for this many seconds (0: do not) |
//! | `x-switchyard-skip-cache`       | `true`: neither read nor write the cache; `refresh`: call the provider and store the fresh answer |
//! | `x-switchyard-cache-key`        | a key of the caller's choosing instead of the request's hash |
//! | `x-switchyard-resumable`        | `true`: buffer this stream so that it can be resumed (`GET /v1/streams/{request id}`); `false`: do not, whatever `[streams] resumable` says |

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::config::BodyMode;
use crate::config::routing::MAX_ATTEMPTS;
use crate::error::GatewayError;
use crate::keys::VirtualKey;

pub const MAX_ATTEMPTS_HEADER: &str = "x-switchyard-max-attempts";
pub const TIMEOUT_HEADER: &str = "x-switchyard-request-timeout";
pub const BACKOFF_HEADER: &str = "x-switchyard-retry-backoff";
pub const ROUTE_HEADER: &str = "x-switchyard-route";
pub const METADATA_HEADER: &str = "x-switchyard-metadata";
pub const MAX_COST_HEADER: &str = "x-switchyard-max-cost-usd";
pub const LOG_BODIES_HEADER: &str = "x-switchyard-log-bodies";
pub const CACHE_TTL_HEADER: &str = "x-switchyard-cache-ttl";
pub const SKIP_CACHE_HEADER: &str = "x-switchyard-skip-cache";
pub const CACHE_KEY_HEADER: &str = "x-switchyard-cache-key";
pub const RESUMABLE_HEADER: &str = "x-switchyard-resumable";
/// The largest metadata header accepted.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The longest caller-chosen cache key.
pub const MAX_CACHE_KEY_BYTES: usize = 256;
/// The longest time a caller may ask an answer to be cached for: 30 days.
pub const MAX_CACHE_TTL_SECS: u64 = 30 * 86_400;

/// The caller's say on the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheOptions {
    /// Cache this call's answer for this long (zero: do not cache it).
    pub ttl: Option<Duration>,
    pub skip: Skip,
    /// A key of the caller's choosing, used instead of the request's hash.
    pub key: Option<String>,
}

/// `x-switchyard-skip-cache`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Skip {
    #[default]
    No,
    /// Neither read nor write the cache.
    Bypass,
    /// Do not read the cache, but store the fresh answer.
    Refresh,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// The caller's virtual key, when it presented one.
    pub key: Option<Arc<VirtualKey>>,
    pub max_attempts: Option<u32>,
    pub deadline: Option<Duration>,
    pub backoff: Option<Duration>,
    pub route: Option<String>,
    pub metadata: Map<String, Value>,
    /// The most the call may cost, in US dollars.
    pub max_cost_usd: Option<f64>,
    /// The caller's cap on what the request log keeps of this call.
    pub log_bodies: Option<BodyMode>,
    pub cache: CacheOptions,
    /// `x-switchyard-resumable`: buffer the stream (or not) whatever the configuration says.
    pub resumable: Option<bool>,
}

impl CallOptions {
    /// Reads the overrides; a malformed header is a 400 naming it.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, GatewayError> {
        // Most calls carry none of these: one pass over the names instead of a look-up (and a
        // parse of the name) per option.
        let any = headers
            .keys()
            .any(|k| k.as_str().starts_with("x-switchyard-"));
        let text = |name: &str| -> Result<Option<&str>, GatewayError> {
            if !any {
                return Ok(None);
            }
            headers
                .get(name)
                .map(|v| {
                    v.to_str().map(str::trim).map_err(|_| {
                        GatewayError::bad_request(format!("header {name} is not text"), None)
                    })
                })
                .transpose()
        };
        let millis = |name: &str| -> Result<Option<Duration>, GatewayError> {
            text(name)?
                .map(|v| match v.parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                    _ => Err(GatewayError::bad_request(
                        format!("header {name}: `{v}` is not a positive number of milliseconds"),
                        None,
                    )),
                })
                .transpose()
        };
        let max_attempts = text(MAX_ATTEMPTS_HEADER)?
            .map(|v| match v.parse::<u32>() {
                Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => Ok(n),
                _ => Err(GatewayError::bad_request(
                    format!(
                        "header {MAX_ATTEMPTS_HEADER}: `{v}` is not a number from 1 (no retry) to {MAX_ATTEMPTS}"
                    ),
                    None,
                )),
            })
            .transpose()?;
        let metadata = match text(METADATA_HEADER)? {
            None => Map::new(),
            Some(v) => {
                let bad = |why: &str| {
                    GatewayError::bad_request(format!("header {METADATA_HEADER}: {why}"), None)
                };
                if v.len() > MAX_METADATA_BYTES {
                    return Err(bad(&format!(
                        "{} bytes; at most {MAX_METADATA_BYTES}",
                        v.len()
                    )));
                }
                let m = match serde_json::from_str::<Value>(v) {
                    Ok(Value::Object(m)) => m,
                    _ => return Err(bad("not a JSON object; send e.g. {\"tier\":\"free\"}")),
                };
                if let Some((k, _)) = m
                    .iter()
                    .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
                {
                    return Err(bad(&format!(
                        "`{k}` is not a string, number or boolean; tags are flat"
                    )));
                }
                m
            }
        };
        let max_cost_usd = text(MAX_COST_HEADER)?
            .map(|v| match v.parse::<f64>() {
                Ok(usd) if usd.is_finite() && usd > 0.0 => Ok(usd),
                _ => Err(GatewayError::bad_request(
                    format!("header {MAX_COST_HEADER}: `{v}` is not a positive amount of US dollars, e.g. 0.05"),
                    None,
                )),
            })
            .transpose()?;
        let log_bodies = text(LOG_BODIES_HEADER)?
            .map(|v| {
                BodyMode::parse(v).ok_or_else(|| {
                    GatewayError::bad_request(
                        format!("header {LOG_BODIES_HEADER}: `{v}`; use none or metadata"),
                        None,
                    )
                })
            })
            .transpose()?;
        let bad = |name: &str, v: &str, want: &str| {
            GatewayError::bad_request(format!("header {name}: `{v}` {want}"), None)
        };
        let cache = CacheOptions {
            ttl: text(CACHE_TTL_HEADER)?
                .map(|v| match v.parse::<u64>() {
                    Ok(s) if s <= MAX_CACHE_TTL_SECS => Ok(Duration::from_secs(s)),
                    _ => Err(bad(
                        CACHE_TTL_HEADER,
                        v,
                        &format!("is not a number of seconds from 0 (do not cache) to {MAX_CACHE_TTL_SECS}"),
                    )),
                })
                .transpose()?,
            skip: match text(SKIP_CACHE_HEADER)? {
                None | Some("false" | "0") => Skip::No,
                Some("true" | "1") => Skip::Bypass,
                Some("refresh") => Skip::Refresh,
                Some(v) => {
                    return Err(bad(
                        SKIP_CACHE_HEADER,
                        v,
                        "is not true, false or refresh",
                    ));
                }
            },
            key: match text(CACHE_KEY_HEADER)? {
                None => None,
                Some(v) if !v.is_empty() && v.len() <= MAX_CACHE_KEY_BYTES => Some(v.to_owned()),
                Some(v) => {
                    return Err(bad(
                        CACHE_KEY_HEADER,
                        v,
                        &format!("must be 1 to {MAX_CACHE_KEY_BYTES} bytes"),
                    ));
                }
            },
        };
        let resumable = match text(RESUMABLE_HEADER)? {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(v) => return Err(bad(RESUMABLE_HEADER, v, "is not true or false")),
        };
        Ok(Self {
            key: None,
            cache,
            resumable,
            max_cost_usd,
            log_bodies,
            max_attempts,
            deadline: millis(TIMEOUT_HEADER)?,
            backoff: millis(BACKOFF_HEADER)?,
            route: text(ROUTE_HEADER)?
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            metadata,
        })
    }

    /// Adds the request body's `metadata` object; header values win.
    pub fn with_body_metadata(mut self, body: Option<&Value>) -> Self {
        if let Some(Value::Object(m)) = body {
            for (k, v) in m {
                self.metadata.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self
    }

    /// Attaches the caller's key; its metadata wins over the caller's own tags.
    pub fn with_key(mut self, key: Option<Arc<VirtualKey>>) -> Self {
        if let Some(k) = &key {
            for (name, value) in &k.policy.metadata {
                self.metadata
                    .insert(name.clone(), Value::String(value.clone()));
            }
        }
        self.key = key;
        self
    }

    /// The metadata value as text, for comparison with a rule's string.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        self.metadata.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_every_override() {
        let o = CallOptions::from_headers(&headers(&[
            (MAX_ATTEMPTS_HEADER, "5"),
            (TIMEOUT_HEADER, "1500"),
            (BACKOFF_HEADER, "20"),
            (ROUTE_HEADER, "smart"),
            (METADATA_HEADER, r#"{"tier":"free","n":3}"#),
        ]))
        .unwrap()
        .with_body_metadata(Some(&serde_json::json!({"tier": "paid", "team": "x"})));
        assert_eq!(o.max_attempts, Some(5));
        assert_eq!(o.deadline, Some(Duration::from_millis(1500)));
        assert_eq!(o.backoff, Some(Duration::from_millis(20)));
        assert_eq!(o.route.as_deref(), Some("smart"));
        assert_eq!(o.metadata_text("tier").as_deref(), Some("free"));
        assert_eq!(o.metadata_text("team").as_deref(), Some("x"));
        assert_eq!(o.metadata_text("n").as_deref(), Some("3"));
    }

    #[test]
    fn refuses_bad_values_naming_the_header() {
        for (h, v) in [
            (MAX_ATTEMPTS_HEADER, "0"),
            (MAX_ATTEMPTS_HEADER, "11"),
            (MAX_ATTEMPTS_HEADER, "many"),
            (TIMEOUT_HEADER, "-1"),
            (BACKOFF_HEADER, "1.5"),
            (METADATA_HEADER, "[1]"),
            (METADATA_HEADER, r#"{"nested":{"a":1}}"#),
            (MAX_COST_HEADER, "-1"),
            (MAX_COST_HEADER, "free"),
        ] {
            let e = CallOptions::from_headers(&headers(&[(h, v)])).unwrap_err();
            assert!(e.to_string().contains(h), "{e}");
        }
    }
}
