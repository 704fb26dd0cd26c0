//! The cost of the routing layer per call, without the network: planning (route lookup, the
//! strategy's order, retry policy) and running the plan around an attempt that answers at once
//! (permits, metrics, the attempt loop). A plain slug against routes of 10 targets per strategy.
//!
//!     cargo bench -p switchyard-gateway --bench routing
//!
//! Prints nanoseconds per call, the best of 5 rounds of 200,000 calls each (the minimum is the
//! least disturbed by other work on a shared machine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use switchyard_gateway::config::{Config, Env};
use switchyard_gateway::metrics::Metrics;
use switchyard_gateway::registry::Registry;
use switchyard_gateway::routing::{self, CallOptions, HealthTable, Needs, Routes};

const STRATEGIES: [&str; 4] = ["fallback", "weighted", "least-latency", "lowest-cost"];
const CALLS: u32 = 200_000;
const ROUNDS: usize = 5;

fn config() -> String {
    let models: Vec<String> = std::iter::once("echo".to_owned())
        .chain((1..10).map(|i| format!("itl-{i}ms")))
        .collect();
    let targets: Vec<String> = models.iter().map(|m| format!("\"mock/{m}\"")).collect();
    let mut text = String::new();
    for s in STRATEGIES {
        text.push_str(&format!(
            "[routes.ten-{s}]\nstrategy = \"{s}\"\ntargets = [{}]\n",
            targets.join(", ")
        ));
    }
    for (i, m) in models.iter().enumerate() {
        text.push_str(&format!(
            "[catalog.\"mock/{m}\"]\ninput_per_mtok = {}.0\noutput_per_mtok = {}.0\n",
            i + 1,
            i + 2
        ));
    }
    text
}

/// Best-of-rounds nanoseconds per call of `f`.
fn time(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let config = Config::from_toml(&config(), &Env::default()).unwrap();
    let registry = Registry::build(&config, Some("http://127.0.0.1:9/v1"), None).unwrap();
    let health = HealthTable::default();
    let routes = Routes::new(registry, &config, health.clone()).unwrap();
    let metrics = Metrics::new(health);
    let options = CallOptions::default();
    let needs = Needs {
        input_tokens: 50,
        output_tokens: 256,
        ..Needs::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    let mut rows = Vec::new();
    for model in
        std::iter::once("mock/echo".to_owned()).chain(STRATEGIES.iter().map(|s| format!("ten-{s}")))
    {
        let plan_ns = time(|| {
            black_box(routes.plan(black_box(&model), &options, &needs).unwrap());
        });
        let call_ns = time(|| {
            let plan = routes.plan(black_box(&model), &options, &needs).unwrap();
            let answer = rt.block_on(routing::run(&plan, &metrics, |t| {
                let model = &t.target.model;
                async move { Ok::<usize, switchyard_providers::ProviderError>(model.len()) }
            }));
            black_box(answer.unwrap());
        });
        rows.push((model, plan_ns, call_ns));
    }
    let base_call = rows[0].2;
    println!("| model | plan (ns) | plan + run (ns) | over the slug (ns) |");
    println!("|---|---|---|---|");
    for (model, plan, call) in rows {
        println!(
            "| {model} | {plan:.0} | {call:.0} | {:+.0} |",
            call - base_call
        );
    }
}
