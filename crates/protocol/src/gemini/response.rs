//! Gemini answers, event streams and embeddings → canonical.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::chat::{
    ChatChunk, ChatResponse, Choice, CompletionTokensDetails, Content, Delta, FinishReason,
    Message, PromptTokensDetails, Role, ToolCall, ToolCallDelta, ToolCallFunction,
    ToolCallFunctionDelta, Usage,
};
use crate::embeddings::{Embedding, EmbeddingResponse, Vector};

/// Gemini's `finishReason` → canonical. Gemini says `STOP` after function calls too. Every
/// reason becomes one OpenAI documents (`stop`, `length`, `tool_calls`, `content_filter`): some
/// official SDKs throw on any other (openai-dotnet does), so Gemini's others (`OTHER`,
/// `MALFORMED_FUNCTION_CALL`, a reason added later) are `stop`.
pub fn finish_to_canonical(reason: &str, had_calls: bool) -> FinishReason {
    match reason {
        "STOP" if had_calls => FinishReason::ToolCalls,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn usage(u: &Value) -> Usage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    let mut usage = Usage::new(n("promptTokenCount"), n("candidatesTokenCount") + thoughts);
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(n("cachedContentTokenCount")),
        ..Default::default()
    });
    usage.completion_tokens_details = Some(CompletionTokensDetails {
        reasoning_tokens: Some(thoughts),
        ..Default::default()
    });
    usage
}

fn signature_extra(part: &Value) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some(sig) = part.get("thoughtSignature") {
        extra.insert(
            "extra_content".into(),
            json!({"google": {"thought_signature": sig}}),
        );
    }
    extra
}

fn call_id(response_id: &str, n: usize, part: &Value) -> String {
    match part["functionCall"]["id"].as_str() {
        Some(id) => id.to_owned(),
        None => format!("call_{response_id}_{n}"),
    }
}

/// A `generateContent` answer → canonical. `model` names the model when the answer does not.
pub fn response_to_canonical(v: &Value, model: &str, created: i64) -> Result<ChatResponse, String> {
    let id = v["responseId"].as_str().unwrap_or("gemini").to_owned();
    let mut choices = Vec::new();
    let candidates = v["candidates"].as_array().cloned().unwrap_or_default();
    if candidates.is_empty() {
        let Some(reason) = v["promptFeedback"]["blockReason"].as_str() else {
            return Err("no `candidates` and no `promptFeedback.blockReason`".into());
        };
        let mut m = Message::new(Role::Assistant, "");
        m.content = None;
        let mut c = Choice {
            index: 0,
            message: m,
            finish_reason: Some(FinishReason::ContentFilter),
            logprobs: None,
            extra: Map::new(),
        };
        c.extra.insert("block_reason".into(), reason.into());
        choices.push(c);
    }
    for (i, cand) in candidates.iter().enumerate() {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if let Some(t) = part["text"].as_str() {
                if part["thought"].as_bool() == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            } else if let Some(f) = part.get("functionCall") {
                calls.push(ToolCall {
                    id: call_id(&id, calls.len(), part),
                    kind: "function".into(),
                    function: ToolCallFunction {
                        name: f["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: f
                            .get("args")
                            .map_or_else(|| "{}".to_owned(), Value::to_string),
                    },
                    extra: signature_extra(part),
                });
            }
        }
        let mut m = Message::new(Role::Assistant, text);
        if !calls.is_empty() {
            if matches!(&m.content, Some(Content::Text(t)) if t.is_empty()) {
                m.content = None;
            }
            m.tool_calls = Some(calls);
        }
        if !reasoning.is_empty() {
            m.extra.insert("reasoning_content".into(), reasoning.into());
        }
        let finish = cand["finishReason"]
            .as_str()
            .map(|r| finish_to_canonical(r, m.tool_calls.is_some()));
        let index = cand["index"].as_u64().map_or(i as u32, |x| x as u32);
        choices.push(Choice {
            index,
            message: m,
            finish_reason: finish,
            logprobs: None,
            extra: Map::new(),
        });
    }
    Ok(ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model: v["modelVersion"].as_str().unwrap_or(model).to_owned(),
        choices,
        usage: v.get("usageMetadata").map(usage),
        system_fingerprint: None,
        extra: Map::new(),
        wire: Default::default(),
    })
}

