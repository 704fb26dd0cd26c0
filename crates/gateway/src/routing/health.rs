//! What the gateway has seen of one target: its circuit breaker and its recent latency.
//!
//! The breaker is closed (calls pass) until the target fails `consecutive_failures` times in a
//! row, or `error_rate` of at least `min_calls` calls in the current window fail. It is then
//! open for `cooldown`: routes skip the target. After the cooldown, one call goes through as a
//! probe (half-open); its success closes the circuit, its failure opens it again.
//!
//! Only failures that say something about the target count (connect errors, timeouts, 5xx,
//! 429…, as [`ProviderError::is_retryable`] decides); a 400 for a bad request is an answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use switchyard_providers::ProviderError;
use tokio::sync::mpsc;

use crate::config::BreakerPolicy;

/// Latency samples kept for percentiles.
const SAMPLES: usize = 128;
/// Fewer samples than this give no percentile.
pub const MIN_SAMPLES: usize = 10;
/// Weight of the newest sample in the moving average.
const EWMA_ALPHA: f64 = 0.3;

/// Every target's health by `provider/model`, shared by the routes and `/metrics`. Bounded:
/// beyond `MAX_REMEMBERED` slugs, new targets get a health that is not kept.
#[derive(Debug, Clone, Default)]
pub struct HealthTable {
    map: Arc<Mutex<HashMap<Arc<str>, Arc<Health>>>>,
    /// Where breakers tell that they opened or closed, when replicas share them.
    events: Option<mpsc::UnboundedSender<BreakerEvent>>,
    /// Targets other replicas found failing that no route here has used yet, until when.
    remote: Arc<Mutex<HashMap<Arc<str>, Instant>>>,
}

/// A breaker's change of state, for the other replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerEvent {
    Opened { slug: Arc<str>, cooldown: Duration },
    Closed { slug: Arc<str> },
}

/// Slugs remembered with their health (a bound on memory when callers send many distinct
/// model names).
pub const MAX_REMEMBERED: usize = 4096;

/// The slug of targets beyond [`MAX_REMEMBERED`]: they share one label in metrics.
pub const OTHER: &str = "other";

impl HealthTable {
    /// A table whose breakers tell `events` when they open or close.
    pub fn shared(events: mpsc::UnboundedSender<BreakerEvent>) -> Self {
        Self {
            map: Arc::default(),
            events: Some(events),
            remote: Arc::default(),
        }
    }

    /// Another replica's breaker changed: applied to this replica's breaker for the target,
    /// or remembered until a route here first uses it.
    pub fn apply_remote(&self, event: &BreakerEvent) {
        let slug = match event {
            BreakerEvent::Opened { slug, .. } | BreakerEvent::Closed { slug } => slug,
        };
        if let Some(h) = self.get(slug) {
            h.apply_remote(event);
            return;
        }
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            BreakerEvent::Opened { cooldown, .. } => {
                if remote.len() < MAX_REMEMBERED {
                    remote.insert(slug.clone(), Instant::now() + *cooldown);
                }
            }
            BreakerEvent::Closed { .. } => {
                remote.remove(slug);
            }
        }
    }

    pub fn get_or_insert(&self, slug: &Arc<str>, policy: BreakerPolicy) -> Arc<Health> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get(slug) {
            return h.clone();
        }
        if map.len() >= MAX_REMEMBERED {
            return Arc::new(Health::new(OTHER, policy));
        }
        let mut h = Health::new(slug.clone(), policy);
        h.events = self.events.clone();
        let until = self
            .remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(slug);
        if let Some(cooldown) = until.and_then(|t| t.checked_duration_since(Instant::now())) {
            h.apply_remote(&BreakerEvent::Opened {
                slug: slug.clone(),
                cooldown,
            });
        }
        let h = Arc::new(h);
        map.insert(slug.clone(), h.clone());
        h
    }

    /// The health of `slug`, if a route has used it.
    pub fn get(&self, slug: &str) -> Option<Arc<Health>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(slug).cloned()
    }

    /// All of them, by slug.
    pub fn all(&self) -> Vec<Arc<Health>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<Health>> = map.values().cloned().collect();
        all.sort_by(|a, b| a.slug.cmp(&b.slug));
        all
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Circuit {
    /// 0 closed, 1 half-open, 2 open: the value of the `switchyard_circuit_state` gauge.
    pub fn code(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen { .. } => 1,
            Self::Open { .. } => 2,
        }
    }
}

