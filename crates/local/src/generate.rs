//! Text generation on the CPU with a small Llama-architecture model (safetensors): the chat
//! template of the model's `tokenizer_config.json` renders the conversation, then tokens are
//! sampled one at a time (temperature, top-p, seed) until the end-of-sequence token, a stop
//! sequence, the output limit or the context length; the text comes out as it is generated.
//!
//! One generation runs at a time per model (the CPU is the limit); a few more may wait, and
//! beyond that a request is refused ([`GenerateError::Busy`]) rather than queued without bound.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::llama::{Cache, Llama, LlamaConfig, LlamaEosToks};
use serde::Serialize;
use tokenizers::Tokenizer;
use tokio::sync::{Semaphore, mpsc};

/// Generations waiting for the model, at most, beyond the one running.
pub const WAITING: usize = 4;
/// The output limit when the caller gives none.
pub const DEFAULT_MAX_TOKENS: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerateError {
    #[error("loading the model: {0}")]
    Load(String),
    #[error("the prompt: {0}")]
    Prompt(String),
    #[error("generating: {0}")]
    Run(String),
    #[error("the local model is busy ({WAITING} generations waiting); retry shortly")]
    Busy,
}

/// One message of the conversation, as chat templates expect it.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateMessage {
    pub role: String,
    pub content: String,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Generation {
    pub messages: Vec<TemplateMessage>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
}

/// What comes out, in order: text pieces, then the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// `length` when a limit cut it short, else `stop`; token counts.
    Done {
        finish: &'static str,
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Failed(String),
}

struct Model {
    llama: Llama,
    config: candle_transformers::models::llama::Config,
    tokenizer: Tokenizer,
    template: Option<String>,
    bos: String,
    eos: String,
    eos_ids: Vec<u32>,
    device: Device,
}

/// A loaded generative model.
#[derive(Clone)]
pub struct Generator {
    model: Arc<Mutex<Model>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Generator")
    }
}

/// Whether the model in `dir` generates text (a `…ForCausalLM` architecture).
pub fn is_generative(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|c| {
            c["architectures"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a.as_str().is_some_and(|a| a.ends_with("ForCausalLM")))
        })
}

fn token_text(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .map(str::to_owned)
        .or_else(|| v["content"].as_str().map(str::to_owned))
}

/// How many bytes at the end of `text` to hold back because they begin one of the `stops`
/// (whole characters only: a stop sequence may be any text).
fn stop_prefix_held(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .map(|s| {
            (1..s.len())
                .rev()
                .find(|n| s.is_char_boundary(*n) && text.ends_with(&s[..*n]))
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

impl Generator {
    /// Loads the model in `dir` (blocking).
    pub fn load(dir: &Path) -> Result<Self, GenerateError> {
        let load =
            |e: &dyn std::fmt::Display| GenerateError::Load(format!("{}: {e}", dir.display()));
        let raw: LlamaConfig =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).map_err(|e| load(&e))?)
                .map_err(|e| load(&e))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load(&e))?;
        let extra: serde_json::Value = std::fs::read(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let template = extra["chat_template"].as_str().map(str::to_owned);
        let bos = token_text(&extra["bos_token"]).unwrap_or_default();
        let eos = token_text(&extra["eos_token"]).unwrap_or_default();
        let mut eos_ids: Vec<u32> = match &raw.eos_token_id {
            Some(LlamaEosToks::Single(id)) => vec![*id],
            Some(LlamaEosToks::Multiple(ids)) => ids.clone(),
            None => Vec::new(),
        };
        if let Some(id) = tokenizer.token_to_id(&eos) {
            eos_ids.push(id);
        }
        let config = raw.into_config(false);
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| load(&e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load(&e))?;
        let llama = Llama::load(vb, &config).map_err(|e| load(&e))?;
        Ok(Self {
            model: Arc::new(Mutex::new(Model {
                llama,
                config,
                tokenizer,
                template,
                bos,
                eos,
                eos_ids,
                device,
            })),
            permits: Arc::new(Semaphore::new(WAITING + 1)),
        })
    }

    /// Starts a generation; the pieces arrive on the returned channel as they are made. (The
    /// channel is unbounded so that a slow reader never holds the model for the others: it
    /// holds at most the answer's tokens, a bounded number.)
    pub fn start(&self, g: Generation) -> Result<mpsc::UnboundedReceiver<Piece>, GenerateError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| GenerateError::Busy)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let model = self.model.clone();
        std::thread::Builder::new()
            .name("generate".to_owned())
            .spawn(move || {
                let _permit = permit;
                let model = model.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = model.generate(&g, &tx) {
                    let _ = tx.send(Piece::Failed(e.to_string()));
                }
            })
            .map_err(|e| GenerateError::Run(format!("starting the generation: {e}")))?;
        Ok(rx)
    }
}

