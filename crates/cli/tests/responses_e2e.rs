//! The Responses surface end to end: a conversation over three turns with a tool call in the
//! middle, continued by `previous_response_id`, against the mock in each provider's wire format
//! (the mock shows what reached it), the typed event stream, and retrieval and deletion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Proc, client, error_message, gateway_with_up, get_json};
use serde_json::{Value, json};

/// A gateway whose mock is reachable as `up/…` (OpenAI's chat wire), `upr/…` (OpenAI's
/// Responses wire), `upa/…` (Anthropic's) and `upg/…` (Gemini's).
fn setup() -> (Proc, Proc) {
    let m = common::mock();
    let config = format!(
        r#"
[providers.up]
kind = "openai"
base_url = "{m}/v1"
[providers.upr]
kind = "openai-responses"
base_url = "{m}/v1"
[providers.upa]
kind = "anthropic"
base_url = "{m}"
[providers.upg]
kind = "gemini"
base_url = "{m}"
"#,
        m = m.url
    );
    (common::gateway(&config, &[]), m)
}

async fn create(g: &Proc, body: Value) -> Value {
    let resp = client()
        .post(format!("{}/v1/responses", g.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{body}");
    resp.json().await.unwrap()
}

fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "message")
        .flat_map(|o| o["content"].as_array().unwrap().clone())
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn previous_response_id_carries_a_conversation_for_every_wire_format() {
    let (g, m) = setup();
    for provider in ["up", "upr", "upa", "upg"] {
        let model = format!("{provider}/echo");
        let first = create(
            &g,
            json!({"model": model, "instructions": "You report weather.", "input": "weather in Paris?",
                   "tools": tools(), "tool_choice": {"type": "function", "name": "get_weather"}}),
        )
        .await;
        let call = first["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"] == "function_call")
            .unwrap_or_else(|| panic!("{provider}: no call in {first}"))
            .clone();
        assert_eq!(call["name"], "get_weather", "{provider}");
        assert!(first["id"].as_str().unwrap().starts_with("resp_"));

        let second = create(
            &g,
            json!({"model": model, "previous_response_id": first["id"], "tools": tools(),
                   "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "18C and sunny"}]}),
        )
        .await;
        assert_eq!(
            output_text(&second),
            "tool result received: 18C and sunny",
            "{provider}: {second}"
        );

        let third = create(
            &g,
            json!({"model": model, "previous_response_id": second["id"], "input": "thanks"}),
        )
        .await;
        assert_eq!(output_text(&third), "thanks", "{provider}");
        assert_eq!(third["previous_response_id"], second["id"]);
        // The upstream got the whole conversation, in its own format.
        let sent = get_json(format!("{}/mock/last", m.url)).await["body"].to_string();
        for part in [
            "weather in Paris?",
            "get_weather",
            "18C and sunny",
            "tool result received: 18C and sunny",
            "thanks",
        ] {
            assert!(sent.contains(part), "{provider}: `{part}` not in {sent}");
        }
        // Instructions are not carried over from an earlier turn.
        assert!(!sent.contains("You report weather."), "{provider}: {sent}");
    }
}

#[tokio::test]
async fn streams_are_typed_events_in_order_and_the_result_is_stored() {
    let (g, _m) = gateway_with_up("", &[]);
    let resp = client()
        .post(format!("{}/v1/responses", g.url))
        .json(&json!({"model": "up/stream-5", "input": "go", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let kind = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (kind.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        &kinds[kinds.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "response.output_text.delta")
            .count(),
        5
    );
    for (i, (kind, body)) in events.iter().enumerate() {
        assert_eq!(body["sequence_number"], i as u64, "{kind}");
    }
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(output_text(completed), "tok1 tok2 tok3 tok4 tok5");
    assert_eq!(completed["usage"]["output_tokens"], 5);

    // Stored: retrievable as it completed, then deleted.
    let id = completed["id"].as_str().unwrap();
    let mut fetched = Value::Null;
    for _ in 0..50 {
        let resp = client()
            .get(format!("{}/v1/responses/{id}", g.url))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            fetched = resp.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(&fetched, completed);
    let deleted: Value = client()
        .delete(format!("{}/v1/responses/{id}", g.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], true);
    let gone = client()
        .get(format!("{}/v1/responses/{id}", g.url))
        .send()
        .await
        .unwrap();
    assert!(error_message(gone, 404).await.contains(id));

    // `store: false` keeps nothing to continue from.
    let unstored = create(
        &g,
        json!({"model": "up/echo", "input": "x", "store": false}),
    )
    .await;
    let resp = client()
        .post(format!("{}/v1/responses", g.url))
        .json(&json!({"model": "up/echo", "input": "y", "previous_response_id": unstored["id"]}))
        .send()
        .await
        .unwrap();
    assert!(error_message(resp, 400).await.contains("was not found"));
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event_and_bad_input_is_a_400() {
    let (g, _m) = gateway_with_up("", &[]);
    let text = client()
        .post(format!("{}/v1/responses", g.url))
        .json(&json!({"model": "up/stream-30+truncate-3", "input": "go", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");

    for (body, needle) in [
        (
            json!({"model": "up/echo", "input": "x", "tools": [{"type": "file_search"}]}),
            "openai-responses",
        ),
        (
            json!({"model": "up/echo", "input": [{"type": "mcp_call"}]}),
            "mcp_call",
        ),
        (json!({"model": "up/echo"}), "input"),
        (json!({"input": "x"}), "model"),
    ] {
        let resp = client()
            .post(format!("{}/v1/responses", g.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let msg = error_message(resp, 400).await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
}

#[tokio::test]
async fn a_responses_upstream_serves_every_surface_and_runs_built_in_tools() {
    let (g, m) = setup();
    // The chat surface through a Responses upstream: plain, streamed, a tool call.
    let chat = |body: Value| {
        client()
            .post(format!("{}/v1/chat/completions", g.url))
            .json(&body)
            .send()
    };
    let r: Value = chat(
        json!({"model": "upr/echo", "messages": [{"role": "user", "content": "via responses"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["choices"][0]["message"]["content"], "via responses");
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert!(r["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let sent = get_json(format!("{}/mock/last", m.url)).await;
    assert_eq!(sent["path"], "/v1/responses");
    assert_eq!(sent["body"]["store"], false, "the gateway keeps the state");
    let text = chat(
        json!({"model": "upr/stream-4", "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let (_, streamed) = common::chat_chunks(&common::sse_data(&text));
    assert_eq!(streamed, "tok1 tok2 tok3 tok4");
    assert!(text.contains("\"usage\""), "{text}");
    let r: Value = chat(json!({"model": "upr/echo", "messages": [{"role": "user", "content": "weather?"}],
                              "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                              "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        r["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // Built-in tools go through to it, beside function tools.
    let r = create(
        &g,
        json!({"model": "upr/echo", "input": "search the web", "tools": [{"type": "web_search_preview"}]}),
    )
    .await;
    assert_eq!(output_text(&r), "search the web");
    let sent = get_json(format!("{}/mock/last", m.url)).await;
    assert_eq!(sent["body"]["tools"][0]["type"], "web_search_preview");
}
