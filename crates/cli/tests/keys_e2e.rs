//! Virtual keys end to end: the `switchyard keys` command, the admin API, authentication on both
//! surfaces, allow-lists, key metadata, persistence across restarts, and no secret in any output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Proc, client, error_message, gateway_at, gateway_on, model_ids_for, run_cli, temp_dir,
};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789abcdef";

async fn chat(g: &Proc, key: Option<&str>, model: &str) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn messages(g: &Proc, key: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "mock/echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn admin(g: &Proc, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{}/admin/keys{path}", g.url))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn keys_cli(data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--data-dir", data.to_str().unwrap()]);
    let (code, out, err) = run_cli(&all, &[]);
    assert_eq!(code, 0, "switchyard {all:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Polls until a call without a key is refused: the gateway picked up a key created by another
/// process on the same database.
async fn wait_until_closed(g: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(12);
    while chat(g, None, "mock/echo").await.status() == 200 {
        assert!(
            Instant::now() < deadline,
            "the gateway never saw the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keys_from_the_command_line_close_the_gateway_and_authenticate_callers() {
    let data = temp_dir("keys").join("data");
    let g = gateway_on("", &[], &data);
    // First run on loopback: no keys, no key needed.
    assert_eq!(chat(&g, None, "mock/echo").await.status(), 200);
    assert_eq!(
        chat(&g, Some("sk-anything"), "mock/echo").await.status(),
        200
    );

    let created = keys_cli(
        &data,
        &[
            "create",
            "--name",
            "search team",
            "--allow",
            "mock/echo*",
            "--allow",
            "mock-anthropic/*",
            "--metadata",
            "team=search",
            "--expires-in",
            "30d",
        ],
    );
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-sy-") && key.len() == 46, "{key}");
    assert_eq!(created["allow"][0], "mock/echo*");
    assert_eq!(created["metadata"]["team"], "search");
    assert!(created["expires_at"].as_i64().unwrap() > 0);
    let id = created["id"].as_str().unwrap().to_owned();
    wait_until_closed(&g).await;

    // Without a key, or with a provider-style key: 401 in OpenAI's shape.
    let resp = chat(&g, None, "mock/echo").await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("switchyard keys create")
    );
    assert_eq!(
        chat(&g, Some("sk-anything"), "mock/echo").await.status(),
        401
    );
    // A wrong virtual key: named by its hint only.
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let resp = chat(&g, Some(&wrong), "mock/echo").await;
    assert_eq!(resp.status(), 401);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&wrong[10..40]), "{text}");

    // The key works on both surfaces (Bearer, x-api-key) within its allow-list.
    assert_eq!(chat(&g, Some(&key), "mock/echo").await.status(), 200);
    let resp = messages(&g, &key).await;
    assert_eq!(resp.status(), 200);
    let resp = chat(&g, Some(&key), "mock/stream-2").await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    let resp = client()
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", "sk-sy-nope")
        .json(&json!({"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    // The model list shows what the key may use.
    let ids = model_ids_for(&g.url, Some(&key)).await;
    assert!(ids.iter().any(|i| i == "mock/echo"), "{ids:?}");
    assert!(!ids.iter().any(|i| i == "mock/stream-40"), "{ids:?}");

    // list and show never print secrets; revoke closes the key for the running gateway.
    let listed = keys_cli(&data, &["list"]);
    let text = listed.to_string();
    assert!(text.contains(&id) && !text.contains(&key), "{text}");
    keys_cli(&data, &["revoke", &id]);
    let deadline = Instant::now() + Duration::from_secs(12);
    while chat(&g, Some(&key), "mock/echo").await.status() == 200 {
        assert!(
            Instant::now() < deadline,
            "the revocation never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = keys_cli(&data, &["show", &id]);
    assert!(shown["revoked_at"].as_i64().is_some());

    // Nothing the gateway wrote contains the key.
    assert!(!g.stderr_text().contains(&key));
}

#[tokio::test]
async fn the_admin_api_manages_keys_that_survive_a_restart() {
    let data = temp_dir("admin").join("data");
    let config = r#"
[routes.main]
targets = ["mock/echo"]
[[routes.main.when]]
metadata = { tier = "free" }
route = "mock/stream-2"
"#;
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN)];
    let g = gateway_on(config, &env, &data);

    // The token guards the API.
    let resp = client()
        .get(format!("{}/admin/keys", g.url))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, body) = admin(&g, reqwest::Method::POST, "", Some(json!({"name": ""}))).await;
    assert_eq!(status, 400, "{body}");

    let (status, created) = admin(
        &g,
        reqwest::Method::POST,
        "",
        Some(json!({"name": "free tier app", "metadata": {"tier": "free"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // At once: the first key closes the gateway, and the key works.
    assert_eq!(chat(&g, None, "mock/echo").await.status(), 401);
    // The key's metadata drives routing rules: `main` sends free-tier calls elsewhere.
    let resp = chat(&g, Some(&key), "main").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "stream-2");

    let (status, list) = admin(&g, reqwest::Method::GET, "", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&key));

    // Rotation: the old secret stops at once, the new one works.
    let (status, rotated) = admin(&g, reqwest::Method::POST, &format!("/{id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(chat(&g, Some(&key), "mock/echo").await.status(), 401);
    assert_eq!(chat(&g, Some(&new_key), "mock/echo").await.status(), 200);
    let (status, _) = admin(&g, reqwest::Method::GET, "/key_nope", None).await;
    assert_eq!(status, 404);

    // The key survives a restart on the same data directory.
    drop(g);
    let g = gateway_on(config, &env, &data);
    assert_eq!(chat(&g, Some(&new_key), "mock/echo").await.status(), 200);
    assert_eq!(chat(&g, None, "mock/echo").await.status(), 401);

    // The CLI talks to the running gateway too.
    let (code, out, err) = run_cli(
        &["keys", "list", "--url", &g.url, "--json"],
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id));
    let (code, _, err) = run_cli(&["keys", "list", "--url", &g.url], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("admin token"), "{err}");

    // Revocation through the API is immediate.
    let (status, revoked) = admin(&g, reqwest::Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_i64());
    assert_eq!(chat(&g, Some(&new_key), "mock/echo").await.status(), 401);

    // No secret in the gateway's output.
    let log = g.stderr_text();
    assert!(!log.contains(&new_key) && !log.contains(ADMIN), "{log}");
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_off() {
    let data = temp_dir("noadmin").join("data");
    let g = gateway_on("", &[], &data);
    let resp = client()
        .get(format!("{}/admin/keys", g.url))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_disabled", "{body}");
    assert!(body["error"]["param"].is_null(), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("SWITCHYARD_ADMIN_TOKEN"), "{message}");
}

#[tokio::test]
async fn rate_limits_are_exact_and_settle_on_real_usage() {
    let data = temp_dir("limits").join("data");
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN)];
    let g = gateway_on("", &env, &data);
    let create = |body: Value| {
        let g = &g;
        async move {
            let (status, created) = admin(g, reqwest::Method::POST, "", Some(body)).await;
            assert_eq!(status, 201, "{created}");
            created["key"].as_str().unwrap().to_owned()
        }
    };

    // Requests per minute: exactly 10 of 30 simultaneous calls pass.
    let rpm = create(json!({"name": "rpm", "limits": {"rpm": 10}})).await;
    let calls = (0..30).map(|_| chat(&g, Some(&rpm), "mock/echo"));
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 20);
    let resp = chat(&g, Some(&rpm), "mock/echo").await;
    assert_eq!(resp.status(), 429);
    let h = resp.headers().clone();
    assert_eq!(h["x-ratelimit-limit-requests"], "10");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    assert!(h.contains_key("x-ratelimit-reset-requests"));
    let after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    // Anthropic's shape on the Messages surface.
    let resp = messages(&g, &rpm).await;
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Per metadata value: each user gets one call a minute.
    let per_user =
        create(json!({"name": "per-user", "limits": {"per_metadata": {"user": {"rpm": 1}}}})).await;
    let as_user = |user: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth(&per_user)
            .header("x-switchyard-metadata", format!("{{\"user\":\"{user}\"}}"))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(as_user("ann").await.unwrap().status(), 200);
    assert_eq!(as_user("ann").await.unwrap().status(), 429);
    assert_eq!(as_user("bob").await.unwrap().status(), 200);

    // Tokens per minute: a call reserves its estimate (prompt + max_tokens = ~210) and settles on
    // its real usage (~15), so a second call fits in 300; without settlement it would not.
    let tpm = create(json!({"name": "tpm", "limits": {"tpm": 300}})).await;
    for stream in [false, true, false] {
        let resp = client()
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth(&tpm)
            .json(
                &json!({"model": "mock/echo", "max_tokens": 200, "stream": stream,
                "messages": [{"role": "user", "content": "hello there"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream={stream}");
        assert!(resp.headers().contains_key("x-ratelimit-remaining-tokens"));
        // Read the stream to its end: its usage chunk settles the reservation.
        resp.text().await.unwrap();
    }
    let resp = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&tpm)
        .json(&json!({"model": "mock/echo", "max_tokens": 5000,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "tokens");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than the limit")
    );
}

/// A loopback HTTP server that records the bodies POSTed to it.
async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                break;
            };
            let got = got.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            if let Ok(v) = serde_json::from_str(&body[..len]) {
                                got.lock().unwrap().push(v);
                            }
                            let _ = sock
                                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                                .await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_spent_budget_stops_the_key_and_tells_the_webhook() {
    let data = temp_dir("budget").join("data");
    // A price that makes every call cost dollars: $0.10 per input and output token.
    let config = r#"
[catalog."mock/echo"]
input_per_mtok = 100000.0
output_per_mtok = 100000.0
"#;
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN)];
    let g = gateway_on(config, &env, &data);
    let (hook, seen) = webhook_receiver().await;
    let (status, created) = admin(
        &g,
        reqwest::Method::POST,
        "",
        Some(json!({"name": "capped", "budgets": {"total_usd": 5.0, "alert_at": 0.5, "webhook": hook}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    // Each call costs about $1–2 (mock usage for "hi" at $0.10 a token): a handful pass, then
    // the key is refused with OpenAI's insufficient_quota.
    let mut passed = 0;
    let refused = loop {
        let resp = chat(&g, Some(&key), "mock/echo").await;
        if resp.status() != 200 {
            break resp;
        }
        passed += 1;
        assert!(passed < 20, "the budget never stopped the key");
    };
    assert!(passed >= 2, "{passed}");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total budget of $5.00"),
        "{body}"
    );

    // The webhook heard about the alert share and the exhaustion, once each.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "webhook got {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["budget.alert", "budget.exhausted"]);
    assert_eq!(seen.lock().unwrap()[1]["budget"], "total");
    // The key listing shows the spend against the budget.
    let (_, list) = admin(&g, reqwest::Method::GET, "", None).await;
    let spent = list["data"][0]["spend"]["total_usd"].as_f64().unwrap();
    assert!(spent >= 5.0, "{list}");

    // Spend survives a restart: the key stays stopped.
    drop(g);
    let g = gateway_on(config, &env, &data);
    assert_eq!(chat(&g, Some(&key), "mock/echo").await.status(), 429);
}

#[tokio::test]
async fn a_cost_ceiling_guards_a_single_call() {
    let data = temp_dir("ceiling").join("data");
    let g = gateway_on(
        "[catalog.\"mock/echo\"]\ninput_per_mtok = 100000.0\noutput_per_mtok = 100000.0\n",
        &[],
        &data,
    );
    let call = |model: &'static str, ceiling: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", g.url))
            .header("x-switchyard-max-cost-usd", ceiling)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };
    // $0.10 a token: $1 leaves room for a few output tokens; the answer is cut to fit.
    let resp = call("mock/echo", "1.0").await.unwrap();
    assert_eq!(resp.status(), 200);
    // The prompt alone costs more than $0.05: refused before anything is spent.
    let resp = call("mock/echo", "0.05").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-switchyard-max-cost-usd");
    // Without a price the ceiling cannot be kept: refused.
    let resp = call("mock/stream-2", "1.0").await.unwrap();
    assert!(error_message(resp, 400).await.contains("no price is known"));
    let resp = call("mock/echo", "lots").await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_non_loopback_address_needs_keys_from_the_start_unless_auth_is_open() {
    // Listening on every interface (this machine's network is closed to the outside).
    let data = temp_dir("public").join("data");
    let g = gateway_at("0.0.0.0:0", "", &[], &data);
    assert_eq!(chat(&g, None, "mock/echo").await.status(), 401);
    assert!(
        g.stderr_text().contains("virtual keys required"),
        "{}",
        g.stderr_text()
    );
    drop(g);
    let open = gateway_at("0.0.0.0:0", "[auth]\nopen = true\n", &[], &data);
    assert_eq!(chat(&open, None, "mock/echo").await.status(), 200);
    assert!(
        open.stderr_text()
            .contains("auth.open = true on a non-loopback address")
    );
}

#[test]
fn a_key_with_a_firewall_policy_the_configuration_lacks_is_refused_at_creation() {
    let dir = temp_dir("keys-firewall");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let (code, _, err) = run_cli(
        &[
            "keys",
            "create",
            "--name",
            "t",
            "--firewall",
            "strickt",
            "--data-dir",
            d,
        ],
        &[],
    );
    assert_ne!(code, 0, "a key with an unknown policy was created");
    assert!(
        err.contains("strickt") && err.contains("[firewall.policies.strickt]"),
        "{err}"
    );
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        "[firewall.policies.strict]\ninput = { secrets = \"block\" }\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (code, out, err) = run_cli(
        &[
            "keys",
            "create",
            "--name",
            "t",
            "--firewall",
            "strict",
            "--config",
            c,
            "--json",
            "--data-dir",
            d,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["firewall"], "strict");
}

#[tokio::test]
async fn a_stream_the_caller_leaves_before_its_usage_still_costs_the_budget() {
    use futures_util::StreamExt;
    let data = temp_dir("budget-stream").join("data");
    let model = "mock/stream-40+itl-50ms";
    let config =
        format!("[catalog.\"{model}\"]\ninput_per_mtok = 100000.0\noutput_per_mtok = 100000.0\n");
    let g = gateway_on(&config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)], &data);
    let (status, created) = admin(
        &g,
        reqwest::Method::POST,
        "",
        Some(json!({"name": "streamer", "budgets": {"total_usd": 100.0}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let resp = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&key)
        .json(&json!({"model": model, "stream": true,
                      "messages": [{"role": "user", "content": "count to forty slowly"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Read the first events, then leave, long before the usage chunk (40 chunks, 50 ms apart).
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    // The gateway notices at its next write; the key is charged the prompt's estimate and the
    // chunks it passed on, at $0.10 a token.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list) = admin(&g, reqwest::Method::GET, "", None).await;
        let spent = list["data"][0]["spend"]["total_usd"]
            .as_f64()
            .unwrap_or(0.0);
        if spent > 0.0 {
            assert!(spent < 4.0, "charged more than was sent: {spent}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned stream cost nothing: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
