//! The `local` provider: models that run in the gateway's process on the CPU
//! (`switchyard_local`). Embedding models (`local/all-minilm-l6-v2`) answer `/v1/embeddings`;
//! generative ones (a small Llama-architecture model in safetensors) answer chat, whole or
//! streamed. A model is loaded on its first call and shared.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use switchyard_local::{EmbedError, Embedders, ModelStore};
use switchyard_protocol::chat::{ChatRequest, ChatResponse};
use switchyard_protocol::embeddings::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat,
    Vector,
};
use switchyard_protocol::models::{Model, ModelList};

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::StreamExt;
use switchyard_local::{GenerateError, Generation, Generator, Piece, TemplateMessage};
use switchyard_protocol::chat::{ChatChunk, Choice, Delta, FinishReason, Message, Role, Usage};
use tokio::sync::mpsc;

use crate::{ChatStream, ProviderError, UpstreamStatus};

/// A full queue is the local model's "rate limit": the gateway backs off and retries.
fn busy(message: String) -> ProviderError {
    ProviderError::Status(Box::new(UpstreamStatus {
        provider: LOCAL.to_owned(),
        status: 429,
        message,
        kind: Some("rate_limit_error".to_owned()),
        code: None,
        param: None,
        retry_after: Some(std::time::Duration::from_millis(50)),
    }))
}