/// Decodes `streamGenerateContent?alt=sse` events (each a partial answer) into chunks. The
/// stream has no end marker: it is complete once a candidate carried a `finishReason`.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    id: String,
    model: String,
    created: i64,
    started: bool,
    calls: usize,
    usage: Option<Usage>,
    finished: bool,
}

impl StreamDecoder {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_owned(),
            created,
            ..Self::default()
        }
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created, delta, finish)
    }

    pub fn event(&mut self, data: &str) -> Result<Vec<ChatChunk>, String> {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("event is not JSON: {e}"))?;
        if let Some(message) = v["error"]["message"].as_str() {
            return Err(format!("upstream error event: {message}"));
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            self.id = v["responseId"].as_str().unwrap_or("gemini").to_owned();
            if let Some(m) = v["modelVersion"].as_str() {
                self.model = m.to_owned();
            }
            let delta = Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            };
            out.push(self.chunk(delta, None));
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage(u));
        }
        let Some(cand) = v["candidates"].as_array().and_then(|c| c.first()) else {
            if let Some(reason) = v["promptFeedback"]["blockReason"].as_str() {
                self.finished = true;
                let mut c = self.chunk(Delta::default(), Some(FinishReason::ContentFilter));
                c.choices[0]
                    .extra
                    .insert("block_reason".into(), reason.into());
                out.push(c);
            }
            return Ok(out);
        };
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if let Some(t) = part["text"].as_str() {
                let mut delta = Delta::default();
                if part["thought"].as_bool() == Some(true) {
                    delta.extra.insert("reasoning_content".into(), t.into());
                } else {
                    delta.content = Some(t.to_owned());
                }
                out.push(self.chunk(delta, None));
            } else if let Some(f) = part.get("functionCall") {
                let call = ToolCallDelta {
                    extra: signature_extra(part),
                    index: self.calls as u32,
                    id: Some(call_id(&self.id, self.calls, part)),
                    kind: Some("function".into()),
                    function: Some(ToolCallFunctionDelta {
                        name: f["name"].as_str().map(str::to_owned),
                        arguments: Some(
                            f.get("args")
                                .map_or_else(|| "{}".to_owned(), Value::to_string),
                        ),
                    }),
                };
                self.calls += 1;
                out.push(self.chunk(
                    Delta {
                        tool_calls: Some(vec![call]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        }
        if let Some(reason) = cand["finishReason"].as_str() {
            self.finished = true;
            out.push(self.chunk(
                Delta::default(),
                Some(finish_to_canonical(reason, self.calls > 0)),
            ));
        }
        Ok(out)
    }

    /// The closing usage chunk, once the stream has ended.
    pub fn finish(&mut self) -> Option<ChatChunk> {
        let usage = self.usage.take()?;
        let mut last = self.chunk(Delta::default(), None);
        last.choices.clear();
        last.usage = Some(usage);
        Some(last)
    }
}

/// A `batchEmbedContents` answer → canonical, as floats or base64 of little-endian `f32`s.
pub fn embed_response(v: &Value, model: &str, base64: bool) -> Result<EmbeddingResponse, String> {
    let embeddings = v["embeddings"].as_array().ok_or("no `embeddings` array")?;
    let data = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let values: Vec<f64> = e["values"]
                .as_array()
                .ok_or("an embedding without `values`")?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = values
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Float(values)
            };
            Ok(Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding,
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok(EmbeddingResponse {
        object: "list".into(),
        data,
        model: model.to_owned(),
        usage: None,
        extra: Map::new(),
    })
}
