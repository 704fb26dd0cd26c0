//! Gemini translation tests over fixtures shaped like Google's documented examples.

use serde_json::{Value, json};

use super::*;
use crate::chat::{ChatRequest, FinishReason};
use crate::embeddings::{EmbeddingRequest, Vector};

fn canonical(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn openai_shaped_history_becomes_generate_content() {
    let req = canonical(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? And this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                 "extra_content": {"google": {"thought_signature": "CiQB0e2Kb"}}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18}"},
            {"role": "tool", "tool_call_id": "call_1", "content": "not json", "is_error": true}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.2, "top_p": 0.8, "max_tokens": 256, "stop": ["END"], "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
    }));
    let body = request_from_canonical("gemini", &req).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are a weather bot."}]})
    );
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3);
    assert_eq!(
        contents[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
    );
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb"})
    );
    assert_eq!(
        contents[2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"temp": 18}}})
    );
    assert_eq!(
        contents[2]["parts"][1],
        json!({"functionResponse": {"name": "get_weather", "response": {"error": {"result": "not json"}}}})
    );
    let g = &body["generationConfig"];
    assert_eq!(
        (
            g["temperature"].as_f64(),
            g["topP"].as_f64(),
            g["maxOutputTokens"].as_u64()
        ),
        (Some(0.2), Some(0.8), Some(256))
    );
    assert_eq!(
        (g["stopSequences"].clone(), g["seed"].as_i64()),
        (json!(["END"]), Some(3))
    );
    assert_eq!(
        (
            g["responseMimeType"].as_str(),
            g["responseJsonSchema"].clone()
        ),
        (Some("application/json"), json!({"type": "object"}))
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
}

#[test]
fn what_gemini_cannot_honour_is_refused_by_name() {
    let req = canonical(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true}),
    );
    assert_eq!(
        request_from_canonical("gemini", &req).unwrap_err().param,
        "logprobs"
    );
    let req = canonical(
        json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
    );
    let err = request_from_canonical("gemini", &req).unwrap_err();
    assert!(
        err.param.ends_with("tool_call_id") && err.message.contains("function name"),
        "{err:?}"
    );
}

#[test]
fn documented_answer_with_function_call_and_signature() {
    let v = json!({
        "candidates": [{"content": {"parts": [
            {"text": "thinking about it", "thought": true},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb"}
        ], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 70, "candidatesTokenCount": 20, "totalTokenCount": 140, "thoughtsTokenCount": 50, "cachedContentTokenCount": 30},
        "modelVersion": "gemini-2.5-flash", "responseId": "abc123"
    });
    let r = response_to_canonical(&v, "gemini-2.5-flash", 1).unwrap();
    let c = &r.choices[0];
    assert_eq!(
        c.finish_reason,
        Some(FinishReason::ToolCalls),
        "STOP after a call is tool_calls"
    );
    assert_eq!(c.message.content, None);
    assert_eq!(c.message.extra["reasoning_content"], "thinking about it");
    let call = &c.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id, "call_abc123_0");
    assert_eq!(
        call.extra["extra_content"]["google"]["thought_signature"],
        "CiQB0e2Kb"
    );
    let u = r.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (70, 70));
    assert_eq!(
        u.completion_tokens_details.unwrap().reasoning_tokens,
        Some(50)
    );
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(30));
    // The signature goes back with the call on the next turn.
    let next = canonical(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    let mut next = next;
    next.messages.push(c.message.clone());
    let body = request_from_canonical("gemini", &next).unwrap();
    assert_eq!(
        body["contents"][1]["parts"][0]["thoughtSignature"],
        "CiQB0e2Kb"
    );
    for (s, f) in [
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("STOP", FinishReason::Stop),
        // Reasons OpenAI does not document reach OpenAI-shaped callers as one it does.
        ("MALFORMED_FUNCTION_CALL", FinishReason::Stop),
        ("SOMETHING_NEW", FinishReason::Stop),
    ] {
        assert_eq!(finish_to_canonical(s, false), f);
    }
}

