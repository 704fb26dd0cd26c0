//! A whole (non-streamed) answer.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::message::Message;
use super::wire::WireJson;

use crate::extra::with_extra;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream's own body for this answer, while nothing has changed it.
    #[serde(skip)]
    pub wire: WireJson,
}

with_extra!(ChatResponse {
    id: "id" => required,
    object: "object" => or(completion_object),
    created: "created" => default,
    model: "model" => required,
    choices: "choices" => required,
    usage: "usage" => default,
    system_fingerprint: "system_fingerprint" => default,
} default(wire));

impl ChatResponse {
    /// Drops the upstream's body: the answer no longer matches it.
    pub fn changed(&mut self) {
        self.wire = WireJson::default();
    }
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(Choice {
    index: "index" => required,
    message: "message" => required,
    finish_reason: "finish_reason" => default,
    logprobs: "logprobs" => default,
});

/// Why generation stopped. Values the gateway does not know are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    Other(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::FunctionCall => "function_call",
            Self::Other(s) => s,
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            "function_call" => Self::FunctionCall,
            _ => Self::Other(s),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(Usage {
    prompt_tokens: "prompt_tokens" => default,
    completion_tokens: "completion_tokens" => default,
    total_tokens: "total_tokens" => default,
    prompt_tokens_details: "prompt_tokens_details" => default,
    completion_tokens_details: "completion_tokens_details" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PromptTokensDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(PromptTokensDetails {
    cached_tokens: "cached_tokens" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CompletionTokensDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(CompletionTokensDetails {
    reasoning_tokens: "reasoning_tokens" => default,
});

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Self::default()
        }
    }

    /// The prompt tokens read from the provider's cache (counted within `prompt_tokens`).
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }
}
