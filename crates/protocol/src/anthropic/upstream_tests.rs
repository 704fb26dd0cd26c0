//! The upstream direction: canonical → Messages requests, Messages answers and events → canonical.

use serde_json::{Value, json};

use super::upstream::*;
use crate::chat::{ChatRequest, Content, FinishReason, Part};

fn canonical(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn openai_shaped_history_becomes_a_messages_request() {
    let req = canonical(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "thinking", "thinking": "weather tool", "signature": "sig-9"}],
             "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "timeout", "is_error": true},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 0.3,
        "top_k": 20,
        "user": "u-1"
    }));
    let body = request_from_canonical("anthropic", &req, "claude-sonnet-4-5", true).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(
        body["max_tokens"], 16384,
        "documented default when the caller gives none"
    );
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric units."}])
    );
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "user, assistant, user (tool results merged with the next user text)"
    );
    assert_eq!(
        msgs[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        msgs[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://example.com/a.png"})
    );
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "thinking", "thinking": "weather tool", "signature": "sig-9"}),
        "thinking leads, signature intact"
    );
    assert_eq!(
        msgs[1]["content"][2],
        json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}})
    );
    assert_eq!(
        msgs[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "-3C"}]})
    );
    assert_eq!(msgs[2]["content"][1]["is_error"], true);
    assert_eq!(
        msgs[2]["content"][2],
        json!({"type": "text", "text": "thanks"})
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(
        (body["temperature"].as_f64(), body["top_k"].as_u64()),
        (Some(0.3), Some(20))
    );
    assert_eq!(body["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(body["stream"], true);
}

#[test]
fn fields_anthropic_cannot_honour_are_refused_by_name() {
    for (extra, param) in [
        (json!({"logprobs": true}), "logprobs"),
        (json!({"n": 2}), "n"),
        (json!({"seed": 7}), "seed"),
        (json!({"temperature": 1.5}), "temperature"),
        (
            json!({"response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "response_format",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "switchyard_json_output"}}]}),
            "tools",
        ),
    ] {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let err = request_from_canonical("anthropic", &canonical(v), "m", false).unwrap_err();
        assert_eq!(err.param, param);
        assert!(err.message.contains("anthropic"), "{}", err.message);
    }
}

#[test]
fn default_max_tokens_follow_the_model_family() {
    assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4096);
    assert_eq!(default_max_tokens("claude-3-5-haiku-latest"), 8192);
    assert_eq!(default_max_tokens("claude-opus-4-1"), 16384);
}

#[test]
fn documented_answer_becomes_canonical() {
    let v = json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAh"},
            {"type": "text", "text": "I'll check the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 472, "output_tokens": 91, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 100}
    });
    let r = response_to_canonical(&v).unwrap();
    assert_eq!(r.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    let c = &r.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    let Some(Content::Parts(parts)) = &c.message.content else {
        panic!()
    };
    assert!(matches!(&parts[0], Part::Other(b) if b["signature"] == "EqQBCgIYAh"));
    assert_eq!(
        c.message.tool_calls.as_ref().unwrap()[0].function.arguments,
        r#"{"location":"San Francisco, CA"}"#
    );
    let u = r.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (582, 91, 673)
    );
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(100));
    for (s, f) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("refusal", FinishReason::ContentFilter),
        ("pause_turn", FinishReason::Stop),
        ("something_new", FinishReason::Stop),
    ] {
        assert_eq!(stop_reason_to_finish(s), f);
    }
}

#[test]
fn documented_event_stream_decodes_into_chunks() {
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type": "ping"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"SF\"}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let mut d = EventDecoder::new(1);
    let mut chunks = Vec::new();
    let mut done = None;
    for e in events {
        match d.event(e).unwrap() {
            Decoded::Chunks(c) => chunks.extend(c),
            Decoded::Done(last) => done = Some(last),
            Decoded::Error(m) => panic!("{m}"),
        }
    }
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(text, "Okay");
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices[0].delta.tool_calls.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        calls[0].id.as_deref(),
        Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6")
    );
    assert!(calls.iter().all(|c| c.index == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "SF"})
    );
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    let usage = done.unwrap().usage.clone().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (25, 89));
    assert!(d.finished());
    assert_eq!(
        d.event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
            .unwrap(),
        Decoded::Error("Overloaded".into())
    );
}

