//! What is particular to the OpenAI-compatible adapter (the shared behaviour is in
//! `crate::conformance`): unknown fields pass through, usage is always asked of streams,
//! embeddings, and the wire form of canonical-only content.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchyard_protocol::chat::{ChatRequest, FinishReason};
use switchyard_protocol::embeddings::{EmbeddingRequest, Vector};

use crate::WireKind;
use crate::conformance::{chat, with_mock};

async fn provider() -> (crate::Provider, std::sync::Arc<switchyard_mock::Stats>) {
    with_mock(WireKind::OpenAi, Duration::from_secs(10)).await
}

#[tokio::test]
async fn chat_sends_key_and_unknown_fields_and_reads_the_answer() {
    let (p, stats) = provider().await;
    let resp = p
        .chat(chat(
            "echo",
            json!({"logprobs": true, "metadata": {"a": "b"}}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.choices[0].message.text(), "hello there world");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.usage.as_ref().unwrap().completion_tokens, 3);
    let last = stats.last().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer sk-upstream-test")
    );
    assert_eq!(last.body["logprobs"], true);
    assert_eq!(last.body["metadata"], json!({"a": "b"}));
    assert!(last.body.get("stream").is_none());
}

#[tokio::test]
async fn stream_yields_chunks_and_usage() {
    let (p, stats) = provider().await;
    let mut s = p.chat_stream(chat("stream-5", json!({}))).await.unwrap();
    let mut text = String::new();
    let mut usage = None;
    let mut finish = None;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        for c in &chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason.clone());
        }
        usage = usage.or(chunk.usage);
    }
    assert_eq!(text, "tok1 tok2 tok3 tok4 tok5");
    assert_eq!(finish, Some(FinishReason::Stop));
    assert_eq!(usage.unwrap().completion_tokens, 5);
    let last = stats.last().unwrap();
    assert_eq!(last.body["stream"], true);
    assert_eq!(last.body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let (p, _) = provider().await;
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "embed", "input": ["a", "b"], "dimensions": 4}))
            .unwrap();
    let resp = p.embed(req).await.unwrap();
    assert_eq!(resp.data.len(), 2);
    assert!(matches!(&resp.data[0].embedding, Vector::Float(v) if v.len() == 4));
    let req: EmbeddingRequest = serde_json::from_value(
        json!({"model": "embed", "input": "a", "encoding_format": "base64"}),
    )
    .unwrap();
    let resp = p.embed(req).await.unwrap();
    assert!(matches!(&resp.data[0].embedding, Vector::Base64(s) if !s.is_empty()));
}

#[test]
fn wire_form_drops_reasoning_history_and_flags_tool_errors_in_text() {
    let mut req: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Calling."}],
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "boom", "is_error": true},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]}))
    .unwrap();
    super::request::to_wire(&mut req, false);
    let wire = serde_json::to_value(&req).unwrap();
    assert_eq!(wire["messages"][0]["content"], "Calling.");
    assert_eq!(
        wire["messages"][1],
        json!({"role": "tool", "tool_call_id": "c1", "content": "Error: boom"})
    );
    // Other messages keep their shape.
    assert_eq!(wire["messages"][2]["content"].as_array().unwrap().len(), 2);
}

#[test]
fn wire_form_drops_anthropic_cache_hints_but_keeps_the_text() {
    let mut req: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}]}))
    .unwrap();
    super::request::to_wire(&mut req, false);
    let wire = serde_json::to_value(&req).unwrap();
    assert_eq!(
        wire["messages"][0]["content"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert!(wire["tools"][0].get("cache_control").is_none());
}

#[test]
fn openai_itself_gets_max_completion_tokens_and_private_keys_never_leave() {
    let req = || -> ChatRequest {
        serde_json::from_value(json!({"model": "o3", "max_tokens": 64,
            "x_switchyard_anthropic_thinking": {"type": "enabled", "budget_tokens": 2048},
            "reasoning_effort": "medium",
            "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap()
    };
    let mut openai = req();
    super::request::to_wire(&mut openai, true);
    let wire = serde_json::to_value(&openai).unwrap();
    assert_eq!(wire["max_completion_tokens"], 64);
    assert!(wire.get("max_tokens").is_none(), "{wire}");
    assert!(
        wire.get("x_switchyard_anthropic_thinking").is_none(),
        "{wire}"
    );
    assert_eq!(wire["reasoning_effort"], "medium");
    // Other OpenAI-compatible hosts keep the field many of them only know.
    let mut other = req();
    super::request::to_wire(&mut other, false);
    let wire = serde_json::to_value(&other).unwrap();
    assert_eq!(wire["max_tokens"], 64);
    assert!(
        wire.get("x_switchyard_anthropic_thinking").is_none(),
        "{wire}"
    );
}
