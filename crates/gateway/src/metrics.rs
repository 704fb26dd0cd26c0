//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! | metric                                        | labels             | meaning                         |
//! |-----------------------------------------------|--------------------|---------------------------------|
//! | `switchyard_upstream_attempts_total`          | `target`, `outcome`| attempts by result: `ok`, the error class, or `cancelled` (a hedge's loser) |
//! | `switchyard_hedges_total`                     | `route`            | second attempts started by hedging |
//! | `switchyard_hedge_wins_total`                 | `route`            | hedges that answered first       |
//! | `switchyard_circuit_state`                    | `target`           | 0 closed, 1 half-open, 2 open    |
//! | `switchyard_circuit_opened_total`             | `target`           | times the circuit opened         |
//! | `switchyard_target_ttfb_ewma_seconds`         | `target`           | moving average of time to first byte |
//!
//! | `switchyard_requests_total`                   | `surface`, `provider`, `status` | calls by HTTP status class (`2xx`, `4xx`, `5xx`) |
//! | `switchyard_request_duration_seconds`         | `provider`         | histogram of whole-call latency  |
//! | `switchyard_time_to_first_token_seconds`      | `provider`         | histogram of time to first byte  |
//! | `switchyard_tokens_total`                     | `provider`, `direction` | input and output tokens     |
//! | `switchyard_cost_usd_total`                   | `provider`         | list-price cost of calls         |
//! | `switchyard_log_records_written_total`, `switchyard_log_records_dropped_total` | | the request-log writer |
//! | `switchyard_cache_lookups_total`              | `status`           | calls the cache was on for: `hit`, `miss`, `bypass` |
//! | `switchyard_cache_saved_usd_total`            |                    | list price of the answers served from the cache |
//! | `switchyard_cache_entries`, `switchyard_cache_bytes`, `switchyard_cache_max_bytes`, `switchyard_cache_semantic_entries` | | the in-process cache's size and bound, the semantic index's size |
//! | `switchyard_streams_producing`, `switchyard_stream_buffer_bytes`, `switchyard_stream_resumes_total` | | resumable streams still running, the bytes their buffers hold, reads through `GET /v1/streams/{id}` |
//! | `switchyard_state_degraded`                   |                    | 1 while `[state] redis` is unreachable and the replica serves on its own state |
//! | `switchyard_state_errors_total`, `switchyard_state_recoveries_total` | | failed shared-state commands; returns of Redis after a degraded spell |
//!
//! `target` is `provider/model`. Callers choose model names, so the label's values are bounded:
//! beyond the first 4096 targets seen, new ones are counted as `other`.

use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::cache::Cache;
use crate::logs::{Logger, Record};
use crate::routing::{Health, HealthTable};

