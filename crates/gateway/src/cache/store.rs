//! Where answers are kept: in this process (the default; size-bounded), or in Redis, shared by
//! every replica that names the same server (`[cache] redis_url`).
//!
//! In Redis an answer is one key, `switchyard:cache:v1:<hex of the cache key>`, holding its JSON
//! with the time to keep it as the key's expiry; Redis's own `maxmemory` and eviction policy
//! bound its size. Writes go out in the background (the caller has its answer already); a
//! failing Redis makes look-ups misses and is reported, it never fails a call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use switchyard_protocol::chat::{ChatChunk, ChatResponse};

use super::{Answer, Entry, Key, now_millis};
use crate::registry::Registry;

#[derive(Debug, Clone)]
pub struct Weight;

impl quick_cache::Weighter<Key, Arc<Entry>> for Weight {
    fn weight(&self, _: &Key, entry: &Arc<Entry>) -> u64 {
        entry.bytes
    }
}

#[derive(Debug)]
pub enum Store {
    Memory(quick_cache::sync::Cache<Key, Arc<Entry>, Weight>),
    Redis(Redis),
}

#[derive(Debug)]
pub struct Redis {
    conn: ConnectionManager,
    errors: Arc<AtomicU64>,
}

/// An entry as Redis holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    provider: Option<String>,
    model: Option<String>,
    route: Option<String>,
    stored_ms: i64,
    expires_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    whole: Option<ChatResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<ChatChunk>>,
}

fn redis_key(key: &Key) -> String {
    let mut name = String::with_capacity(20 + 64);
    name.push_str("switchyard:cache:v1:");
    for b in key {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

impl Store {
    /// The in-process store, holding at most `max_bytes` of answers.
    pub fn memory(max_bytes: u64) -> Self {
        // quick_cache sizes its tables from an estimate of the entry count: assume 4 KiB each.
        let estimate = usize::try_from(max_bytes / 4096)
            .unwrap_or(usize::MAX)
            .max(16);
        Self::Memory(quick_cache::sync::Cache::with_weighter(
            estimate,
            max_bytes.max(1),
            Weight,
        ))
    }

    /// Connects to Redis at `url` (`redis://[:password@]host:port[/db]`).
    pub async fn redis(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self::Redis(Redis {
            conn,
            errors: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The fresh entry for `key`, if there is one (an expired in-process one is removed).
    /// `registry` turns a shared entry's provider name back into a target.
    pub async fn get(&self, key: &Key, registry: &Registry) -> Option<Arc<Entry>> {
        match self {
            Self::Memory(m) => {
                let entry = m.get(key)?;
                if entry.expires_ms > now_millis() {
                    return Some(entry);
                }
                m.remove(key);
                None
            }
            Self::Redis(r) => {
                let mut conn = r.conn.clone();
                let raw: Option<Vec<u8>> = match redis::cmd("GET")
                    .arg(redis_key(key))
                    .query_async(&mut conn)
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        r.failed("reading", &e);
                        return None;
                    }
                };
                let stored: Stored = serde_json::from_slice(&raw?).ok()?;
                if stored.expires_ms <= now_millis() {
                    return None;
                }
                let answer = match (stored.whole, stored.chunks) {
                    (Some(w), _) => Answer::Whole(Box::new(w)),
                    (None, Some(c)) => Answer::Stream(c),
                    (None, None) => return None,
                };
                let target = match (&stored.provider, &stored.model) {
                    (Some(p), Some(m)) => registry.resolve(&format!("{p}/{m}")).ok(),
                    _ => None,
                };
                Some(Arc::new(Entry {
                    bytes: 0,
                    answer,
                    target,
                    route: stored.route.map(Into::into),
                    stored_ms: stored.stored_ms,
                    expires_ms: stored.expires_ms,
                }))
            }
        }
    }

    /// Keeps `entry` under `key` until it expires.
    pub fn put(&self, key: Key, entry: Arc<Entry>) {
        match self {
            Self::Memory(m) => m.insert(key, entry),
            Self::Redis(r) => {
                let ttl_ms = (entry.expires_ms - entry.stored_ms).max(1);
                let (whole, chunks) = match &entry.answer {
                    Answer::Whole(w) => (Some((**w).clone()), None),
                    Answer::Stream(c) => (None, Some(c.clone())),
                };
                let stored = Stored {
                    provider: entry.target.as_ref().map(|t| t.provider_name().to_owned()),
                    model: entry.target.as_ref().map(|t| t.model.clone()),
                    route: entry.route.as_deref().map(str::to_owned),
                    stored_ms: entry.stored_ms,
                    expires_ms: entry.expires_ms,
                    whole,
                    chunks,
                };
                let Ok(bytes) = serde_json::to_vec(&stored) else {
                    return;
                };
                let mut conn = r.conn.clone();
                let errors = r.errors.clone();
                tokio::spawn(async move {
                    let set: Result<(), _> = redis::cmd("SET")
                        .arg(redis_key(&key))
                        .arg(bytes)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = set {
                        report(&errors, "writing", &e);
                    }
                });
            }
        }
    }

    /// The bytes the in-process entries are counted at (0 for Redis, which bounds itself).
    pub fn weight(&self) -> u64 {
        match self {
            Self::Memory(m) => m.weight(),
            Self::Redis(_) => 0,
        }
    }

    /// In-process entries (0 for Redis).
    pub fn entries(&self) -> usize {
        match self {
            Self::Memory(m) => m.len(),
            Self::Redis(_) => 0,
        }
    }
}

impl Redis {
    fn failed(&self, what: &str, e: &redis::RedisError) {
        report(&self.errors, what, e);
    }
}

/// Logs a Redis failure: the first, then at every power of two, so that an outage is told
/// without flooding the log.
fn report(errors: &AtomicU64, what: &str, e: &redis::RedisError) {
    let n = errors.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(error = %e, failures = n, "{what} the Redis cache failed; calls go to the provider");
    }
}
