//! The OpenAI adapter against the mock provider over real loopback HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchyard_mock::Stats;
use switchyard_protocol::chat::{ChatRequest, FinishReason};
use switchyard_protocol::embeddings::{EmbeddingRequest, Vector};

use super::OpenAiProvider;
use crate::{AuthStyle, ErrorClass, ProviderError, ProviderSettings, Secret, http_client};

async fn provider_with(timeout: Duration) -> (OpenAiProvider, Arc<Stats>) {
    let (addr, stats) = switchyard_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    (provider_at(&format!("http://{addr}/v1"), timeout), stats)
}

fn provider_at(base_url: &str, timeout: Duration) -> OpenAiProvider {
    let settings = ProviderSettings {
        name: "up".into(),
        base_url: base_url.into(),
        api_key: Some(Secret::new("sk-upstream-test")),
        auth: AuthStyle::Bearer,
        headers: vec![("x-extra".into(), "1".into())],
        request_timeout: timeout,
        stream_usage: true,
    };
    OpenAiProvider::new(settings, http_client(Duration::from_secs(2)).unwrap()).unwrap()
}

async fn provider() -> (OpenAiProvider, Arc<Stats>) {
    provider_with(Duration::from_secs(10)).await
}

fn chat(model: &str, extra: serde_json::Value) -> ChatRequest {
    let mut v =
        json!({"model": model, "messages": [{"role": "user", "content": "hello there world"}]});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn tools() -> serde_json::Value {
    json!({"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]})
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
async fn tool_calls_plain_and_streamed() {
    let (p, _) = provider().await;
    let resp = p.chat(chat("echo", tools())).await.unwrap();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.function.name, "lookup");
    assert_eq!(call.function.arguments, r#"{"q":"mock"}"#);
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));

    let mut s = p.chat_stream(chat("echo", tools())).await.unwrap();
    let mut args = String::new();
    let mut name = None;
    while let Some(chunk) = s.next().await {
        for c in chunk.unwrap().choices {
            for d in c.delta.tool_calls.unwrap_or_default() {
                if let Some(f) = d.function {
                    name = name.or(f.name);
                    args.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
        }
    }
    assert_eq!(
        (name.as_deref(), args.as_str()),
        (Some("lookup"), r#"{"q":"mock"}"#)
    );
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

#[tokio::test]
async fn upstream_failures_are_classified() {
    let (p, _) = provider().await;
    let err = p.chat(chat("fail-503", json!({}))).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.class(), ErrorClass::UpstreamServer);

    let err = p.chat(chat("ratelimit-2s", json!({}))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    let err = p.chat(chat("fail-404", json!({}))).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        matches!(&err, ProviderError::Status(s) if s.status == 404 && s.message.contains("scripted"))
    );

    let err = p.chat(chat("malformed", json!({}))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Decode);

    // A stream's failure before the first byte is an error of the call, not of the stream.
    let err = p
        .chat_stream(chat("fail-502", json!({})))
        .await
        .err()
        .unwrap();
    assert!(matches!(&err, ProviderError::Status(s) if s.status == 502));
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error() {
    let (p, _) = provider().await;
    let mut s = p
        .chat_stream(chat("stream-20+truncate-4", json!({})))
        .await
        .unwrap();
    let mut ok = 0;
    let mut last_err = None;
    while let Some(item) = s.next().await {
        match item {
            Ok(_) => ok += 1,
            Err(e) => last_err = Some(e),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(last_err.unwrap().class(), ErrorClass::Interrupted);

    let mut s = p.chat_stream(chat("malformed", json!({}))).await.unwrap();
    let first = s.next().await.unwrap();
    assert_eq!(first.unwrap_err().class(), ErrorClass::Decode);
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn timeouts_and_refused_connections() {
    let (p, _) = provider_with(Duration::from_millis(150)).await;
    let err = p.chat(chat("slow-2s", json!({}))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Timeout);

    // A port nothing listens on: bind one, then drop the listener.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let p = provider_at(&format!("http://{addr}/v1"), Duration::from_secs(2));
    let err = p.chat(chat("echo", json!({}))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Connect);
    assert!(!err.to_string().contains("sk-upstream-test"));
}

#[tokio::test]
async fn dropping_a_stream_cancels_the_upstream() {
    let (p, stats) = provider().await;
    let mut s = p
        .chat_stream(chat("stream-1000+itl-5ms", json!({})))
        .await
        .unwrap();
    for _ in 0..3 {
        s.next().await.unwrap().unwrap();
    }
    drop(s);
    for _ in 0..100 {
        if stats.snapshot().streams_cancelled == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = stats.snapshot();
    assert_eq!((snap.streams_cancelled, snap.streams_completed), (1, 0));
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
    super::request::to_wire(&mut req);
    let wire = serde_json::to_value(&req).unwrap();
    assert_eq!(wire["messages"][0]["content"], "Calling.");
    assert_eq!(
        wire["messages"][1],
        json!({"role": "tool", "tool_call_id": "c1", "content": "Error: boom"})
    );
    // Other messages keep their shape.
    assert_eq!(wire["messages"][2]["content"].as_array().unwrap().len(), 2);
}
