//! Request logs end to end: what a call leaves behind in `/admin/logs`, `/admin/analytics` and
//! `/metrics`, for plain, streamed, retried and failed calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{PRICED_WITH_RETRY, Proc, client, gateway_on, metrics, temp_dir, wait_for_logs};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-logs-0123456789";

async fn admin_get(g: &Proc, path: &str) -> Value {
    let resp = client()
        .get(format!("{}{path}", g.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn chat(g: &Proc, body: Value, metadata: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&body);
    if let Some(m) = metadata {
        req = req.header("x-switchyard-metadata", m);
    }
    req.send().await.unwrap()
}

/// Waits until the writer has stored at least `n` records matching `query`.
async fn logs(g: &Proc, query: &str, n: usize) -> Vec<Value> {
    wait_for_logs(&g.url, query, n, Some(ADMIN)).await
}

#[tokio::test]
async fn every_call_leaves_a_faithful_record() {
    let data = temp_dir("logs").join("data");
    let g = gateway_on(
        PRICED_WITH_RETRY,
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)],
        &data,
    );
    let hello = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});

    // Plain, with metadata.
    let resp = chat(
        &g,
        hello("mock/echo"),
        Some(r#"{"team":"search","user":"ann"}"#),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = common::request_id(&resp);
    let body: Value = resp.json().await.unwrap();
    let usage = body["usage"].clone();
    // Streamed.
    let mut streamed = hello("mock/stream-5");
    streamed["stream"] = json!(true);
    let resp = chat(&g, streamed, None).await;
    let stream_id = common::request_id(&resp);
    resp.text().await.unwrap();
    // Retried through a route, and a failure.
    assert_eq!(chat(&g, hello("sturdy"), None).await.status(), 200);
    assert_eq!(chat(&g, hello("mock/fail-400"), None).await.status(), 400);

    let rows = logs(&g, "", 4).await;
    assert_eq!(rows.len(), 4);

    // The plain call: tokens as the caller saw them, cost at the configured prices.
    let one = admin_get(&g, &format!("/admin/logs/{id}")).await;
    assert_eq!(one["requested_model"], "mock/echo");
    assert_eq!(
        (one["provider"].as_str(), one["model"].as_str()),
        (Some("mock"), Some("echo"))
    );
    assert_eq!(one["status"], 200);
    assert_eq!(one["input_tokens"], usage["prompt_tokens"]);
    assert_eq!(one["output_tokens"], usage["completion_tokens"]);
    let expected = usage["prompt_tokens"].as_f64().unwrap() * 1000.0 / 1e6
        + usage["completion_tokens"].as_f64().unwrap() * 2000.0 / 1e6;
    assert!(
        (one["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{one}"
    );
    assert_eq!(one["price_source"], "configuration");
    assert_eq!(one["metadata"]["team"], "search");
    assert_eq!(one["client"], "127.0.0.1");
    assert_eq!(one["attempts"].as_array().unwrap().len(), 1);

    // The stream: its usage came at the end; an unpriced model has a null cost, not zero.
    let s = admin_get(&g, &format!("/admin/logs/{stream_id}")).await;
    assert_eq!(s["stream"], true);
    assert_eq!(s["output_tokens"], 5);
    assert!(s["ttft_ms"].is_u64());
    assert!(s["cost_usd"].is_null());
    assert!(s["error_class"].is_null(), "{s}");

    // The retried call lists both attempts.
    let retried = logs(&g, "model=sturdy", 1).await;
    let attempts = retried[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{}", retried[0]);
    assert_eq!(attempts[0]["target"], "mock/fail-503");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["outcome"], "ok");
    assert_eq!(retried[0]["route"], "sturdy");

    // Filters and pages.
    let failed = logs(&g, "errors=true", 1).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], 400);
    assert_eq!(logs(&g, "metadata=team:search", 1).await.len(), 1);
    let page = admin_get(&g, "/admin/logs?limit=3").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = admin_get(&g, &format!("/admin/logs?limit=3&cursor={cursor}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    // Analytics add up to the raw records.
    let a = admin_get(&g, "/admin/analytics?group_by=provider&bucket=1d").await;
    let cells = a["data"].as_array().unwrap();
    let requests: u64 = cells.iter().map(|c| c["requests"].as_u64().unwrap()).sum();
    let errors: u64 = cells.iter().map(|c| c["errors"].as_u64().unwrap()).sum();
    let input: u64 = cells
        .iter()
        .map(|c| c["input_tokens"].as_u64().unwrap())
        .sum();
    let raw_input: u64 = rows
        .iter()
        .map(|r| r["input_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!((requests, errors, input), (4, 1, raw_input));

    // Metrics count the calls and the writer.
    let text = metrics(&g.url).await;
    assert!(
        text.contains(
            r#"switchyard_requests_total{surface="chat",provider="mock",status="2xx"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains("switchyard_request_duration_seconds_bucket"));
    assert!(
        text.contains("switchyard_log_records_written_total 4"),
        "{text}"
    );
    assert!(text.contains("switchyard_log_records_dropped_total 0"));
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn queued_records_are_written_on_shutdown() {
    let data = temp_dir("logflush").join("data");
    let g = gateway_on("", &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)], &data);
    for _ in 0..20 {
        let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(chat(&g, body, None).await.status(), 200);
    }
    // SIGTERM right away: the writer may still hold records; they are flushed before exit.
    let pid = g.pid().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut g = g;
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let g = gateway_on("", &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)], &data);
    assert_eq!(logs(&g, "", 20).await.len(), 20);
}

#[tokio::test]
async fn bodies_are_recorded_only_when_configured_and_with_secrets_redacted() {
    let data = temp_dir("bodies").join("data");
    let config = r#"
[logs]
bodies = "full"
[routes.quiet]
targets = ["mock/echo"]
log_bodies = "none"
"#;
    let g = gateway_on(config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)], &data);
    let secret = "sk-proj-PLANTEDsecret0123456789abcdef";
    let say = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": format!("my key is {secret}")}]});
    let full = chat(&g, say("mock/echo"), Some(r#"{"team":"a"}"#)).await;
    let full_id = common::request_id(&full);
    assert!(
        full.text().await.unwrap().contains(secret),
        "the caller gets its answer as is"
    );
    let mut streamed = say("mock/echo");
    streamed["stream"] = json!(true);
    let s = chat(&g, streamed, None).await;
    let stream_id = common::request_id(&s);
    s.text().await.unwrap();
    let opted_out = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .header("x-switchyard-log-bodies", "none")
        .header("x-switchyard-metadata", r#"{"team":"b"}"#)
        .json(&say("mock/echo"))
        .send()
        .await
        .unwrap();
    let opted_out_id = common::request_id(&opted_out);
    let quiet = chat(&g, say("quiet"), None).await;
    let quiet_id = common::request_id(&quiet);
    logs(&g, "", 4).await;

    let rec = admin_get(&g, &format!("/admin/logs/{full_id}")).await;
    assert_eq!(rec["bodies"], "full");
    let text = rec.to_string();
    assert!(!text.contains(secret), "{text}");
    assert_eq!(
        rec["request"]["messages"][0]["content"],
        "my key is [REDACTED:openai_key]"
    );
    assert_eq!(
        rec["response"]["choices"][0]["message"]["content"],
        "my key is [REDACTED:openai_key]"
    );
    let rec = admin_get(&g, &format!("/admin/logs/{stream_id}")).await;
    assert_eq!(
        rec["response"]["content"],
        "my key is [REDACTED:openai_key]"
    );

    for id in [opted_out_id, quiet_id] {
        let rec = admin_get(&g, &format!("/admin/logs/{id}")).await;
        assert_eq!(rec["bodies"], "none", "{rec}");
        assert!(rec.get("request").is_none() && rec.get("response").is_none());
        assert_eq!(rec["metadata"], json!({}));
        // Still counted: tokens are there.
        assert!(rec["input_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn logging_can_be_turned_off() {
    let data = temp_dir("nolog").join("data");
    let g = gateway_on(
        "[logs]\nenabled = false\n",
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)],
        &data,
    );
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(chat(&g, body, None).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let page = admin_get(&g, "/admin/logs").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
    let text = metrics(&g.url).await;
    assert!(
        text.contains(
            r#"switchyard_requests_total{surface="chat",provider="mock",status="2xx"} 1"#
        )
    );
}
