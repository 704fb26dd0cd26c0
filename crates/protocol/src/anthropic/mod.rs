//! Anthropic's Messages API: wire types and the translation to and from the canonical types.
//!
//! `wire` holds the JSON shapes; `request` turns a Messages request into a canonical one;
//! `response` and `stream` turn canonical answers back into Messages answers and events.
//! Translation always goes through the canonical types, never pairwise between providers.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
pub mod upstream;
#[cfg(test)]
mod upstream_tests;
pub mod wire;

pub use request::{TranslateError, to_canonical};
pub use response::{finish_to_stop_reason, to_anthropic, usage_to_anthropic};
pub use stream::StreamTranslator;
pub use wire::{ErrorResponse, MessagesRequest, MessagesResponse, StreamEvent};
