//! Translation tests over fixtures shaped like Anthropic's documented examples.

use serde_json::{Value, json};

use super::wire::{MessagesRequest, StreamEvent};
use super::*;
use crate::chat::{ChatChunk, ChatResponse, Content, Part, Role, Stop, ToolChoice};
use crate::decode_json;

const REQUEST: &str = include_str!("../../tests/fixtures/anthropic/messages_request.json");

fn request(v: Value) -> MessagesRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn documented_request_translates_every_field() {
    let req: MessagesRequest = decode_json(REQUEST.as_bytes()).unwrap();
    let c = to_canonical(req).unwrap();
    let roles: Vec<Role> = c.messages.iter().map(|m| m.role).collect();
    // system, user, assistant, two tool results, then the user's remaining text.
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::User
        ]
    );
    assert_eq!(c.messages[0].text(), "You are a weather bot.");
    let Some(Content::Parts(system)) = &c.messages[0].content else {
        panic!()
    };
    assert!(
        matches!(&system[0], Part::Other(v) if v["cache_control"] == json!({"type": "ephemeral"})),
        "cache hint kept"
    );

    let Some(Content::Parts(parts)) = &c.messages[1].content else {
        panic!()
    };
    assert!(
        matches!(&parts[1], Part::ImageUrl { image_url } if image_url.url == "data:image/jpeg;base64,/9j/4AAQSkZJRg==")
    );
    assert!(
        matches!(&parts[2], Part::ImageUrl { image_url } if image_url.url.starts_with("https://upload"))
    );

    let assistant = &c.messages[2];
    let calls = assistant.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2, "parallel tool calls survive");
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"location": "Paris"})
    );
    let Some(Content::Parts(parts)) = &assistant.content else {
        panic!()
    };
    assert!(
        matches!(&parts[0], Part::Other(v) if v["signature"] == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds")
    );
    assert!(matches!(&parts[1], Part::Text { text } if text == "Let me check."));

    assert_eq!(
        c.messages[3].tool_call_id.as_deref(),
        Some("toolu_01A09q90qw90lq917835lq9")
    );
    assert_eq!(c.messages[3].text(), "15 degrees");
    assert!(!c.messages[3].is_error);
    assert!(c.messages[4].is_error);
    assert_eq!(c.messages[4].text(), "clock unavailable");
    assert_eq!(c.messages[5].text(), "Thanks!");

    let tools = c.tools.as_ref().unwrap();
    assert_eq!(
        tools[0].extra["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        tools[0]
            .function
            .as_ref()
            .unwrap()
            .parameters
            .as_ref()
            .unwrap()["required"],
        json!(["location"])
    );
    assert_eq!(c.tool_choice, Some(ToolChoice::Required));
    assert_eq!(c.parallel_tool_calls, Some(false));
    assert_eq!(c.stop, Some(Stop::Many(vec!["\n\nHuman:".into()])));
    assert_eq!(
        (c.temperature, c.top_p, c.max_tokens),
        (Some(0.5), Some(0.9), Some(1024))
    );
    assert_eq!(c.extra["top_k"], 40);
    assert_eq!(c.extra["reasoning_effort"], "medium");
    assert_eq!(c.user.as_deref(), Some("user-123"));
    assert!(c.is_stream());
}

#[test]
fn tool_choice_forms() {
    for (choice, want) in [
        (json!({"type": "auto"}), ToolChoice::Auto),
        (json!({"type": "any"}), ToolChoice::Required),
        (json!({"type": "none"}), ToolChoice::None),
        (
            json!({"type": "tool", "name": "f"}),
            ToolChoice::Function("f".into()),
        ),
    ] {
        let req = request(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": choice}),
        );
        assert_eq!(to_canonical(req).unwrap().tool_choice, Some(want));
    }
}

#[test]
fn what_cannot_be_translated_is_refused_by_name() {
    // A top-level field with no canonical place goes on to Anthropic upstreams only.
    let req = request(json!({"model": "m", "max_tokens": 5, "messages": [], "container": "c1"}));
    let c = to_canonical(req).unwrap();
    assert_eq!(upstream::anthropic_only_field(&c), Some("container"));
    let body = upstream::request_from_canonical("anthropic", &c, "m", false).unwrap();
    assert_eq!(body["container"], "c1");
    let err = crate::gemini::request_from_canonical("gemini", &c).unwrap_err();
    assert_eq!(err.param, "container");
    let req = request(json!({"model": "m", "max_tokens": 5, "messages": [],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
    let err = to_canonical(req).unwrap_err();
    assert_eq!(err.param, "tools[0].type");
    assert!(err.message.contains("web_search_20250305"));
    let err = decode_json::<MessagesRequest>(
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}"#,
    )
    .unwrap_err();
    assert!(err.message.contains("document"), "{}", err.message);
    assert!(err.path.starts_with("messages[0].content"), "{}", err.path);
    let err = decode_json::<MessagesRequest>(br#"{"model":"m","messages":[]}"#).unwrap_err();
    assert!(err.message.contains("max_tokens"), "{}", err.message);
}

#[test]
fn answer_with_text_tool_calls_and_cached_usage() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 60}}
    }))
    .unwrap();
    let out = serde_json::to_value(to_anthropic(resp)).unwrap();
    assert_eq!(out["type"], "message");
    assert_eq!(out["role"], "assistant");
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(
        out["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(
        out["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}})
    );
    assert_eq!(out["content"][2]["input"], json!({"_raw": "{not json"}));
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 40, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60})
    );
}

