//! Rate limits per virtual key: requests and tokens per minute and per day, for the key as a
//! whole and per value of a metadata tag (each `user` within a key, say).
//!
//! Counters are fixed windows (the current minute, the current UTC day), kept in process. A
//! call is checked against every counter that applies and takes from all of them or none, under
//! one lock: with a limit of N, exactly N of any number of simultaneous calls pass. Token limits
//! reserve an estimate before the call (prompt size and `max_tokens`) and settle on the real
//! usage after it, streams included, in the window the reservation was taken from.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::shared::Shared;

/// One set of limits. Absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
}

impl LimitSet {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A key's limits: for the key, and for each value of the named metadata tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(flatten)]
    pub key: LimitSet,
    /// `{"user": {"rpm": 10}}`: each distinct `user` tag gets its own 10 requests a minute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_metadata: BTreeMap<String, LimitSet>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.key.is_empty() && self.per_metadata.values().all(LimitSet::is_empty)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Metric {
    Requests,
    Tokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Period {
    Minute,
    Day,
}

impl Period {
    fn millis(self) -> u64 {
        match self {
            Self::Minute => 60_000,
            Self::Day => 86_400_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterId {
    scope: String,
    metric: Metric,
    period: Period,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window: u64,
    used: u64,
}

/// Milliseconds since the Unix epoch; tests substitute their own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

pub struct Limiter {
    counters: Mutex<HashMap<CounterId, Counter>>,
    clock: Clock,
    /// `[state] redis`: the counters every replica shares. Without it (or while it is
    /// unreachable) the counters above are used.
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

/// The state of the tightest counters, for OpenAI's `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateState {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

/// Tokens taken from counters, to settle on the real usage.
#[derive(Debug, Default)]
pub struct Reservation {
    tokens: Vec<(CounterId, u64)>,
    estimate: u64,
    /// Taken from the shared counters in Redis (else from this process's).
    shared: bool,
    pub state: RateState,
}

/// A call refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub retry_after_ms: u64,
    pub state: RateState,
    /// `requests` or `tokens`: OpenAI's error type for rate limits.
    pub kind: &'static str,
}

struct Check {
    id: CounterId,
    limit: u64,
    amount: u64,
    label: String,
}

/// Takes from every counter of a call or from none, atomically in Redis. `KEYS` are the
/// counters; `ARGV` holds, for each, its limit, the amount to take and when the key expires
/// (ms since the epoch). Returns each counter's use before the call, then 1 if it was admitted.
const ACQUIRE: &str = r"
local used = {}
local ok = 1
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used[i] + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then ok = 0 end
end
if ok == 1 then
  for i = 1, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
    redis.call('PEXPIREAT', KEYS[i], ARGV[3 * i])
  end
end
used[#KEYS + 1] = ok
return used
";

/// Adds `ARGV[1]` (negative to give back) to the counters that still exist, never below 0.
const SETTLE: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[1]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 0
";

/// The scripts with their SHA-1 (sent as `EVALSHA`, the text only when Redis lacks it),
/// hashed once.
static ACQUIRE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACQUIRE));
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

impl Limiter {
    pub fn new(clock: Clock) -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
            clock,
            shared: None,
        }
    }

    /// Counts in Redis, shared by every replica that names the same server.
    pub fn shared(clock: Clock, shared: Arc<Shared>) -> Self {
        Self {
            shared: Some(shared),
            ..Self::new(clock)
        }
    }

