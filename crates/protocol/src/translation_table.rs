//! One table per translated concept, every wire family in a row, both directions where both
//! exist: what a reader checks first when a mapping is in doubt.

use serde_json::{Value, json};

use crate::anthropic::upstream::{
    request_from_canonical as to_anthropic_request, stop_reason_to_finish,
};
use crate::anthropic::{MessagesRequest, finish_to_stop_reason, to_canonical as from_messages};
use crate::chat::{ChatRequest, FinishReason, ToolChoice};
use crate::gemini::{
    finish_to_canonical as gemini_finish, request_from_canonical as to_gemini_request,
};

fn canonical(extra: Value) -> ChatRequest {
    let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

#[test]
fn finish_reasons() {
    // canonical, Anthropic stop_reason, Gemini finishReason (without / with function calls)
    let table = [
        (FinishReason::Stop, "end_turn", "STOP", false),
        (FinishReason::Length, "max_tokens", "MAX_TOKENS", false),
        (FinishReason::ToolCalls, "tool_use", "STOP", true),
        (FinishReason::ContentFilter, "refusal", "SAFETY", false),
    ];
    for (canonical, anthropic, gemini, had_calls) in table {
        assert_eq!(
            finish_to_stop_reason(&canonical),
            anthropic,
            "{canonical:?} → Anthropic"
        );
        assert_eq!(
            stop_reason_to_finish(anthropic),
            canonical,
            "Anthropic {anthropic} → canonical"
        );
        assert_eq!(
            gemini_finish(gemini, had_calls),
            canonical,
            "Gemini {gemini} → canonical"
        );
    }
}

#[test]
fn tool_choice() {
    // OpenAI tool_choice, canonical, Anthropic tool_choice, Gemini functionCallingConfig
    let table = [
        (
            json!("auto"),
            ToolChoice::Auto,
            json!({"type": "auto"}),
            json!({"mode": "AUTO"}),
        ),
        (
            json!("none"),
            ToolChoice::None,
            json!({"type": "none"}),
            json!({"mode": "NONE"}),
        ),
        (
            json!("required"),
            ToolChoice::Required,
            json!({"type": "any"}),
            json!({"mode": "ANY"}),
        ),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            ToolChoice::Function("f".into()),
            json!({"type": "tool", "name": "f"}),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ];
    for (openai, canon, anthropic, gemini) in table {
        let req = canonical(json!({ "tool_choice": openai }));
        assert_eq!(req.tool_choice.as_ref(), Some(&canon), "OpenAI → canonical");
        let a = to_anthropic_request("anthropic", &req, "m", false).unwrap();
        assert_eq!(a["tool_choice"], anthropic, "canonical → Anthropic");
        let g = to_gemini_request("gemini", &req).unwrap();
        assert_eq!(
            g["toolConfig"]["functionCallingConfig"], gemini,
            "canonical → Gemini"
        );
        // And back from the Messages surface.
        let m: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}], "tool_choice": anthropic}))
        .unwrap();
        assert_eq!(
            from_messages(m).unwrap().tool_choice,
            Some(canon),
            "Anthropic → canonical"
        );
    }
}

#[test]
fn sampling_and_limits() {
    // canonical field, Anthropic key, Gemini generationConfig key
    let req = canonical(
        json!({"temperature": 0.5, "top_p": 0.9, "top_k": 7, "max_tokens": 33, "stop": ["S"]}),
    );
    let a = to_anthropic_request("anthropic", &req, "m", false).unwrap();
    let g = to_gemini_request("gemini", &req).unwrap();
    let gc = &g["generationConfig"];
    let table = [
        (
            "temperature",
            &a["temperature"],
            &gc["temperature"],
            json!(0.5),
        ),
        ("top_p", &a["top_p"], &gc["topP"], json!(0.9)),
        ("top_k", &a["top_k"], &gc["topK"], json!(7)),
        (
            "max_tokens",
            &a["max_tokens"],
            &gc["maxOutputTokens"],
            json!(33),
        ),
        (
            "stop",
            &a["stop_sequences"],
            &gc["stopSequences"],
            json!(["S"]),
        ),
    ];
    for (field, anthropic, gemini, want) in table {
        assert_eq!(anthropic, &want, "{field} → Anthropic");
        assert_eq!(gemini, &want, "{field} → Gemini");
    }
}
