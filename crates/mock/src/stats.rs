//! Counters a test or a user can read back: `GET /mock/stats` and `GET /mock/last`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub streams_started: AtomicU64,
    pub streams_completed: AtomicU64,
    /// Streams whose client went away before the last chunk was written.
    pub streams_cancelled: AtomicU64,
    last: Mutex<Option<LastRequest>>,
    /// Requests per scenario text, for `flaky-N`.
    seen: Mutex<HashMap<String, u64>>,
}

/// The last request received, for tests that check what an upstream sees.
#[derive(Debug, Clone, Serialize)]
pub struct LastRequest {
    pub path: String,
    pub authorization: Option<String>,
    /// Anthropic's credential header.
    pub x_api_key: Option<String>,
    pub anthropic_version: Option<String>,
    pub anthropic_beta: Option<String>,
    /// Gemini's credential header.
    pub x_goog_api_key: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub streams_started: u64,
    pub streams_completed: u64,
    pub streams_cancelled: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            streams_started: self.streams_started.load(Ordering::Relaxed),
            streams_completed: self.streams_completed.load(Ordering::Relaxed),
            streams_cancelled: self.streams_cancelled.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn record(&self, path: &str, headers: &HeaderMap, body: &Bytes) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let authorization = header("authorization");
        let x_api_key = header("x-api-key");
        let anthropic_version = header("anthropic-version");
        let anthropic_beta = header("anthropic-beta");
        let x_goog_api_key = header("x-goog-api-key");
        let body = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastRequest {
                path: path.to_owned(),
                authorization,
                x_api_key,
                anthropic_version,
                anthropic_beta,
                x_goog_api_key,
                body,
            });
        }
    }

    /// Counts a request with this scenario text and returns how many there have been.
    pub(crate) fn seen(&self, model: &str, header: &str) -> u64 {
        let Ok(mut seen) = self.seen.lock() else {
            return u64::MAX;
        };
        let n = seen.entry(format!("{model}\u{0}{header}")).or_default();
        *n += 1;
        *n
    }

    pub fn last(&self) -> Option<LastRequest> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

pub(crate) async fn stats_handler(State(stats): State<Arc<Stats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}

pub(crate) async fn last_handler(State(stats): State<Arc<Stats>>) -> Json<Option<LastRequest>> {
    Json(stats.last())
}
