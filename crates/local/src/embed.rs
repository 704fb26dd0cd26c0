//! Sentence embeddings on the CPU: a BERT encoder (candle), mean pooling over the tokens, unit
//! length — what sentence-transformers computes for models such as all-MiniLM-L6-v2.
//!
//! One [`Embedder`] per model, loaded once and shared. Requests go through a bounded queue to a
//! worker thread that batches what is waiting (up to [`MAX_BATCH`] texts per forward pass), so
//! concurrent small requests share the matrix work; a full queue is refused at once
//! ([`EmbedError::Busy`]) rather than growing memory without bound.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::{mpsc, oneshot};

/// Texts per forward pass, at most.
pub const MAX_BATCH: usize = 32;
/// Requests waiting for the worker, at most; beyond it a request is refused.
pub const QUEUE: usize = 256;
/// Tokens per text the model reads (all-MiniLM-L6-v2's `max_seq_length`); longer texts are cut.
pub const MAX_TOKENS: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("loading the model: {0}")]
    Load(String),
    #[error("embedding: {0}")]
    Run(String),
    #[error("the local embedding queue is full ({QUEUE} requests waiting); retry shortly")]
    Busy,
    #[error("the local embedding worker stopped")]
    Stopped,
}

/// Vectors and the tokens read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: u64,
}

/// A loaded model: tokenizer and encoder.
struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
}

impl Model {
    fn load(dir: &Path) -> Result<Self, EmbedError> {
        let load = |e: &dyn std::fmt::Display| EmbedError::Load(format!("{}: {e}", dir.display()));
        let config: Config =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).map_err(|e| load(&e))?)
                .map_err(|e| load(&e))?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load(&e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load(&e))?;
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| load(&e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load(&e))?;
        let bert = BertModel::load(vb, &config).map_err(|e| load(&e))?;
        let dims = config.hidden_size;
        Ok(Self {
            bert,
            tokenizer,
            device,
            dims,
        })
    }

    /// One forward pass over `texts`: the vectors and each text's tokens.
    fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, Vec<u64>), EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| run(&e))?;
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * len);
        let mut mask = Vec::with_capacity(texts.len() * len);
        let mut tokens = Vec::with_capacity(texts.len());
        for e in &encodings {
            ids.extend(e.get_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().copied());
            tokens.push(
                e.get_attention_mask()
                    .iter()
                    .map(|m| u64::from(*m))
                    .sum::<u64>(),
            );
        }
        let shape = (texts.len(), len);
        let ids = Tensor::from_vec(ids, shape, &self.device).map_err(|e| run(&e))?;
        let mask = Tensor::from_vec(mask, shape, &self.device).map_err(|e| run(&e))?;
        let types = ids.zeros_like().map_err(|e| run(&e))?;
        let hidden = self
            .bert
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| run(&e))?;
        // Mean over the real tokens (the mask), then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(|e| run(&e))?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .map_err(|e| run(&e))?;
        let counts = mask.sum(1).map_err(|e| run(&e))?;
        let mean = summed.broadcast_div(&counts).map_err(|e| run(&e))?;
        let norms = mean
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .map_err(|e| run(&e))?;
        let unit = mean.broadcast_div(&norms).map_err(|e| run(&e))?;
        let vectors: Vec<Vec<f32>> = unit.to_vec2().map_err(|e| run(&e))?;
        debug_assert!(vectors.iter().all(|v| v.len() == self.dims));
        Ok((vectors, tokens))
    }
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embedded, EmbedError>>,
}

/// A loaded model behind its batching queue.
#[derive(Clone)]
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
    dims: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dims", &self.dims)
            .finish()
    }
}

impl Embedder {
    /// Loads the model in `dir` (blocking: a second or so) and starts its worker thread.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let model = Model::load(dir)?;
        let dims = model.dims;
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
        let name = format!(
            "embed-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("model")
        );
        std::thread::Builder::new()
            .name(name)
            .spawn(move || work(&model, rx))
            .map_err(|e| EmbedError::Load(format!("starting the worker: {e}")))?;
        Ok(Self { jobs, dims })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The unit vectors of `texts`, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { texts, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => EmbedError::Busy,
                mpsc::error::TrySendError::Closed(_) => EmbedError::Stopped,
            })?;
        answer.await.map_err(|_| EmbedError::Stopped)?
    }
}

/// The worker: takes what is waiting, up to a batch, runs it, answers each request.
fn work(model: &Model, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        let mut texts: usize = batch[0].texts.len();
        while texts < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    texts += job.texts.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<String> = batch.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        // Large requests run in slices of a batch, so memory stays bounded.
        let mut vectors = Vec::with_capacity(all.len());
        let mut per_text_tokens = Vec::with_capacity(all.len());
        let mut failure = None;
        for slice in all.chunks(MAX_BATCH) {
            match model.embed(slice) {
                Ok((v, tokens)) => {
                    per_text_tokens.extend(tokens);
                    vectors.extend(v);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut at = 0;
        for job in batch {
            let n = job.texts.len();
            let result = match &failure {
                Some(e) => Err(e.clone()),
                None => Ok(Embedded {
                    vectors: vectors[at..at + n].to_vec(),
                    tokens: per_text_tokens[at..at + n].iter().sum(),
                }),
            };
            at += n;
            let _ = job.reply.send(result);
        }
    }
}

/// Loads embedders once per model and shares them.
#[derive(Debug, Default)]
pub struct Embedders {
    loaded: std::sync::Mutex<std::collections::HashMap<String, Embedder>>,
}

impl Embedders {
    /// The embedder of the model in `dir`, loading it on first use.
    pub async fn get(self: &Arc<Self>, name: &str, dir: &Path) -> Result<Embedder, EmbedError> {
        if let Some(e) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(e.clone());
        }
        let dir = dir.to_owned();
        let started = std::time::Instant::now();
        let embedder = tokio::task::spawn_blocking(move || Embedder::load(&dir))
            .await
            .map_err(|e| EmbedError::Load(e.to_string()))??;
        tracing::info!(
            model = name,
            ms = started.elapsed().as_millis() as u64,
            "local model loaded"
        );
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        Ok(loaded.entry(name.to_owned()).or_insert(embedder).clone())
    }
}
