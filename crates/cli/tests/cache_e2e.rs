//! The response cache end to end: a separate mock process counts the calls that reach the
//! provider, so every claim ("served without a provider call") is checked where it matters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Proc, client, error_message, gateway_with_up, get_text, metrics, mock_requests, sse_data,
    wait_for_logs,
};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-cache-0123456789";

/// A gateway in front of its own mock (`up/…`); `up/echo` is cached for ten minutes and priced.
fn setup(extra: &str) -> (Proc, Proc) {
    let config = format!(
        r#"
[catalog."up/echo"]
input_per_mtok = 1000.0
output_per_mtok = 2000.0
[cache.models]
"up/echo" = "10m"
"up/slow-300ms" = true
"up/slow-300ms+fail-503" = true
{extra}
"#
    );
    gateway_with_up(&config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)])
}

async fn post(g: &Proc, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn cache_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-switchyard-cache")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Calls and returns (cache header, body).
async fn call(g: &Proc, body: &Value, headers: &[(&str, &str)]) -> (Option<String>, Value) {
    let resp = post(g, body, headers).await;
    assert_eq!(resp.status(), 200);
    let status = cache_header(&resp);
    (status, resp.json().await.unwrap())
}

/// Streams and returns (cache header, the `data:` payloads).
async fn stream(g: &Proc, body: &Value, headers: &[(&str, &str)]) -> (Option<String>, Vec<String>) {
    let resp = post(g, body, headers).await;
    assert_eq!(resp.status(), 200);
    let status = cache_header(&resp);
    (status, sse_data(&resp.text().await.unwrap()))
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn streamed(mut body: Value, usage: bool) -> Value {
    body["stream"] = json!(true);
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The text and usage a stream's payloads carry.
fn stream_text(events: &[String]) -> (String, Option<Value>) {
    let mut text = String::new();
    let mut usage = None;
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        for c in v["choices"].as_array().unwrap() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or_default());
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    (text, usage)
}

#[tokio::test]
async fn identical_requests_are_served_from_the_cache_and_the_headers_steer_it() {
    let (g, m) = setup("");
    let hello = ask("up/echo", "hello cache");

    // A miss reaches the provider; the same request again does not, and gets the same answer.
    let (status, first) = call(&g, &hello, &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    let resp = post(&g, &hello, &[]).await;
    assert_eq!(cache_header(&resp).as_deref(), Some("HIT"));
    assert_eq!(resp.headers()["x-switchyard-provider"], "up");
    assert!(resp.headers().contains_key("x-switchyard-cache-age"));
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(mock_requests(&m).await, 1);

    // Who asks (`user`, metadata) is not part of the key; what is asked is.
    let mut tagged = hello.clone();
    tagged["user"] = json!("someone-else");
    tagged["metadata"] = json!({"team": "b"});
    let (status, _) = call(&g, &tagged, &[("x-switchyard-metadata", r#"{"x":"y"}"#)]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    let mut warmer = hello.clone();
    warmer["temperature"] = json!(0.9);
    assert_eq!(call(&g, &warmer, &[]).await.0.as_deref(), Some("MISS"));
    let (status, other) = call(&g, &ask("up/echo", "another question"), &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    assert_eq!(
        other["choices"][0]["message"]["content"],
        "another question"
    );
    assert_eq!(mock_requests(&m).await, 3);

    // skip-cache: true neither reads nor writes; refresh asks the provider and stores.
    let (status, _) = call(&g, &hello, &[("x-switchyard-skip-cache", "true")]).await;
    assert_eq!(status.as_deref(), Some("BYPASS"));
    assert_eq!(mock_requests(&m).await, 4);
    let (status, _) = call(&g, &hello, &[("x-switchyard-skip-cache", "refresh")]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    assert_eq!(mock_requests(&m).await, 5);
    let (status, refreshed) = call(&g, &hello, &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_ne!(
        refreshed["id"], first["id"],
        "the refreshed answer replaced the old one"
    );

    // A model the configuration does not cache: no header, every call reaches the provider.
    let plain = ask("up/stream-3", "not cached");
    let resp = post(&g, &plain, &[]).await;
    assert_eq!(cache_header(&resp), None);
    let before = mock_requests(&m).await;
    post(&g, &plain, &[]).await;
    assert_eq!(mock_requests(&m).await, before + 1);

    // The ttl header turns caching on for a call, for that long; 0 turns it off.
    let timed = ask("up/stream-3", "cached for a second");
    let ttl = [("x-switchyard-cache-ttl", "1")];
    assert_eq!(call(&g, &timed, &ttl).await.0.as_deref(), Some("MISS"));
    assert_eq!(call(&g, &timed, &ttl).await.0.as_deref(), Some("HIT"));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        call(&g, &timed, &ttl).await.0.as_deref(),
        Some("MISS"),
        "expired"
    );
    let (status, _) = call(&g, &hello, &[("x-switchyard-cache-ttl", "0")]).await;
    assert_eq!(status.as_deref(), Some("BYPASS"));

    // A caller-chosen key: different requests under one key share the answer.
    let keyed = [("x-switchyard-cache-key", "faq-17")];
    let (status, a) = call(&g, &ask("up/stream-3", "first wording"), &keyed).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    let (status, b) = call(&g, &ask("up/stream-3", "second wording"), &keyed).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_eq!(a, b);

    // Malformed headers are a 400 that names them.
    for (name, value) in [
        ("x-switchyard-cache-ttl", "soon"),
        ("x-switchyard-cache-ttl", "-1"),
        ("x-switchyard-skip-cache", "maybe"),
        ("x-switchyard-cache-key", &"k".repeat(300)),
    ] {
        let msg = error_message(post(&g, &hello, &[(name, value)]).await, 400).await;
        assert!(msg.contains(name), "{msg}");
    }

    // The log: a hit cost nothing and records what it saved; analytics and metrics count it.
    let hits = wait_for_logs(&g.url, "model=up/echo", 7, Some(ADMIN)).await;
    let hit = hits
        .iter()
        .find(|r| r["cache"] == "hit")
        .expect("a hit in the log");
    assert_eq!(hit["cost_usd"], 0.0);
    assert!(hit["saved_usd"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(hits.iter().any(|r| r["cache"] == "miss"));
    assert!(hits.iter().any(|r| r["cache"] == "bypass"));
    let analytics: Value = serde_json::from_str(
        &get_text(
            format!("{}/admin/analytics?group_by=cache&bucket=1d", g.url),
            Some(ADMIN),
        )
        .await,
    )
    .unwrap();
    let cells = analytics["data"].as_array().unwrap();
    let hit_cell = cells.iter().find(|c| c["group"] == "hit").unwrap();
    assert!(hit_cell["cache_hits"].as_u64().unwrap() >= 3, "{analytics}");
    assert!(hit_cell["saved_usd"].as_f64().unwrap() > 0.0, "{analytics}");
    assert_eq!(hit_cell["cost_usd"], 0.0);
    let text = metrics(&g.url).await;
    assert!(
        text.contains("switchyard_cache_lookups_total{status=\"hit\"}"),
        "{text}"
    );
    assert!(text.contains("switchyard_cache_entries"), "{text}");
}

#[tokio::test]
async fn streams_are_recorded_and_replayed_with_the_same_framing() {
    let (g, m) = setup("");
    let body = streamed(ask("up/echo", "one two three four"), true);

    let (status, original) = stream(&g, &body, &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    let (status, replayed) = stream(&g, &body, &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    // Chunk for chunk, byte for byte, usage chunk and [DONE] included.
    assert_eq!(replayed, original);
    assert_eq!(original.last().map(String::as_str), Some("[DONE]"));
    let (text, usage) = stream_text(&original);
    assert_eq!(text, "one two three four");
    let usage = usage.expect("the final usage chunk");

    // The recorded stream serves a plain request as one whole answer…
    let (status, whole) = call(&g, &ask("up/echo", "one two three four"), &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], text);
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["usage"], usage);
    // …and a stream that did not ask for usage gets none.
    let (status, no_usage) = stream(
        &g,
        &streamed(ask("up/echo", "one two three four"), false),
        &[],
    )
    .await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_eq!(stream_text(&no_usage), (text.clone(), None));

    // A whole answer serves a stream, with the final usage chunk.
    let (status, answer) = call(&g, &ask("up/echo", "recorded whole"), &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    let (status, events) = stream(&g, &streamed(ask("up/echo", "recorded whole"), true), &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let (text, usage) = stream_text(&events);
    assert_eq!(text, "recorded whole");
    assert_eq!(usage, Some(answer["usage"].clone()));
    assert_eq!(mock_requests(&m).await, 2);

    // The Anthropic surface is served from the same cache, in its own shape.
    let messages = json!({"model": "up/echo", "max_tokens": 64, "messages": [{"role": "user", "content": "via anthropic"}]});
    let anthropic = |stream: bool| {
        let mut b = messages.clone();
        b["stream"] = json!(stream);
        client()
            .post(format!("{}/v1/messages", g.url))
            .json(&b)
            .send()
    };
    let resp = anthropic(false).await.unwrap();
    assert_eq!(cache_header(&resp).as_deref(), Some("MISS"));
    let first: Value = resp.json().await.unwrap();
    let resp = anthropic(false).await.unwrap();
    assert_eq!(cache_header(&resp).as_deref(), Some("HIT"));
    let second: Value = resp.json().await.unwrap();
    assert_eq!(second, first);
    assert_eq!(first["content"][0]["text"], "via anthropic");
    let resp = anthropic(true).await.unwrap();
    assert_eq!(cache_header(&resp).as_deref(), Some("HIT"));
    let events = resp.text().await.unwrap();
    assert!(events.contains("event: message_stop"), "{events}");
    assert_eq!(mock_requests(&m).await, 3);
}

#[tokio::test]
async fn identical_concurrent_calls_reach_the_provider_once() {
    let (g, m) = setup("");
    let body = ask("up/slow-300ms", "all at once");
    let calls = (0..20).map(|i| {
        let body = if i % 2 == 0 {
            body.clone()
        } else {
            streamed(body.clone(), true)
        };
        let g = &g;
        async move {
            let resp = post(g, &body, &[]).await;
            assert_eq!(resp.status(), 200);
            let status = cache_header(&resp).unwrap();
            let text = if i % 2 == 0 {
                let v: Value = resp.json().await.unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                stream_text(&sse_data(&resp.text().await.unwrap())).0
            };
            (status, text)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(
        mock_requests(&m).await,
        1,
        "one upstream call for 20 callers"
    );
    assert_eq!(results.iter().filter(|(s, _)| s == "MISS").count(), 1);
    assert_eq!(results.iter().filter(|(s, _)| s == "HIT").count(), 19);
    assert!(
        results.iter().all(|(_, t)| t == "all at once"),
        "{results:?}"
    );

    // Followers of a call that fails share its failure rather than each trying again.
    let failing = ask("up/slow-300ms+fail-503", "doomed");
    let calls = (0..5).map(|_| {
        let g = &g;
        let failing = &failing;
        async move {
            post(g, failing, &[("x-switchyard-max-attempts", "1")])
                .await
                .status()
                .as_u16()
        }
    });
    let before = mock_requests(&m).await;
    let statuses = futures_util::future::join_all(calls).await;
    // The gateway answers an upstream 503 with its own 502, the same for all five.
    assert_eq!(statuses, vec![502; 5]);
    assert_eq!(mock_requests(&m).await, before + 1);
}

#[tokio::test]
async fn a_follower_waits_no_longer_than_its_own_deadline() {
    let (g, m) = setup("\"up/slow-1s\" = true");
    let slow = ask("up/slow-1s", "patience differs");
    let before = mock_requests(&m).await;
    let leader = post(&g, &slow, &[]);
    let follower = async {
        // Well after the leader started, well before it ends.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        post(&g, &slow, &[("x-switchyard-request-timeout", "200")]).await
    };
    let (leader, follower) = tokio::join!(leader, follower);
    assert_eq!(leader.status(), 200);
    // It joined the leader's call (one upstream request in all) and gave up at its deadline;
    // had it waited for the leader, it would have had its answer.
    assert_eq!(follower.status(), 504);
    assert_eq!(mock_requests(&m).await - before, 1);
}

#[tokio::test]
async fn tenants_do_not_see_each_others_answers() {
    let (g, m) = setup("");
    let create = |body: Value| {
        let g = &g;
        async move {
            let resp = client()
                .post(format!("{}/admin/keys", g.url))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["key"].as_str().unwrap().to_owned()
        }
    };
    let alice = create(json!({"name": "alice"})).await;
    let bob = create(json!({"name": "bob"})).await;
    let team1 = create(json!({"name": "team one", "cache_namespace": "team"})).await;
    let team2 = create(json!({"name": "team two", "cache_namespace": "team"})).await;
    let bad = client()
        .post(format!("{}/admin/keys", g.url))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bad", "cache_namespace": "no spaces"}))
        .send()
        .await
        .unwrap();
    assert!(error_message(bad, 400).await.contains("cache_namespace"));

    let body = ask("up/echo", "private question");
    let as_key = |key: &str| {
        let body = &body;
        let g = &g;
        let key = key.to_owned();
        async move {
            let resp = client()
                .post(format!("{}/v1/chat/completions", g.url))
                .bearer_auth(key)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            cache_header(&resp).unwrap()
        }
    };
    // Each key has its own namespace by default…
    assert_eq!(as_key(&alice).await, "MISS");
    assert_eq!(as_key(&bob).await, "MISS");
    assert_eq!(as_key(&alice).await, "HIT");
    // …and keys naming the same group share theirs, with nobody else.
    assert_eq!(as_key(&team1).await, "MISS");
    assert_eq!(as_key(&team2).await, "HIT");
    assert_eq!(mock_requests(&m).await, 3);
}

#[tokio::test]
async fn the_cache_stays_within_its_size_bound() {
    // 1 MiB of answers at most; the echo mock answers with the prompt, about 8 KiB each.
    let (g, _m) = setup("[cache]\nmax_mb = 1");
    let filler = "x".repeat(8 * 1024);
    for i in 0..300 {
        let (status, _) = call(&g, &ask("up/echo", &format!("{i} {filler}")), &[]).await;
        assert_eq!(status.as_deref(), Some("MISS"));
    }
    let text = metrics(&g.url).await;
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .parse()
            .unwrap()
    };
    let (bytes, max) = (
        gauge("switchyard_cache_bytes"),
        gauge("switchyard_cache_max_bytes"),
    );
    assert_eq!(max, 1024 * 1024);
    assert!(bytes <= max, "{bytes} > {max}");
    assert!(bytes > max / 2, "the cache holds what fits: {bytes}");
    let entries = gauge("switchyard_cache_entries");
    assert!((60..300).contains(&entries), "{entries}");
    // The newest answer is still there.
    let (status, _) = call(&g, &ask("up/echo", &format!("299 {filler}")), &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
}

#[tokio::test]
async fn similar_questions_are_served_from_the_semantic_cache() {
    // The mock's embeddings are bags of words: the same words in another case or order embed
    // the same; sharing some words gives a middling similarity.
    let (g, m) = setup(
        r#"
[cache.semantic]
embedding_model = "up/embed"
dimensions = 256
threshold = 0.95
models = ["up/echo"]
"#,
    );
    let q = |text: &str| ask("up/echo", text);

    let (status, first) = call(&g, &q("What is the capital of France?"), &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    assert_eq!(mock_requests(&m).await, 2, "an embedding and the answer");

    let resp = post(&g, &q("what is the capital of france"), &[]).await;
    assert_eq!(cache_header(&resp).as_deref(), Some("SEMANTIC-HIT"));
    let similarity: f64 = resp.headers()["x-switchyard-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(similarity >= 0.95, "{similarity}");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer, first, "the stored answer, as it was");
    assert_eq!(mock_requests(&m).await, 3, "only the embedding");

    // Served as a stream too.
    let (status, events) = stream(
        &g,
        &streamed(q("capital of France: what is the"), true),
        &[],
    )
    .await;
    assert_eq!(status.as_deref(), Some("SEMANTIC-HIT"));
    assert_eq!(stream_text(&events).0, "What is the capital of France?");

    // Not similar enough, another system prompt, or a hot temperature: the provider answers.
    let (status, other) = call(&g, &q("Tell me the capital of France please"), &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    assert_eq!(
        other["choices"][0]["message"]["content"],
        "Tell me the capital of France please"
    );
    let with_system = json!({"model": "up/echo", "messages": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "what is the capital of france"}
    ]});
    assert_eq!(call(&g, &with_system, &[]).await.0.as_deref(), Some("MISS"));
    let before = mock_requests(&m).await;
    let mut hot = q("what is the capital of France");
    hot["temperature"] = json!(1.5);
    assert_eq!(call(&g, &hot, &[]).await.0.as_deref(), Some("MISS"));
    assert_eq!(
        mock_requests(&m).await,
        before + 1,
        "no embedding for a call the guard keeps exact"
    );

    // A model not listed for the semantic cache is cached exactly only.
    let ttl = [("x-switchyard-cache-ttl", "60")];
    assert_eq!(
        call(
            &g,
            &ask("up/stream-3", "Which river runs through Paris?"),
            &ttl
        )
        .await
        .0
        .as_deref(),
        Some("MISS")
    );
    assert_eq!(
        call(
            &g,
            &ask("up/stream-3", "which river runs through paris"),
            &ttl
        )
        .await
        .0
        .as_deref(),
        Some("MISS")
    );

    // The log: a semantic hit cost nothing and saved the answer's price.
    let rows = wait_for_logs(&g.url, "model=up/echo", 6, Some(ADMIN)).await;
    let hit = rows
        .iter()
        .find(|r| r["cache"] == "semantic_hit")
        .expect("a semantic hit in the log");
    assert_eq!(hit["cost_usd"], 0.0);
    assert!(hit["saved_usd"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(
        metrics(&g.url)
            .await
            .contains("switchyard_cache_semantic_entries")
    );
}

#[tokio::test]
async fn replicas_share_answers_through_redis() {
    let Ok(redis) = std::env::var("SWITCHYARD_TEST_REDIS") else {
        eprintln!(
            "\n*** SKIPPED replicas_share_answers_through_redis: SWITCHYARD_TEST_REDIS is not set.\n*** Run .ci/run, or set it to e.g. redis://127.0.0.1:6379.\n"
        );
        return;
    };
    // Two gateways on one Redis, in front of one mock. Redis outlives test runs: the question
    // is new each time.
    let m = common::mock();
    let config = format!(
        r#"
[providers.up]
kind = "openai"
base_url = "{}/v1"
[cache]
redis_url = "{redis}"
[cache.models]
"up/echo" = "1m"
"#,
        m.url
    );
    let a = common::gateway(&config, &[]);
    let b = common::gateway(&config, &[]);
    let nonce = format!("{:?}-{}", std::time::SystemTime::now(), std::process::id());
    let body = ask("up/echo", &format!("shared across replicas {nonce}"));

    let (status, first) = call(&a, &body, &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    // The write goes out in the background; the other replica sees it shortly.
    let mut seen = None;
    for _ in 0..50 {
        let resp = post(&b, &body, &[]).await;
        if cache_header(&resp).as_deref() == Some("HIT") {
            assert_eq!(resp.headers()["x-switchyard-provider"], "up");
            seen = Some(resp.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.as_ref(), Some(&first), "replica b served a's answer");
    // Streamed from the shared entry, too.
    let (status, events) = stream(&b, &streamed(body.clone(), true), &[]).await;
    assert_eq!(status.as_deref(), Some("HIT"));
    assert_eq!(
        stream_text(&events).0,
        format!("shared across replicas {nonce}")
    );
    let upstream = mock_requests(&m).await;
    assert!(upstream <= 2, "{upstream} upstream calls");

    // A malformed URL stops the start with a message that says what to do…
    let (code, _, err) = common::run_cli(
        &[
            "serve",
            "--validate",
            "--config",
            write_config("[cache]\nredis_url = \"http://nope\"\n")
                .to_str()
                .unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cache.redis_url"), "{err}");
    // …but a Redis that is not there does not: the gateway starts, says so, and calls miss.
    let gone = common::gateway(
        &format!(
            "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n[cache]\nredis_url = \"redis://127.0.0.1:1\"\n[cache.models]\n\"up/echo\" = \"1m\"\n",
            m.url
        ),
        &[],
    );
    let (status, _) = call(&gone, &body, &[]).await;
    assert_eq!(status.as_deref(), Some("MISS"));
    assert!(
        gone.stderr_text().contains("Redis failed"),
        "{}",
        gone.stderr_text()
    );
}

fn write_config(text: &str) -> std::path::PathBuf {
    let path = common::temp_dir("cachecfg").join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_call_a_rule_sends_elsewhere_keeps_its_own_answers() {
    let (g, _m) = setup(
        r#"
"mock/echo" = "10m"
[routes.smart]
targets = ["up/echo"]
cache = "10m"
[[routes.smart.when]]
metadata = { tier = "free" }
route = "mock/echo"
"#,
    );
    let body = ask("smart", "which provider answers this?");
    let provider = |resp: &reqwest::Response| {
        resp.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // The free tier's call goes to the mock by the rule, and is cached there.
    let free = [("x-switchyard-metadata", r#"{"tier":"free"}"#)];
    let resp = post(&g, &body, &free).await;
    assert_eq!(
        (provider(&resp), cache_header(&resp).as_deref()),
        ("mock".to_owned(), Some("MISS"))
    );
    // The same request from the paid tier is the route's own call: not the free tier's answer.
    let paid = [("x-switchyard-metadata", r#"{"tier":"paid"}"#)];
    let resp = post(&g, &body, &paid).await;
    assert_eq!(
        (provider(&resp), cache_header(&resp).as_deref()),
        ("up".to_owned(), Some("MISS"))
    );
    // Each is then served its own cached answer.
    let resp = post(&g, &body, &free).await;
    assert_eq!(
        (provider(&resp), cache_header(&resp).as_deref()),
        ("mock".to_owned(), Some("HIT"))
    );
    let resp = post(&g, &body, &[]).await;
    assert_eq!(
        (provider(&resp), cache_header(&resp).as_deref()),
        ("up".to_owned(), Some("HIT"))
    );
}
