//! The same behaviour, for every wire family: each adapter against the mock provider (which
//! speaks both formats) over real loopback HTTP. One macro generates the set per family.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchyard_mock::Stats;
use switchyard_protocol::chat::{ChatRequest, FinishReason};

use crate::{
    AuthStyle, ErrorClass, Provider, ProviderError, ProviderSettings, Secret, WireKind, http_client,
};

pub(crate) fn provider_at(kind: WireKind, base_url: &str, timeout: Duration) -> Provider {
    let auth = match kind {
        WireKind::OpenAi | WireKind::Responses => AuthStyle::Bearer,
        WireKind::Anthropic => AuthStyle::Header("x-api-key".into()),
        WireKind::Gemini => AuthStyle::Header("x-goog-api-key".into()),
    };
    let settings = ProviderSettings {
        name: "up".into(),
        base_url: base_url.into(),
        api_key: Some(Secret::new("sk-upstream-test")),
        auth,
        headers: vec![("x-extra".into(), crate::Secret::new("1"))],
        request_timeout: timeout,
        stream_usage: true,
    };
    Provider::new(kind, settings, http_client(Duration::from_secs(2)).unwrap()).unwrap()
}

pub(crate) async fn with_mock(kind: WireKind, timeout: Duration) -> (Provider, Arc<Stats>) {
    let (addr, stats) = switchyard_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    (
        provider_at(kind, &format!("http://{addr}/v1"), timeout),
        stats,
    )
}

pub(crate) fn chat(model: &str, extra: serde_json::Value) -> ChatRequest {
    let mut v =
        json!({"model": model, "messages": [{"role": "user", "content": "hello there world"}]});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    serde_json::from_value(v).unwrap()
}