fn finish_reason(f: &str) -> FinishReason {
    if f == "length" {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The provider's name in slugs.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
pub struct LocalProvider {
    store: ModelStore,
    embedders: Arc<Embedders>,
    generators: Arc<Mutex<HashMap<String, Generator>>>,
}

impl LocalProvider {
    /// The models under `<data_dir>/models`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            store: ModelStore::new(data_dir),
            embedders: Arc::new(Embedders::default()),
            generators: Arc::new(Mutex::new(HashMap::new())),
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

    /// The folder of installed model `name`; a 400 naming the fix if it is not a model name or
    /// not installed.
    fn folder(&self, name: &str) -> Result<PathBuf, ProviderError> {
        if switchyard_local::models::check_name(name).is_err() {
            return Err(self.refuse(
                "model",
                format!(
                    "`local/{name}` does not name a local model: model names are folder names under the data directory's models/ (letters, digits, - _ .)"
                ),
            ));
        }
        self.store.path(name).ok_or_else(|| {
            self.refuse(
                "model",
                format!(
                    "the local model `{name}` is not installed; add a model folder under the data directory's models/ or run `switchyard models pull {name}`"
                ),
            )
        })
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let dir = self.folder(&req.model)?;
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
            EmbedError::Busy => busy(e.to_string()),
            other => ProviderError::Internal {
                detail: other.to_string(),
            },
        }
    }

    /// The generator of model `name`, loading it on first use.
    async fn generator(&self, name: &str) -> Result<Generator, ProviderError> {
        let dir = self.folder(name)?;
        if !switchyard_local::generate::is_generative(&dir) {
            return Err(ProviderError::Unsupported {
                provider: LOCAL.to_owned(),
                what: format!("chat with `{name}`, an embedding model (use /v1/embeddings)"),
            });
        }
        if let Some(g) = self
            .generators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(g.clone());
        }
        let loaded = tokio::task::spawn_blocking(move || Generator::load(&dir))
            .await
            .map_err(|e| ProviderError::Internal {
                detail: e.to_string(),
            })?
            .map_err(|e| ProviderError::Internal {
                detail: e.to_string(),
            })?;
        let mut all = self.generators.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all.entry(name.to_owned()).or_insert(loaded).clone())
    }

    /// Starts generating the answer to `req`: its pieces as they come.
    async fn start(
        &self,
        req: &ChatRequest,
    ) -> Result<mpsc::UnboundedReceiver<Piece>, ProviderError> {
        if let Some(k) = switchyard_protocol::anthropic::upstream::anthropic_only_field(req) {
            return Err(self.refuse(
                k,
                format!("`{k}` is an Anthropic Messages field, which local models cannot honour"),
            ));
        }
        if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(self.refuse("tools", "local models do not call tools yet".to_owned()));
        }
        if req.n.is_some_and(|n| n > 1) {
            return Err(self.refuse("n", "local models answer once per call".to_owned()));
        }
        let generator = self.generator(&req.model).await?;
        let messages = req
            .messages
            .iter()
            .map(|m| TemplateMessage {
                role: match m.role {
                    Role::System | Role::Developer => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    Role::Tool | Role::Function => "tool",
                }
                .to_owned(),
                content: m.text(),
            })
            .collect();
        let generation = Generation {
            messages,
            max_tokens: req.max_output_tokens().map(|n| n as usize),
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed.map(|s| s as u64),
            stop: req
                .stop
                .as_ref()
                .map(|s| s.sequences().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        generator.start(generation).map_err(|e| match e {
            GenerateError::Busy => busy(e.to_string()),
            other => ProviderError::Internal {
                detail: other.to_string(),
            },
        })
    }

    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut pieces = self.start(&req).await?;
        let mut text = String::new();
        while let Some(piece) = pieces.recv().await {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                } => {
                    return Ok(ChatResponse {
                        id: format!("chatcmpl-local-{}", now_nanos()),
                        object: "chat.completion".to_owned(),
                        created: now_secs(),
                        model: req.model.clone(),
                        choices: vec![Choice {
                            index: 0,
                            message: Message::new(Role::Assistant, text),
                            finish_reason: Some(finish_reason(finish)),
                            logprobs: None,
                            extra: Default::default(),
                        }],
                        usage: Some(Usage::new(prompt_tokens, completion_tokens)),
                        system_fingerprint: None,
                        extra: Default::default(),
                        wire: Default::default(),
                    });
                }
                Piece::Failed(detail) => return Err(ProviderError::Internal { detail }),
            }
        }
        Err(ProviderError::Internal {
            detail: "the generation stopped without an end".to_owned(),
        })
    }

    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChatStream, ProviderError> {
        let pieces = self.start(&req).await?;
        let id = format!("chatcmpl-local-{}", now_nanos());
        let created = now_secs();
        let model = req.model.clone();
        let first = ChatChunk::new(
            &id,
            &model,
            created,
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );
        let rest = futures_util::stream::unfold(
            (pieces, id, model, false),
            move |(mut pieces, id, model, over)| async move {
                if over {
                    return None;
                }
                let chunks: Vec<Result<ChatChunk, ProviderError>> = match pieces.recv().await {
                    Some(Piece::Text(t)) => vec![Ok(ChatChunk::new(
                        &id,
                        &model,
                        created,
                        Delta {
                            content: Some(t),
                            ..Delta::default()
                        },
                        None,
                    ))],
                    Some(Piece::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                    }) => {
                        let end = ChatChunk::new(
                            &id,
                            &model,
                            created,
                            Delta::default(),
                            Some(finish_reason(finish)),
                        );
                        let mut usage =
                            ChatChunk::new(&id, &model, created, Delta::default(), None);
                        usage.choices.clear();
                        usage.usage = Some(Usage::new(prompt_tokens, completion_tokens));
                        let over = vec![Ok(end), Ok(usage)];
                        return Some((futures_util::stream::iter(over), (pieces, id, model, true)));
                    }
                    Some(Piece::Failed(detail)) => vec![Err(ProviderError::Interrupted {
                        provider: LOCAL.to_owned(),
                        detail,
                    })],
                    None => vec![Err(ProviderError::Interrupted {
                        provider: LOCAL.to_owned(),
                        detail: "the generation stopped without an end".to_owned(),
                    })],
                };
                let over = chunks.iter().any(Result::is_err);
                Some((
                    futures_util::stream::iter(chunks),
                    (pieces, id, model, over),
                ))
            },
        )
        .flatten();
        Ok(Box::pin(
            futures_util::stream::once(async { Ok(first) }).chain(rest),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_model_name_that_is_a_path_is_refused_as_the_callers_mistake() {
        let tmp = std::env::temp_dir().join(format!("switchyard-local-{}", std::process::id()));
        let local = LocalProvider::new(&tmp);
        for name in ["../../etc", "/srv/models/x", "./all-minilm-l6-v2"] {
            let req: EmbeddingRequest =
                serde_json::from_value(serde_json::json!({"model": name, "input": "hi"})).unwrap();
            match local.embed(req).await {
                Err(ProviderError::Request { param, message, .. }) => {
                    assert_eq!(param, "model");
                    assert!(message.contains("does not name a local model"), "{message}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A valid name that is not installed says how to install it.
        let req: EmbeddingRequest =
            serde_json::from_value(serde_json::json!({"model": "tiny", "input": "hi"})).unwrap();
        match local.embed(req).await {
            Err(ProviderError::Request { message, .. }) => {
                assert!(message.contains("switchyard models pull tiny"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_anthropic_only_field_is_refused_by_name() {
        let tmp = std::env::temp_dir().join(format!("switchyard-local-a-{}", std::process::id()));
        let local = LocalProvider::new(&tmp);
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "tiny", "messages": [{"role": "user", "content": "hi"}],
            "x_switchyard_anthropic_fields": {"container": "c1"}}))
        .unwrap();
        match local.chat(req).await {
            Err(ProviderError::Request { param, .. }) => assert_eq!(param, "container"),
            other => panic!("{other:?}"),
        }
    }
}