    /// Takes one request and `tokens` (an estimate) from every counter `limits` sets for this
    /// call, or refuses it. `key` names the key in messages; `scope` identifies it; `metadata`
    /// gives the call's tag values.
    pub async fn acquire(
        &self,
        scope: &str,
        key: &str,
        limits: &Limits,
        metadata: impl Fn(&str) -> Option<String>,
        tokens: u64,
    ) -> Result<Reservation, Refusal> {
        let mut checks = Vec::new();
        push_checks(
            &mut checks,
            scope.to_owned(),
            format!("key `{key}`"),
            &limits.key,
            tokens,
        );
        for (tag, set) in &limits.per_metadata {
            let value = metadata(tag).unwrap_or_default();
            push_checks(
                &mut checks,
                format!("{scope}\u{0}{tag}={value}"),
                format!("key `{key}`, {tag} `{value}`"),
                set,
                tokens,
            );
        }
        if checks.is_empty() {
            return Ok(Reservation::default());
        }
        let now = (self.clock)();
        if let Some(shared) = &self.shared
            && shared.available()
        {
            match acquire_shared(shared, &checks, now).await {
                Ok(used) => {
                    shared.succeeded();
                    // Counts taken here while Redis was away, whichever part of the gateway
                    // noticed first that it is back (the budgets' check often runs first).
                    let local = !self
                        .counters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty();
                    if local {
                        self.reconcile(shared, now).await;
                    }
                    let state = judge(&checks, &used, now)?;
                    return Ok(reservation(checks, now, tokens, true, state));
                }
                Err(e) => shared.failed("counting rate limits in", &e),
            }
        }
        self.acquire_local(checks, now, tokens)
    }

    fn acquire_local(
        &self,
        checks: Vec<Check>,
        now: u64,
        tokens: u64,
    ) -> Result<Reservation, Refusal> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() > 100_000 {
            // Forget windows that have passed.
            counters.retain(|id, c| c.window == now / id.period.millis());
        }
        let used: Vec<u64> = checks
            .iter()
            .map(|c| {
                let window = now / c.id.period.millis();
                counters
                    .get(&c.id)
                    .filter(|k| k.window == window)
                    .map_or(0, |k| k.used)
            })
            .collect();
        let state = judge(&checks, &used, now)?;
        for c in &checks {
            let window = now / c.id.period.millis();
            let counter = counters
                .entry(c.id.clone())
                .or_insert(Counter { window, used: 0 });
            if counter.window != window {
                *counter = Counter { window, used: 0 };
            }
            counter.used += c.amount;
        }
        Ok(reservation(checks, now, tokens, false, state))
    }

    /// Adds what was counted here while Redis was unreachable to the shared counters (those of
    /// windows still open), so that the rest of the window is judged on everything admitted.
    async fn reconcile(&self, shared: &Shared, now: u64) {
        let local: Vec<(CounterId, Counter)> = {
            let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            counters.drain().collect()
        };
        let mut pipe = redis::pipe();
        let mut n = 0;
        for (id, c) in local {
            if c.window != now / id.period.millis() || c.used == 0 {
                continue;
            }
            let key = redis_key(shared, &id, c.window);
            pipe.cmd("INCRBY").arg(&key).arg(c.used).ignore();
            pipe.cmd("PEXPIREAT")
                .arg(&key)
                .arg(expires_at(&id, c.window))
                .ignore();
            n += 1;
        }
        if n == 0 {
            return;
        }
        let mut conn = shared.conn();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => tracing::info!(
                counters = n,
                "rate-limit counts taken while Redis was away were added to it"
            ),
            Err(e) => shared.failed("reconciling rate limits with", &e),
        }
    }

    /// Replaces a reservation's token estimate with the tokens the call really used.
    pub fn settle(&self, reservation: &Reservation, actual: u64) {
        if reservation.tokens.is_empty() || actual == reservation.estimate {
            return;
        }
        if reservation.shared {
            let Some(shared) = self.shared.clone() else {
                return;
            };
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let delta = actual as i64 - reservation.estimate as i64;
            let keys: Vec<String> = reservation
                .tokens
                .iter()
                .map(|(id, window)| redis_key(&shared, id, *window))
                .collect();
            handle.spawn(async move {
                let mut conn = shared.conn();
                let mut inv = SETTLE_SCRIPT.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(delta);
                if let Err(e) = inv.invoke_async::<i64>(&mut conn).await {
                    shared.failed("settling token counts in", &e);
                }
            });
            return;
        }
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for (id, window) in &reservation.tokens {
            if let Some(c) = counters.get_mut(id)
                && c.window == *window
            {
                c.used = (c.used + actual).saturating_sub(reservation.estimate);
            }
        }
    }
}

