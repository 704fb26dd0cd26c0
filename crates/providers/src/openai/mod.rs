//! The OpenAI-compatible wire family: OpenAI itself, Azure OpenAI's v1 API, and the many hosts
//! and local servers that speak the same chat-completions protocol.
//!
//! The canonical types *are* this wire format, with unknown fields carried in `extra`, so
//! requests go out as they came (with the upstream's model name) and answers come back typed.

mod request;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use switchyard_protocol::chat::{ChatRequest, ChatResponse, StreamOptions, WireJson};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_protocol::models::ModelList;

use crate::http::{self as upstream, Upstream};
use crate::{ChatStream, ChunkDetail, HttpClient, ProviderError, ProviderSettings, events};

#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    upstream: Upstream,
    // Parsed once: parsing (with IDNA) on every request showed in profiles.
    chat_url: http::Uri,
    embeddings_url: http::Uri,
    models_url: http::Uri,
    /// OpenAI itself (or Azure OpenAI), whose reasoning models refuse `max_tokens`.
    completion_tokens: bool,
}

impl OpenAiProvider {
    /// Fails when the base URL does not parse (the configuration checks the scheme, not more).
    pub fn new(settings: ProviderSettings, client: HttpClient) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let url = |path: &str| upstream::endpoint(&settings.name, base, path);
        let chat_url = url("chat/completions")?;
        let completion_tokens = chat_url.host().is_some_and(|h| {
            h.eq_ignore_ascii_case("api.openai.com") || h.ends_with(".openai.azure.com")
        });
        let inner = Inner {
            completion_tokens,
            chat_url,
            embeddings_url: url("embeddings")?,
            models_url: url("models")?,
            upstream: Upstream::new(client, &settings, &[])?,
            settings,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        request::refuse_anthropic_only(self.name(), &req)?;
        request::to_wire(&mut req, self.inner.completion_tokens);
        req.stream = None;
        req.stream_options = None;
        let body = request::encode(self.name(), &req)?;
        let up = &self.inner.upstream;
        let (mut resp, body): (ChatResponse, _) = up
            .json_and_body(up.post(&self.inner.chat_url, body))
            .await?;
        // The body goes with the answer, so an OpenAI-shaped caller can be sent it as it came.
        resp.wire = WireJson::new(body);
        Ok(resp)
    }

    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.chat_stream_with(req, ChunkDetail::Decoded).await
    }

    pub async fn chat_stream_with(
        &self,
        mut req: ChatRequest,
        detail: ChunkDetail,
    ) -> Result<ChatStream, ProviderError> {
        request::refuse_anthropic_only(self.name(), &req)?;
        request::to_wire(&mut req, self.inner.completion_tokens);
        req.stream = Some(true);
        let s = &self.inner.settings;
        if s.stream_usage {
            let opts = req.stream_options.get_or_insert_with(|| StreamOptions {
                include_usage: None,
                extra: Default::default(),
            });
            opts.include_usage = Some(true);
        }
        let body = request::encode(&s.name, &req)?;
        let up = &self.inner.upstream;
        let resp = up.start(up.post(&self.inner.chat_url, body)).await?;
        Ok(events::chunks(
            s.name.clone(),
            resp,
            stream::OpenAiEvents::new(detail),
        ))
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let body = request::encode(self.name(), &req)?;
        let up = &self.inner.upstream;
        up.json(up.post(&self.inner.embeddings_url, body)).await
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        let up = &self.inner.upstream;
        up.json(up.get(&self.inner.models_url)).await
    }
}
