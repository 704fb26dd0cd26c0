//! The chunks of a streamed answer (`chat.completion.chunk`).

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::Role;
use super::response::{FinishReason, Usage};

use crate::extra::with_extra;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Present only on the final chunk, when `stream_options.include_usage` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream's own JSON for this chunk, while nothing has changed it.
    #[serde(skip)]
    pub wire: WireJson,
}

with_extra!(ChatChunk {
    id: "id" => required,
    object: "object" => or(chunk_object),
    created: "created" => default,
    model: "model" => required,
    choices: "choices" => default,
    usage: "usage" => default,
    system_fingerprint: "system_fingerprint" => default,
} default(wire));

/// The JSON a chunk was decoded from, kept by the decoder of OpenAI's stream so that an
/// OpenAI-shaped caller is sent the upstream's bytes as they came instead of a re-encoding
/// (which cost as much as the decoding). It is a copy of the chunk's fields, not one of them:
/// whoever changes a chunk calls [`ChatChunk::changed`], it is never serialized, and it compares
/// equal to any other.
#[derive(Clone, Default)]
pub struct WireJson(Option<Bytes>);

impl WireJson {
    /// Keeps `json` unless it holds a line break, which would split its `data:` line.
    pub fn new(json: Bytes) -> Self {
        Self((memchr::memchr2(b'\n', b'\r', &json).is_none()).then_some(json))
    }

    /// The upstream's JSON, if the chunk still matches it.
    pub fn get(&self) -> Option<&Bytes> {
        self.0.as_ref()
    }
}

impl PartialEq for WireJson {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for WireJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(b) => write!(f, "WireJson({} bytes)", b.len()),
            None => f.write_str("WireJson(none)"),
        }
    }
}

impl ChatChunk {
    /// Drops the upstream's JSON: the chunk no longer matches it.
    pub fn changed(&mut self) {
        self.wire = WireJson::default();
    }

    /// A chunk with one choice (index 0) carrying `delta` and, at the end, a finish reason.
    pub fn new(
        id: &str,
        model: &str,
        created: i64,
        delta: Delta,
        finish: Option<FinishReason>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            object: chunk_object(),
            created,
            model: model.to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
                extra: Map::new(),
            }],
            usage: None,
            system_fingerprint: None,
            extra: Map::new(),
            wire: WireJson::default(),
        }
    }
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(ChunkChoice {
    index: "index" => required,
    delta: "delta" => default,
    finish_reason: "finish_reason" => default,
    logprobs: "logprobs" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(Delta {
    role: "role" => default,
    content: "content" => default,
    tool_calls: "tool_calls" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<ToolCallFunctionDelta>,
    /// Provider data that must come back with the call (see `ToolCall::extra`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(ToolCallDelta {
    index: "index" => required,
    id: "id" => default,
    kind: "type" => default,
    function: "function" => default,
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ToolCallFunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}