#[test]
fn finish_reasons_map_both_ways_where_defined() {
    use crate::chat::FinishReason as F;
    assert_eq!(finish_to_stop_reason(&F::Stop), "end_turn");
    assert_eq!(finish_to_stop_reason(&F::Length), "max_tokens");
    assert_eq!(finish_to_stop_reason(&F::ToolCalls), "tool_use");
    assert_eq!(finish_to_stop_reason(&F::ContentFilter), "refusal");
}

fn chunk(v: Value) -> ChatChunk {
    let mut base = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"});
    base.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

#[test]
fn stream_events_are_ordered_with_block_indices() {
    let mut t = StreamTranslator::new("openai/gpt-4o-mini");
    let mut events = Vec::new();
    for c in [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "Let me "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "check."}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"loc"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ation\":\"Paris\"}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}}),
    ] {
        events.extend(t.push(chunk(c)));
    }
    events.extend(t.finish("chatcmpl-9"));
    let names: Vec<&str> = events.iter().map(StreamEvent::name).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let v: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(v[0]["message"]["model"], "gpt-4o-mini");
    assert_eq!(v[1]["index"], 0);
    assert_eq!(
        v[5]["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
    );
    assert_eq!(v[5]["index"], 1);
    let args: String = v[6..8]
        .iter()
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    assert_eq!(v[9]["index"], 2);
    assert_eq!(v[12]["delta"]["stop_reason"], "tool_use");
    assert_eq!(v[12]["usage"]["output_tokens"], 7);
    assert_eq!(v[12]["usage"]["input_tokens"], 10);
}

#[test]
fn a_host_that_repeats_the_call_id_on_every_piece_makes_one_tool_use_block() {
    let mut t = StreamTranslator::new("m");
    let mut events = Vec::new();
    for (name, args) in [(Some("get_weather"), "{\"city\":"), (None, "\"Oslo\"}")] {
        events.extend(t.push(ChatChunk::tool_call_piece(0, Some("call_1"), name, args)));
    }
    events.extend(t.finish("id-1"));
    let v: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let starts: Vec<&Value> = v
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .collect();
    assert_eq!(starts.len(), 1, "{v:?}");
    let args: String = v
        .iter()
        .filter_map(|e| e["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Oslo\"}");

    // Hosts that number parallel calls all 0, each with its own id: two blocks.
    let mut t = StreamTranslator::new("m");
    let mut events = Vec::new();
    for (id, name, args) in [("call_1", "a", "{}"), ("call_2", "b", "{}")] {
        events.extend(t.push(ChatChunk::tool_call_piece(0, Some(id), Some(name), args)));
    }
    let starts = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|e| e["type"] == "content_block_start")
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn an_empty_stream_still_closes_properly() {
    let mut t = StreamTranslator::new("m");
    let names: Vec<&str> = t.finish("id-1").iter().map(StreamEvent::name).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_messages_decoder(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        if let Ok(req) = decode_json::<MessagesRequest>(&bytes) {
            let _ = to_canonical(req);
        }
    }
}

#[test]
fn gemini_thought_signatures_ride_in_tool_use_ids_across_the_messages_surface() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "r", "model": "gemini-2.5-flash", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [{"id": "call_r_0", "type": "function",
                "function": {"name": "f", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "CiQB+/0e2Kb="}}}]}}]
    }))
    .unwrap();
    let out = serde_json::to_value(to_anthropic(resp)).unwrap();
    let id = out["content"][0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("call_r_0__ts_"));
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "{id}"
    );
    // The client sends the block back; the canonical call has its signature again.
    let req = request(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "ok"}]}]}));
    let c = to_canonical(req).unwrap();
    let call = &c.messages[0].tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.extra["extra_content"]["google"]["thought_signature"],
        "CiQB+/0e2Kb="
    );
    assert_eq!(
        c.messages[1].tool_call_id.as_deref(),
        Some(call.id.as_str())
    );
}

#[test]
fn reasoning_from_other_upstreams_is_a_thinking_block_in_a_whole_answer_too() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "r", "model": "deepseek-reasoner", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "42", "reasoning_content": "6 times 7"}}]
    }))
    .unwrap();
    let out = serde_json::to_value(to_anthropic(resp)).unwrap();
    assert_eq!(out["content"][0]["type"], "thinking");
    assert_eq!(out["content"][0]["thinking"], "6 times 7");
    assert_eq!(out["content"][1], json!({"type": "text", "text": "42"}));
}
