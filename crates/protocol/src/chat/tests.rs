//! Wire-type tests on fixtures taken from OpenAI's documented examples.

use serde_json::Value;

use super::*;
use crate::sse::SseDecoder;

const REQUEST: &str = include_str!("../../tests/fixtures/openai/chat_request_tools.json");
const RESPONSE: &str = include_str!("../../tests/fixtures/openai/chat_response_tool_calls.json");
const STREAM: &str = include_str!("../../tests/fixtures/openai/chat_stream.sse");

/// Removes `null`s, which a re-encoding may omit without changing the meaning for OpenAI.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[test]
fn request_fields_are_typed_and_unknown_ones_kept() {
    let req: ChatRequest = serde_json::from_str(REQUEST).unwrap();
    assert_eq!(req.messages.len(), 4);
    assert_eq!(req.messages[0].role, Role::Developer);
    let Some(Content::Parts(parts)) = &req.messages[1].content else {
        panic!("parts")
    };
    assert!(matches!(&parts[0], Part::Text { text } if text.starts_with("What's the weather")));
    assert!(
        matches!(&parts[1], Part::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low"))
    );
    assert!(matches!(&parts[2], Part::Other(v) if v["type"] == "input_audio"));
    assert_eq!(
        req.messages[2].tool_calls.as_ref().unwrap()[0]
            .function
            .name,
        "get_current_weather"
    );
    assert_eq!(req.messages[3].tool_call_id.as_deref(), Some("call_abc123"));
    assert_eq!(
        req.tool_choice,
        Some(ToolChoice::Function("get_current_weather".into()))
    );
    assert!(matches!(
        req.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
    assert_eq!(req.stop.as_ref().unwrap().sequences(), ["\n\n", "END"]);
    assert!(req.is_stream() && req.wants_stream_usage());
    for key in [
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "metadata",
        "prediction",
    ] {
        assert!(req.extra.contains_key(key), "{key} kept in extra");
    }
}

#[test]
fn request_round_trips_exactly() {
    let req: ChatRequest = serde_json::from_str(REQUEST).unwrap();
    let back = serde_json::to_value(&req).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(REQUEST).unwrap());
}

#[test]
fn response_round_trips_modulo_nulls() {
    let resp: ChatResponse = serde_json::from_str(RESPONSE).unwrap();
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let usage = resp.usage.clone().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (82, 17, 99)
    );
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(0));
    assert_eq!(resp.extra["service_tier"], "default");
    let back = serde_json::to_value(&resp).unwrap();
    assert_eq!(
        strip_nulls(back),
        strip_nulls(serde_json::from_str::<Value>(RESPONSE).unwrap())
    );
}

#[test]
fn stream_fixture_decodes_into_chunks() {
    let mut d = SseDecoder::new();
    let events = d.feed(STREAM.as_bytes()).unwrap();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<ChatChunk> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(chunks.len(), 6);
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
    let call = &chunks[2].choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id.as_deref(), Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"));
    assert_eq!(
        chunks[4].choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    let usage = chunks[5].usage.as_ref().unwrap();
    assert_eq!(usage.total_tokens, 21);
    assert_eq!(
        usage.prompt_tokens_details.as_ref().unwrap().cached_tokens,
        Some(4)
    );
    for (chunk, event) in chunks.iter().zip(&events) {
        let back = serde_json::to_value(chunk).unwrap();
        assert_eq!(
            strip_nulls(back),
            strip_nulls(serde_json::from_str(&event.data).unwrap())
        );
    }
}

#[test]
fn bad_parts_and_tool_choice_are_rejected_with_reasons() {
    let err = crate::decode_json::<ChatRequest>(
        br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
    )
    .unwrap_err();
    assert!(err.message.contains("text"), "{}", err.message);
    assert!(err.path.starts_with("messages[0].content"), "{}", err.path);
    let err = crate::decode_json::<ChatRequest>(
        br#"{"model":"m","messages":[],"tool_choice":"sometimes"}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "tool_choice");
    let err = crate::decode_json::<ChatRequest>(
        br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
    )
    .unwrap_err();
    assert!(
        err.message.contains("string or an array"),
        "{}",
        err.message
    );
}

#[test]
fn image_url_as_bare_string_is_accepted() {
    let m: Message = serde_json::from_str(
        r#"{"role":"user","content":[{"type":"image_url","image_url":"data:image/png;base64,AAAA"}]}"#,
    )
    .unwrap();
    let Some(Content::Parts(parts)) = m.content else {
        panic!()
    };
    assert!(
        matches!(&parts[0], Part::ImageUrl { image_url } if image_url.url.starts_with("data:"))
    );
}

#[test]
fn chunks_keep_unknown_fields_at_every_level_and_refuse_malformed_ones() {
    let text = r#"{"id":"c1","model":"m","service_tier":"default","x_top":{"a":[1,2]},
        "choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"hm",
        "tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{}"},"extra_content":{"sig":"s"}}]},
        "finish_reason":null,"logprobs":null,"x_choice":true}],"usage":null,"obfuscation":"\u0041b"}"#;
    let c: ChatChunk = serde_json::from_str(text).unwrap();
    assert_eq!(
        (c.id.as_str(), c.object.as_str(), c.created),
        ("c1", "chat.completion.chunk", 0)
    );
    assert_eq!(
        c.extra.keys().collect::<Vec<_>>(),
        ["obfuscation", "service_tier", "x_top"]
    );
    assert_eq!(c.extra["obfuscation"], "Ab");
    assert!(c.usage.is_none());
    let choice = &c.choices[0];
    assert_eq!(choice.extra["x_choice"], true);
    assert_eq!(choice.delta.content, None);
    assert_eq!(choice.delta.extra["reasoning_content"], "hm");
    let call = &choice.delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.kind.as_deref(), Some("function"));
    assert_eq!(call.extra["extra_content"]["sig"], "s");
    // What was read is what is written back, unknown fields included.
    let again: Value = serde_json::to_value(&c).unwrap();
    assert_eq!(again["x_top"]["a"][1], 2);
    assert_eq!(again["choices"][0]["delta"]["reasoning_content"], "hm");
    assert_eq!(serde_json::from_value::<ChatChunk>(again).unwrap(), c);

    for (bad, says) in [
        (r#"{"model":"m"}"#, "missing field `id`"),
        (r#"{"id":"a","id":"b","model":"m"}"#, "duplicate field `id`"),
        (
            r#"{"id":"a","model":"m","choices":[{"delta":{}}]}"#,
            "missing field `index`",
        ),
        (
            r#"{"id":"a","model":"m","choices":null}"#,
            "invalid type: null",
        ),
        (r#"[1]"#, "invalid type: sequence"),
    ] {
        let err = serde_json::from_str::<ChatChunk>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
