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
//! `target` is `provider/model`. Callers choose model names, so the label's values are bounded:
//! beyond the first 4096 targets seen, new ones are counted as `other`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::routing::{Health, HealthTable};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    hedges: Family<Labels, Counter>,
    hedge_wins: Family<Labels, Counter>,
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
        Self {
            registry,
            attempts,
            hedges,
            hedge_wins,
        }
    }

    pub fn attempt(&self, target: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&vec![
                ("target", target.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
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