impl Model {
    /// The conversation as the model was trained to read it.
    fn prompt(&self, messages: &[TemplateMessage]) -> Result<String, GenerateError> {
        let Some(template) = &self.template else {
            // No template: a plain transcript, ending where the assistant speaks.
            let mut text = self.bos.clone();
            for m in messages {
                text.push_str(&format!("{}: {}\n", m.role, m.content));
            }
            text.push_str("assistant:");
            return Ok(text);
        };
        let mut env = minijinja::Environment::new();
        env.add_template("chat", template)
            .map_err(|e| GenerateError::Prompt(format!("the chat template: {e}")))?;
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos,
                    eos_token => self.eos,
                })
            })
            .map_err(|e| GenerateError::Prompt(format!("rendering the chat template: {e}")))
    }

    fn generate(
        &self,
        g: &Generation,
        tx: &mpsc::UnboundedSender<Piece>,
    ) -> Result<(), GenerateError> {
        let run = |e: &dyn std::fmt::Display| GenerateError::Run(e.to_string());
        let prompt = self.prompt(&g.messages)?;
        let encoded = self
            .tokenizer
            .encode(prompt.as_str(), false)
            .map_err(|e| GenerateError::Prompt(e.to_string()))?;
        let mut tokens: Vec<u32> = encoded.get_ids().to_vec();
        let prompt_tokens = tokens.len();
        let context = self.config.max_position_embeddings;
        if prompt_tokens == 0 || prompt_tokens >= context {
            return Err(GenerateError::Prompt(format!(
                "{prompt_tokens} tokens; the model reads 1 to {} before answering",
                context.saturating_sub(1)
            )));
        }
        let limit = g
            .max_tokens
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(context - prompt_tokens);
        let temperature = g.temperature.filter(|t| *t > 0.0);
        let mut sampler = LogitsProcessor::new(g.seed.unwrap_or(299_792_458), temperature, g.top_p);
        let mut cache =
            Cache::new(true, DType::F32, &self.config, &self.device).map_err(|e| run(&e))?;
        let mut sent = String::new();
        let mut finish = "length";
        let mut index = 0;
        for step in 0..limit {
            let input: &[u32] = if step == 0 {
                &tokens
            } else {
                &tokens[tokens.len() - 1..]
            };
            let x = Tensor::new(input, &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(|e| run(&e))?;
            let logits = self
                .llama
                .forward(&x, index, &mut cache)
                .and_then(|l| l.squeeze(0))
                .map_err(|e| run(&e))?;
            index += input.len();
            let next = sampler.sample(&logits).map_err(|e| run(&e))?;
            if self.eos_ids.contains(&next) {
                finish = "stop";
                break;
            }
            tokens.push(next);
            let text = self
                .tokenizer
                .decode(&tokens[prompt_tokens..], true)
                .map_err(|e| run(&e))?;
            // A stop sequence ends the answer before it.
            if let Some(at) = g.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                if at > sent.len() && text.is_char_boundary(at) {
                    let _ = tx.send(Piece::Text(text[sent.len()..at].to_owned()));
                }
                finish = "stop";
                break;
            }
            // Hold back a piece that may still become a stop sequence, and an incomplete
            // character.
            let ready = text.len() - stop_prefix_held(&text, &g.stop);
            if ready > sent.len()
                && text.is_char_boundary(ready)
                && !text[..ready].ends_with('\u{fffd}')
            {
                if tx
                    .send(Piece::Text(text[sent.len()..ready].to_owned()))
                    .is_err()
                {
                    // The caller went away: stop generating.
                    return Ok(());
                }
                sent = text[..ready].to_owned();
            }
        }
        if finish == "length" {
            let text = self
                .tokenizer
                .decode(&tokens[prompt_tokens..], true)
                .map_err(|e| run(&e))?;
            if text.len() > sent.len() && text.starts_with(&sent) {
                let _ = tx.send(Piece::Text(text[sent.len()..].to_owned()));
            }
        }
        let _ = tx.send(Piece::Done {
            finish,
            prompt_tokens: prompt_tokens as u64,
            completion_tokens: (tokens.len() - prompt_tokens) as u64,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::stop_prefix_held;

    #[test]
    fn a_stop_sequence_beginning_is_held_back_on_character_boundaries() {
        let stops = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(stop_prefix_held("Hello wor", &stops(&["world!"])), 3);
        assert_eq!(stop_prefix_held("Hello", &stops(&["xyz"])), 0);
        // Multi-byte stop sequences: only whole characters are compared, never half of one.
        assert_eq!(stop_prefix_held("Bonjour é", &stops(&["é"])), 0);
        assert_eq!(stop_prefix_held("答え。", &stops(&["。終"])), "。".len());
        assert_eq!(stop_prefix_held("abc", &stops(&["é", "。", "🙂x"])), 0);
        assert_eq!(stop_prefix_held("x🙂", &stops(&["🙂x", "c"])), "🙂".len());
    }
}
