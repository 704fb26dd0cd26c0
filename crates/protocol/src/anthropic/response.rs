//! A canonical answer → a Messages answer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::wire::{MessagesResponse, OutBlock, Usage};
use crate::chat::{ChatResponse, Content, FinishReason, Part, Usage as CanonicalUsage};

/// Anthropic's `stop_reason` for a canonical finish reason.
pub fn finish_to_stop_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::Other(_) => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls | FinishReason::FunctionCall => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic counts cached input apart from `input_tokens`; OpenAI counts it inside.
pub fn usage_to_anthropic(u: &CanonicalUsage) -> Usage {
    let details = u.prompt_tokens_details.as_ref();
    let cached = details.and_then(|d| d.cached_tokens).unwrap_or(0);
    let written = details
        .and_then(|d| d.extra.get("cache_creation_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Usage {
        input_tokens: u.prompt_tokens.saturating_sub(cached + written),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: Some(written),
        cache_read_input_tokens: Some(cached),
    }
}

const SIGNATURE_MARK: &str = "__ts_";

/// Messages `tool_use` blocks have no place for provider data a call must carry back (Gemini's
/// `thought_signature`), but clients always return the id: the signature rides in it,
/// URL-safe base64 after `__ts_`, so the id still matches `^[a-zA-Z0-9_-]+$`.
pub(crate) fn call_id_with_extra(id: &str, extra: &Map<String, Value>) -> String {
    match extra
        .get("extra_content")
        .and_then(|e| e["google"]["thought_signature"].as_str())
    {
        Some(sig) if !id.contains(SIGNATURE_MARK) => {
            format!(
                "{id}{SIGNATURE_MARK}{}",
                URL_SAFE_NO_PAD.encode(sig.as_bytes())
            )
        }
        _ => id.to_owned(),
    }
}

/// The provider data carried in a `tool_use` id (see [`call_id_with_extra`]).
pub(crate) fn extra_from_call_id(id: &str) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some((_, encoded)) = id.split_once(SIGNATURE_MARK)
        && let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded)
        && let Ok(sig) = String::from_utf8(bytes)
    {
        extra.insert(
            "extra_content".into(),
            serde_json::json!({"google": {"thought_signature": sig}}),
        );
    }
    extra
}

/// Tool arguments as a JSON object; text that is not one is kept under `_raw` rather than lost.
pub(crate) fn arguments_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "_raw": arguments }),
    }
}

pub fn to_anthropic(resp: ChatResponse) -> MessagesResponse {
    let mut content = Vec::new();
    let mut stop_reason = None;
    if let Some(choice) = resp.choices.into_iter().next() {
        let msg = choice.message;
        // Reasoning from a Gemini or OpenAI-compatible reasoning upstream (`reasoning_content`)
        // is a thinking block too, as it is in a stream; an Anthropic upstream's thinking comes
        // as blocks of its own, below.
        let thinking_blocks = matches!(&msg.content, Some(Content::Parts(parts))
            if parts.iter().any(|p| matches!(p, Part::Other(v) if v["type"] == "thinking")));
        if !thinking_blocks
            && let Some(thinking) = msg
                .extra
                .get(super::upstream::REASONING)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        {
            // An answer assembled from an Anthropic stream keeps the block's signature beside.
            let signature = msg
                .extra
                .get(super::upstream::REASONING_SIGNATURE)
                .and_then(Value::as_str)
                .unwrap_or_default();
            content.push(OutBlock::Thinking {
                thinking: thinking.to_owned(),
                signature: signature.to_owned(),
            });
        }
        match msg.content {
            Some(Content::Text(t)) if !t.is_empty() => content.push(OutBlock::Text { text: t }),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    match p {
                        Part::Text { text } => content.push(OutBlock::Text { text }),
                        // Thinking from an Anthropic upstream goes back with its signature, so
                        // the caller can return it on the next turn.
                        Part::Other(v) => match v["type"].as_str() {
                            Some("thinking") => content.push(OutBlock::Thinking {
                                thinking: v["thinking"].as_str().unwrap_or_default().to_owned(),
                                signature: v["signature"].as_str().unwrap_or_default().to_owned(),
                            }),
                            Some("redacted_thinking") => content.push(OutBlock::RedactedThinking {
                                data: v["data"].as_str().unwrap_or_default().to_owned(),
                            }),
                            _ => {}
                        },
                        Part::ImageUrl { .. } => {}
                    }
                }
            }
            _ => {}
        }
        for call in msg.tool_calls.unwrap_or_default() {
            content.push(OutBlock::ToolUse {
                input: arguments_to_input(&call.function.arguments),
                id: call_id_with_extra(&call.id, &call.extra),
                name: call.function.name,
            });
        }
        stop_reason = Some(
            choice
                .finish_reason
                .as_ref()
                .map_or("end_turn", finish_to_stop_reason),
        );
    }
    MessagesResponse {
        id: resp.id,
        kind: "message",
        role: "assistant",
        model: resp.model,
        content,
        stop_reason,
        stop_sequence: None,
        usage: resp
            .usage
            .as_ref()
            .map(usage_to_anthropic)
            .unwrap_or_default(),
    }
}
