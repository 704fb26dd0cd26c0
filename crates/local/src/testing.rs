//! A tiny generative model with random weights, for tests of the generation path (shapes,
//! streaming, stop conditions, token counting) without a real model: a two-layer
//! Llama-architecture network over a word-level vocabulary of 64 words, a chat template, and the
//! files a model folder holds. What it says is nonsense; that it says it correctly is the test.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::llama::{Llama, LlamaConfig};
use serde_json::json;

/// Words of the vocabulary besides `<unk>`, `<s>` and `</s>`.
pub const WORDS: usize = 61;

/// Writes the tiny model into `dir` (created if needed).
pub fn tiny_model(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut vocab = serde_json::Map::new();
    let special = ["<unk>", "<s>", "</s>"];
    for (i, t) in special.iter().enumerate() {
        vocab.insert((*t).to_owned(), json!(i));
    }
    // The template's words are in the vocabulary, so prompts tokenize without <unk>.
    let mut words: Vec<String> = ["system", "user", "assistant", "tool"]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    words.extend((words.len()..WORDS).map(|i| format!("w{i}")));
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.clone(), json!(i + special.len()));
    }
    let added: Vec<_> = special
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let vocab_size = special.len() + WORDS;
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 32, "intermediate_size": 64, "vocab_size": vocab_size,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128,
        "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": false
    });
    let template = json!({
        "chat_template": "{% for m in messages %}<s> {{ m.role }} {{ m.content }} </s> {% endfor %}{% if add_generation_prompt %}<s> assistant{% endif %}",
        "bos_token": "<s>", "eos_token": "</s>"
    });
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(dir.join(name), v.to_string()).map_err(|e| e.to_string())
    };
    write("tokenizer.json", &tokenizer)?;
    write("config.json", &config)?;
    write("tokenizer_config.json", &template)?;
    // Random weights, with the names the model loads. candle cannot seed its CPU generator, so
    // the values come from a seeded one of ours: the same model every time, so that what the
    // tests see of its output is reproducible (norm weights keep their initial ones).
    let raw: LlamaConfig = serde_json::from_value(config).map_err(|e| e.to_string())?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Llama::load(vb, &raw.into_config(false)).map_err(|e| e.to_string())?;
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.4
    };
    {
        let vars = varmap.data().lock().map_err(|e| e.to_string())?;
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names.into_iter().filter(|n| !n.contains("norm")) {
            let var = &vars[name];
            let values: Vec<f32> = (0..var.elem_count()).map(|_| next()).collect();
            let t = candle_core::Tensor::from_vec(values, var.shape(), &Device::Cpu)
                .map_err(|e| e.to_string())?;
            var.set(&t).map_err(|e| e.to_string())?;
        }
    }
    varmap
        .save(dir.join("model.safetensors"))
        .map_err(|e| e.to_string())
}

/// The installed all-MiniLM-L6-v2 folder the tests use (`SWITCHYARD_TEST_MODEL_DIR`; `.ci/run`
/// pulls it), or `None` after saying loudly that `test` skipped.
pub fn model_dir(test: &str) -> Option<PathBuf> {
    match std::env::var("SWITCHYARD_TEST_MODEL_DIR") {
        Ok(d) => Some(PathBuf::from(d)),
        Err(_) => {
            eprintln!(
                "\n*** SKIPPED {test}: SWITCHYARD_TEST_MODEL_DIR is not set.\n*** Run .ci/run, or `switchyard models pull all-minilm-l6-v2` and point it at <data dir>/models/all-minilm-l6-v2.\n"
            );
            None
        }
    }
}