type Labels = Vec<(&'static str, String)>;

/// One provider's series, looked up once per call: a label-set look-up allocates its label
/// strings and hashes them, and a call touched six (callgrind: 6.3 k instructions a call).
/// The handles share their values with the families, which render them. A series appears when
/// it first counts something, as it does through a label-set look-up (a provider without
/// prices shows no cost).
#[derive(Debug)]
struct ProviderSeries {
    latency: Histogram,
    ttft: OnceLock<Histogram>,
    input_tokens: OnceLock<Counter>,
    output_tokens: OnceLock<Counter>,
    cost: OnceLock<Counter<f64, AtomicU64>>,
    /// `(surface, status class)`: a handful per provider.
    requests: RwLock<Vec<((&'static str, &'static str), Counter)>>,
}

/// One target's attempt counters by outcome.
type AttemptSeries = RwLock<Vec<(&'static str, Counter)>>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    hedges: Family<Labels, Counter>,
    hedge_wins: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    ttft: Family<Labels, Histogram>,
    tokens: Family<Labels, Counter>,
    cost: Family<Labels, Counter<f64, AtomicU64>>,
    cache: Family<Labels, Counter>,
    saved: Counter<f64, AtomicU64>,
    firewall: Family<Labels, Counter>,
    // foldhash, not SipHash: looked up on every call (SipHash took 160-200 instructions a
    // look-up here), and what callers can add is bounded (`Routes`'s remembered slugs).
    by_provider: RwLock<foldhash::HashMap<String, Arc<ProviderSeries>>>,
    by_target: RwLock<foldhash::HashMap<String, Arc<AttemptSeries>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The counter for `key` in a short list, made by `make` the first time.
fn cached<K: PartialEq + Copy>(
    list: &RwLock<Vec<(K, Counter)>>,
    key: K,
    make: impl FnOnce() -> Counter,
) -> Counter {
    if let Some((_, c)) = read(list).iter().find(|(k, _)| *k == key) {
        return c.clone();
    }
    let mut list = write(list);
    if let Some((_, c)) = list.iter().find(|(k, _)| *k == key) {
        return c.clone();
    }
    let c = make();
    list.push((key, c.clone()));
    c
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Reads the targets' health at each scrape.
#[derive(Debug)]
struct HealthCollector(HealthTable);

impl Metrics {
    /// `health` holds the targets whose breakers are reported; it is read at each scrape.
    pub fn new(health: HealthTable) -> Self {
        let mut registry = Registry::default();
        let attempts = Family::<Labels, Counter>::default();
        let hedges = Family::<Labels, Counter>::default();
        let hedge_wins = Family::<Labels, Counter>::default();
        registry.register(
            "switchyard_upstream_attempts",
            "Attempts to call a target, by outcome (ok or the error class)",
            attempts.clone(),
        );
        registry.register(
            "switchyard_hedges",
            "Second attempts started because the first was slow",
            hedges.clone(),
        );
        registry.register(
            "switchyard_hedge_wins",
            "Hedged calls that the second attempt answered first",
            hedge_wins.clone(),
        );
        registry.register_collector(Box::new(HealthCollector(health)));
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let ttft = Family::<Labels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let tokens = Family::<Labels, Counter>::default();
        let cost = Family::<Labels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "switchyard_requests",
            "Calls by surface, provider and HTTP status class",
            requests.clone(),
        );
        registry.register(
            "switchyard_request_duration_seconds",
            "Whole-call latency",
            latency.clone(),
        );
        registry.register(
            "switchyard_time_to_first_token_seconds",
            "Time to the first byte of the answer",
            ttft.clone(),
        );
        registry.register("switchyard_tokens", "Tokens by direction", tokens.clone());
        registry.register(
            "switchyard_cost_usd",
            "List-price cost of calls in US dollars",
            cost.clone(),
        );
        let cache = Family::<Labels, Counter>::default();
        let saved = Counter::<f64, AtomicU64>::default();
        registry.register(
            "switchyard_cache_lookups",
            "Calls the cache was on for, by what it did",
            cache.clone(),
        );
        registry.register(
            "switchyard_cache_saved_usd",
            "List price of the answers served from the cache, in US dollars",
            saved.clone(),
        );
        let firewall = Family::<Labels, Counter>::default();
        registry.register(
            "switchyard_firewall_findings",
            "What the firewall found and did, by stage (input, output), detector and action",
            firewall.clone(),
        );
        Self {
            firewall,
            cache,
            saved,
            registry,
            attempts,
            hedges,
            hedge_wins,
            requests,
            latency,
            ttft,
            tokens,
            cost,
            by_provider: RwLock::default(),
            by_target: RwLock::default(),
        }
    }

    /// The provider's series, created on its first call.
    fn provider(&self, provider: &str) -> Arc<ProviderSeries> {
        if let Some(s) = read(&self.by_provider).get(provider) {
            return s.clone();
        }
        let series = Arc::new(ProviderSeries {
            latency: self
                .latency
                .get_or_create(&vec![("provider", provider.to_owned())])
                .clone(),
            ttft: OnceLock::new(),
            input_tokens: OnceLock::new(),
            output_tokens: OnceLock::new(),
            cost: OnceLock::new(),
            requests: RwLock::default(),
        });
        write(&self.by_provider)
            .entry(provider.to_owned())
            .or_insert(series)
            .clone()
    }

    /// Reports the request-log writer's counters at each scrape.
    pub fn watch_logger(&mut self, logger: Arc<Logger>) {
        self.registry
            .register_collector(Box::new(LoggerCollector(logger)));
    }

    /// Reports the cache's size at each scrape.
    pub fn watch_cache(&mut self, cache: Arc<Cache>) {
        self.registry
            .register_collector(Box::new(CacheCollector(cache)));
    }

    /// Reports the shared state's health at each scrape.
    pub fn watch_shared(&mut self, shared: Arc<crate::shared::Shared>) {
        self.registry
            .register_collector(Box::new(SharedCollector(shared)));
    }

    /// Reports the resumable streams at each scrape.
    pub fn watch_streams(&mut self, streams: Arc<crate::streams::Streams>) {
        self.registry
            .register_collector(Box::new(StreamsCollector(streams)));
    }

    /// Counts a finished call.
    pub fn call(&self, r: &Record) {
        let provider = r.provider.as_deref().unwrap_or_default();
        let class = match r.status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let series = self.provider(provider);
        cached(&series.requests, (r.surface, class), || {
            self.requests
                .get_or_create(&vec![
                    ("surface", r.surface.to_owned()),
                    ("provider", provider.to_owned()),
                    ("status", class.to_owned()),
                ])
                .clone()
        })
        .inc();
        series.latency.observe(r.latency_ms as f64 / 1000.0);
        let by_provider = || vec![("provider", provider.to_owned())];
        if let Some(t) = r.ttft_ms {
            let ttft = series
                .ttft
                .get_or_init(|| self.ttft.get_or_create(&by_provider()).clone());
            ttft.observe(t as f64 / 1000.0);
        }
        for (n, counter, direction) in [
            (r.input_tokens, &series.input_tokens, "input"),
            (r.output_tokens, &series.output_tokens, "output"),
        ] {
            if n > 0 {
                let tokens = counter.get_or_init(|| {
                    self.tokens
                        .get_or_create(&vec![
                            ("provider", provider.to_owned()),
                            ("direction", direction.to_owned()),
                        ])
                        .clone()
                });
                tokens.inc_by(n);
            }
        }
        if let Some(usd) = r.cost_usd {
            let cost = series
                .cost
                .get_or_init(|| self.cost.get_or_create(&by_provider()).clone());
            cost.inc_by(usd);
        }
        if let Some(c) = r.cache {
            self.cache
                .get_or_create(&vec![("status", c.to_owned())])
                .inc();
        }
        if let Some(usd) = r.saved_usd {
            self.saved.inc_by(usd);
        }
        for v in r.firewall.iter().flat_map(|f| f.verdicts.iter()) {
            self.firewall
                .get_or_create(&vec![
                    ("stage", v.stage.as_str().to_owned()),
                    ("detector", v.detector.as_str().to_owned()),
                    ("action", v.action.as_str().to_owned()),
                ])
                .inc_by(u64::from(v.count));
        }
    }

    pub fn attempt(&self, target: &str, outcome: &'static str) {
        let series = read(&self.by_target).get(target).cloned();
        let series = series.unwrap_or_else(|| {
            write(&self.by_target)
                .entry(target.to_owned())
                .or_default()
                .clone()
        });
        cached(&series, outcome, || {
            self.attempts
                .get_or_create(&vec![
                    ("target", target.to_owned()),
                    ("outcome", outcome.to_owned()),
                ])
                .clone()
        })
        .inc();
    }

    pub fn hedge_started(&self, route: &str) {
        self.hedges
            .get_or_create(&vec![("route", route.to_owned())])
            .inc();
    }

    pub fn hedge_outcome(&self, route: &str, hedge_won: bool) {
        if hedge_won {
            self.hedge_wins
                .get_or_create(&vec![("route", route.to_owned())])
                .inc();
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Debug)]
struct CacheCollector(Arc<Cache>);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "switchyard_cache_entries",
                "Answers in the in-process cache",
                self.0.len() as i64,
            ),
            (
                "switchyard_cache_bytes",
                "Size the cached answers are counted at",
                self.0.weight() as i64,
            ),
            (
                "switchyard_cache_semantic_entries",
                "Requests in the semantic cache's index",
                self.0.semantic.len() as i64,
            ),
            (
                "switchyard_cache_max_bytes",
                "The in-process cache's bound",
                self.0.max_bytes() as i64,
            ),
        ] {
            let g = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct StreamsCollector(Arc<crate::streams::Streams>);

impl Collector for StreamsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "switchyard_streams_producing",
                "Resumable streams whose upstream call is still running (their callers may have gone)",
                self.0.active() as i64,
            ),
            (
                "switchyard_stream_buffer_bytes",
                "Bytes of events the in-process stream buffers hold",
                self.0.bytes() as i64,
            ),
        ] {
            let g = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)?;
        }
        let c = ConstCounter::new(self.0.resumes());
        let m = encoder.encode_descriptor(
            "switchyard_stream_resumes",
            "Reads of a buffered stream through GET /v1/streams/{id}",
            None,
            c.metric_type(),
        )?;
        c.encode(m)
    }
}

