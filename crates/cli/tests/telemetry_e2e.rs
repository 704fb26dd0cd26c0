//! Traces end to end: the gateway exports a span per call over OTLP/HTTP (JSON) to a collector
//! this test runs on loopback, with the GenAI semantic conventions, inside the caller's trace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{client, gateway};
use serde_json::{Value, json};

/// A collector that keeps every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    let service = rs["resource"]["attributes"].clone();
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for span in ss["spans"].as_array().into_iter().flatten() {
                            let mut span = span.clone();
                            span["resource"] = service.clone();
                            kept.lock().unwrap().push(span);
                        }
                    }
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

/// An attribute's value, whatever its OTLP JSON type.
fn attr(span: &Value, key: &str) -> Option<Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            ["stringValue", "intValue", "doubleValue", "boolValue"]
                .iter()
                .find_map(|t| v.get(*t).cloned())
                .unwrap_or(Value::Null)
        })
}

#[tokio::test]
async fn each_call_is_a_genai_span_in_the_callers_trace() {
    let (url, spans) = collector().await;
    let config = format!(
        "[telemetry]\notlp_endpoint = \"{url}\"\nservice_name = \"gateway-under-test\"\n[catalog.\"mock/echo\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n"
    );
    let g = gateway(&config, &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let resp = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "trace me please"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = common::request_id(&resp);
    let failed = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .header("x-switchyard-max-attempts", "1")
        .json(&json!({"model": "mock/fail-503", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    let embedded = client()
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "mock/embed", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(embedded.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    while spans.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "spans: {:?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spans = spans.lock().unwrap().clone();
    let ok = spans
        .iter()
        .find(|s| attr(s, "switchyard.request_id") == Some(json!(request_id)))
        .expect("the call's span");
    assert_eq!(ok["name"], "chat mock/echo");
    assert_eq!(ok["kind"], 3, "client");
    assert_eq!(ok["traceId"], trace_id, "inside the caller's trace");
    assert_eq!(ok["parentSpanId"], parent_id);
    assert_eq!(attr(ok, "gen_ai.operation.name"), Some(json!("chat")));
    assert_eq!(attr(ok, "gen_ai.provider.name"), Some(json!("mock")));
    assert_eq!(attr(ok, "gen_ai.request.model"), Some(json!("mock/echo")));
    assert_eq!(attr(ok, "gen_ai.response.model"), Some(json!("echo")));
    let tokens = |k: &str| -> i64 {
        match attr(ok, k).unwrap() {
            Value::String(s) => s.parse().unwrap(),
            v => v.as_i64().unwrap(),
        }
    };
    assert!(tokens("gen_ai.usage.input_tokens") > 0);
    assert_eq!(tokens("gen_ai.usage.output_tokens"), 3);
    assert!(attr(ok, "switchyard.cost_usd").unwrap().as_f64().unwrap() > 0.0);
    let start: u128 = ok["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = ok["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start);
    assert!(
        ok["resource"].to_string().contains("gateway-under-test"),
        "{}",
        ok["resource"]
    );

    let bad = spans
        .iter()
        .find(|s| attr(s, "gen_ai.request.model") == Some(json!("mock/fail-503")))
        .expect("the failed call's span");
    assert_eq!(bad["status"]["code"], 2, "error status: {bad}");
    assert_eq!(attr(bad, "error.type"), Some(json!("upstream_server")));
    assert_ne!(
        bad["traceId"], trace_id,
        "a call without traceparent starts its own trace"
    );
    let emb = spans
        .iter()
        .find(|s| attr(s, "gen_ai.operation.name") == Some(json!("embeddings")))
        .expect("the embedding call's span");
    assert_eq!(emb["name"], "embeddings mock/embed");
}

#[test]
fn a_bad_endpoint_is_refused_with_the_key_named() {
    let dir = common::temp_dir("otel");
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, "[telemetry]\notlp_endpoint = \"collector:4318\"\n").unwrap();
    let (code, _, err) = common::run_cli(
        &["serve", "--validate", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
}
