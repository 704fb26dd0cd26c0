//! What a rate-limited call pays for its counters: in process, and shared through Redis (one
//! script call, a loopback round trip). Sequential latency (p50/p99 of single acquisitions) and
//! throughput with 64 acquisitions in flight at once, for a key with rpm and tpm limits.
//!
//!     cargo bench -p switchyard-gateway --bench limits
//!
//! Redis: `SWITCHYARD_BENCH_REDIS` (default redis://127.0.0.1:6379); keys under a prefix of
//! the run's own, expiring with their windows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_gateway::limits::{LimitSet, Limiter, Limits, system_clock};
use switchyard_gateway::shared::Shared;

const SEQUENTIAL: usize = 20_000;
const CONCURRENT: usize = 64;
const BATCH: usize = 100_000;

fn limits() -> Limits {
    Limits {
        key: LimitSet {
            rpm: Some(u64::MAX / 4),
            tpm: Some(u64::MAX / 4),
            ..LimitSet::default()
        },
        per_metadata: BTreeMap::new(),
    }
}

async fn measure(name: &str, limiter: Arc<Limiter>) {
    let lim = limits();
    // Warm up (connections, script cache).
    for _ in 0..1000 {
        limiter
            .acquire("bench", "bench", &lim, |_| None, 100)
            .await
            .unwrap();
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let r = limiter
            .acquire("bench", "bench", &lim, |_| None, 100)
            .await
            .unwrap();
        samples.push(t.elapsed());
        limiter.settle(&r, 100);
    }
    samples.sort();
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    let start = Instant::now();
    let per = BATCH / CONCURRENT;
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (limiter, lim) = (limiter.clone(), lim.clone());
            tokio::spawn(async move {
                for _ in 0..per {
                    limiter
                        .acquire("bench", "bench", &lim, |_| None, 100)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per * CONCURRENT) as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<8} p50 {:>7.1} µs  p99 {:>7.1} µs  {CONCURRENT} in flight: {rate:>9.0} acquisitions/s",
        us(q(0.5)),
        us(q(0.99)),
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        measure("local", Arc::new(Limiter::new(system_clock()))).await;
        let url = std::env::var("SWITCHYARD_BENCH_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("sybench:{}:", std::process::id());
        let shared = Arc::new(Shared::connect(&url, &prefix).await.unwrap());
        if shared.is_degraded() {
            println!("redis    not reachable at {url}: skipped");
            return;
        }
        measure("redis", Arc::new(Limiter::shared(system_clock(), shared))).await;
    });
}
