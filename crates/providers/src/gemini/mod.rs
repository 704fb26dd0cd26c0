//! Google's Gemini API as an upstream: `models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse` and `:batchEmbedContents`, key in `x-goog-api-key`.
//! Translation lives in `switchyard_protocol::gemini`; this adapter sends and reads.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse, EncodingFormat};
use switchyard_protocol::gemini::{self, StreamDecoder};
use switchyard_protocol::models::{Model, ModelList};
use switchyard_protocol::sse::SseEvent;

use crate::events::{self, EventParser, Parsed};
use crate::{ChatStream, ProviderError, ProviderSettings, http};

#[derive(Debug, Clone)]
pub struct GeminiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    client: reqwest::Client,
    /// `{base}/v1beta`
    root: String,
}

impl GeminiProvider {
    /// `base_url` is the API host (`https://generativelanguage.googleapis.com`); a trailing
    /// `/v1beta` is accepted too.
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let base = base
            .strip_suffix("/v1beta")
            .or_else(|| base.strip_suffix("/v1"))
            .unwrap_or(base);
        let root = http::endpoint(&settings.name, base, "v1beta")?.to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                client,
                root,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    fn url(&self, model: &str, action: &str) -> Result<reqwest::Url, ProviderError> {
        let mut url =
            reqwest::Url::parse(&self.inner.root).map_err(|e| ProviderError::Internal {
                detail: e.to_string(),
            })?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Internal {
                detail: "base URL cannot take a path".into(),
            })?
            .push("models")
            .push(&format!("{model}:{action}"));
        Ok(url)
    }

    fn request(&self, http: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        http::authorize(http, &self.inner.settings)
    }

    fn post(
        &self,
        url: reqwest::Url,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Internal {
            detail: format!("encoding the request: {e}"),
        })?;
        Ok(self.request(
            self.inner
                .client
                .post(url)
                .header(::http::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        ))
    }

    fn body(&self, req: &ChatRequest) -> Result<Value, ProviderError> {
        gemini::request_from_canonical(self.name(), req).map_err(|e| ProviderError::Request {
            provider: self.name().to_owned(),
            param: e.param,
            message: e.message,
        })
    }

    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(&req)?;
        let s = &self.inner.settings;
        let http = self.post(self.url(&req.model, "generateContent")?, &body)?;
        let v: Value = http::json(&s.name, http, s.request_timeout).await?;
        gemini::response_to_canonical(&v, &req.model, now()).map_err(|detail| {
            ProviderError::Decode {
                provider: s.name.clone(),
                detail,
            }
        })
    }

    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(&req)?;
        let s = &self.inner.settings;
        let mut url = self.url(&req.model, "streamGenerateContent")?;
        url.set_query(Some("alt=sse"));
        let resp = http::start(&s.name, self.post(url, &body)?, s.request_timeout).await?;
        Ok(events::chunks(
            s.name.clone(),
            resp,
            GeminiEvents(StreamDecoder::new(&req.model, now())),
        ))
    }

    pub async fn count_tokens(&self, req: ChatRequest) -> Result<u64, ProviderError> {
        let s = &self.inner.settings;
        let generate = self.body(&req)?;
        let mut inner = serde_json::Map::new();
        inner.insert("model".into(), format!("models/{}", req.model).into());
        for key in ["contents", "systemInstruction", "tools"] {
            if let Some(v) = generate.get(key) {
                inner.insert(key.into(), v.clone());
            }
        }
        let body = serde_json::json!({ "generateContentRequest": inner });
        let http = self.post(self.url(&req.model, "countTokens")?, &body)?;
        let v: Value = http::json(&s.name, http, s.request_timeout).await?;
        v["totalTokens"]
            .as_u64()
            .ok_or_else(|| ProviderError::Decode {
                provider: s.name.clone(),
                detail: "no `totalTokens` in the countTokens answer".to_owned(),
            })
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let s = &self.inner.settings;
        let body = gemini::embed_request(&s.name, &req, &req.model).map_err(|e| {
            ProviderError::Request {
                provider: s.name.clone(),
                param: e.param,
                message: e.message,
            }
        })?;
        let http = self.post(self.url(&req.model, "batchEmbedContents")?, &body)?;
        let v: Value = http::json(&s.name, http, s.request_timeout).await?;
        let base64 = req.encoding_format == Some(EncodingFormat::Base64);
        gemini::embed_response(&v, &req.model, base64).map_err(|detail| ProviderError::Decode {
            provider: s.name.clone(),
            detail,
        })
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        let s = &self.inner.settings;
        let url = format!("{}/models", self.inner.root);
        let v: Value = http::json(
            &s.name,
            self.request(self.inner.client.get(url)),
            s.request_timeout,
        )
        .await?;
        let data = v["models"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|n| Model::new(n.trim_start_matches("models/"), s.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ModelList::new(data))
    }
}

struct GeminiEvents(StreamDecoder);

impl EventParser for GeminiEvents {
    fn parse(&mut self, provider: &str, ev: SseEvent) -> Result<Parsed, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(Parsed::Chunks(vec![]));
        }
        self.0
            .event(&ev.data)
            .map(Parsed::Chunks)
            .map_err(|detail| {
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
            })
    }

    fn complete(&self) -> bool {
        self.0.finished()
    }

    fn end(&mut self) -> Vec<switchyard_protocol::chat::ChatChunk> {
        self.0.finish().into_iter().collect()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
