//! Embeddings: `POST /v1/embeddings`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::extra::with_extra;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(EmbeddingRequest {
    model: "model" => required,
    input: "input" => required,
    encoding_format: "encoding_format" => default,
    dimensions: "dimensions" => default,
    user: "user" => default,
});

/// What to embed: one string, many strings, or pre-tokenized input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The number of vectors this input asks for.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(_) | Self::Tokens(_) => 1,
            Self::Texts(v) => v.len(),
            Self::TokenBatches(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// About how many tokens the input holds: four bytes of text a token, or the token ids
    /// themselves. For estimates only (rate limits, and usage a provider does not report).
    pub fn estimated_tokens(&self) -> u64 {
        match self {
            Self::Text(t) => (t.len() as u64).div_ceil(4),
            Self::Texts(v) => (v.iter().map(String::len).sum::<usize>() as u64).div_ceil(4),
            Self::Tokens(t) => t.len() as u64,
            Self::TokenBatches(v) => v.iter().map(|t| t.len() as u64).sum(),
        }
    }

    /// The texts, for providers that need text; token input gives `None`.
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            Self::Text(t) => Some(vec![t.as_str()]),
            Self::Texts(v) => Some(v.iter().map(String::as_str).collect()),
            Self::Tokens(_) | Self::TokenBatches(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    Float,
    Base64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingResponse {
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(EmbeddingResponse {
    object: "object" => required,
    data: "data" => required,
    model: "model" => required,
    usage: "usage" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub object: String,
    pub index: u32,
    pub embedding: Vector,
}

/// A vector as floats, or as base64 of little-endian `f32`s (`encoding_format: "base64"`).
/// Floats are kept as `f64` so that an upstream's digits round-trip exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f64>),
    Base64(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_request_and_response_round_trip() {
        let req: EmbeddingRequest = serde_json::from_str(
            r#"{"input":"The food was delicious and the waiter...","model":"text-embedding-ada-002","encoding_format":"float"}"#,
        )
        .unwrap();
        assert_eq!(
            req.input.texts().unwrap(),
            ["The food was delicious and the waiter..."]
        );
        let body = r#"{"object":"list","data":[{"object":"embedding","embedding":[0.0023064255,-0.009327292,-0.0028842222],"index":0}],"model":"text-embedding-ada-002","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let resp: EmbeddingResponse = serde_json::from_str(body).unwrap();
        let back: Value = serde_json::to_value(&resp).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn input_shapes() {
        let batch: EmbeddingInput = serde_json::from_str(r#"[[1,2],[3]]"#).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(batch.texts().is_none());
        let texts: EmbeddingInput = serde_json::from_str(r#"["a","b","c"]"#).unwrap();
        assert_eq!(texts.len(), 3);
    }

    #[test]
    fn token_estimates_count_text_bytes_or_token_ids() {
        let of = |v: serde_json::Value| serde_json::from_value::<EmbeddingInput>(v).unwrap();
        assert_eq!(of(serde_json::json!("12345678")).estimated_tokens(), 2);
        assert_eq!(of(serde_json::json!(["1234", "1"])).estimated_tokens(), 2);
        assert_eq!(of(serde_json::json!([1, 2, 3])).estimated_tokens(), 3);
        assert_eq!(of(serde_json::json!([[1, 2], [3]])).estimated_tokens(), 3);
    }
}
