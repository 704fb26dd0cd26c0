//! The semantic cache's search: the nearest of N stored last turns (unit vectors of 384
//! dimensions, all-MiniLM-L6-v2's size, all in one context group, the worst case) to a query.
//!
//!     cargo bench -p switchyard-gateway --bench semantic
//!
//! Prints microseconds per search for 1k, 10k and 100k entries, the best of 5 rounds (the
//! minimum is the least disturbed by other work on a shared machine). The embedding of the
//! query is the other half of a look-up's cost; it depends on the embedding model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use switchyard_gateway::cache::semantic::{Index, normalize};

const DIMS: usize = 384;
const ROUNDS: usize = 5;

fn unit(rng: &mut fastrand::Rng) -> Vec<f32> {
    normalize((0..DIMS).map(|_| rng.f32() * 2.0 - 1.0).collect())
}

fn main() {
    let mut rng = fastrand::Rng::with_seed(1);
    println!("| entries in the group | search (µs), best of {ROUNDS} | per entry (ns) |");
    println!("|---|---|---|");
    for n in [1_000usize, 10_000, 100_000] {
        let index = Index::new(n);
        let context = [7u8; 32];
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            index.insert(context, key, unit(&mut rng));
        }
        let queries: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng)).collect();
        let mut best = f64::MAX;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for q in &queries {
                black_box(index.nearest(&context, black_box(q)));
            }
            best = best.min(start.elapsed().as_secs_f64() / queries.len() as f64);
        }
        println!("| {n} | {:.0} | {:.2} |", best * 1e6, best * 1e9 / n as f64);
    }
}