#[derive(Debug)]
pub struct Health {
    pub slug: Arc<str>,
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
    events: Option<mpsc::UnboundedSender<BreakerEvent>>,
}

#[derive(Debug)]
struct Inner {
    circuit: Circuit,
    consecutive: u32,
    window_start: Instant,
    window_calls: u32,
    window_failures: u32,
    ewma_us: Option<f64>,
    samples: Vec<u32>,
    next_sample: usize,
    retry_after_until: Option<Instant>,
    opened: u64,
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct HealthSnapshot {
    pub circuit: Circuit,
    pub opened: u64,
    pub ewma: Option<Duration>,
}

impl Health {
    pub fn new(slug: impl Into<Arc<str>>, policy: BreakerPolicy) -> Self {
        Self {
            slug: slug.into(),
            policy,
            inner: Mutex::new(Inner {
                circuit: Circuit::Closed,
                consecutive: 0,
                window_start: Instant::now(),
                window_calls: 0,
                window_failures: 0,
                ewma_us: None,
                samples: Vec::with_capacity(SAMPLES),
                next_sample: 0,
                retry_after_until: None,
                opened: 0,
            }),
            events: None,
        }
    }

    /// Another replica's breaker for this target changed: an open one opens this one for the
    /// rest of its cooldown (a closed circuit only: a probe under way here decides for
    /// itself); a closed one closes it.
    pub fn apply_remote(&self, event: &BreakerEvent) {
        if !self.policy.enabled {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        match event {
            BreakerEvent::Opened { cooldown, .. } => {
                if inner.circuit == Circuit::Closed {
                    inner.circuit = Circuit::Open {
                        until: now + *cooldown,
                    };
                    inner.opened += 1;
                    tracing::warn!(target_slug = %self.slug, cooldown_ms = cooldown.as_millis() as u64, "circuit opened by another replica");
                }
            }
            BreakerEvent::Closed { .. } => {
                if inner.circuit != Circuit::Closed {
                    inner.circuit = Circuit::Closed;
                    inner.consecutive = 0;
                    inner.window_start = now;
                    inner.window_calls = 0;
                    inner.window_failures = 0;
                    tracing::info!(target_slug = %self.slug, "circuit closed by another replica");
                }
            }
        }
    }

    fn tell(&self, event: BreakerEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters invalid; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets a call through, or says until when the circuit stays open.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<Permit, Refused> {
        if !self.policy.enabled {
            return Ok(self.permit(false));
        }
        let mut inner = self.lock();
        match inner.circuit {
            Circuit::Closed => Ok(self.permit(false)),
            Circuit::Open { until } if now >= until => {
                inner.circuit = Circuit::HalfOpen { probing: true };
                Ok(self.permit(true))
            }
            Circuit::Open { until } => Err(Refused::Open { until }),
            Circuit::HalfOpen { probing: true } => Err(Refused::Probing),
            Circuit::HalfOpen { probing: false } => {
                inner.circuit = Circuit::HalfOpen { probing: true };
                Ok(self.permit(true))
            }
        }
    }

    fn permit(self: &Arc<Self>, probe: bool) -> Permit {
        Permit {
            health: self.clone(),
            probe,
            done: false,
        }
    }

    pub fn circuit(&self) -> Circuit {
        self.lock().circuit
    }

    /// The moving average of the time to first byte.
    pub fn ewma(&self) -> Option<Duration> {
        self.lock()
            .ewma_us
            .map(|us| Duration::from_micros(us as u64))
    }

    /// The `q` quantile (0.95 for p95) of recent latencies, once enough were seen.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let inner = self.lock();
        if inner.samples.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted = inner.samples.clone();
        drop(inner);
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted
            .get(i.min(sorted.len() - 1))
            .map(|&us| Duration::from_micros(u64::from(us)))
    }

    /// How long a `retry-after` the target sent still asks callers to wait.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.lock()
            .retry_after_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let inner = self.lock();
        HealthSnapshot {
            circuit: inner.circuit,
            opened: inner.opened,
            ewma: inner.ewma_us.map(|us| Duration::from_micros(us as u64)),
        }
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        let now = Instant::now();
        let p = &self.policy;
        let mut inner = self.lock();
        if now.duration_since(inner.window_start) > p.window {
            inner.window_start = now;
            inner.window_calls = 0;
            inner.window_failures = 0;
        }
        inner.window_calls += 1;
        if let Some(latency) = outcome.latency() {
            let us = latency.as_micros().min(u128::from(u32::MAX)) as u32;
            inner.ewma_us = Some(match inner.ewma_us {
                Some(avg) => avg + EWMA_ALPHA * (f64::from(us) - avg),
                None => f64::from(us),
            });
            if inner.samples.len() < SAMPLES {
                inner.samples.push(us);
            } else {
                let i = inner.next_sample;
                inner.samples[i] = us;
            }
            inner.next_sample = (inner.next_sample + 1) % SAMPLES;
        }
        match outcome {
            Outcome::Success(_) | Outcome::Answered => {
                inner.consecutive = 0;
                if probe || matches!(inner.circuit, Circuit::HalfOpen { .. }) {
                    if inner.circuit != Circuit::Closed {
                        self.tell(BreakerEvent::Closed {
                            slug: self.slug.clone(),
                        });
                    }
                    inner.circuit = Circuit::Closed;
                    inner.window_start = now;
                    inner.window_calls = 0;
                    inner.window_failures = 0;
                }
            }
            Outcome::Failure { retry_after, .. } => {
                inner.consecutive += 1;
                inner.window_failures += 1;
                if let Some(after) = retry_after {
                    inner.retry_after_until = Some(now + after);
                }
                let tripped = inner.consecutive >= p.consecutive_failures
                    || (inner.window_calls >= p.min_calls
                        && f64::from(inner.window_failures)
                            >= p.error_rate * f64::from(inner.window_calls));
                let reopen = probe || matches!(inner.circuit, Circuit::HalfOpen { .. });
                if p.enabled && (reopen || (inner.circuit == Circuit::Closed && tripped)) {
                    inner.circuit = Circuit::Open {
                        until: now + p.cooldown,
                    };
                    inner.opened += 1;
                    self.tell(BreakerEvent::Opened {
                        slug: self.slug.clone(),
                        cooldown: p.cooldown,
                    });
                    tracing::warn!(
                        target_slug = %self.slug,
                        cooldown_ms = p.cooldown.as_millis() as u64,
                        "circuit opened"
                    );
                }
            }
        }
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if inner.circuit == (Circuit::HalfOpen { probing: true }) {
            inner.circuit = Circuit::HalfOpen { probing: false };
        }
    }
}

/// Why a target was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Open {
        until: Instant,
    },
    /// Half-open, and its one probe call is under way.
    Probing,
}

