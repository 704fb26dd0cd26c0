//! End to end: the `switchyard` binary in front of the `switchyard mock` binary, over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Proc, client, gateway, get_json, mock, model_ids, sse_data};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// A gateway whose `up` provider and `openai` preset both point at an external mock.
fn setup() -> (Proc, Proc) {
    let m = mock();
    let config = format!(
        r#"
[server]
max_body_bytes = 65536
[aliases]
fast = "up/echo"
[providers.up]
kind = "openai"
base_url = "{m}/v1"
api_key = "env:UP_KEY"
models = ["echo", "stream-3"]
[providers.slowpoke]
kind = "openai"
base_url = "{m}/v1"
request_timeout_ms = 300
"#,
        m = m.url
    );
    let openai_url = format!("{}/v1", m.url);
    let g = gateway(
        &config,
        &[
            ("UP_KEY", "sk-up-secret"),
            ("OPENAI_API_KEY", "sk-openai-secret"),
            ("OPENAI_BASE_URL", &openai_url),
            ("ANTHROPIC_API_KEY", "sk-ant-secret"),
            ("ANTHROPIC_BASE_URL", &m.url),
            ("GEMINI_API_KEY", "gm-secret"),
            ("GEMINI_BASE_URL", &m.url),
        ],
    );
    (g, m)
}

async fn post(g: &Proc, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth("caller-token")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// What the mock saw last: path, authorization header, body.
async fn last(m: &Proc) -> Value {
    get_json(format!("{}/mock/last", m.url)).await
}

async fn stats(m: &Proc) -> Value {
    get_json(format!("{}/mock/stats", m.url)).await
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn chat_through_presets_custom_providers_aliases_and_the_embedded_mock() {
    let (g, m) = setup();
    for (model, provider, key) in [
        ("openai/echo", "openai", Some("Bearer sk-openai-secret")),
        ("up/echo", "up", Some("Bearer sk-up-secret")),
        ("fast", "up", Some("Bearer sk-up-secret")),
        ("mock/echo", "mock", None),
    ] {
        let resp = post(
            &g,
            json!({"model": model, "messages": user("hello switchyard")}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let h = resp.headers().clone();
        assert_eq!(h["x-switchyard-provider"], provider, "{model}");
        assert_eq!(h["x-switchyard-model"], "echo");
        assert!(h.contains_key("x-switchyard-request-id"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], "hello switchyard");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["completion_tokens"], 2);
        if let Some(key) = key {
            // The upstream sees the gateway's provider key, never the caller's token.
            let seen = last(&m).await;
            assert_eq!(seen["authorization"], key, "{model}");
            assert_eq!(seen["body"]["model"], "echo");
        }
    }
}

#[tokio::test]
async fn unknown_fields_and_vision_parts_pass_through_untouched() {
    let (g, m) = setup();
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    ]}]);
    let req = json!({"model": "up/echo", "messages": messages, "logprobs": true, "top_logprobs": 3,
                     "metadata": {"team": "a"}, "reasoning_effort": "low", "some_future_field": {"x": [1, 2]}});
    let resp = post(&g, req.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "what is this?");
    let seen = last(&m).await["body"].clone();
    for key in [
        "logprobs",
        "top_logprobs",
        "metadata",
        "reasoning_effort",
        "some_future_field",
        "messages",
    ] {
        assert_eq!(seen[key], req[key], "{key}");
    }
}

