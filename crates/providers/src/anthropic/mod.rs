//! Anthropic's Messages API as an upstream (`x-api-key`, `anthropic-version`), plain and
//! streamed. Translation to and from the canonical types lives in
//! `switchyard_protocol::anthropic::upstream`; this adapter sends and reads.

mod stream;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_protocol::anthropic::upstream::{self, API_VERSION};
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_protocol::models::{Model, ModelList};

use crate::{ChatStream, ProviderError, ProviderSettings, events, http};

#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    client: reqwest::Client,
    messages_url: reqwest::Url,
    count_url: reqwest::Url,
    models_url: reqwest::Url,
}

impl AnthropicProvider {
    /// `base_url` is the API root (`https://api.anthropic.com`, as `ANTHROPIC_BASE_URL` is for
    /// the official SDK); a trailing `/v1` is accepted too.
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = |path: &str| http::endpoint(&settings.name, base, path);
        let inner = Inner {
            messages_url: url("v1/messages")?,
            count_url: url("v1/messages/count_tokens")?,
            models_url: url("v1/models")?,
            settings,
            client,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    fn body(&self, req: &ChatRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
        let provider = self.name();
        let body =
            upstream::request_from_canonical(provider, req, &req.model, stream).map_err(|e| {
                ProviderError::Request {
                    provider: provider.to_owned(),
                    param: e.param,
                    message: e.message,
                }
            })?;
        serde_json::to_vec(&body).map_err(|e| ProviderError::Internal {
            detail: format!("encoding the request: {e}"),
        })
    }

    fn request(&self, http: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        http::authorize(
            http.header("anthropic-version", API_VERSION),
            &self.inner.settings,
        )
    }

    fn post(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.request(
            self.inner
                .client
                .post(self.inner.messages_url.clone())
                .header(::http::header::CONTENT_TYPE, "application/json")
                .body(body),
        )
    }

    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(&req, false)?;
        let s = &self.inner.settings;
        let v: Value = http::json(&s.name, self.post(body), s.request_timeout).await?;
        let mut resp =
            upstream::response_to_canonical(&v).map_err(|detail| ProviderError::Decode {
                provider: s.name.clone(),
                detail,
            })?;
        resp.created = now();
        Ok(resp)
    }

    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(&req, true)?;
        let s = &self.inner.settings;
        let resp = http::start(&s.name, self.post(body), s.request_timeout).await?;
        Ok(events::chunks(
            s.name.clone(),
            resp,
            stream::AnthropicEvents::new(now()),
        ))
    }

    pub async fn count_tokens(&self, req: ChatRequest) -> Result<u64, ProviderError> {
        let s = &self.inner.settings;
        let mut body =
            upstream::request_from_canonical(&s.name, &req, &req.model, false).map_err(|e| {
                ProviderError::Request {
                    provider: s.name.clone(),
                    param: e.param,
                    message: e.message,
                }
            })?;
        if let Some(obj) = body.as_object_mut() {
            // count_tokens takes the request without generation settings.
            for k in [
                "max_tokens",
                "stop_sequences",
                "temperature",
                "top_p",
                "top_k",
                "metadata",
                "stream",
            ] {
                obj.remove(k);
            }
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| ProviderError::Internal {
            detail: format!("encoding the request: {e}"),
        })?;
        let http = self.request(
            self.inner
                .client
                .post(self.inner.count_url.clone())
                .header(::http::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        );
        let v: Value = http::json(&s.name, http, s.request_timeout).await?;
        v["input_tokens"]
            .as_u64()
            .ok_or_else(|| ProviderError::Decode {
                provider: s.name.clone(),
                detail: "no `input_tokens` in the count_tokens answer".to_owned(),
            })
    }

    pub async fn embed(&self, _req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            what: "embeddings (Anthropic has no embeddings API)".to_owned(),
        })
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        let s = &self.inner.settings;
        let http = self.request(self.inner.client.get(self.inner.models_url.clone()));
        let v: Value = http::json(&s.name, http, s.request_timeout).await?;
        let data = v["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str())
                    .map(|id| Model::new(id, s.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ModelList::new(data))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
