//! Models that run inside the gateway, on the CPU: no network hop, no provider bill, data never
//! leaves the machine. [`models`] keeps the models directory (pull, list, remove); [`embed`]
//! computes sentence embeddings with a batching worker per model.
//!
//! The heavy dependencies (candle, tokenizers) live here only, below the providers crate.

pub mod embed;
pub mod models;

pub use embed::{EmbedError, Embedded, Embedder, Embedders};
pub use models::{Installed, KNOWN, ModelError, ModelStore};
