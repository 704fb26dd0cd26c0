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

/// A request a translation cannot carry; `param` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub param: String,
    pub message: String,
}

pub use decode::{DecodeError, decode_json};
