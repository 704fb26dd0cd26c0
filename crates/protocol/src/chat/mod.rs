//! Canonical chat types.
//!
//! `request` holds what a caller asks for, `message` the conversation it carries, `response`
//! a whole answer and `stream` the chunks of a streamed one; `wire` keeps the upstream's JSON
//! beside either.

mod assemble;
mod message;
mod request;
mod response;
mod stream;
mod wire;

pub use assemble::{assemble, chunks_of};
pub use message::{Content, ImageUrl, Message, Part, Role, ToolCall, ToolCallFunction};
pub use request::{
    ChatRequest, FunctionDef, JsonSchemaFormat, ResponseFormat, Stop, StreamOptions, Tool,
    ToolChoice, has_no_effect,
};
pub use response::{
    ChatResponse, Choice, CompletionTokensDetails, FinishReason, PromptTokensDetails, Usage,
};
pub use stream::{ChatChunk, ChunkChoice, Delta, ToolCallDelta, ToolCallFunctionDelta};
pub use wire::WireJson;

#[cfg(test)]
mod tests;
