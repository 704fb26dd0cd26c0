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

use crate::http::{self, Upstream};
use crate::{ChatStream, HttpClient, ProviderError, ProviderSettings, events};

#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    upstream: Upstream,
    messages_url: ::http::Uri,
    count_url: ::http::Uri,
    models_url: ::http::Uri,
}

/// The caller's `anthropic-beta` header (from the Messages surface), on the upstream request.
fn with_beta(
    mut up: ::http::Request<bytes::Bytes>,
    req: &ChatRequest,
) -> ::http::Request<bytes::Bytes> {
    if let Some(beta) = req
        .extra
        .get(upstream::BETA)
        .and_then(Value::as_str)
        .and_then(|b| ::http::HeaderValue::from_str(b).ok())
    {
        up.headers_mut().insert("anthropic-beta", beta);
    }
    up
}

impl AnthropicProvider {
    /// `base_url` is the API root (`https://api.anthropic.com`, as `ANTHROPIC_BASE_URL` is for
    /// the official SDK); a trailing `/v1` is accepted too.
    pub fn new(settings: ProviderSettings, client: HttpClient) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = |path: &str| http::endpoint(&settings.name, base, path);
        let inner = Inner {
            messages_url: url("v1/messages")?,
            count_url: url("v1/messages/count_tokens")?,
            models_url: url("v1/models")?,
            upstream: Upstream::new(client, &settings, &[("anthropic-version", API_VERSION)])?,
            settings,
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

    fn post(&self, body: Vec<u8>, req: &ChatRequest) -> ::http::Request<bytes::Bytes> {
        with_beta(
            self.inner.upstream.post(&self.inner.messages_url, body),
            req,
        )
    }

    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(&req, false)?;
        let s = &self.inner.settings;
        let v: Value = self.inner.upstream.json(self.post(body, &req)).await?;
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
        let resp = self.inner.upstream.start(self.post(body, &req)).await?;
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
        let up = &self.inner.upstream;
        let v: Value = up
            .json(with_beta(
                up.post_value(&self.inner.count_url, &body)?,
                &req,
            ))
            .await?;
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
        let up = &self.inner.upstream;
        let v: Value = up.json(up.get(&self.inner.models_url)).await?;
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
