//! The chunks of a streamed answer (`chat.completion.chunk`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::Role;
use super::response::{FinishReason, Usage};
use super::wire::WireJson;

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

impl ChatChunk {
    /// A test chunk carrying one piece of tool call `index`: its id and name when given (the
    /// first piece), and a piece of its arguments.
    #[cfg(test)]
    pub(crate) fn tool_call_piece(
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) -> Self {
        Self::new(
            "c",
            "m",
            1,
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: id.map(str::to_owned),
                    kind: id.map(|_| "function".to_owned()),
                    function: Some(ToolCallFunctionDelta {
                        name: name.map(str::to_owned),
                        arguments: Some(args.to_owned()),
                    }),
                    extra: Map::new(),
                }]),
                ..Delta::default()
            },
            None,
        )
    }

    /// Drops the upstream's JSON: the chunk no longer matches it.
    pub fn changed(&mut self) {
        self.wire = WireJson::default();
    }

    /// A chunk known only by the upstream's JSON for it: every other field is empty (and
    /// costs nothing to make or to drop). For a stream whose readers read `wire` and nothing
    /// else; whoever asks an adapter for such chunks (`ChunkDetail::Wire` in the providers
    /// crate) answers for that. The adapter decodes in full the chunks a reader may still
    /// need: usage, and anything `wire` cannot carry.
    pub fn wire_only(wire: WireJson) -> Self {
        Self {
            id: String::new(),
            object: String::new(),
            created: 0,
            model: String::new(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
            extra: Map::new(),
            wire,
        }
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
