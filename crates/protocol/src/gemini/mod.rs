//! Google's Gemini API (`generateContent`, `streamGenerateContent?alt=sse`, `embedContent`):
//! translation between the canonical types and Gemini's JSON.
//!
//! Gemini names a tool result by the function's *name*, not a call id, so tool results look
//! up their call in the history. Gemini's `thoughtSignature`s, which must come back with the
//! function call on the next turn, travel on canonical tool calls as
//! `extra_content.google.thought_signature`, the field Google's own OpenAI-compatible layer uses,
//! so OpenAI clients that keep the assistant message round-trip them.

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{embed_request, request_from_canonical, to_canonical_request};
pub use response::{StreamDecoder, embed_response, finish_to_canonical, response_to_canonical};