fn reservation(
    checks: Vec<Check>,
    now: u64,
    estimate: u64,
    shared: bool,
    state: RateState,
) -> Reservation {
    Reservation {
        tokens: checks
            .into_iter()
            .filter(|c| c.id.metric == Metric::Tokens)
            .map(|c| {
                let window = now / c.id.period.millis();
                (c.id, window)
            })
            .collect(),
        estimate,
        shared,
        state,
    }
}

/// `switchyard:rl:{<key id>}:<scope>:<metric><period>:<window>` (the braces keep a call's
/// counters in one Redis Cluster slot).
fn redis_key(shared: &Shared, id: &CounterId, window: u64) -> String {
    let (key_id, rest) = id.scope.split_once('\u{0}').unwrap_or((&id.scope, ""));
    let what = match (id.metric, id.period) {
        (Metric::Requests, Period::Minute) => "rpm",
        (Metric::Requests, Period::Day) => "rpd",
        (Metric::Tokens, Period::Minute) => "tpm",
        (Metric::Tokens, Period::Day) => "tpd",
    };
    shared.key(&format!("rl:{{{key_id}}}:{rest}:{what}:{window}"))
}

/// When a window's counter may go: a minute after the window ends.
fn expires_at(id: &CounterId, window: u64) -> u64 {
    (window + 1) * id.period.millis() + 60_000
}

async fn acquire_shared(
    shared: &Shared,
    checks: &[Check],
    now: u64,
) -> redis::RedisResult<Vec<u64>> {
    let mut inv = ACQUIRE_SCRIPT.prepare_invoke();
    for c in checks {
        let window = now / c.id.period.millis();
        inv.key(redis_key(shared, &c.id, window));
        inv.arg(c.limit)
            .arg(c.amount)
            .arg(expires_at(&c.id, window));
    }
    let mut conn = shared.conn();
    let mut used: Vec<i64> = inv.invoke_async(&mut conn).await?;
    used.pop();
    Ok(used.into_iter().map(|u| u.max(0) as u64).collect())
}

/// Judges a call on the counters' use before it: the state of the tightest counters, or the
/// refusal of the first counter it would overflow.
fn judge(checks: &[Check], used: &[u64], now: u64) -> Result<RateState, Refusal> {
    let mut state = RateState::default();
    let mut refusal: Option<Refusal> = None;
    for (c, &used) in checks.iter().zip(used) {
        let window = now / c.id.period.millis();
        let reset_ms = (window + 1) * c.id.period.millis() - now;
        let remaining = Remaining {
            limit: c.limit,
            remaining: c.limit.saturating_sub(used + c.amount),
            reset_ms,
        };
        let slot = match c.id.metric {
            Metric::Requests => &mut state.requests,
            Metric::Tokens => &mut state.tokens,
        };
        if slot.is_none_or(|s| remaining.remaining < s.remaining) {
            *slot = Some(remaining);
        }
        if used + c.amount > c.limit && refusal.is_none() {
            let what = match (c.id.metric, c.id.period) {
                (Metric::Requests, Period::Minute) => "requests per min (RPM)",
                (Metric::Requests, Period::Day) => "requests per day (RPD)",
                (Metric::Tokens, Period::Minute) => "tokens per min (TPM)",
                (Metric::Tokens, Period::Day) => "tokens per day (TPD)",
            };
            let hint = if c.amount > c.limit {
                " This request alone is larger than the limit; send less or ask for a higher limit."
                    .to_owned()
            } else {
                format!(" Please try again in {}.", human(reset_ms))
            };
            refusal = Some(Refusal {
                message: format!(
                    "Rate limit reached for {} on {what}: Limit {}, Used {used}, Requested {}.{hint}",
                    c.label, c.limit, c.amount
                ),
                retry_after_ms: reset_ms,
                state: RateState::default(),
                kind: match c.id.metric {
                    Metric::Requests => "requests",
                    Metric::Tokens => "tokens",
                },
            });
        }
    }
    match refusal {
        Some(mut r) => {
            r.state = state;
            Err(r)
        }
        None => Ok(state),
    }
}