enum Outcome {
    /// An answer (or a stream's first byte) after this long.
    Success(Duration),
    /// The target answered, refusing the request for what it asked (a 400): healthy.
    Answered,
    Failure {
        /// Set for timeouts: the time waited says something about latency too.
        latency: Option<Duration>,
        retry_after: Option<Duration>,
    },
}

impl Outcome {
    fn latency(&self) -> Option<Duration> {
        match self {
            Self::Success(d) => Some(*d),
            Self::Answered => None,
            Self::Failure { latency, .. } => *latency,
        }
    }
}

/// Leave to call a target. Report how the call went; a permit dropped without a report (a
/// cancelled hedge, a caller that went away) counts as nothing, and frees a half-open probe.
#[derive(Debug)]
pub struct Permit {
    health: Arc<Health>,
    probe: bool,
    done: bool,
}

impl Permit {
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn success(mut self, latency: Duration) {
        self.done = true;
        self.health.record(self.probe, Outcome::Success(latency));
    }

    /// How a failed call reflects on the target. A request refused before it was sent says
    /// nothing about it (a probe's slot is freed for the next call); an answer that could not
    /// be read counts as a failure, though it is not retried.
    pub fn failed(mut self, error: &ProviderError, elapsed: Duration) {
        if error.is_refused_here() {
            return;
        }
        self.done = true;
        let outcome = if error.is_retryable() || matches!(error, ProviderError::Decode { .. }) {
            Outcome::Failure {
                latency: matches!(error, ProviderError::Timeout { .. }).then_some(elapsed),
                retry_after: error.retry_after(),
            }
        } else {
            Outcome::Answered
        };
        self.health.record(self.probe, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.health.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            consecutive_failures: 3,
            error_rate: 0.5,
            min_calls: 10,
            window: Duration::from_secs(60),
            cooldown: Duration::from_millis(50),
        }
    }

    fn unavailable() -> ProviderError {
        ProviderError::Status(Box::new(switchyard_providers::UpstreamStatus {
            provider: "p".into(),
            status: 503,
            message: "down".into(),
            kind: None,
            code: None,
            param: None,
            retry_after: None,
        }))
    }

