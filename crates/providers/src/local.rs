//! The `local` provider: models that run in the gateway's process on the CPU
//! (`switchyard_local`). `local/all-minilm-l6-v2` answers `/v1/embeddings`; a model is loaded on
//! its first call and shared. Text generation with local models is not available yet.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use switchyard_local::{EmbedError, Embedders, ModelStore};
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat,
    Vector,
};
use switchyard_protocol::models::{Model, ModelList};

use crate::{ChatStream, ProviderError, UpstreamStatus};

/// The provider's name in slugs.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
pub struct LocalProvider {
    store: ModelStore,
    embedders: Arc<Embedders>,
}

impl LocalProvider {
    /// The models under `<data_dir>/models`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            store: ModelStore::new(data_dir),
            embedders: Arc::new(Embedders::default()),
        }
    }

    pub fn name(&self) -> &str {
        LOCAL
    }

    fn refuse(&self, param: &str, message: String) -> ProviderError {
        ProviderError::Request {
            provider: LOCAL.to_owned(),
            param: param.to_owned(),
            message,
        }
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let Some(dir) = self.store.path(&req.model) else {
            return Err(self.refuse(
                "model",
                format!(
                    "the local model `{}` is not installed; run `switchyard models pull {}`",
                    req.model, req.model
                ),
            ));
        };
        let texts = match req.input {
            EmbeddingInput::Text(t) => vec![t],
            EmbeddingInput::Texts(t) => t,
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
                return Err(self.refuse(
                    "input",
                    "local models take text input, not token ids".to_owned(),
                ));
            }
        };
        let embedder = self
            .embedders
            .get(&req.model, &dir)
            .await
            .map_err(|e| self.failed(e))?;
        if let Some(d) = req.dimensions
            && d as usize != embedder.dims()
        {
            return Err(self.refuse(
                "dimensions",
                format!(
                    "`{}` makes {}-dimension vectors; drop `dimensions` or ask for {}",
                    req.model,
                    embedder.dims(),
                    embedder.dims()
                ),
            ));
        }
        let done = embedder.embed(texts).await.map_err(|e| self.failed(e))?;
        let base64 = req.encoding_format == Some(EncodingFormat::Base64);
        let data = done
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".to_owned(),
                index: i as u32,
                embedding: if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    Vector::Float(v.into_iter().map(f64::from).collect())
                },
            })
            .collect();
        Ok(EmbeddingResponse {
            object: "list".to_owned(),
            data,
            model: req.model,
            usage: Some(EmbeddingUsage {
                prompt_tokens: done.tokens,
                total_tokens: done.tokens,
            }),
            extra: Default::default(),
        })
    }

    fn failed(&self, e: EmbedError) -> ProviderError {
        match e {
            // A full queue is the local model's "rate limit": the gateway backs off and retries.
            EmbedError::Busy => ProviderError::Status(Box::new(UpstreamStatus {
                provider: LOCAL.to_owned(),
                status: 429,
                message: e.to_string(),
                kind: Some("rate_limit_error".to_owned()),
                code: None,
                param: None,
                retry_after: Some(std::time::Duration::from_millis(50)),
            })),
            other => ProviderError::Internal {
                detail: other.to_string(),
            },
        }
    }

    fn no_chat(&self) -> ProviderError {
        ProviderError::Unsupported {
            provider: LOCAL.to_owned(),
            what: "text generation yet (local models answer /v1/embeddings)".to_owned(),
        }
    }

    pub async fn chat(&self, _req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(self.no_chat())
    }

    pub async fn chat_stream(&self, _req: ChatRequest) -> Result<ChatStream, ProviderError> {
        Err(self.no_chat())
    }

    /// The installed models.
    pub fn installed(&self) -> Vec<String> {
        self.store
            .list()
            .map(|l| l.into_iter().map(|m| m.name).collect())
            .unwrap_or_default()
    }

    pub async fn models(&self) -> Result<ModelList, ProviderError> {
        Ok(ModelList::new(
            self.installed()
                .into_iter()
                .map(|n| Model::new(n, LOCAL))
                .collect(),
        ))
    }
}