#[derive(Debug)]
struct SharedCollector(Arc<crate::shared::Shared>);

impl Collector for SharedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(i64::from(self.0.is_degraded()));
        let m = encoder.encode_descriptor(
            "switchyard_state_degraded",
            "1 while Redis (state.redis) is unreachable and this replica serves on its own state",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;
        for (name, help, value) in [
            (
                "switchyard_state_errors",
                "Redis commands of the shared state that failed",
                self.0.errors(),
            ),
            (
                "switchyard_state_recoveries",
                "Times Redis came back after the shared state had degraded",
                self.0.recoveries(),
            ),
        ] {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct LoggerCollector(Arc<Logger>);

impl Collector for LoggerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "switchyard_log_records_written",
                "Request-log records written to the database",
                self.0.written(),
            ),
            (
                "switchyard_log_records_dropped",
                "Request-log records dropped because the queue was full",
                self.0.dropped(),
            ),
        ] {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        Ok(())
    }
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all: Vec<Arc<Health>> = self.0.all();
        let snapshots: Vec<_> = all.iter().map(|h| (h.slug.clone(), h.snapshot())).collect();
        let label = |slug: &str| -> Labels { vec![("target", slug.to_owned())] };

        let state = ConstGauge::new(0i64);
        let mut m = encoder.encode_descriptor(
            "switchyard_circuit_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
            None,
            state.metric_type(),
        )?;
        for (slug, s) in &snapshots {
            let l = label(slug);
            ConstGauge::new(s.circuit.code()).encode(m.encode_family(&l)?)?;
        }

        let opened = ConstCounter::new(0u64);
        let mut m = encoder.encode_descriptor(
            "switchyard_circuit_opened",
            "Times the target's circuit opened",
            None,
            opened.metric_type(),
        )?;
        for (slug, s) in &snapshots {
            let l = label(slug);
            ConstCounter::new(s.opened).encode(m.encode_family(&l)?)?;
        }

        let ewma = ConstGauge::new(0f64);
        let mut m = encoder.encode_descriptor(
            "switchyard_target_ttfb_ewma_seconds",
            "Moving average of the target's time to first byte",
            None,
            ewma.metric_type(),
        )?;
        for (slug, s) in &snapshots {
            if let Some(d) = s.ewma {
                let l = label(slug);
                ConstGauge::new(d.as_secs_f64()).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn calls_and_attempts_count_into_their_series() {
        let m = Metrics::new(HealthTable::default());
        let mut r = crate::logs::tests::record(1);
        r.latency_ms = 20;
        r.cost_usd = Some(0.5);
        m.call(&r);
        m.call(&r);
        r.status = 503;
        r.surface = "messages";
        r.output_tokens = 0;
        r.ttft_ms = None;
        m.call(&r);
        r.provider = Some("other-co".into());
        r.status = 429;
        r.cost_usd = None;
        m.call(&r);
        m.attempt("mock/echo", "ok");
        m.attempt("mock/echo", "ok");
        m.attempt("mock/echo", "timeout");
        m.attempt("groq/llama", "ok");
        let text = m.render();
        let mut requests = line(&text, "switchyard_requests_total{");
        requests.sort_unstable();
        assert_eq!(
            requests,
            [
                r#"switchyard_requests_total{surface="chat",provider="mock",status="2xx"} 2"#,
                r#"switchyard_requests_total{surface="messages",provider="mock",status="5xx"} 1"#,
                r#"switchyard_requests_total{surface="messages",provider="other-co",status="4xx"} 1"#,
            ]
        );
        let mut tokens = line(&text, "switchyard_tokens_total{");
        tokens.sort_unstable();
        assert_eq!(
            tokens,
            [
                r#"switchyard_tokens_total{provider="mock",direction="input"} 9"#,
                r#"switchyard_tokens_total{provider="mock",direction="output"} 2"#,
                r#"switchyard_tokens_total{provider="other-co",direction="input"} 3"#,
            ]
        );
        assert!(text.contains(r#"switchyard_request_duration_seconds_count{provider="mock"} 3"#));
        assert!(
            text.contains(r#"switchyard_time_to_first_token_seconds_count{provider="mock"} 2"#)
        );
        assert_eq!(
            line(&text, "switchyard_cost_usd_total{"),
            [r#"switchyard_cost_usd_total{provider="mock"} 1.5"#]
        );
        let mut attempts = line(&text, "switchyard_upstream_attempts_total{");
        attempts.sort_unstable();
        assert_eq!(
            attempts,
            [
                r#"switchyard_upstream_attempts_total{target="groq/llama",outcome="ok"} 1"#,
                r#"switchyard_upstream_attempts_total{target="mock/echo",outcome="ok"} 2"#,
                r#"switchyard_upstream_attempts_total{target="mock/echo",outcome="timeout"} 1"#,
            ]
        );
    }
}
