//! Where answers are kept: in this process (the default; size-bounded), or in Redis, shared by
//! every replica that names the same server (`[cache] redis_url`).
//!
//! In Redis an answer is one key, `switchyard:cache:v1:<hex of the cache key>` (under
//! `[state] prefix`), holding its JSON
//! with the time to keep it as the key's expiry; Redis's own `maxmemory` and eviction policy
//! bound its size. Writes go out in the background (the caller has its answer already); a
//! failing Redis makes look-ups misses and is reported, it never fails a call.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchyard_protocol::chat::{ChatChunk, ChatResponse};

use super::{Answer, Entry, Key, now_millis};
use crate::registry::Registry;
use crate::shared::Shared;

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
    shared: Arc<Shared>,
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

fn redis_key(shared: &Shared, key: &Key) -> String {
    let mut name = String::with_capacity(9 + 64);
    name.push_str("cache:v1:");
    for b in key {
        name.push_str(&format!("{b:02x}"));
    }
    shared.key(&name)
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

    /// Keeps answers in Redis, on the connection the replicas' shared state uses.
    pub fn redis(shared: Arc<Shared>) -> Self {
        Self::Redis(Redis { shared })
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
                if !r.shared.available() {
                    return None;
                }
                let mut conn = r.shared.conn();
                let raw: Option<Vec<u8>> = match redis::cmd("GET")
                    .arg(redis_key(&r.shared, key))
                    .query_async(&mut conn)
                    .await
                {
                    Ok(v) => {
                        r.shared.succeeded();
                        v
                    }
                    Err(e) => {
                        r.shared.failed("reading the cache from", &e);
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
                if !r.shared.available() {
                    return;
                }
                let shared = r.shared.clone();
                tokio::spawn(async move {
                    let mut conn = shared.conn();
                    let set: Result<(), _> = redis::cmd("SET")
                        .arg(redis_key(&shared, &key))
                        .arg(bytes)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = set {
                        shared.failed("writing the cache to", &e);
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