pub(crate) fn tools() -> serde_json::Value {
    json!({"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]})
}

/// Collects a stream: text, tool name, tool arguments, finish reason, completion tokens.
async fn collect(
    mut s: crate::ChatStream,
) -> (
    String,
    Option<String>,
    String,
    Option<FinishReason>,
    Option<u64>,
) {
    let (mut text, mut name, mut args, mut finish, mut tokens) =
        (String::new(), None, String::new(), None, None);
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        for c in &chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            for d in c.delta.tool_calls.clone().unwrap_or_default() {
                assert_eq!(d.index, 0);
                if let Some(f) = d.function {
                    name = name.or(f.name);
                    args.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            finish = finish.or(c.finish_reason.clone());
        }
        tokens = tokens.or(chunk.usage.map(|u| u.completion_tokens));
    }
    (text, name, args, finish, tokens)
}

macro_rules! conformance {
    ($family:ident, $kind:expr) => {
        mod $family {
            use super::*;

            #[tokio::test]
            async fn chat_reads_text_and_usage_and_sends_the_key() {
                let (p, stats) = with_mock($kind, Duration::from_secs(10)).await;
                let resp = p.chat(chat("echo", json!({}))).await.unwrap();
                assert_eq!(resp.choices[0].message.text(), "hello there world");
                assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
                assert_eq!(resp.usage.as_ref().unwrap().completion_tokens, 3);
                let last = stats.last().unwrap();
                let key = match $kind {
                    WireKind::OpenAi | WireKind::Responses => last.authorization.clone(),
                    WireKind::Anthropic => last.x_api_key.clone(),
                    WireKind::Gemini => last.x_goog_api_key.clone(),
                };
                assert_eq!(key.as_deref().map(|k| k.trim_start_matches("Bearer ")), Some("sk-upstream-test"));
            }

            #[tokio::test]
            async fn stream_yields_text_finish_and_usage() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let (text, _, _, finish, tokens) = collect(p.chat_stream(chat("stream-5", json!({}))).await.unwrap()).await;
                assert_eq!(text, "tok1 tok2 tok3 tok4 tok5");
                assert_eq!(finish, Some(FinishReason::Stop));
                assert_eq!(tokens, Some(5));
            }

            #[tokio::test]
            async fn max_tokens_ends_with_length() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let resp = p.chat(chat("stream-9", json!({"max_tokens": 2}))).await.unwrap();
                assert_eq!(resp.choices[0].message.text(), "tok1 tok2 ");
                assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Length));
            }

            #[tokio::test]
            async fn tool_calls_plain_and_streamed() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let resp = p.chat(chat("echo", tools())).await.unwrap();
                let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
                assert_eq!(call.function.name, "lookup");
                assert_eq!(serde_json::from_str::<serde_json::Value>(&call.function.arguments).unwrap(), json!({"q": "mock"}));
                assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
                let (_, name, args, finish, _) = collect(p.chat_stream(chat("echo", tools())).await.unwrap()).await;
                assert_eq!(name.as_deref(), Some("lookup"));
                assert_eq!(serde_json::from_str::<serde_json::Value>(&args).unwrap(), json!({"q": "mock"}));
                assert_eq!(finish, Some(FinishReason::ToolCalls));
            }

            #[tokio::test]
            async fn the_upstream_model_list_is_read() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let list = p.models().await.unwrap();
                let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
                assert!(ids.contains(&"echo") && ids.contains(&"stream-40"), "{ids:?}");
            }

            #[tokio::test]
            async fn json_mode_and_json_schema_output() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let format = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "r",
                    "schema": {"type": "object", "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}}}}}});
                let resp = p.chat(chat("echo", format.clone())).await.unwrap();
                let text = resp.choices[0].message.text();
                assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), json!({"answer": 1, "why": "mock"}), "{text}");
                assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
                let (text, name, _, finish, _) = collect(p.chat_stream(chat("echo", format)).await.unwrap()).await;
                assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), json!({"answer": 1, "why": "mock"}), "{text}");
                assert_eq!((name, finish), (None, Some(FinishReason::Stop)));
                let resp = p.chat(chat("echo", json!({"response_format": {"type": "json_object"}}))).await.unwrap();
                assert!(serde_json::from_str::<serde_json::Value>(&resp.choices[0].message.text()).unwrap().is_object());
            }

            #[tokio::test]
            async fn upstream_failures_are_classified() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let err = p.chat(chat("fail-503", json!({}))).await.unwrap_err();
                assert!(err.is_retryable());
                assert_eq!(err.class(), ErrorClass::UpstreamServer);
                let err = p.chat(chat("ratelimit-2s", json!({}))).await.unwrap_err();
                assert_eq!(err.class(), ErrorClass::RateLimited);
                assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
                let err = p.chat(chat("fail-404", json!({}))).await.unwrap_err();
                assert!(!err.is_retryable());
                assert!(matches!(&err, ProviderError::Status(s) if s.status == 404 && s.message.contains("scripted")));
                let err = p.chat(chat("malformed", json!({}))).await.unwrap_err();
                assert_eq!(err.class(), ErrorClass::Decode);
                let err = p.chat_stream(chat("fail-502", json!({}))).await.err().unwrap();
                assert!(matches!(&err, ProviderError::Status(s) if s.status == 502));
            }

            #[tokio::test]
            async fn a_stream_cut_midway_ends_with_an_error() {
                let (p, _) = with_mock($kind, Duration::from_secs(10)).await;
                let mut s = p.chat_stream(chat("stream-20+truncate-4", json!({}))).await.unwrap();
                let (mut ok, mut last_err) = (0, None);
                while let Some(item) = s.next().await {
                    match item {
                        Ok(_) => ok += 1,
                        Err(e) => last_err = Some(e),
                    }
                }
                assert!(ok >= 1, "chunks before the cut arrive");
                assert_eq!(last_err.unwrap().class(), ErrorClass::Interrupted);
                let mut s = p.chat_stream(chat("malformed", json!({}))).await.unwrap();
                let first = s.next().await.unwrap();
                assert_eq!(first.unwrap_err().class(), ErrorClass::Decode);
                assert!(s.next().await.is_none());
            }

            #[tokio::test]
            async fn timeouts_and_refused_connections() {
                let (p, _) = with_mock($kind, Duration::from_millis(150)).await;
                let err = p.chat(chat("slow-2s", json!({}))).await.unwrap_err();
                assert_eq!(err.class(), ErrorClass::Timeout);
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                drop(l);
                let p = provider_at($kind, &format!("http://{addr}/v1"), Duration::from_secs(2));
                let err = p.chat(chat("echo", json!({}))).await.unwrap_err();
                assert_eq!(err.class(), ErrorClass::Connect);
                assert!(!err.to_string().contains("sk-upstream-test"));
            }

            #[tokio::test]
            async fn dropping_a_stream_cancels_the_upstream() {
                let (p, stats) = with_mock($kind, Duration::from_secs(10)).await;
                let mut s = p.chat_stream(chat("stream-1000+itl-5ms", json!({}))).await.unwrap();
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
        }
    };
}