    /// A target whose circuit three failures opened.
    fn opened() -> Arc<Health> {
        let h = Arc::new(Health::new("p/m", policy()));
        for _ in 0..3 {
            h.admit(Instant::now())
                .unwrap()
                .failed(&unavailable(), Duration::ZERO);
        }
        h
    }

    fn bad_request() -> ProviderError {
        ProviderError::Request {
            provider: "p".into(),
            param: "x".into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once_and_closes() {
        let h = Arc::new(Health::new("p/m", policy()));
        let now = Instant::now();
        for _ in 0..2 {
            h.admit(now).unwrap().failed(&unavailable(), Duration::ZERO);
        }
        assert_eq!(h.circuit(), Circuit::Closed);
        h.admit(now).unwrap().failed(&unavailable(), Duration::ZERO);
        assert!(matches!(h.circuit(), Circuit::Open { .. }));
        assert!(matches!(h.admit(Instant::now()), Err(Refused::Open { .. })));

        // After the cooldown: one probe, and nobody else while it runs.
        let later = Instant::now() + Duration::from_millis(60);
        let probe = h.admit(later).unwrap();
        assert_eq!(h.admit(later).unwrap_err(), Refused::Probing);
        probe.success(Duration::from_millis(5));
        assert_eq!(h.circuit(), Circuit::Closed);
        assert_eq!(h.snapshot().opened, 1);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_dropped_probe_frees_the_slot() {
        let h = opened();
        let later = Instant::now() + Duration::from_millis(60);
        drop(h.admit(later).unwrap());
        assert_eq!(h.circuit(), Circuit::HalfOpen { probing: false });
        h.admit(later)
            .unwrap()
            .failed(&unavailable(), Duration::ZERO);
        assert!(matches!(h.circuit(), Circuit::Open { .. }));
        assert_eq!(h.snapshot().opened, 2);
    }

    #[test]
    fn a_probe_refused_before_it_was_sent_leaves_the_circuit_half_open() {
        let h = opened();
        let later = Instant::now() + Duration::from_millis(60);
        // The probe's call never reached the target: no verdict, and the slot is free again.
        h.admit(later)
            .unwrap()
            .failed(&bad_request(), Duration::ZERO);
        assert_eq!(h.circuit(), Circuit::HalfOpen { probing: false });
        // An answer that cannot be read is no sign of health either.
        let unreadable = ProviderError::Decode {
            provider: "p".into(),
            detail: "<html>".into(),
        };
        h.admit(later).unwrap().failed(&unreadable, Duration::ZERO);
        assert!(matches!(h.circuit(), Circuit::Open { .. }));
    }

    #[test]
    fn bad_requests_do_not_count_against_the_target() {
        let h = Arc::new(Health::new("p/m", policy()));
        for _ in 0..10 {
            h.admit(Instant::now())
                .unwrap()
                .failed(&bad_request(), Duration::ZERO);
        }
        assert_eq!(h.circuit(), Circuit::Closed);
    }

    #[test]
    fn opens_on_error_rate_in_the_window() {
        let mut p = policy();
        p.consecutive_failures = 100;
        let h = Arc::new(Health::new("p/m", p));
        for i in 0..10 {
            let permit = h.admit(Instant::now()).unwrap();
            // Half of ten calls fail, the last one among them.
            if i % 2 == 1 {
                permit.failed(&unavailable(), Duration::ZERO);
            } else {
                permit.success(Duration::from_millis(1));
            }
        }
        assert!(matches!(h.circuit(), Circuit::Open { .. }));
    }

    #[test]
    fn latency_average_and_percentile() {
        let h = Arc::new(Health::new("p/m", policy()));
        assert_eq!(h.percentile(0.95), None);
        for ms in 1..=20 {
            h.admit(Instant::now())
                .unwrap()
                .success(Duration::from_millis(ms));
        }
        let p95 = h.percentile(0.95).unwrap();
        assert_eq!(p95, Duration::from_millis(19));
        let ewma = h.ewma().unwrap();
        assert!(ewma > Duration::from_millis(15) && ewma < Duration::from_millis(20));
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let mut p = policy();
        p.enabled = false;
        let h = Arc::new(Health::new("p/m", p));
        for _ in 0..10 {
            h.admit(Instant::now())
                .unwrap()
                .failed(&unavailable(), Duration::ZERO);
        }
        assert!(h.admit(Instant::now()).is_ok());
    }
}