#[test]
fn a_blocked_prompt_is_a_content_filter_finish() {
    let r = response_to_canonical(
        &json!({"promptFeedback": {"blockReason": "SAFETY"}}),
        "m",
        1,
    )
    .unwrap();
    assert_eq!(
        r.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
}

#[test]
fn documented_stream_decodes_into_chunks() {
    let mut d = StreamDecoder::new("gemini-2.5-flash", 1);
    let mut chunks = Vec::new();
    for e in [
        r#"{"candidates": [{"content": {"parts": [{"text": "The weather"}], "role": "model"}, "index": 0}], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": " is fine."}], "role": "model"}, "index": 0}], "responseId": "r1"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}, {"functionCall": {"name": "b", "args": {}}}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 12, "totalTokenCount": 21}, "responseId": "r1"}"#,
    ] {
        chunks.extend(d.event(e).unwrap());
    }
    assert!(d.finished());
    chunks.extend(d.finish());
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "The weather is fine.");
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|c| {
            c.choices
                .first()
                .and_then(|c| c.delta.tool_calls.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        (calls[0].index, calls[1].index),
        (0, 1),
        "parallel calls keep their order and indices"
    );
    assert_eq!(
        calls[0].function.as_ref().unwrap().arguments.as_deref(),
        Some(r#"{"x":1}"#)
    );
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first()?.finish_reason.clone());
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    assert_eq!(
        chunks
            .last()
            .unwrap()
            .usage
            .as_ref()
            .unwrap()
            .completion_tokens,
        12
    );
    assert!(
        d.event(r#"{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}"#)
            .unwrap_err()
            .contains("overloaded")
    );
}

#[test]
fn embeddings_both_ways() {
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "m", "input": ["a", "b"], "dimensions": 3}))
            .unwrap();
    let body = embed_request("gemini", &req, "text-embedding-004").unwrap();
    assert_eq!(
        body["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3})
    );
    let v = json!({"embeddings": [{"values": [0.5, -0.25, 1.0]}, {"values": [0.0, 0.0, 1.0]}]});
    let r = embed_response(&v, "text-embedding-004", false).unwrap();
    assert!(matches!(&r.data[0].embedding, Vector::Float(x) if x == &vec![0.5, -0.25, 1.0]));
    let r = embed_response(&v, "text-embedding-004", true).unwrap();
    assert!(matches!(&r.data[1].embedding, Vector::Base64(s) if s == "AAAAAAAAAAAAAIA/"));
}

#[test]
fn gemini_requests_read_back_for_the_mock() {
    let req = canonical(json!({
        "model": "m", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "done"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "max_tokens": 7}));
    let body = request_from_canonical("gemini", &req).unwrap();
    let back = to_canonical_request(&body, "m", true).unwrap();
    assert_eq!(back.messages.len(), 4);
    assert_eq!(back.messages[3].text(), "done");
    assert_eq!(back.messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(back.tool_choice, Some(crate::chat::ToolChoice::Required));
    assert_eq!(back.max_tokens, Some(7));
    assert!(back.is_stream());
}

#[test]
fn thinking_budgets_for_gemini_come_from_effort_or_the_anthropic_callers_budget() {
    let budget = |extra: serde_json::Value| {
        let mut v =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let req: crate::chat::ChatRequest = serde_json::from_value(v).unwrap();
        request_from_canonical("gemini", &req)
            .map(|b| b["generationConfig"]["thinkingConfig"]["thinkingBudget"].clone())
    };
    assert_eq!(
        budget(serde_json::json!({"reasoning_effort": "none"})).unwrap(),
        0
    );
    assert_eq!(
        budget(serde_json::json!({"reasoning_effort": "low"})).unwrap(),
        1024
    );
    assert!(budget(serde_json::json!({"reasoning_effort": "extreme"})).is_err());
    let exact = serde_json::json!({
        "x_switchyard_anthropic_thinking": {"type": "enabled", "budget_tokens": 3000},
        "reasoning_effort": "medium"});
    assert_eq!(budget(exact).unwrap(), 3000);
    let adaptive = serde_json::json!({
        "x_switchyard_anthropic_thinking": {"type": "adaptive"}, "reasoning_effort": "medium"});
    assert_eq!(budget(adaptive).unwrap(), -1);
}

#[test]
fn penalties_at_their_defaults_pass_and_others_are_refused_by_name() {
    let req = |extra: serde_json::Value| -> ChatRequest {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    };
    let body = request_from_canonical(
        "gemini",
        &req(json!({"presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": false})),
    )
    .unwrap();
    assert!(
        body["generationConfig"].get("presencePenalty").is_none(),
        "{body}"
    );
    // Gemini 2.5 models answer a penalty with an error: refused before sending, by name.
    let err = request_from_canonical("gemini", &req(json!({"presence_penalty": 0.5}))).unwrap_err();
    assert_eq!(err.param, "presence_penalty");
}
