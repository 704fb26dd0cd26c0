//! Embeddings per second with all-MiniLM-L6-v2 on the CPU, for short sentences, at batch sizes 1,
//! 8 and 32 (one forward pass per batch, straight to the model: no queue, no HTTP).
//!
//!     SWITCHYARD_TEST_MODEL_DIR=<data dir>/models/all-minilm-l6-v2 \
//!         cargo bench -p switchyard-local --bench embed
//!
//! Prints the best of 3 rounds of 256 sentences per batch size (the least disturbed by other
//! work on a shared machine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use switchyard_local::Embedder;

const SENTENCES: usize = 256;
const ROUNDS: usize = 3;

fn main() {
    let Ok(dir) = std::env::var("SWITCHYARD_TEST_MODEL_DIR") else {
        eprintln!("set SWITCHYARD_TEST_MODEL_DIR to an installed all-minilm-l6-v2 folder");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let embedder = Embedder::load(std::path::Path::new(&dir)).unwrap();
    let texts: Vec<String> = (0..SENTENCES)
        .map(|i| {
            format!(
                "Short sentence number {i} about the weather in city {}.",
                i % 17
            )
        })
        .collect();
    println!(
        "threads: {} (candle's CPU kernels use every core)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| batch size | embeddings/s, best of {ROUNDS} | ms per batch |");
    println!("|---|---|---|");
    for batch in [1usize, 8, 32] {
        let mut best = f64::MAX;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for chunk in texts.chunks(batch) {
                rt.block_on(embedder.embed(chunk.to_vec())).unwrap();
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let per_second = SENTENCES as f64 / best;
        println!(
            "| {batch} | {per_second:.0} | {:.2} |",
            1000.0 * best / (SENTENCES / batch) as f64
        );
    }
}
