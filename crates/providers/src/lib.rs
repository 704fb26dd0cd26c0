//! The provider contract and one adapter per wire family.
//!
//! A [`Provider`] takes canonical requests (from `switchyard-protocol`) and returns canonical
//! responses and chunk streams, whatever the upstream speaks. Dispatch goes through a closed
//! enum of provider kinds, so a new wire family is a new variant and a new folder.
//!
//! Depends on the protocol crate and an HTTP client; never on the gateway's server code.

pub mod anthropic;
pub mod catalog;
mod client;
#[cfg(test)]
mod conformance;
mod error;
mod events;
pub mod gemini;
mod h1pool;
mod http;
pub mod local;
pub mod openai;
pub mod presets;
pub mod responses;
mod secret;

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use switchyard_protocol::chat::{ChatChunk, ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_protocol::models::ModelList;

pub use client::{HttpClient, Route};
pub use error::{ErrorClass, ProviderError, UpstreamStatus};
pub use presets::{PRESETS, Preset};
pub use secret::Secret;

/// A streamed answer: canonical chunks, then the end of the stream. An `Err` item ends it.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// How much of each streamed chunk its reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkDetail {
    /// Every field, decoded.
    #[default]
    Decoded,
    /// The upstream's own JSON (`ChatChunk::wire`) and the usage, nothing else: for a reader
    /// that passes OpenAI's events on as they came. Adapters of OpenAI's wire format then only
    /// glance at each event (is it valid JSON, does it finish the answer) and give a
    /// [`ChatChunk::wire_only`]; events with usage, or that the gateway may have to change, are
    /// decoded in full all the same. Other adapters make their chunks and ignore this.
    Wire,
}

/// How a provider's credential is presented upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible hosts).
    Bearer,
    /// The key alone in the named header (Azure OpenAI's `api-key`).
    Header(String),
}

/// Everything needed to talk to one configured provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The provider's name in model slugs (`groq` in `groq/llama-3.1-8b-instant`).
    pub name: String,
    /// Base URL including the version path, without a trailing slash (`https://api.openai.com/v1`).
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub auth: AuthStyle,
    /// Extra headers sent with every upstream request. Their values are secrets: they often
    /// carry a credential (`authorization = "Basic …"`).
    pub headers: Vec<(String, Secret)>,
    /// Time allowed for a whole answer, or for the first byte of a stream.
    pub request_timeout: Duration,
    /// Whether the upstream accepts `stream_options.include_usage` (then the gateway always asks,
    /// to account for every stream).
    pub stream_usage: bool,
}

/// One configured provider. A closed set of wire families.
#[derive(Debug, Clone)]
pub enum Provider {
    OpenAi(openai::OpenAiProvider),
    Anthropic(anthropic::AnthropicProvider),
    Gemini(gemini::GeminiProvider),
    Responses(responses::ResponsesProvider),
    /// Models in the gateway's own process.
    Local(local::LocalProvider),
}

/// The wire families a provider can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API.
    Responses,
}

impl WireKind {
    /// The `kind` value in configuration files.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            "gemini" => Some(Self::Gemini),
            "openai-responses" => Some(Self::Responses),
            _ => None,
        }
    }
}

impl Provider {
    /// Builds the adapter for `kind` on the shared client.
    pub fn new(
        kind: WireKind,
        settings: ProviderSettings,
        client: HttpClient,
    ) -> Result<Self, ProviderError> {
        Ok(match kind {
            WireKind::OpenAi => Self::OpenAi(openai::OpenAiProvider::new(settings, client)?),
            WireKind::Anthropic => {
                Self::Anthropic(anthropic::AnthropicProvider::new(settings, client)?)
            }
            WireKind::Gemini => Self::Gemini(gemini::GeminiProvider::new(settings, client)?),
            WireKind::Responses => {
                Self::Responses(responses::ResponsesProvider::new(settings, client)?)
            }
        })
    }
}

impl Provider {
    pub fn name(&self) -> &str {
        match self {
            Self::OpenAi(p) => p.name(),
            Self::Anthropic(p) => p.name(),
            Self::Gemini(p) => p.name(),
            Self::Responses(p) => p.name(),
            Self::Local(p) => p.name(),
        }
    }

    /// Whether the upstream speaks OpenAI's Responses API (and so can run its built-in tools).
    pub fn speaks_responses(&self) -> bool {
        matches!(self, Self::Responses(_))
    }

    // The adapters' futures are boxed: they are several kilobytes, and the gateway's attempt
    // loop and handlers would otherwise move them by value (callgrind: the top `memcpy` caller).

    /// A whole answer. `req.model` is the upstream's model name.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        match self {
            Self::OpenAi(p) => Box::pin(p.chat(req)).await,
            Self::Anthropic(p) => Box::pin(p.chat(req)).await,
            Self::Gemini(p) => Box::pin(p.chat(req)).await,
            Self::Responses(p) => Box::pin(p.chat(req)).await,
            Self::Local(p) => p.chat(req).await,
        }
    }

    /// A streamed answer. Returns once the upstream has accepted the request (status known),
    /// so that a failure before the first byte is an `Err` here, not inside the stream.
    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.chat_stream_with(req, ChunkDetail::Decoded).await
    }

    /// [`Provider::chat_stream`], for a reader that reads `detail` of each chunk.
    pub async fn chat_stream_with(
        &self,
        req: ChatRequest,
        detail: ChunkDetail,
    ) -> Result<ChatStream, ProviderError> {
        match self {
            Self::OpenAi(p) => Box::pin(p.chat_stream_with(req, detail)).await,
            Self::Anthropic(p) => Box::pin(p.chat_stream(req)).await,
            Self::Gemini(p) => Box::pin(p.chat_stream(req)).await,
            Self::Responses(p) => Box::pin(p.chat_stream(req)).await,
            Self::Local(p) => p.chat_stream(req).await,
        }
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        match self {
            Self::OpenAi(p) => Box::pin(p.embed(req)).await,
            Self::Anthropic(p) => Box::pin(p.embed(req)).await,
            Self::Gemini(p) => Box::pin(p.embed(req)).await,
            Self::Responses(p) => Box::pin(p.embed(req)).await,
            Self::Local(p) => Box::pin(p.embed(req)).await,
        }
    }

    /// The input tokens the upstream counts for a request, where it has a counting endpoint
    /// (Anthropic's `count_tokens`, Gemini's `countTokens`).
    pub async fn count_tokens(&self, req: ChatRequest) -> Result<u64, ProviderError> {
        match self {
            Self::OpenAi(_) | Self::Responses(_) | Self::Local(_) => {
                Err(ProviderError::Unsupported {
                    provider: self.name().to_owned(),
                    what: "counting tokens (OpenAI-compatible APIs have no counting endpoint)"
                        .to_owned(),
                })
            }
            Self::Anthropic(p) => Box::pin(p.count_tokens(req)).await,
            Self::Gemini(p) => Box::pin(p.count_tokens(req)).await,
        }
    }

    /// The models the upstream itself lists.
    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        match self {
            Self::OpenAi(p) => p.models().await,
            Self::Anthropic(p) => p.models().await,
            Self::Gemini(p) => p.models().await,
            Self::Responses(p) => p.models().await,
            Self::Local(p) => p.models().await,
        }
    }
}

/// The one pooled HTTP client every provider shares: keep-alive, HTTP/2 where the upstream
/// offers it (ALPN), connect timeout, no redirects, a proxy when the environment names one.
pub fn http_client(connect_timeout: Duration) -> Result<HttpClient, ProviderError> {
    HttpClient::new(connect_timeout)
}
