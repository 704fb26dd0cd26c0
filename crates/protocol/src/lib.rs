//! Switchyard's protocol crate: the canonical request and response types every other crate
//! speaks, the wire types of the API surfaces, and the server-sent-events codec.
//!
//! The canonical chat types follow OpenAI's chat-completions shape, the lingua franca of the
//! field, with typed fields for everything the gateway reasons about (messages, content parts,
//! tools, sampling, usage) and an `extra` map at every level so that fields the gateway does not
//! know pass through to OpenAI-compatible upstreams untouched.
//!
//! This crate is pure: no IO, no async runtime, no HTTP. It must not depend on any other
//! Switchyard crate.

pub mod anthropic;
pub mod chat;
pub mod decode;
pub mod embeddings;
pub mod error;
mod extra;
pub mod gemini;
pub mod models;
pub mod responses;
pub mod sse;
#[cfg(test)]
mod translation_table;

/// The prefix of the `extra` keys the gateway itself sets on canonical requests and chunks to
/// carry what a surface knows to an adapter (`x_switchyard_anthropic_thinking`, …). They never
/// leave the gateway: surfaces drop any a caller sends, and adapters do not pass them on.
pub const PRIVATE_PREFIX: &str = "x_switchyard_";

/// Drops the gateway's own keys ([`PRIVATE_PREFIX`]) from a caller's `extra` map.
pub fn drop_private(extra: &mut serde_json::Map<String, serde_json::Value>) {
    if !extra.is_empty() {
        extra.retain(|k, _| !k.starts_with(PRIVATE_PREFIX));
    }
}

/// A request a translation cannot carry; `param` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub param: String,
    pub message: String,
}

pub use decode::{DecodeError, decode_json};
