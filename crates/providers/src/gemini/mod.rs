//! Google's Gemini API as an upstream: `models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse` and `:batchEmbedContents`, key in `x-goog-api-key`.
//! Translation lives in `switchyard_protocol::gemini`; this adapter sends and reads.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{
    EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat,
};
use switchyard_protocol::gemini::{self, StreamDecoder};
use switchyard_protocol::models::{Model, ModelList};
use switchyard_protocol::sse::SseEvent;

use crate::events::{self, EventParser, Parsed};
use crate::http::{self, Upstream};
use crate::{ChatStream, HttpClient, ProviderError, ProviderSettings};

#[derive(Debug, Clone)]
pub struct GeminiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ProviderSettings,
    upstream: Upstream,
    /// `{base}/v1beta`
    root: reqwest::Url,
    models_url: ::http::Uri,
}

impl GeminiProvider {
    /// `base_url` is the API host (`https://generativelanguage.googleapis.com`); a trailing
    /// `/v1beta` is accepted too.
    pub fn new(settings: ProviderSettings, client: HttpClient) -> Result<Self, ProviderError> {
        let base = settings.base_url.trim_end_matches('/');
        let base = base
            .strip_suffix("/v1beta")
            .or_else(|| base.strip_suffix("/v1"))
            .unwrap_or(base);
        let root = reqwest::Url::parse(&format!("{base}/v1beta")).map_err(|e| {
            ProviderError::Internal {
                detail: format!(
                    "provider `{}`: base URL `{base}` is not a valid URL: {e}",
                    settings.name
                ),
            }
        })?;
        let models_url = http::endpoint(&settings.name, base, "v1beta/models")?;
        Ok(Self {
            inner: Arc::new(Inner {
                upstream: Upstream::new(client, &settings, &[])?,
                settings,
                root,
                models_url,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    /// `{root}/models/{model}:{action}`, the model name percent-encoded as one path segment.
    fn url(
        &self,
        model: &str,
        action: &str,
        query: Option<&str>,
    ) -> Result<::http::Uri, ProviderError> {
        let mut url = self.inner.root.clone();
        url.path_segments_mut()
            .map_err(|()| ProviderError::Internal {
                detail: "base URL cannot take a path".into(),
            })?
            .push("models")
            .push(&format!("{model}:{action}"));
        url.set_query(query);
        http::uri(self.name(), &url)
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
        let up = &self.inner.upstream;
        let url = self.url(&req.model, "generateContent", None)?;
        let v: Value = up.json(up.post_value(&url, &body)?).await?;
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
        let up = &self.inner.upstream;
        let url = self.url(&req.model, "streamGenerateContent", Some("alt=sse"))?;
        let resp = up.start(up.post_value(&url, &body)?).await?;
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
        let up = &self.inner.upstream;
        let url = self.url(&req.model, "countTokens", None)?;
        let v: Value = up.json(up.post_value(&url, &body)?).await?;
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
        let up = &self.inner.upstream;
        let url = self.url(&req.model, "batchEmbedContents", None)?;
        let v: Value = up.json(up.post_value(&url, &body)?).await?;
        let base64 = req.encoding_format == Some(EncodingFormat::Base64);
        let mut resp = gemini::embed_response(&v, &req.model, base64).map_err(|detail| {
            ProviderError::Decode {
                provider: s.name.clone(),
                detail,
            }
        })?;
        // Gemini reports no usage for embeddings, and OpenAI's answer always has one (its
        // SDKs' types require it): an estimate.
        let tokens = req.input.estimated_tokens();
        resp.usage = Some(EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        });
        Ok(resp)
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        let s = &self.inner.settings;
        let up = &self.inner.upstream;
        let v: Value = up.json(up.get(&self.inner.models_url)).await?;
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