#[tokio::test]
async fn streams_with_and_without_usage() {
    let (g, _m) = setup();
    let resp = post(
        &g,
        json!({"model": "up/stream-3", "stream": true, "messages": user("x")}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (chunks, text) = common::chat_chunks(&sse_data(&resp.text().await.unwrap()));
    assert_eq!(text, "tok1 tok2 tok3");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let resp = post(&g, json!({"model": "mock/stream-3", "stream": true, "stream_options": {"include_usage": true}, "messages": user("x")})).await;
    let data = sse_data(&resp.text().await.unwrap());
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn streams_are_forwarded_as_they_arrive() {
    let (g, m) = setup();
    let resp = post(
        &g,
        json!({"model": "up/stream-5+itl-300ms", "stream": true, "messages": user("x")}),
    )
    .await;
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("tok1") {
        seen.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    // The first token reached us while the upstream was still generating.
    let s = stats(&m).await;
    assert_eq!(
        (
            s["streams_started"].as_u64(),
            s["streams_completed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    while let Some(part) = body.next().await {
        seen.push_str(std::str::from_utf8(&part.unwrap()).unwrap());
    }
    assert!(seen.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream() {
    let (g, m) = setup();
    let resp = post(
        &g,
        json!({"model": "up/stream-2000+itl-5ms", "stream": true, "messages": user("x")}),
    )
    .await;
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = stats(&m).await["streams_cancelled"].as_u64().unwrap();
        if cancelled == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cancelled, 1);
    assert_eq!(stats(&m).await["streams_completed"], 0);
}

#[tokio::test]
async fn an_upstream_that_dies_mid_stream_yields_an_error_event() {
    let (g, _m) = setup();
    let resp = post(
        &g,
        json!({"model": "up/stream-20+truncate-4", "stream": true, "messages": user("x")}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.len(), 5, "4 chunks then the error: {data:?}");
    let err: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "{err}"
    );
    assert!(!data.contains(&"[DONE]".to_owned()));
}

#[tokio::test]
async fn tool_calls_and_structured_output() {
    let (g, _m) = setup();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}}]);
    let resp = post(&g, json!({"model": "up/echo", "messages": user("weather?"), "tools": tools, "tool_choice": "required"})).await;
    let body: Value = resp.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock", "unit": "c"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let resp = post(
        &g,
        json!({"model": "mock/echo", "stream": true, "messages": user("weather?"), "tools": tools}),
    )
    .await;
    let data = sse_data(&resp.text().await.unwrap());
    let mut args = String::new();
    for d in &data[..data.len() - 1] {
        let c: Value = serde_json::from_str(d).unwrap();
        if let Some(a) = c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        {
            args.push_str(a);
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock", "unit": "c"})
    );

    let schema = json!({"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}}}});
    let body: Value = post(
        &g,
        json!({"model": "up/echo", "messages": user("2+2"), "response_format": schema}),
    )
    .await
    .json()
    .await
    .unwrap();
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"answer": 1}));
    let body: Value = post(&g, json!({"model": "up/echo", "messages": user("hi"), "response_format": {"type": "json_object"}})).await.json().await.unwrap();
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"echo": "hi"}));
}

