//! The Redis server replicas share (`[state] redis`): one multiplexed connection for rate-limit
//! and budget counters, the response cache, circuit breakers and stream buffers, and how its
//! failures are handled.
//!
//! Redis going away never fails a call. Each user of the connection falls back to what this
//! process knows (local counters, a cache miss, breakers of its own, an in-process buffer) and
//! says so through [`Shared::failed`]: a warning at the first failure and at every power of two
//! after it, `switchyard_state_degraded` set to 1 and `switchyard_state_errors_total` counted.
//! While degraded, callers skip Redis for [`RETRY_AFTER`] at a time instead of waiting for a
//! timeout on every call; the first success after that clears the state (and, for counters,
//! reconciles what was counted locally meanwhile).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// While degraded, how long callers go without trying Redis.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried again (0: healthy).
    skip_until_ms: AtomicU64,
    degraded: AtomicBool,
    errors: AtomicU64,
    /// Times the gateway went from degraded back to shared state.
    recoveries: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Opens the connection lazily: an unreachable server at start-up is reported (the
    /// gateway starts degraded) rather than stopping it. A malformed URL is an error.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| e.to_string())?;
        let shared = Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
        };
        let mut conn = shared.conn();
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => tracing::info!(prefix, "shared state on Redis"),
            Err(e) => shared.failed("connecting to", &e),
        }
        Ok(shared)
    }

    /// The multiplexed connection (cheap to clone; reconnects by itself).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own, for commands that block (`XREAD BLOCK`) or subscribe.
    pub async fn dedicated(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A key under the configured prefix: `switchyard:` + `rest`.
    pub fn key(&self, rest: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + rest.len());
        k.push_str(&self.prefix);
        k.push_str(rest);
        k
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Redis should be tried now: always while healthy; while degraded, once every
    /// [`RETRY_AFTER`].
    pub fn available(&self) -> bool {
        let until = self.skip_until_ms.load(Ordering::Relaxed);
        until == 0 || self.elapsed_ms() >= until
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Reports a failed Redis command: `what` says what was being done ("counting rate limits
    /// in"). Callers then use this process's own state.
    pub fn failed(&self, what: &str, e: &redis::RedisError) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        self.skip_until_ms.store(
            self.elapsed_ms() + RETRY_AFTER.as_millis() as u64,
            Ordering::Relaxed,
        );
        let was = self.degraded.swap(true, Ordering::Relaxed);
        if !was || n.is_power_of_two() {
            tracing::warn!(
                error = %e,
                failures = n,
                "{what} Redis failed: serving on this replica's own state (limits count locally, the cache misses, breakers are not shared) until it is back"
            );
        }
    }

    /// Reports a command that worked. Returns `true` when this ends a degraded spell (the
    /// caller may have local state to reconcile).
    pub fn succeeded(&self) -> bool {
        if !self.degraded.load(Ordering::Relaxed) {
            return false;
        }
        self.skip_until_ms.store(0, Ordering::Relaxed);
        if self.degraded.swap(false, Ordering::Relaxed) {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Redis is back: shared state restored");
            return true;
        }
        false
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        (self.started.elapsed().as_millis() as u64).max(1)
    }
}