#[test]
fn thinking_survives_an_anthropic_round_trip_streamed() {
    use super::StreamTranslator;
    let mut d = EventDecoder::new(1);
    let mut t = StreamTranslator::new("m");
    let mut events = Vec::new();
    for e in [
        r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCg=="}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#,
    ] {
        if let Decoded::Chunks(chunks) = d.event(e).unwrap() {
            for c in chunks {
                events.extend(t.push(c));
            }
        }
    }
    events.extend(t.finish("msg_1"));
    let v: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(v[1]["content_block"]["type"], "thinking");
    assert_eq!(
        v[2]["delta"],
        json!({"type": "thinking_delta", "thinking": "Let me think."})
    );
    assert_eq!(
        v[3]["delta"],
        json!({"type": "signature_delta", "signature": "EqQBCg=="})
    );
    assert_eq!(v[4]["type"], "content_block_stop");
    assert_eq!(v[5]["content_block"]["type"], "text");
    assert_eq!(v[5]["index"], 1);
}

#[test]
fn thinking_survives_an_anthropic_round_trip_plain() {
    let answer = json!({"id": "msg_1", "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
        "content": [{"type": "thinking", "thinking": "t", "signature": "sig"}, {"type": "text", "text": "Hi"}],
        "usage": {"input_tokens": 1, "output_tokens": 1}});
    let canonical = response_to_canonical(&answer).unwrap();
    let back = serde_json::to_value(super::to_anthropic(canonical.clone())).unwrap();
    assert_eq!(back["content"], answer["content"]);
    // And as history for the next turn, the block goes back to Anthropic unchanged.
    let req = ChatRequest {
        messages: vec![canonical.choices[0].message.clone()],
        ..canonical_request()
    };
    let body = request_from_canonical("anthropic", &req, "m", false).unwrap();
    assert_eq!(
        body["messages"][0]["content"][0],
        json!({"type": "thinking", "thinking": "t", "signature": "sig"})
    );
}

fn canonical_request() -> ChatRequest {
    canonical(json!({"model": "m", "messages": []}))
}