fn push_checks(checks: &mut Vec<Check>, scope: String, label: String, set: &LimitSet, tokens: u64) {
    let entries = [
        (set.rpm, Metric::Requests, Period::Minute, 1),
        (set.rpd, Metric::Requests, Period::Day, 1),
        (set.tpm, Metric::Tokens, Period::Minute, tokens),
        (set.tpd, Metric::Tokens, Period::Day, tokens),
    ];
    for (limit, metric, period, amount) in entries {
        if let Some(limit) = limit {
            checks.push(Check {
                id: CounterId {
                    scope: scope.clone(),
                    metric,
                    period,
                },
                limit,
                amount,
                label: label.clone(),
            });
        }
    }
}

/// OpenAI's rate-limit headers: `x-ratelimit-limit-requests`, `-remaining-requests`,
/// `-reset-requests`, and the same for tokens.
pub fn headers(h: &mut axum::http::HeaderMap, state: &RateState) {
    use axum::http::HeaderValue;
    for (what, r) in [("requests", state.requests), ("tokens", state.tokens)] {
        let Some(r) = r else { continue };
        let pairs = [
            ("x-ratelimit-limit-", r.limit.to_string()),
            ("x-ratelimit-remaining-", r.remaining.to_string()),
            ("x-ratelimit-reset-", human(r.reset_ms)),
        ];
        for (prefix, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::try_from(format!("{prefix}{what}")),
                HeaderValue::from_str(&value),
            ) {
                h.insert(name, value);
            }
        }
    }
}

