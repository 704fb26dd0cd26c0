use serde_json::json;

use super::*;
use crate::chat::{ChatChunk, Delta};

fn req(v: Value) -> ResponsesRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
    let c = to_canonical(
        &req(json!({"model": "m", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 50, "temperature": 0.2})),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(c.messages.len(), 2);
    assert_eq!(c.messages[0].role, Role::System);
    assert_eq!(c.messages[1].text(), "hi");
    assert_eq!(c.max_completion_tokens, Some(50));
    assert_eq!(c.temperature, Some(0.2));
}

#[test]
fn items_become_messages_calls_and_tool_results() {
    let c = to_canonical(
        &req(json!({"model": "m", "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is in this image, and the weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
            ]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "rain"}
        ], "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
           "tool_choice": {"type": "function", "name": "weather"}})),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(c.messages.len(), 4);
    let Some(Content::Parts(parts)) = &c.messages[0].content else {
        panic!("parts expected");
    };
    assert!(
        matches!(&parts[1], Part::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low"))
    );
    let calls = c.messages[1].tool_calls.as_ref().unwrap();
    assert_eq!(
        calls.len(),
        2,
        "calls of one turn share an assistant message"
    );
    assert_eq!(calls[1].function.arguments, "{\"city\":\"Rome\"}");
    assert_eq!(c.messages[2].role, Role::Tool);
    assert_eq!(c.messages[3].tool_call_id.as_deref(), Some("call_2"));
    assert_eq!(
        c.tools.as_ref().unwrap()[0].function.as_ref().unwrap().name,
        "weather"
    );
    assert_eq!(c.tool_choice, Some(ToolChoice::Function("weather".into())));
}

#[test]
fn history_goes_between_instructions_and_the_new_input() {
    let history = vec![
        Message::new(Role::User, "first"),
        Message::new(Role::Assistant, "answer"),
    ];
    let c = to_canonical(
        &req(json!({"model": "m", "instructions": "sys", "input": "second"})),
        history,
    )
    .unwrap();
    let texts: Vec<String> = c.messages.iter().map(Message::text).collect();
    assert_eq!(texts, ["sys", "first", "answer", "second"]);
}

#[test]
fn text_format_and_reasoning_translate() {
    let c = to_canonical(
        &req(json!({"model": "m", "input": "x",
            "text": {"format": {"type": "json_schema", "name": "person", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"}, "metadata": {"team": "a"}})),
        Vec::new(),
    )
    .unwrap();
    let Some(ResponseFormat::JsonSchema { json_schema }) = &c.response_format else {
        panic!("json schema expected");
    };
    assert_eq!(
        (json_schema.name.as_str(), json_schema.strict),
        ("person", Some(true))
    );
    assert_eq!(c.extra["reasoning_effort"], "low");
    assert_eq!(c.extra["metadata"]["team"], "a");
}

#[test]
fn what_cannot_be_carried_is_refused_with_its_place() {
    for (body, param) in [
        (
            json!({"model": "m", "input": "x", "tools": [{"name": "f"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
            "input[0].arguments",
        ),
        (json!({"model": "m", "input": []}), "input"),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
    ] {
        let e = to_canonical(&req(body.clone()), Vec::new()).unwrap_err();
        assert_eq!(e.param, param, "{body}: {}", e.message);
    }
    // Built-in tools are carried for a Responses upstream, beside the function tools.
    let c = to_canonical(
        &req(json!({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}, {"type": "function", "name": "f"}]})),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(builtin_tools(&c), ["web_search_preview"]);
    assert_eq!(c.tools.as_ref().unwrap().len(), 1);
}

fn echo() -> Echo {
    Echo::of(
        &req(json!({"model": "m", "input": "x"})),
        "resp_abc".into(),
        1_700_000_000,
    )
}

#[test]
fn a_whole_answer_becomes_output_items_and_round_trips_as_history() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "c", "model": "m-2025", "created": 1,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
    .unwrap();
    let r = from_canonical(&echo(), &resp);
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "m-2025");
    assert_eq!(r["output"][0]["content"][0]["text"], "Let me check.");
    assert_eq!(r["output"][1]["type"], "function_call");
    assert_eq!(r["output"][1]["call_id"], "call_9");
    assert_eq!(r["usage"]["total_tokens"], 15);
    let back = output_messages(&r);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].text(), "Let me check.");
    assert_eq!(back[0].tool_calls.as_ref().unwrap()[0].id, "call_9");
}

#[test]
fn a_cut_short_answer_is_incomplete() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "abc"}}]
    }))
    .unwrap();
    let r = from_canonical(&echo(), &resp);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
}

fn text_chunk(t: &str) -> ChatChunk {
    ChatChunk::new(
        "c",
        "m",
        1,
        Delta {
            content: Some(t.into()),
            ..Delta::default()
        },
        None,
    )
}

fn call_chunk(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ChatChunk {
    ChatChunk::tool_call_piece(index, id, name, args)
}

#[test]
fn a_stream_becomes_typed_events_in_order_with_sequence_numbers() {
    let mut t = StreamTranslator::new(echo());
    let mut events = Vec::new();
    events.extend(t.push(text_chunk("Hel")));
    events.extend(t.push(text_chunk("lo")));
    events.extend(t.push(call_chunk(0, Some("call_1"), Some("weather"), "{\"ci")));
    events.extend(t.push(call_chunk(0, None, None, "ty\":1}")));
    events.extend(t.push(call_chunk(1, Some("call_2"), Some("time"), "{}")));
    let mut end = ChatChunk::new("c", "m", 1, Delta::default(), Some(FinishReason::ToolCalls));
    end.usage = Some(Usage::new(7, 3));
    events.extend(t.push(end));
    let (tail, response) = t.finish();
    events.extend(tail);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (kind, body)) in events.iter().enumerate() {
        assert_eq!(body["sequence_number"], i as u64, "{kind}");
        assert_eq!(body["type"], kind.as_str());
    }
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(response["output"][1]["arguments"], "{\"city\":1}");
    assert_eq!(response["output"][2]["name"], "time");
    assert_eq!(response["usage"]["input_tokens"], 7);
    assert_eq!(events.last().unwrap().1["response"], response);
}
