//! Models that run inside the gateway, on the CPU: no network hop, no provider bill, data never
//! leaves the machine. [`models`] keeps the models directory (pull, list, remove); [`embed`]
//! computes sentence embeddings with a batching worker per model.
//!
//! The heavy dependencies (candle, tokenizers) live here only, below the providers crate.

pub mod embed;
pub mod generate;
pub mod models;
pub mod testing;

pub use embed::{EmbedError, Embedded, Embedder, Embedders};
pub use generate::{GenerateError, Generation, Generator, Piece, TemplateMessage};
pub use models::{Installed, KNOWN, ModelError, ModelStore};
