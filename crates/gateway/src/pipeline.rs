//! The request path of inference calls, as plain async functions that read top to bottom.
//!
//! Stages, in order, and what each adds to the call:
//! 1. surface decode (`surface::openai`, `surface::anthropic`): the caller's JSON → canonical
//!    request (Anthropic's Messages are translated by `switchyard_protocol::anthropic`); 400 on
//!    bad input, naming the field.
//! 2. [`validate`]: checks the canonical request needs before it leaves (non-empty messages…).
//! 3. resolve ([`Registry::resolve`]): alias or `provider/model` slug → [`Target`] (404 if unknown).
//! 4. prepare: the canonical request is readdressed to the upstream's model name; for streams the
//!    caller's `stream_options.include_usage` is remembered, since the provider adapter always
//!    asks the upstream for usage (so that every stream can be accounted for).
//! 5. call the provider adapter: canonical → upstream wire → HTTP → canonical answer or chunks.
//! 6. shape the stream for the caller ([`StreamShape`]): drop the usage the caller did not ask for.
//! 7. surface encode: JSON or SSE in the caller's protocol, with `x-switchyard-*` headers.
//!
//! HTTP concerns (request id, body limit, panics) are layers around the router (`app`).
//! Later stages (auth, firewall, limits, cache, routing with retries, logging) slot in between
//! 3 and 5 and as taps on the stream, as `shared/DESIGN.md` draws them.

use switchyard_protocol::anthropic::upstream::{REASONING_SIGNATURE, REDACTED_REASONING};
use switchyard_protocol::chat::{ChatChunk, ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_providers::ChatStream;

use crate::error::GatewayError;
use crate::registry::{Registry, Target};

/// A failure, with the target when one had been chosen (for the response headers).
pub type Failure = (Option<Target>, GatewayError);

/// Stage 2: what the gateway itself requires of a chat request.
pub fn validate(req: &ChatRequest) -> Result<(), GatewayError> {
    if req.messages.is_empty() {
        return Err(GatewayError::bad_request(
            "`messages` is empty; send at least one message",
            Some("messages"),
        ));
    }
    if req.n == Some(0) {
        return Err(GatewayError::bad_request(
            "`n` must be at least 1",
            Some("n"),
        ));
    }
    Ok(())
}

/// A whole answer.
pub async fn chat(
    registry: &Registry,
    mut req: ChatRequest,
) -> Result<(Target, ChatResponse), Failure> {
    validate(&req).map_err(|e| (None, e))?;
    let target = registry.resolve(&req.model).map_err(|e| (None, e))?;
    req.model.clone_from(&target.model);
    match target.provider.chat(req).await {
        Ok(resp) => Ok((target, resp)),
        Err(e) => Err((Some(target), e.into())),
    }
}

/// A streamed answer: returns once the upstream accepted the call, so a failure before the
/// first byte is still an ordinary error response.
pub async fn chat_stream(
    registry: &Registry,
    mut req: ChatRequest,
) -> Result<(Target, ChatStream, StreamShape), Failure> {
    validate(&req).map_err(|e| (None, e))?;
    let target = registry.resolve(&req.model).map_err(|e| (None, e))?;
    let shape = StreamShape {
        include_usage: req.wants_stream_usage(),
    };
    req.model.clone_from(&target.model);
    match target.provider.chat_stream(req).await {
        Ok(stream) => Ok((target, stream, shape)),
        Err(e) => Err((Some(target), e.into())),
    }
}

/// The input tokens of a request, counted by the target's upstream.
pub async fn count_tokens(
    registry: &Registry,
    mut req: ChatRequest,
) -> Result<(Target, u64), Failure> {
    let target = registry.resolve(&req.model).map_err(|e| (None, e))?;
    req.model.clone_from(&target.model);
    match target.provider.count_tokens(req).await {
        Ok(n) => Ok((target, n)),
        Err(e) => Err((Some(target), e.into())),
    }
}

pub async fn embed(
    registry: &Registry,
    mut req: EmbeddingRequest,
) -> Result<(Target, EmbeddingResponse), Failure> {
    if req.input.is_empty() {
        return Err((
            None,
            GatewayError::bad_request("`input` is empty; send at least one text", Some("input")),
        ));
    }
    if let Some(texts) = req.input.texts()
        && let Some(i) = texts.iter().position(|t| t.is_empty())
    {
        return Err((
            None,
            GatewayError::bad_request(format!("`input[{i}]` is an empty string"), Some("input")),
        ));
    }
    let target = registry.resolve(&req.model).map_err(|e| (None, e))?;
    req.model.clone_from(&target.model);
    match target.provider.embed(req).await {
        Ok(resp) => Ok((target, resp)),
        Err(e) => Err((Some(target), e.into())),
    }
}

/// What the caller asked of the stream's shape.
#[derive(Debug, Clone, Copy)]
pub struct StreamShape {
    pub include_usage: bool,
}

impl StreamShape {
    /// Stage 6: the chunk as the caller should see it, or `None` to drop it.
    pub fn apply(&self, mut chunk: ChatChunk) -> Option<ChatChunk> {
        // Signatures of reasoning blocks mean nothing to OpenAI-shaped callers.
        for c in &mut chunk.choices {
            if !c.delta.extra.is_empty() {
                c.delta.extra.remove(REASONING_SIGNATURE);
                c.delta.extra.remove(REDACTED_REASONING);
            }
        }
        if !self.include_usage && chunk.usage.is_some() {
            if chunk.choices.is_empty() {
                return None;
            }
            chunk.usage = None;
        }
        Some(chunk)
    }
}
