//! Routing and resilience end to end: the `switchyard` binary in front of `switchyard mock`,
//! with the mock's fault injection (`fail-S`, `flaky-N`, `chaos-P`, `slow-D`, `truncate-N`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{
    Proc, client, error_message, gateway_with_up, metrics, mock_requests, model_ids, sse_data,
};
use serde_json::{Value, json};

/// A gateway whose provider `up` is an external mock, beside a provider nothing answers for,
/// with `extra` appended to its config.
fn setup(extra: &str) -> (Proc, Proc) {
    let config = format!(
        r#"
[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[retry]
backoff_ms = 5
{extra}
"#
    );
    gateway_with_up(&config, &[])
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

async fn call(g: &Proc, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The value of a metric line that starts with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn fallback_goes_down_the_list_on_each_retryable_failure() {
    let statuses = [408, 409, 429, 500, 502, 503, 504, 529];
    let mut routes = String::new();
    for s in statuses {
        routes.push_str(&format!(
            "[routes.r{s}]\ntargets = [\"up/fail-{s}\", \"up/echo\"]\n"
        ));
    }
    routes.push_str(
        r#"
[routes.down]
targets = ["dead/echo", "up/echo"]
[routes.timeout]
targets = ["up/slow-3s", "up/echo"]
attempt_timeout_ms = 200
[routes.stream]
targets = ["up/truncate-0+stream-5", "up/stream-5"]
[routes.chain]
targets = ["up/fail-500", "up/fail-503", "up/echo"]
"#,
    );
    let (g, m) = setup(&routes);
    for s in statuses {
        let resp = call(&g, chat_body(&format!("r{s}")), &[]).await;
        assert_eq!(resp.status(), 200, "route r{s}");
        assert_eq!(header(&resp, "x-switchyard-attempts"), "2", "route r{s}");
        assert_eq!(header(&resp, "x-switchyard-model"), "echo");
        assert_eq!(header(&resp, "x-switchyard-provider"), "up");
        assert_eq!(header(&resp, "x-switchyard-route"), format!("r{s}"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "hello");
    }

    // A connection refused, and an attempt that outlives its timeout.
    for route in ["down", "timeout"] {
        let started = Instant::now();
        let resp = call(&g, chat_body(route), &[]).await;
        assert_eq!(resp.status(), 200, "{route}");
        assert_eq!(header(&resp, "x-switchyard-attempts"), "2", "{route}");
        assert!(started.elapsed() < Duration::from_secs(2), "{route}");
    }

    // A stream that breaks before its first byte is retried; the caller sees one clean stream.
    let mut body = chat_body("stream");
    body["stream"] = json!(true);
    let resp = call(&g, body, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    assert_eq!(header(&resp, "x-switchyard-model"), "stream-5");
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]", "{text}");
    assert!(!text.contains("error"), "{text}");

    // Order: the mock sees the three targets in turn.
    let before = mock_requests(&m).await;
    let resp = call(&g, chat_body("chain"), &[]).await;
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
    assert_eq!(mock_requests(&m).await - before, 3);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let (g, m) = setup(
        r#"
[routes.bad]
targets = ["up/fail-400", "up/echo"]
"#,
    );
    for status in [400u16, 401, 403, 404, 422] {
        let before = mock_requests(&m).await;
        let resp = call(&g, chat_body(&format!("up/fail-{status}")), &[]).await;
        assert_eq!(header(&resp, "x-switchyard-attempts"), "1", "{status}");
        assert_eq!(mock_requests(&m).await - before, 1, "{status}");
        assert_ne!(resp.status(), 200);
    }
    let resp = call(&g, chat_body("bad"), &[]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
}

#[tokio::test]
async fn a_target_that_refuses_the_request_passes_it_to_the_next() {
    // Under a cost ceiling of $0.001 the expensive model cannot take the call at all; the
    // cheap one can. The refusal is the expensive target's, not the call's.
    let (g, m) = setup(
        r#"
[catalog."up/echo"]
input_per_mtok = 100000.0
output_per_mtok = 100000.0
[catalog."up/slow-1ms"]
input_per_mtok = 0.1
output_per_mtok = 0.1
[routes.priced]
targets = ["up/echo", "up/slow-1ms"]
[routes.dear]
targets = ["up/echo"]
"#,
    );
    let ceiling = [("x-switchyard-max-cost-usd", "0.001")];
    let before = mock_requests(&m).await;
    let resp = call(&g, chat_body("priced"), &ceiling).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "slow-1ms");
    assert_eq!(
        mock_requests(&m).await - before,
        1,
        "the refusing target was not called"
    );
    // When every target refuses, the caller gets the refusal: a 400 naming the ceiling.
    let resp = call(&g, chat_body("dear"), &ceiling).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["param"], "x-switchyard-max-cost-usd",
        "{body}"
    );
    assert_eq!(mock_requests(&m).await - before, 1);
}

#[tokio::test]
async fn a_target_that_asked_to_wait_is_tried_after_the_others_by_later_calls() {
    let (g, m) = setup(
        r#"
[routes.rest]
targets = ["up/ratelimit-5s", "up/echo"]
"#,
    );
    // The first call learns that the first target wants 5 s of rest, and falls back.
    let resp = call(&g, chat_body("rest"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    // The next call goes to the other target first: one attempt, one upstream request.
    let before = mock_requests(&m).await;
    let resp = call(&g, chat_body("rest"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    assert_eq!(mock_requests(&m).await - before, 1);
}

#[tokio::test]
async fn retries_back_off_and_honour_retry_after() {
    let (g, m) = setup("");
    // One target: a 429 asking for 1 s, then an answer. The retry waits the second.
    let started = Instant::now();
    let resp = call(&g, chat_body("up/flaky-1+ratelimit-1s"), &[]).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A deadline shorter than the retry-after: the call fails at once with the 429.
    let started = Instant::now();
    let resp = call(
        &g,
        chat_body("up/ratelimit-5s"),
        &[("x-switchyard-request-timeout", "1000")],
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "5");
    assert!(started.elapsed() < Duration::from_millis(900));
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("deadline"), "{message}");

    // Attempts are bounded: the default (3) and by header.
    let before = mock_requests(&m).await;
    let resp = call(&g, chat_body("up/fail-503"), &[]).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    assert_eq!(mock_requests(&m).await - before, 3);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 attempts failed") && message.contains("[3] up/fail-503"),
        "{message}"
    );
    let resp = call(
        &g,
        chat_body("up/fail-503"),
        &[("x-switchyard-max-attempts", "1")],
    )
    .await;
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");

    // The backoff base comes from the header. With full jitter one wait can be near zero, so
    // look at five calls of one retry each: waits uniform in 0–300 ms, expected 750 ms in all
    // (under 100 ms with odds of about 1 in 30,000); the configured 5 ms base gives at most 25.
    // (A model name per call: five failures of one target would open its circuit.)
    let started = Instant::now();
    for i in 1..=5 {
        call(
            &g,
            chat_body(&format!("up/fail-503+stream-{i}")),
            &[
                ("x-switchyard-retry-backoff", "300"),
                ("x-switchyard-max-attempts", "2"),
            ],
        )
        .await;
    }
    assert!(started.elapsed() >= Duration::from_millis(100));

    // Bad overrides are the caller's error, named.
    let resp = call(
        &g,
        chat_body("up/echo"),
        &[("x-switchyard-max-attempts", "0")],
    )
    .await;
    assert!(
        error_message(resp, 400)
            .await
            .contains("x-switchyard-max-attempts")
    );
}

#[tokio::test]
async fn a_stream_that_fails_after_its_first_byte_is_not_retried() {
    let (g, m) = setup(
        r#"
[routes.midway]
targets = ["up/stream-10+truncate-3", "up/stream-10"]
"#,
    );
    let before = mock_requests(&m).await;
    let mut body = chat_body("midway");
    body["stream"] = json!(true);
    let resp = call(&g, body, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(mock_requests(&m).await - before, 1);
}

#[tokio::test]
async fn a_failing_target_opens_its_circuit_and_recovers_through_a_probe() {
    let (g, m) = setup(
        r#"
[circuit_breaker]
consecutive_failures = 3
cooldown_ms = 700
[routes.guarded]
targets = ["up/flaky-3+fail-500", "up/echo"]
"#,
    );
    let one = [("x-switchyard-max-attempts", "1")];
    // Three failures in a row open the circuit of up/flaky-3+fail-500.
    for _ in 0..3 {
        let resp = call(&g, chat_body("up/flaky-3+fail-500"), &one).await;
        assert_eq!(resp.status(), 502);
    }
    let text = metrics(&g.url).await;
    let state = r#"switchyard_circuit_state{target="up/flaky-3+fail-500"}"#;
    assert_eq!(metric(&text, state), Some(2.0), "{text}");
    assert_eq!(
        metric(
            &text,
            r#"switchyard_circuit_opened_total{target="up/flaky-3+fail-500"}"#
        ),
        Some(1.0),
        "{text}"
    );

    // While open: the target alone fails fast without being called…
    let before = mock_requests(&m).await;
    let resp = call(&g, chat_body("up/flaky-3+fail-500"), &[]).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit is open"),
        "{body}"
    );
    // …and a route skips it.
    let resp = call(&g, chat_body("guarded"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    assert_eq!(mock_requests(&m).await - before, 1);

    // After the cooldown one probe goes through; the target has recovered, so it closes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let resp = call(&g, chat_body("up/flaky-3+fail-500"), &one).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(metric(&metrics(&g.url).await, state), Some(0.0));
    let resp = call(&g, chat_body("guarded"), &[]).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "flaky-3+fail-500");
}

#[tokio::test]
async fn hedging_answers_from_the_second_target_when_the_first_is_slow() {
    let (g, _m) = setup(
        r#"
[routes.hedged]
targets = ["up/slow-2s", "up/echo"]
hedge = 150
[routes.plain]
targets = ["up/slow-2s", "up/echo"]
"#,
    );
    let started = Instant::now();
    let resp = call(&g, chat_body("hedged"), &[]).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
    assert_eq!(header(&resp, "x-switchyard-hedged"), "true");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // Without hedging the same route waits for the slow target.
    let started = Instant::now();
    let resp = call(&g, chat_body("plain"), &[]).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "slow-2s");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Streams hedge on the first byte.
    let mut body = chat_body("hedged");
    body["stream"] = json!(true);
    let resp = call(&g, body, &[]).await;
    assert_eq!(header(&resp, "x-switchyard-hedged"), "true");
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    let text = metrics(&g.url).await;
    assert_eq!(
        metric(&text, r#"switchyard_hedges_total{route="hedged"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"switchyard_hedge_wins_total{route="hedged"}"#),
        Some(2.0),
        "{text}"
    );
    // Both attempts are counted: the slow ones as cancelled.
    assert_eq!(
        metric(
            &text,
            r#"switchyard_upstream_attempts_total{target="up/slow-2s",outcome="cancelled"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

/// Counts which model answered each of `n` calls.
async fn spread(g: &Proc, route: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let resp = call(g, chat_body(route), &[]).await;
        assert_eq!(resp.status(), 200);
        *seen.entry(header(&resp, "x-switchyard-model")).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn weighted_and_least_latency_routes_spread_calls_as_configured() {
    let (g, _m) = setup(
        r#"
[routes.canary]
strategy = "weighted"
targets = [{ model = "up/echo", weight = 9 }, { model = "up/ttft-1ms", weight = 1 }]
[routes.quick]
strategy = "least-latency"
explore = 0.0
targets = ["up/slow-60ms", "up/echo"]
"#,
    );
    let seen = spread(&g, "canary", 400).await;
    let canary = seen.get("ttft-1ms").copied().unwrap_or(0);
    // 10% expected: 40 of 400; allow 4.5 standard deviations (6 calls each).
    assert!((13..=67).contains(&canary), "{seen:?}");

    let seen = spread(&g, "quick", 60).await;
    let slow = seen.get("slow-60ms").copied().unwrap_or(0);
    // The slow target is measured once, then loses every pairing.
    assert!(slow <= 2, "{seen:?}");
}

#[tokio::test]
async fn lowest_cost_routes_pick_the_cheapest_model_that_supports_the_request() {
    let (g, _m) = setup(
        r#"
[catalog."up/echo"]
input_per_mtok = 2.5
output_per_mtok = 10.0
[catalog."up/ttft-1ms"]
input_per_mtok = 0.05
output_per_mtok = 0.08
vision = false
[routes.thrifty]
strategy = "lowest-cost"
targets = ["up/echo", "up/ttft-1ms"]
"#,
    );
    let resp = call(&g, chat_body("thrifty"), &[]).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "ttft-1ms");
    let vision = json!({"model": "thrifty", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    let resp = call(&g, vision, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
}

#[tokio::test]
async fn metadata_rules_and_the_route_header_choose_the_route() {
    let (g, _m) = setup(
        r#"
[routes.main]
targets = ["up/echo"]
[[routes.main.when]]
metadata = { tier = "free" }
route = "cheap"
[routes.cheap]
targets = ["up/ttft-1ms"]
"#,
    );
    let resp = call(&g, chat_body("main"), &[]).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "echo");
    let mut body = chat_body("main");
    body["metadata"] = json!({"tier": "free"});
    let resp = call(&g, body, &[]).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "ttft-1ms");
    assert_eq!(header(&resp, "x-switchyard-route"), "cheap");
    let resp = call(
        &g,
        chat_body("main"),
        &[("x-switchyard-metadata", r#"{"tier":"free"}"#)],
    )
    .await;
    assert_eq!(header(&resp, "x-switchyard-model"), "ttft-1ms");
    let resp = call(
        &g,
        chat_body("anything"),
        &[("x-switchyard-route", "up/stream-2")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "stream-2");
    // Routes are listed as models.
    let ids = model_ids(&g.url).await;
    assert!(
        ids.iter().any(|i| i == "main") && ids.iter().any(|i| i == "cheap"),
        "{ids:?}"
    );
}

/// Two targets that each fail a random 30% of calls (503s, reset connections, hangs), 2000
/// calls through a fallback route: at least 99.5% succeed, every failure says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_two_flaky_targets_behind_a_fallback_route() {
    let (g, _m) = setup(
        r#"
# At a 30% failure rate, five failures in a row (the default threshold) are expected within
# 2000 calls, and the breaker would rightly open; this test is about retries and fallback.
[circuit_breaker]
consecutive_failures = 10
[routes.sturdy]
targets = ["up/chaos-30", "up/chaos-30+echo"]
max_attempts = 6
attempt_timeout_ms = 300
deadline_ms = 10000
"#,
    );
    const CALLS: usize = 2000;
    const CONCURRENCY: usize = 48;
    let started = Instant::now();
    let client = client();
    let url = format!("{}/v1/chat/completions", g.url);
    let results: Vec<(bool, String)> = futures_util::stream::iter(0..CALLS)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let mut body = chat_body("sturdy");
                let stream = i % 4 == 0;
                if stream {
                    body["stream"] = json!(true);
                }
                let resp = client.post(&url).json(&body).send().await.unwrap();
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let ok = status == 200
                    && if stream {
                        text.ends_with("data: [DONE]\n\n") && !text.contains("\"error\"")
                    } else {
                        text.contains("\"content\":\"hello\"")
                    };
                (ok, text)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let failures: Vec<&String> = results.iter().filter(|r| !r.0).map(|r| &r.1).collect();
    let ok = CALLS - failures.len();
    eprintln!("chaos: {ok}/{CALLS} succeeded in {:?}", started.elapsed());
    for f in failures.iter().take(5) {
        eprintln!("chaos: a failed call answered {f}");
    }
    assert!(ok * 1000 >= CALLS * 995, "{ok}/{CALLS}: {failures:?}");
    for f in failures {
        let v: Value = serde_json::from_str(f).unwrap_or_else(|_| panic!("unexplained: {f}"));
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("up/chaos-30"), "unexplained: {f}");
    }
}

use futures_util::StreamExt;
