//! Resumable streams over real HTTP: a caller that loses its connection collects the rest of
//! the answer from `GET /v1/streams/{id}` without a second upstream call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Proc, chat_chunks, client, metrics, mock_requests, sse_data, wait_for_logs};
use futures_util::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "streams-admin-token-0123456789";

fn body(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

/// Starts a stream and reads it until `events` events have come, then drops the connection.
/// Returns the request id, the events' text and the id of the last one.
async fn start_and_drop(
    g: &Proc,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
    events: usize,
) -> (String, String, u64) {
    let mut req = client().post(format!("{}{path}", g.url)).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-resumable"], "true");
    let id = common::request_id(&resp);
    let mut text = String::new();
    let mut bytes = resp.bytes_stream();
    while text.matches("\n\n").count() < events {
        let chunk = bytes.next().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(bytes);
    // Keep whole events only: what a client that lost the connection would have seen.
    let cut = text.match_indices("\n\n").nth(events - 1).unwrap().0 + 2;
    text.truncate(cut);
    let last = last_id(&text);
    (id, text, last)
}

/// The number in the last `id:` line.
fn last_id(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .parse()
        .unwrap()
}

async fn resume(g: &Proc, id: &str, last: Option<u64>, key: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}/v1/streams/{id}", g.url));
    if let Some(n) = last {
        req = req.header("last-event-id", n.to_string());
    }
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

fn words(text: &str) -> usize {
    chat_chunks(&sse_data(text)).1.split_whitespace().count()
}

#[tokio::test]
async fn a_dropped_stream_is_resumed_from_its_last_event_without_a_second_upstream_call() {
    let (g, m) = common::gateway_with_up("", &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)]);
    let before = mock_requests(&m).await;
    let (id, seen, last) = start_and_drop(
        &g,
        "/v1/chat/completions",
        body("up/stream-30+itl-20ms"),
        &[("x-switchyard-resumable", "true")],
        5,
    )
    .await;
    assert_eq!(last, 5);
    // The rest, live: everything after event 5, to [DONE].
    let resp = resume(&g, &id, Some(last), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let rest = resp.text().await.unwrap();
    assert!(rest.starts_with("id: 6\n"), "{rest}");
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    let whole = format!("{seen}{rest}");
    assert_eq!(words(&whole), 30, "{whole}");
    // Event ids run 1, 2, 3… without a gap or a repeat.
    let ids: Vec<u64> = whole
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    // After the end, the whole answer again, at once (`?after=0`).
    let again = common::get_text(format!("{}/v1/streams/{id}?after=0", g.url), None).await;
    assert_eq!(again, whole);
    assert_eq!(
        mock_requests(&m).await - before,
        1,
        "one upstream call in all"
    );

    // The call was logged once, whole, though its first caller left after 5 events; the two
    // reads of the buffer are counted.
    let rows = wait_for_logs(&g.url, "", 1, Some(ADMIN)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["id"], id.as_str(), "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["error_class"].is_null(), "{r}");
    assert_eq!(r["output_tokens"], 30, "{r}");
    let text = metrics(&g.url).await;
    assert!(text.contains("switchyard_stream_resumes_total 2"), "{text}");
    assert!(text.contains("switchyard_streams_producing 0"), "{text}");
}

#[tokio::test]
async fn anthropic_and_responses_streams_resume_in_their_own_protocol() {
    let (g, _m) = common::gateway_with_up("[streams]\nresumable = true\n", &[]);
    let mut messages = body("up/stream-12+itl-20ms");
    messages["max_tokens"] = json!(100);
    let (id, seen, last) = start_and_drop(&g, "/v1/messages", messages, &[], 3).await;
    assert!(seen.contains("event: message_start"), "{seen}");
    let rest = resume(&g, &id, Some(last), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(rest.contains("event: content_block_delta"), "{rest}");
    assert!(
        rest.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{rest}"
    );
    let text: String = sse_data(&format!("{seen}{rest}"))
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text.split_whitespace().count(), 12, "{seen}{rest}");

    let responses = json!({"model": "up/stream-8+itl-20ms", "stream": true, "input": "hi"});
    let (id, _, last) = start_and_drop(&g, "/v1/responses", responses, &[], 2).await;
    let rest = resume(&g, &id, Some(last), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(rest.contains("event: response.completed"), "{rest}");
}

#[tokio::test]
async fn a_stream_is_only_its_keys_and_bad_requests_say_what_to_send() {
    let (g, _m) = common::gateway_with_up("", &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)]);
    let create = |name: &str| {
        let g = &g;
        let name = name.to_owned();
        async move {
            let v: Value = client()
                .post(format!("{}/admin/keys", g.url))
                .bearer_auth(ADMIN)
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["key"].as_str().unwrap().to_owned()
        }
    };
    let (mine, theirs) = (create("mine").await, create("theirs").await);
    let resp = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&mine)
        .header("x-switchyard-resumable", "true")
        .json(&body("up/stream-3"))
        .send()
        .await
        .unwrap();
    let id = common::request_id(&resp);
    let whole = resp.text().await.unwrap();
    let ok = resume(&g, &id, None, Some(&mine)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), whole);
    // Another key, or none, does not learn that it exists.
    let msg = common::error_message(resume(&g, &id, None, Some(&theirs)).await, 404).await;
    assert!(msg.contains("no resumable stream"), "{msg}");
    assert_eq!(resume(&g, &id, None, None).await.status(), 401);
    let bad = client()
        .get(format!("{}/v1/streams/{id}?after=five", g.url))
        .bearer_auth(&mine)
        .send()
        .await
        .unwrap();
    let msg = common::error_message(bad, 400).await;
    assert!(msg.contains("`five` is not an event number"), "{msg}");

    // A stream that was not asked to be resumable is not buffered, and has no `id:` lines.
    let plain = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&mine)
        .json(&body("up/stream-3"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("x-switchyard-resumable").is_none());
    let id = common::request_id(&plain);
    assert!(!plain.text().await.unwrap().contains("id: "));
    assert_eq!(resume(&g, &id, None, Some(&mine)).await.status(), 404);
}

#[tokio::test]
async fn without_detach_a_caller_that_leaves_cancels_the_upstream() {
    let (g, _m) = common::gateway_with_up(
        "[streams]\nresumable = true\ndetach = false\n",
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)],
    );
    let (id, _, last) = start_and_drop(
        &g,
        "/v1/chat/completions",
        body("up/stream-40+itl-50ms"),
        &[],
        3,
    )
    .await;
    // The buffer keeps what was produced until the caller left; it ends there, without [DONE].
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = resume(&g, &id, Some(last), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!rest.contains("[DONE]"), "{rest}");
    let partial: usize = sse_data(&rest)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .map(|t| t.split_whitespace().count())
        .sum();
    assert!(partial < 36, "{rest}");
    let rows = wait_for_logs(&g.url, "", 1, Some(ADMIN)).await;
    let r = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(r["error_class"], "cancelled", "{r}");
}
