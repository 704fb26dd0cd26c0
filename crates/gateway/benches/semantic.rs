//! The semantic cache's search: the nearest of N stored last turns (unit vectors of 384
//! dimensions, all-MiniLM-L6-v2's size, all in one context group, the worst case) to a query.
//!
//!     cargo bench -p switchyard-gateway --bench semantic
//!
//! Prints microseconds per search for 1k, 10k and 100k entries, the best of 5 rounds (the
//! minimum is the least disturbed by other work on a shared machine). With
//! `SWITCHYARD_TEST_MODEL_DIR` naming the installed all-MiniLM-L6-v2, also a whole look-up:
//! embedding the question with it, then the search.
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
    // With the local model installed, a whole look-up: embed the question, then search.
    let embedder = std::env::var("SWITCHYARD_TEST_MODEL_DIR")
        .ok()
        .map(|d| switchyard_local::Embedder::load(std::path::Path::new(&d)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
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
        if let Some(e) = &embedder {
            let questions: Vec<String> = (0..20)
                .map(|i| format!("What is the capital of country number {i}?"))
                .collect();
            let mut whole = f64::MAX;
            for _ in 0..ROUNDS {
                let start = Instant::now();
                for q in &questions {
                    let v = rt.block_on(e.embed(vec![q.clone()])).unwrap();
                    black_box(index.nearest(&context, &v.vectors[0]));
                }
                whole = whole.min(start.elapsed().as_secs_f64() / questions.len() as f64);
            }
            println!(
                "| {n}, with embedding the question (local/all-minilm-l6-v2) | {:.0} | |",
                whole * 1e6
            );
        }
    }
}