#[test]
fn cache_hints_reach_an_anthropic_upstream_from_either_surface() {
    // From the Messages surface (kept whole by the translation) and from OpenAI-style parts.
    let from_messages: crate::anthropic::MessagesRequest = serde_json::from_value(json!({
        "model": "m", "max_tokens": 10,
        "system": [{"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    }))
    .unwrap();
    let c = crate::anthropic::to_canonical(from_messages).unwrap();
    let body = request_from_canonical("anthropic", &c, "m", false).unwrap();
    assert_eq!(
        body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        body["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    let from_openai = canonical(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]}]}),
    );
    let body = request_from_canonical("anthropic", &from_openai, "m", false).unwrap();
    assert_eq!(
        body["messages"][0]["content"][0],
        json!({"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}})
    );
}

#[test]
fn json_output_rides_on_a_forced_tool_and_comes_back_as_text() {
    let req = canonical(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
    );
    let body = request_from_canonical("anthropic", &req, "m", false).unwrap();
    assert_eq!(body["tools"][0]["name"], JSON_TOOL);
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["a"]["type"],
        "integer"
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL})
    );

    let answer = json!({"id": "msg", "model": "m", "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1},
        "content": [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"a": 1}}]});
    let r = response_to_canonical(&answer).unwrap();
    assert_eq!(r.choices[0].message.text(), r#"{"a":1}"#);
    assert!(r.choices[0].message.tool_calls.is_none());
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));

    let mut d = EventDecoder::new(1);
    let mut text = String::new();
    let mut finish = None;
    for e in [
        r#"{"type":"message_start","message":{"id":"m","model":"m","usage":{"input_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"switchyard_json_output","input":{}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}"#,
    ] {
        if let Decoded::Chunks(chunks) = d.event(e).unwrap() {
            for c in chunks {
                assert!(c.choices[0].delta.tool_calls.is_none());
                text.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
                finish = finish.or(c.choices[0].finish_reason.clone());
            }
        }
    }
    assert_eq!(text, r#"{"a":1}"#);
    assert_eq!(finish, Some(FinishReason::Stop));
}

#[test]
fn redacted_thinking_survives_a_streamed_round_trip() {
    use super::StreamTranslator;
    let mut d = EventDecoder::new(1);
    let mut t = StreamTranslator::new("m");
    let mut events = Vec::new();
    for e in [
        r#"{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":5}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
    ] {
        if let Decoded::Chunks(chunks) = d.event(e).unwrap() {
            for c in chunks {
                events.extend(t.push(c));
            }
        }
    }
    events.extend(t.finish("msg_1"));
    let v: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(
        v[1]["content_block"],
        json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"})
    );
    assert_eq!(v[2], json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        (
            v[3]["index"].as_u64(),
            v[3]["content_block"]["type"].as_str()
        ),
        (Some(1), Some("text"))
    );
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_that_fits_max_tokens() {
    let body = |extra: Value| {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        request_from_canonical("anthropic", &canonical(v), "claude-opus-4-1", false)
    };
    // `none` is no thinking, not the largest budget.
    let b = body(json!({"reasoning_effort": "none"})).unwrap();
    assert!(b.get("thinking").is_none(), "{b}");
    // Without a max from the caller, the budget gets room beside the usual answer.
    let b = body(json!({"reasoning_effort": "high"})).unwrap();
    assert_eq!(
        b["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    let max = b["max_tokens"].as_u64().unwrap();
    assert!(max > 16384 && max <= 32_000, "{b}");
    let b = body(json!({"reasoning_effort": "xhigh"})).unwrap();
    assert_eq!(b["thinking"]["budget_tokens"], 24576);
    assert_eq!(b["max_tokens"], 32_000);
    // A caller's max that leaves no room is the caller's to fix, named.
    let err = body(json!({"reasoning_effort": "high", "max_tokens": 2000})).unwrap_err();
    assert_eq!(err.param, "max_tokens");
    // An effort with no budget is refused, not guessed.
    let err = body(json!({"reasoning_effort": "extreme"})).unwrap_err();
    assert_eq!(err.param, "reasoning_effort");
}

#[test]
fn an_anthropic_callers_thinking_reaches_an_anthropic_upstream_exactly() {
    for (thinking, output_config) in [
        (json!({"type": "enabled", "budget_tokens": 10000}), None),
        (json!({"type": "adaptive"}), Some(json!({"effort": "high"}))),
    ] {
        let mut req = json!({"model": "claude", "max_tokens": 16000, "thinking": thinking,
                             "messages": [{"role": "user", "content": "think"}]});
        if let Some(c) = &output_config {
            req["output_config"] = c.clone();
        }
        let messages: crate::anthropic::wire::MessagesRequest =
            serde_json::from_value(req).unwrap();
        let c = crate::anthropic::request::to_canonical(messages).unwrap();
        assert!(
            c.extra.contains_key("reasoning_effort"),
            "for other upstreams"
        );
        let b = request_from_canonical("anthropic", &c, "claude-opus-4-7", false).unwrap();
        assert_eq!(b["thinking"], thinking);
        assert_eq!(b["max_tokens"], 16000);
        assert_eq!(b.get("output_config"), output_config.as_ref());
    }
}

#[test]
fn input_counts_from_message_start_reach_a_messages_caller_and_are_never_lowered() {
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":25,"cache_read_input_tokens":10,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        // Some senders put 0 or null beside the output count here.
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"cache_read_input_tokens":null,"output_tokens":12}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let mut d = EventDecoder::new(1);
    let mut chunks = Vec::new();
    for e in events {
        match d.event(e).unwrap() {
            Decoded::Chunks(c) => chunks.extend(c),
            Decoded::Done(last) => chunks.push(*last),
            Decoded::Error(m) => panic!("{m}"),
        }
    }
    let usage = chunks.last().unwrap().usage.clone().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (35, 12));
    // Through the Messages surface: message_start says the input, message_delta the rest.
    let mut t = crate::anthropic::stream::StreamTranslator::new("claude");
    let mut out: Vec<_> = chunks.into_iter().flat_map(|c| t.push(c)).collect();
    out.extend(t.finish("msg_1"));
    let events: Vec<Value> = out
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events[0]["message"]["usage"]["input_tokens"], 25);
    assert_eq!(events[0]["message"]["usage"]["cache_read_input_tokens"], 10);
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["input_tokens"], 25);
    assert_eq!(delta["usage"]["output_tokens"], 12);
}

#[test]
fn fields_clients_send_at_their_defaults_are_left_out_not_refused() {
    let req = canonical(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "frequency_penalty": 0, "presence_penalty": 0.0, "logprobs": false,
        "logit_bias": {}, "top_logprobs": null}),
    );
    let body = request_from_canonical("anthropic", &req, "m", false).unwrap();
    for k in [
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "logit_bias",
    ] {
        assert!(body.get(k).is_none(), "{k} in {body}");
    }
    // A value that asks for something is still refused by name.
    let req = canonical(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "frequency_penalty": 0.5}),
    );
    let err = request_from_canonical("anthropic", &req, "m", false).unwrap_err();
    assert_eq!(err.param, "frequency_penalty");
}