conformance!(openai, WireKind::OpenAi);
conformance!(anthropic, WireKind::Anthropic);
conformance!(gemini, WireKind::Gemini);
conformance!(responses, WireKind::Responses);

#[tokio::test]
async fn anthropic_requests_carry_the_version_and_refuse_what_they_cannot_say() {
    let (p, stats) = with_mock(WireKind::Anthropic, Duration::from_secs(10)).await;
    p.chat(chat("echo", json!({"temperature": 0.5, "stop": ["END"]})))
        .await
        .unwrap();
    let last = stats.last().unwrap();
    assert_eq!(last.path, "/v1/messages");
    assert_eq!(last.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(last.body["stop_sequences"], json!(["END"]));
    assert_eq!(last.body["max_tokens"], 16384);
    let err = p
        .chat(chat("echo", json!({"logprobs": true})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Request { param, .. } if param == "logprobs"),
        "{err:?}"
    );
    let err = p
        .embed(serde_json::from_value(json!({"model": "m", "input": "x"})).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported);
}

#[tokio::test]
async fn upstreams_with_counting_endpoints_count_tokens() {
    for kind in [WireKind::Anthropic, WireKind::Gemini] {
        let (p, stats) = with_mock(kind, Duration::from_secs(10)).await;
        // 3 per message + ceil(17 chars / 4) + 3 for the request.
        assert_eq!(
            p.count_tokens(chat("echo", json!({}))).await.unwrap(),
            11,
            "{kind:?}"
        );
        let path = stats.last().unwrap().path;
        assert!(
            path.ends_with("count_tokens") || path.ends_with(":countTokens"),
            "{path}"
        );
    }
    let (p, _) = with_mock(WireKind::OpenAi, Duration::from_secs(10)).await;
    assert_eq!(
        p.count_tokens(chat("echo", json!({})))
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
}

#[tokio::test]
async fn calls_go_through_a_configured_proxy() {
    // The mock stands in for the proxy (it serves absolute-form request targets); the upstream
    // named in the base URL has nothing listening, so an answer can only come through the proxy.
    let (proxy, stats) = switchyard_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let client = crate::HttpClient::with_route(
        Duration::from_secs(2),
        crate::Route::Proxy(format!("http://{proxy}")),
    )
    .unwrap();
    assert!(client.is_proxied());
    let settings = ProviderSettings {
        name: "up".into(),
        base_url: format!("http://{nowhere}/v1"),
        api_key: Some(Secret::new("sk-upstream-test")),
        auth: AuthStyle::Bearer,
        headers: Vec::new(),
        request_timeout: Duration::from_secs(10),
        stream_usage: true,
    };
    let p = Provider::new(WireKind::OpenAi, settings, client).unwrap();
    let resp = p.chat(chat("echo", json!({}))).await.unwrap();
    assert_eq!(resp.choices[0].message.text(), "hello there world");
    let last = stats.last().unwrap();
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer sk-upstream-test")
    );
    let (text, _, _, _, tokens) =
        collect(p.chat_stream(chat("stream-3", json!({}))).await.unwrap()).await;
    assert_eq!((text.as_str(), tokens), ("tok1 tok2 tok3", Some(3)));
    let err = p.chat(chat("fail-503", json!({}))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UpstreamServer);

    // Without a proxy the same provider cannot connect.
    if !http_client(Duration::from_secs(2)).unwrap().is_proxied() {
        let p = provider_at(
            WireKind::OpenAi,
            &format!("http://{nowhere}/v1"),
            Duration::from_secs(2),
        );
        let err = p.chat(chat("echo", json!({}))).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Connect);
    }
}