/// OpenAI's duration format for reset headers and messages: `6m0s`, `1.5s`, `20ms`.
pub fn human(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms as f64 / 1000.0;
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let total = ms / 1000;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// The counters a scenario runs against: this process's, or Redis's
    /// (`SWITCHYARD_TEST_REDIS`, under a prefix of the test's own). Each gets a clock the test
    /// moves, starting 500 ms into a minute (in the future for Redis, whose keys expire by the
    /// wall clock).
    #[derive(Clone, Copy)]
    enum Backend {
        Local,
        Redis,
    }

    async fn limiter(backend: Backend, test: &str) -> Option<(Limiter, Arc<AtomicU64>)> {
        let start = match backend {
            Backend::Local => 60_000 * 1000 + 500,
            Backend::Redis => (system_clock()() / 60_000 + 1) * 60_000 + 500,
        };
        let t = Arc::new(AtomicU64::new(start));
        let c = t.clone();
        let clock: Clock = Arc::new(move || c.load(Ordering::SeqCst));
        let l = match backend {
            Backend::Local => Limiter::new(clock),
            Backend::Redis => {
                let Ok(url) = std::env::var("SWITCHYARD_TEST_REDIS") else {
                    eprintln!(
                        "\n*** SKIPPED {test} on Redis: SWITCHYARD_TEST_REDIS is not set (run .ci/run).\n"
                    );
                    return None;
                };
                let prefix = format!("sytest:limits:{test}:{}:", crate::request_id::new_v7());
                let shared = Shared::connect(&url, &prefix).await.unwrap();
                assert!(!shared.is_degraded(), "Redis at {url} is not reachable");
                Limiter::shared(clock, Arc::new(shared))
            }
        };
        Some((l, t))
    }

    async fn take(
        l: &Limiter,
        lim: &Limits,
        meta: impl Fn(&str) -> Option<String>,
        tokens: u64,
    ) -> Result<Reservation, Refusal> {
        l.acquire("k", "app", lim, meta, tokens).await
    }

    fn limits(rpm: Option<u64>, tpm: Option<u64>) -> Limits {
        Limits {
            key: LimitSet {
                rpm,
                tpm,
                ..LimitSet::default()
            },
            per_metadata: BTreeMap::new(),
        }
    }

    /// A scenario as a test per backend.
    macro_rules! on_both {
        ($name:ident, $local:ident, $redis:ident) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $local() {
                $name(Backend::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $redis() {
                $name(Backend::Redis).await;
            }
        };
    }

    on_both!(window, window_local, window_redis);
    async fn window(b: Backend) {
        let Some((l, t)) = limiter(b, "window").await else {
            return;
        };
        let lim = limits(Some(2), None);
        assert!(take(&l, &lim, |_| None, 0).await.is_ok());
        let r = take(&l, &lim, |_| None, 0).await.unwrap();
        assert_eq!(r.state.requests.unwrap().remaining, 0);
        let refused = take(&l, &lim, |_| None, 0).await.unwrap_err();
        assert_eq!(refused.kind, "requests");
        assert_eq!(refused.retry_after_ms, 59_500);
        assert!(
            refused.message.contains("Limit 2, Used 2, Requested 1"),
            "{}",
            refused.message
        );
        assert!(refused.message.contains("59.5s"), "{}", refused.message);
        // The window resets with the minute.
        t.fetch_add(59_500, Ordering::SeqCst);
        assert!(take(&l, &lim, |_| None, 0).await.is_ok());
    }

    on_both!(settle, settle_local, settle_redis);
    async fn settle(b: Backend) {
        let Some((l, _)) = limiter(b, "settle").await else {
            return;
        };
        let lim = limits(None, Some(1000));
        let r = take(&l, &lim, |_| None, 600).await.unwrap();
        // 600 reserved: another 600 does not fit…
        assert!(take(&l, &lim, |_| None, 600).await.is_err());
        // …until the first call turns out to have used 100 (Redis settles in the background).
        l.settle(&r, 100);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let r2 = loop {
            if let Ok(r2) = take(&l, &lim, |_| None, 600).await {
                break r2;
            }
            assert!(std::time::Instant::now() < deadline, "never settled");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(r2.state.tokens.unwrap().remaining, 300);
        let too_big = take(&l, &lim, |_| None, 5000).await.unwrap_err();
        assert!(too_big.message.contains("larger than the limit"));
    }

    on_both!(per_metadata, per_metadata_local, per_metadata_redis);
    async fn per_metadata(b: Backend) {
        let Some((l, _)) = limiter(b, "per_metadata").await else {
            return;
        };
        let mut lim = limits(Some(3), None);
        lim.per_metadata.insert(
            "user".into(),
            LimitSet {
                rpm: Some(1),
                ..LimitSet::default()
            },
        );
        let user = |u: &'static str| move |tag: &str| (tag == "user").then(|| u.to_owned());
        assert!(take(&l, &lim, user("ann"), 0).await.is_ok());
        let e = take(&l, &lim, user("ann"), 0).await.unwrap_err();
        assert!(e.message.contains("user `ann`"), "{}", e.message);
        assert!(take(&l, &lim, user("bob"), 0).await.is_ok());
        // The refused call took nothing from the key's counter: one slot is left.
        assert!(take(&l, &lim, user("cat"), 0).await.is_ok());
        let e = take(&l, &lim, user("dan"), 0).await.unwrap_err();
        assert!(e.message.contains("key `app` on requests"), "{}", e.message);
    }

    on_both!(concurrency, concurrency_local, concurrency_redis);
    async fn concurrency(b: Backend) {
        let Some((l, _)) = limiter(b, "concurrency").await else {
            return;
        };
        let l = Arc::new(l);
        let lim = limits(Some(50), None);
        let passed = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (l, lim, passed) = (l.clone(), lim.clone(), passed.clone());
                tokio::spawn(async move {
                    for _ in 0..40 {
                        if take(&l, &lim, |_| None, 0).await.is_ok() {
                            passed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 320 simultaneous attempts in one window: exactly 50 pass.
        assert_eq!(passed.load(Ordering::SeqCst), 50);
    }

    #[tokio::test]
    async fn an_unreachable_redis_counts_locally() {
        let shared = Shared::connect("redis://127.0.0.1:1", "sytest:")
            .await
            .unwrap();
        assert!(shared.is_degraded());
        let l = Limiter::shared(system_clock(), Arc::new(shared));
        let lim = limits(Some(2), None);
        assert!(take(&l, &lim, |_| None, 0).await.is_ok());
        assert!(take(&l, &lim, |_| None, 0).await.is_ok());
        assert!(take(&l, &lim, |_| None, 0).await.is_err());
    }

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(human(20), "20ms");
        assert_eq!(human(1500), "1.5s");
        assert_eq!(human(59_500), "59.5s");
        assert_eq!(human(360_000), "6m0s");
        assert_eq!(human(3_661_000), "1h1m1s");
    }
}