#[tokio::test]
async fn embeddings_and_models() {
    let (g, _m) = setup();
    let c = client();
    let resp = c
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "up/embed", "input": ["a", "b"], "dimensions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "up");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 4);
    let body: Value = c
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "mock/embed", "input": "a", "encoding_format": "base64"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["data"][0]["embedding"].is_string());
    let resp = c
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "mock/embed", "input": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let ids = model_ids(&g.url).await;
    for id in ["fast", "up/echo", "up/stream-3", "mock/echo"] {
        assert!(ids.iter().any(|i| i == id), "{id} in {ids:?}");
    }
    let one = get_json(format!("{}/v1/models/mock/echo", g.url)).await;
    assert_eq!(one["id"], "mock/echo");
    let resp = c
        .get(format!("{}/v1/models/nope/nothing", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn the_api_answers_with_and_without_the_v1_prefix() {
    let (g, _m) = setup();
    let c = client();
    for prefix in ["/v1", ""] {
        let resp = c
            .post(format!("{}{prefix}/chat/completions", g.url))
            .json(&json!({"model": "up/echo", "messages": user("both ways")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{prefix}/chat/completions");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "both ways");
        let one = get_json(format!("{}{prefix}/models/mock/echo", g.url)).await;
        assert_eq!(one["id"], "mock/echo", "{prefix}/models/mock/echo");
    }
    // Paths the API does not serve keep their prefix in the error's message.
    for (path, status, named) in [
        ("/v1/nothing-here", 404, "GET /v1/nothing-here"),
        ("/v1/chat/completions", 405, "/v1/chat/completions"),
    ] {
        let resp = c.get(format!("{}{path}", g.url)).send().await.unwrap();
        let (got, _, body) = error_of(resp).await;
        assert_eq!(got, status, "GET {path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
}

async fn error_of(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    assert!(headers.contains_key("x-switchyard-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        body["error"].get("type").is_some()
            && body["error"].get("param").is_some()
            && body["error"].get("code").is_some()
    );
    (status, headers, body)
}

#[tokio::test]
async fn errors_have_the_right_status_and_openai_shape() {
    let (g, _m) = setup();
    let c = client();
    let url = format!("{}/v1/chat/completions", g.url);

    let (s, _, b) = error_of(c.post(&url).body("{\"model\": ").send().await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let (s, _, b) = error_of(
        c.post(&url)
            .body(
                "{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["param"].as_str()),
        (400, Some("messages[0].role"))
    );
    let (s, _, b) = error_of(
        c.post(&url)
            .body("{\"model\":\"mock/echo\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        s == 400 && b["error"]["message"].as_str().unwrap().contains("messages"),
        "{b}"
    );
    let (s, _, b) = error_of(post(&g, json!({"model": "mock/echo", "messages": []})).await).await;
    assert_eq!((s, b["error"]["param"].as_str()), (400, Some("messages")));

    let (s, _, b) =
        error_of(post(&g, json!({"model": "nosuch/model", "messages": user("x")})).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (s, _, b) = error_of(
        post(
            &g,
            json!({"model": "groq/llama-3.1-8b-instant", "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert!(
        s == 404
            && b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GROQ_API_KEY"),
        "{b}"
    );
    let (s, _, _) =
        error_of(post(&g, json!({"model": "gpt-4o", "messages": user("x")})).await).await;
    assert_eq!(s, 404);

    let big = "x".repeat(70_000);
    let (s, _, b) =
        error_of(post(&g, json!({"model": "mock/echo", "messages": user(&big)})).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    let (s, h, b) = error_of(
        post(
            &g,
            json!({"model": "up/ratelimit-3s", "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    assert_eq!(h["retry-after"], "3");
    assert_eq!(h["x-switchyard-provider"], "up");
    let (s, _, _) =
        error_of(post(&g, json!({"model": "up/fail-503", "messages": user("x")})).await).await;
    assert_eq!(s, 502);
    let (s, _, _) = error_of(
        post(
            &g,
            json!({"model": "up/fail-503", "stream": true, "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 502);
    let (s, _, _) =
        error_of(post(&g, json!({"model": "up/fail-400", "messages": user("x")})).await).await;
    assert_eq!(s, 400);
    let (s, _, _) =
        error_of(post(&g, json!({"model": "up/malformed", "messages": user("x")})).await).await;
    assert_eq!(s, 502);
    let (s, _, b) = error_of(
        post(
            &g,
            json!({"model": "slowpoke/slow-3s", "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (504, Some("upstream_timeout"))
    );

    let (s, _, _) = error_of(c.get(&url).send().await.unwrap()).await;
    assert_eq!(s, 405);
    let (s, _, _) = error_of(
        c.get(format!("{}/v2/whatever", g.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);

    // Nothing above leaked a provider key into an answer or the log.
    let log = g.stderr_text();
    assert!(
        !log.contains("sk-up-secret") && !log.contains("sk-openai-secret"),
        "{log}"
    );
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_502_naming_it() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let g = gateway(
        &format!("[providers.gone]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n"),
        &[],
    );
    let (s, _, b) =
        error_of(post(&g, json!({"model": "gone/x", "messages": user("x")})).await).await;
    assert_eq!(s, 502);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not connect to provider `gone`"),
        "{b}"
    );
}

#[tokio::test]
async fn a_proxy_named_in_the_environment_carries_upstream_calls() {
    // The mock stands in for the proxy (it answers absolute-form requests); nothing listens at
    // the provider's own address, so an answer can only come through the proxy.
    let proxy = common::mock();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let g = gateway(
        &format!("[providers.far]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n"),
        &[("HTTP_PROXY", proxy.url.as_str()), ("NO_PROXY", "")],
    );
    let resp = post(
        &g,
        json!({"model": "far/echo", "messages": user("via the proxy")}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "via the proxy");
    assert_eq!(common::mock_requests(&proxy).await, 1);
    let log = std::fs::read_to_string(&g.stderr).unwrap();
    assert!(log.contains("upstream calls go through the proxy"), "{log}");
}

#[tokio::test]
async fn health_readiness_and_graceful_shutdown() {
    let (g, _m) = setup();
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", g.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready: Value = c
        .get(format!("{}/readyz", g.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ready["providers"]
            .as_array()
            .unwrap()
            .contains(&json!("up"))
    );

    // A stream in flight when SIGTERM arrives finishes; then the process exits 0.
    let resp = post(
        &g,
        json!({"model": "up/stream-6+itl-150ms", "stream": true, "messages": user("x")}),
    )
    .await;
    let mut body = resp.bytes_stream();
    let mut text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &g.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Some(part) = body.next().await {
        text.push_str(std::str::from_utf8(&part.unwrap()).unwrap());
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut g = g;
    let mut exit = None;
    for _ in 0..100 {
        if let Some(s) = g.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exit.expect("gateway exited after draining").success());
}

// === the Anthropic Messages surface ===

async fn messages(g: &Proc, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", "caller-key")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_are_translated_for_an_openai_shaped_upstream() {
    let (g, m) = setup();
    let body = json!({
        "model": "up/echo", "max_tokens": 64, "temperature": 0.2,
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "need a tool", "signature": "sig-1"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3C"}]}
        ]
    });
    let resp = messages(&g, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "up");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["content"][0],
        json!({"type": "text", "text": "tool result received: -3C"})
    );
    assert_eq!(answer["stop_reason"], "end_turn");

    // What the OpenAI-shaped upstream received: the gateway's key and OpenAI's wire form.
    let seen = last(&m).await;
    assert_eq!(seen["authorization"], "Bearer sk-up-secret");
    let sent = &seen["body"];
    assert_eq!(sent["model"], "echo");
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        sent["messages"][2]["content"],
        Value::Null,
        "thinking is not sent to OpenAI"
    );
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"})
    );
    assert_eq!(
        sent["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"})
    );
}

#[tokio::test]
async fn messages_errors_use_anthropics_shape() {
    let (g, _m) = setup();
    let c = client();
    let url = format!("{}/v1/messages", g.url);
    async fn anthropic_error(resp: reqwest::Response) -> (u16, String, String) {
        let status = resp.status().as_u16();
        assert!(resp.headers().contains_key("x-switchyard-request-id"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        (
            status,
            body["error"]["type"].as_str().unwrap().to_owned(),
            body["error"]["message"].as_str().unwrap().to_owned(),
        )
    }
    let (s, t, _) = anthropic_error(c.post(&url).body("{not json").send().await.unwrap()).await;
    assert_eq!((s, t.as_str()), (400, "invalid_request_error"));
    let (s, _, msg) =
        anthropic_error(messages(&g, json!({"model": "mock/echo", "messages": []})).await).await;
    assert!(s == 400 && msg.contains("max_tokens"), "{msg}");
    let (s, _, msg) = anthropic_error(
        messages(
            &g,
            json!({"model": "mock/echo", "max_tokens": 5, "mcp_servers": [],
                   "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
    )
    .await;
    assert!(s == 400 && msg.contains("mcp_servers"), "{msg}");
    let (s, t, _) = anthropic_error(messages(&g, json!({"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await).await;
    assert_eq!((s, t.as_str()), (404, "not_found_error"));
    let big = "x".repeat(70_000);
    let (s, t, _) = anthropic_error(messages(&g, json!({"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": big}]})).await).await;
    assert_eq!((s, t.as_str()), (413, "request_too_large"));
    let resp = messages(&g, json!({"model": "up/ratelimit-2s", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.headers()["retry-after"], "2");
    let (s, t, _) = anthropic_error(resp).await;
    assert_eq!((s, t.as_str()), (429, "rate_limit_error"));
    let (s, t, _) = anthropic_error(messages(&g, json!({"model": "slowpoke/slow-3s", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await).await;
    assert_eq!((s, t.as_str()), (504, "timeout_error"));
}

#[tokio::test]
async fn messages_stream_events_and_mid_stream_errors() {
    let (g, _m) = setup();
    let resp = messages(&g, json!({"model": "up/stream-3", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let delta: Value = serde_json::from_str(
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .nth(6)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        delta["usage"]["output_tokens"], 3,
        "usage arrives although the caller did not ask OpenAI-style"
    );

    let resp = messages(&g, json!({"model": "up/stream-20+truncate-4", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    let text = resp.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.last(), Some(&"error"), "{text}");
    assert!(!names.contains(&"message_stop"));
}

#[tokio::test]
async fn the_anthropic_preset_speaks_messages_upstream() {
    let (g, m) = setup();
    let resp = post(&g, json!({"model": "anthropic/echo", "temperature": 0.4,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello claude"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "anthropic");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello claude");
    let seen = last(&m).await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["x_api_key"], "sk-ant-secret");
    assert_eq!(seen["anthropic_version"], "2023-06-01");
    assert!(
        seen["authorization"].is_null(),
        "no bearer token to Anthropic"
    );
    assert_eq!(
        seen["body"]["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(
        seen["body"]["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}])
    );
    assert_eq!(seen["body"]["max_tokens"], 16384);

    // A field Anthropic cannot honour is a 400 naming it and the provider.
    let (s, _, b) = error_of(
        post(
            &g,
            json!({"model": "anthropic/echo", "n": 3, "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["error"]["param"].as_str()), (400, Some("n")));
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`anthropic`"),
        "{b}"
    );
    // Errors from an Anthropic upstream keep their status and retry-after.
    let (s, h, _) = error_of(
        post(
            &g,
            json!({"model": "anthropic/ratelimit-2s", "messages": user("x")}),
        )
        .await,
    )
    .await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "2"));
    let log = g.stderr_text();
    assert!(!log.contains("sk-ant-secret"), "{log}");
}

#[tokio::test]
async fn the_gemini_preset_speaks_generate_content_upstream() {
    let (g, m) = setup();
    let resp = post(&g, json!({"model": "gemini/echo", "max_tokens": 50,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello gemini"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "gemini");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello gemini");
    let seen = last(&m).await;
    assert_eq!(seen["path"], "/v1beta/models/echo:generateContent");
    assert_eq!(seen["x_goog_api_key"], "gm-secret");
    assert!(seen["authorization"].is_null());
    assert_eq!(
        seen["body"]["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(seen["body"]["generationConfig"]["maxOutputTokens"], 50);

    // A history whose function call lost its thought signature is refused upstream, as Gemini does.
    let history = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    ]);
    let (s, _, b) =
        error_of(post(&g, json!({"model": "gemini/echo", "messages": history})).await).await;
    assert_eq!(s, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("thought_signature"),
        "{b}"
    );
    let log = g.stderr_text();
    assert!(!log.contains("gm-secret"), "{log}");
}

/// An OpenAI-compatible upstream that answers every request with the same stream of events,
/// written exactly as given. Returns its base URL.
async fn scripted_stream(events: Vec<String>) -> String {
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    scripted_upstream("text/event-stream", body).await
}

/// An upstream that answers every request with the same body, written exactly as given.
/// Returns its base URL.
async fn scripted_upstream(content_type: &'static str, body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // Read the request: its head, then the body its content-length announces.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn streamed_chunks_reach_the_caller_as_the_upstream_wrote_them() {
    // Escapes, number spellings and key order that a re-encoding would change.
    let first = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"caf\u00e9 \/"},"finish_reason":null}],"x_score":1.50}"#;
    let last = r#"{"choices":[{"delta":{},"index":0,"finish_reason":"stop"}],"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"}"#;
    let usage = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    let url = scripted_stream(vec![
        first.to_owned(),
        last.to_owned(),
        usage.to_owned(),
        "[DONE]".to_owned(),
    ])
    .await;
    let g = gateway(
        &format!("[providers.raw]\nkind = \"openai\"\nbase_url = \"{url}\"\n"),
        &[],
    );
    let ask = |usage: bool| {
        json!({"model": "raw/m", "stream": true, "messages": user("hi"),
               "stream_options": {"include_usage": usage}})
    };
    let text = post(&g, ask(true)).await.text().await.unwrap();
    assert_eq!(sse_data(&text), [first, last, usage, "[DONE]"], "{text}");
    // Without `include_usage` the usage chunk (which the gateway asked for, to meter the call)
    // is left out; the others are still the upstream's own bytes.
    let text = post(&g, ask(false)).await.text().await.unwrap();
    assert_eq!(sse_data(&text), [first, last, "[DONE]"], "{text}");
}

#[tokio::test]
async fn a_whole_answer_reaches_the_caller_as_the_upstream_wrote_it() {
    // Pretty-printed, with escapes, a number spelling and a key order a re-encoding would change.
    let body = r#"{
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "caf\u00e9 \/"}, "finish_reason": "stop"}],
  "id": "c3", "object": "chat.completion", "created": 3, "model": "m",
  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
  "x_score": 1.50
}
"#;
    let url = scripted_upstream("application/json", body.to_owned()).await;
    let g = gateway(
        &format!("[providers.raw]\nkind = \"openai\"\nbase_url = \"{url}\"\n"),
        &[],
    );
    let resp = post(&g, json!({"model": "raw/m", "messages": user("hi")})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "raw");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), body);
    // Content in parts is joined into one string for an OpenAI-shaped caller: encoded afresh.
    let parts = r#"{"id":"c4","object":"chat.completion","created":4,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},"finish_reason":"stop"}]}"#;
    let url = scripted_upstream("application/json", parts.to_owned()).await;
    let g = gateway(
        &format!("[providers.raw]\nkind = \"openai\"\nbase_url = \"{url}\"\n"),
        &[],
    );
    let v: Value = post(&g, json!({"model": "raw/m", "messages": user("hi")}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ab", "{v}");
}

#[tokio::test]
async fn a_chunk_the_gateway_changes_is_encoded_afresh() {
    // Usage on a chunk with a choice, for a caller that did not ask for usage: the gateway
    // takes the usage out, so what the caller gets is the gateway's encoding of the rest.
    let both = r#"{"id":"c2","object":"chat.completion.chunk","created":2,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"x_score":1.50}"#;
    let url = scripted_stream(vec![both.to_owned(), "[DONE]".to_owned()]).await;
    let g = gateway(
        &format!("[providers.raw]\nkind = \"openai\"\nbase_url = \"{url}\"\n"),
        &[],
    );
    let body = json!({"model": "raw/m", "stream": true, "messages": user("hi")});
    let text = post(&g, body).await.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let chunk: Value = serde_json::from_str(&events[0]).unwrap();
    assert!(chunk.get("usage").is_none(), "{chunk}");
    assert_eq!(chunk["choices"][0]["delta"]["content"], "x");
    assert_eq!(chunk["x_score"], 1.5);
    assert!(!events[0].contains("1.50"), "{}", events[0]);
}

#[tokio::test]
async fn pages_from_other_sites_and_rebound_names_cannot_use_a_keyless_gateway() {
    let (g, m) = setup();
    let port = g.url.rsplit(':').next().unwrap().to_owned();
    let before = stats(&m).await["requests"].as_u64().unwrap();
    let call = |host: String, origin: Option<&'static str>| {
        let mut req = client()
            .post(format!("{}/v1/chat/completions", g.url))
            .header(reqwest::header::HOST, host)
            .json(&json!({"model": "up/echo", "messages": user("hi")}));
        if let Some(o) = origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        req.send()
    };
    // DNS rebinding: the page's own name, resolved to 127.0.0.1.
    let (status, _, body) =
        error_of(call(format!("evil.example:{port}"), None).await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evil.example"),
        "{body}"
    );
    // A cross-site request from a page elsewhere.
    let resp = call(format!("127.0.0.1:{port}"), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The dashboard's data too.
    let resp = client()
        .get(format!("{}/admin/logs", g.url))
        .header(reqwest::header::HOST, format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        stats(&m).await["requests"].as_u64().unwrap(),
        before,
        "a refused call reached the provider"
    );
    // This machine's names and pages pass.
    let resp = call(format!("localhost:{port}"), Some("http://localhost:3000"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client()
        .get(format!("{}/admin/logs", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn messages_fields_and_betas_reach_an_anthropic_upstream_and_only_it() {
    let (g, m) = setup();
    let body = json!({"model": "anthropic/echo", "max_tokens": 64,
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "messages": [{"role": "user", "content": "hello"}]});
    let resp = client()
        .post(format!("{}/v1/messages", g.url))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let seen = last(&m).await;
    assert_eq!(seen["anthropic_beta"], "context-management-2025-06-27");
    assert_eq!(
        seen["body"]["context_management"],
        body["context_management"]
    );
    // An OpenAI-shaped upstream cannot take the field: refused by name, nothing sent.
    let before = stats(&m).await["requests"].as_u64().unwrap();
    let mut other = body.clone();
    other["model"] = json!("up/echo");
    let resp = messages(&g, other).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context_management"),
        "{err}"
    );
    assert_eq!(stats(&m).await["requests"].as_u64().unwrap(), before);
}

#[tokio::test]
async fn keys_only_the_gateway_sets_are_not_a_callers_to_send() {
    let (g, m) = setup();
    let resp = post(
        &g,
        json!({"model": "up/echo", "messages": user("hi"),
               "x_switchyard_anthropic_fields": {"container": "c1"},
               "x_switchyard_builtin_tools": [{"type": "web_search"}],
               "x_switchyard_anthropic_beta": "whatever"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = &last(&m).await["body"];
    let sent: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert!(
        sent.iter().all(|k| !k.starts_with("x_switchyard_")),
        "{sent:?}"
    );
}
