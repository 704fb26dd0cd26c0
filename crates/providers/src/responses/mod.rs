//! OpenAI's Responses API as an upstream (`kind = "openai-responses"`): `POST {base}/responses`,
//! stateless (the gateway sends the whole conversation and keeps state itself). Translation
//! lives in `switchyard_protocol::responses::upstream`; this adapter sends and reads. Embeddings
//! and the model list use the same host's OpenAI endpoints.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_protocol::models::ModelList;
use switchyard_protocol::responses::upstream::{
    EventDecoder, request_from_canonical, response_to_canonical,
};
use switchyard_protocol::sse::SseEvent;

use crate::events::{self, EventParser, Parsed};
use crate::http::{self, Upstream};
use crate::openai::OpenAiProvider;
use crate::{ChatStream, HttpClient, ProviderError, ProviderSettings};

#[derive(Debug, Clone)]
pub struct ResponsesProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    upstream: Upstream,
    url: ::http::Uri,
    /// The same host's chat-completions endpoints, for embeddings and the model list.
    openai: OpenAiProvider,
}

impl ResponsesProvider {
    pub fn new(settings: ProviderSettings, client: HttpClient) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let url = http::endpoint(&settings.name, base, "responses")?;
        let openai = OpenAiProvider::new(settings.clone(), client.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                upstream: Upstream::new(client, &settings, &[])?,
                settings,
                url,
                openai,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    fn post(&self, req: &ChatRequest) -> Result<::http::Request<bytes::Bytes>, ProviderError> {
        let s = &self.inner.settings;
        let body = request_from_canonical(req).map_err(|e| ProviderError::Request {
            provider: s.name.clone(),
            param: e.param,
            message: e.message,
        })?;
        self.inner.upstream.post_value(&self.inner.url, &body)
    }

    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        req.stream = None;
        let s = &self.inner.settings;
        let v: Value = self.inner.upstream.json(self.post(&req)?).await?;
        response_to_canonical(&v).map_err(|detail| ProviderError::Decode {
            provider: s.name.clone(),
            detail,
        })
    }

    pub async fn chat_stream(&self, mut req: ChatRequest) -> Result<ChatStream, ProviderError> {
        req.stream = Some(true);
        let s = &self.inner.settings;
        let resp = self.inner.upstream.start(self.post(&req)?).await?;
        Ok(events::chunks(
            s.name.clone(),
            resp,
            ResponsesEvents(EventDecoder::new(&req.model, now())),
        ))
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        self.inner.openai.embed(req).await
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        self.inner.openai.models().await
    }
}

struct ResponsesEvents(EventDecoder);

impl EventParser for ResponsesEvents {
    fn parse(&mut self, provider: &str, ev: SseEvent) -> Result<Parsed, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(Parsed::Chunks(vec![]));
        }
        let chunks = self.0.event(&ev.data).map_err(|detail| {
            if detail.starts_with("upstream error event") {
                ProviderError::Interrupted {
                    provider: provider.to_owned(),
                    detail,
                }
            } else {
                ProviderError::Decode {
                    provider: provider.to_owned(),
                    detail,
                }
            }
        })?;
        Ok(if self.0.finished() {
            Parsed::Done(chunks)
        } else {
            Parsed::Chunks(chunks)
        })
    }

    fn complete(&self) -> bool {
        self.0.finished()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
