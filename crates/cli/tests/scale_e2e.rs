//! Scale-out: two gateway processes sharing the machine's Redis (`SWITCHYARD_TEST_REDIS`) and
//! PostgreSQL (`SWITCHYARD_TEST_POSTGRES`), as replicas behind a load balancer would. Each test
//! uses a Redis key prefix of its own, so runs and tests never see each other's counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Proc, client, metrics, mock, mock_requests, run_cli, temp_dir};
use serde_json::{Value, json};

/// Redis and PostgreSQL URLs, or `None` after saying loudly that `test` skipped.
fn services(test: &str) -> Option<(String, String)> {
    let redis = std::env::var("SWITCHYARD_TEST_REDIS").ok();
    let pg = std::env::var("SWITCHYARD_TEST_POSTGRES").ok();
    match (redis, pg) {
        (Some(r), Some(p)) => Some((r, p)),
        _ => {
            eprintln!(
                "\n*** SKIPPED {test}: SWITCHYARD_TEST_REDIS and SWITCHYARD_TEST_POSTGRES must both be set.\n*** Run .ci/run, or set them to e.g. redis://127.0.0.1:6379 and postgres://postgres@127.0.0.1:5432/test.\n"
            );
            None
        }
    }
}

/// A prefix no other test or run uses.
fn prefix(test: &str) -> String {
    format!("sytest:{test}:{}:", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{n}", std::process::id())
}

/// The shared part of both replicas' configuration: the mock as provider `up`, the store on
/// PostgreSQL, the state on Redis, and `extra`.
fn replica_config(m: &Proc, redis: &str, pg: &str, prefix: &str, extra: &str) -> String {
    format!(
        r#"
[providers.up]
kind = "openai"
base_url = "{}/v1"
[store]
postgres = "{pg}"
[state]
redis = "{redis}"
prefix = "{prefix}"
{extra}
"#,
        m.url
    )
}

/// Two replicas on one configuration (each with its own data directory).
fn replicas(config: &str) -> (Proc, Proc) {
    (common::gateway(config, &[]), common::gateway(config, &[]))
}

/// Creates a virtual key in the shared store with `switchyard keys create` and returns it.
fn create_key(config: &str, args: &[&str]) -> String {
    let path = temp_dir("keys").join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    // They expire, so that the shared database does not keep live keys of old runs.
    let mut all = vec![
        "keys",
        "create",
        "--json",
        "--expires-in",
        "1h",
        "--config",
        path.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (code, out, err) = run_cli(&all, &[]);
    assert_eq!(code, 0, "switchyard {all:?}: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["key"].as_str().unwrap().to_owned()
}

async fn chat(g: &Proc, key: Option<&str>, model: &str) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .header("x-switchyard-max-attempts", "1")
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

/// The value of the metric line that starts with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_global_rate_limit_admits_exactly_n_across_two_replicas() {
    let Some((redis, pg)) = services("a_global_rate_limit_admits_exactly_n_across_two_replicas")
    else {
        return;
    };
    let m = mock();
    let config = replica_config(&m, &redis, &pg, &prefix("rl"), "");
    let key = create_key(&config, &["--name", "shared-rpm", "--limit", "rpm=10"]);
    let (a, b) = replicas(&config);
    // 30 calls at once, alternating between the replicas: 10 pass in all, not 10 each.
    let calls = (0..30).map(|i| {
        let g = if i % 2 == 0 { &a } else { &b };
        chat(g, Some(&key), "up/echo")
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((passed, limited), (10, 20), "{statuses:?}");
    // The headers of a refusal count both replicas' calls.
    let resp = chat(&b, Some(&key), "up/echo").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Limit 10, Used 10"),
        "{body}"
    );
}

#[tokio::test]
async fn a_budget_spent_through_one_replica_stops_the_key_on_the_other() {
    let Some((redis, pg)) =
        services("a_budget_spent_through_one_replica_stops_the_key_on_the_other")
    else {
        return;
    };
    let m = mock();
    // $0.10 per token: every call costs a dollar or two.
    let config = replica_config(
        &m,
        &redis,
        &pg,
        &prefix("budget"),
        "[catalog.\"up/echo\"]\ninput_per_mtok = 100000.0\noutput_per_mtok = 100000.0\n",
    );
    let key = create_key(&config, &["--name", "shared-budget", "--budget", "total=3"]);
    let (a, b) = replicas(&config);
    // Spend it all through A…
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = chat(&a, Some(&key), "up/echo").await;
        if resp.status() == 429 {
            break;
        }
        assert_eq!(resp.status(), 200);
        assert!(Instant::now() < deadline, "A never stopped the key");
    }
    // …and B, which served none of it, refuses the key too (the spend is added in the
    // background: give it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    let body: Value = loop {
        let resp = chat(&b, Some(&key), "up/echo").await;
        if resp.status() == 429 {
            break resp.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "B never saw A's spend");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total budget of $3.00"),
        "{body}"
    );
}

#[tokio::test]
async fn a_circuit_opened_on_one_replica_protects_the_other() {
    let Some((redis, pg)) = services("a_circuit_opened_on_one_replica_protects_the_other") else {
        return;
    };
    let m = mock();
    let config = replica_config(
        &m,
        &redis,
        &pg,
        &prefix("breaker"),
        "[circuit_breaker]\nconsecutive_failures = 3\ncooldown_ms = 30000\n",
    );
    // (The shared store holds other tests' keys, so calls need one.)
    let key = create_key(&config, &["--name", "breaker"]);
    let key = Some(key.as_str());
    let (a, b) = replicas(&config);
    let state = r#"switchyard_circuit_state{target="up/fail-503"}"#;
    // B has called the target once (one failure of the three that would open it here).
    assert_eq!(chat(&b, key, "up/fail-503").await.status(), 502);
    assert_eq!(metric(&metrics(&b.url).await, state), Some(0.0));
    for _ in 0..3 {
        assert_eq!(chat(&a, key, "up/fail-503").await.status(), 502);
    }
    assert_eq!(metric(&metrics(&a.url).await, state), Some(2.0));
    // B learns of it without calling the target: its breaker is open too…
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&metrics(&b.url).await, state) != Some(2.0) {
        assert!(Instant::now() < deadline, "B's breaker never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …so its calls fail fast and the upstream is not called.
    let before = mock_requests(&m).await;
    let resp = chat(&b, key, "up/fail-503").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(mock_requests(&m).await, before);
    // A replica started now learns of the open circuit from Redis (at its first call to it).
    let c = common::gateway(&config, &[]);
    let resp = chat(&c, key, "up/fail-503").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(mock_requests(&m).await, before);
}

#[tokio::test]
async fn both_replicas_calls_are_in_one_analytics_query() {
    let Some((redis, pg)) = services("both_replicas_calls_are_in_one_analytics_query") else {
        return;
    };
    let m = mock();
    let admin = "scale-admin-token-0123456789";
    let config = replica_config(&m, &redis, &pg, &prefix("logs"), "");
    let env = [("SWITCHYARD_ADMIN_TOKEN", admin)];
    let key = create_key(&config, &["--name", "logs"]);
    let (a, b) = (
        common::gateway(&config, &env),
        common::gateway(&config, &env),
    );
    let tag = format!("run-{}", uuid_like());
    let meta = json!({ "scale_test": tag }).to_string();
    let send = |g: &Proc, n: usize| {
        let url = format!("{}/v1/chat/completions", g.url);
        let (meta, key) = (meta.clone(), key.clone());
        async move {
            for _ in 0..n {
                let resp = client()
                    .post(&url)
                    .header("x-switchyard-metadata", &meta)
                    .bearer_auth(&key)
                    .json(&json!({"model": "up/echo", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        }
    };
    send(&a, 3).await;
    send(&b, 4).await;
    // One query on either replica counts both replicas' calls.
    let url = format!(
        "{}/admin/analytics?group_by=metadata.scale_test&bucket=30d&metadata=scale_test:{tag}",
        a.url
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = client()
            .get(&url)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cells = v["data"].as_array().unwrap();
        let requests: u64 = cells.iter().map(|c| c["requests"].as_u64().unwrap()).sum();
        if requests == 7 {
            assert!(cells.iter().all(|c| c["group"] == tag.as_str()), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "analytics never counted 7 calls: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Redis server of the test's own, on a free loopback port, that the test can kill.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
    bin: String,
}

impl OwnRedis {
    /// `None` (after saying so loudly) when no `redis-server` binary is to be found.
    fn start(test: &str) -> Option<Self> {
        let bin = std::env::var("SWITCHYARD_TEST_REDIS_SERVER")
            .ok()
            .or_else(|| {
                ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
                    .into_iter()
                    .find(|p| std::path::Path::new(p).exists())
                    .map(str::to_owned)
            });
        let Some(bin) = bin else {
            eprintln!(
                "\n*** SKIPPED {test}: no redis-server binary (set SWITCHYARD_TEST_REDIS_SERVER).\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Self::spawn(&bin, port);
        Some(Self { child, port, bin })
    }

    fn spawn(bin: &str, port: u16) -> std::process::Child {
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Self::spawn(&self.bin, self.port);
    }

    /// The value of the one key matching `pattern`.
    async fn value_of<T: redis::FromRedisValue>(&self, pattern: &str) -> Option<T> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .ok()?;
        let key = keys.first()?;
        redis::cmd("GET").arg(key).query_async(&mut conn).await.ok()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn with_redis_gone_the_gateway_keeps_answering_says_so_and_reconciles() {
    let test = "with_redis_gone_the_gateway_keeps_answering_says_so_and_reconciles";
    let Some(mut redis) = OwnRedis::start(test) else {
        return;
    };
    let m = mock();
    let data = temp_dir("degrade").join("data");
    // A price, so that calls spend: $1 a prompt token.
    let config = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n[state]\nredis = \"{}\"\nprefix = \"deg:\"\n[catalog.\"up/echo\"]\ninput_per_mtok = 1000000.0\noutput_per_mtok = 0.0\n",
        m.url,
        redis.url()
    );
    let create = |name: &str| {
        let (code, out, err) = run_cli(
            &[
                "keys",
                "create",
                "--json",
                "--name",
                name,
                "--limit",
                "rpd=100000",
                // A budget too: its check reaches Redis before the limiter does, and so is
                // the first to see it back; the limiter must still add its outage counts.
                "--budget",
                "total=1000000000",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        (
            v["key"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        )
    };
    // `load` carries the background load; `counted` only calls made one at a time, so that its
    // counter can be checked exactly.
    let (load_key, _) = create("load");
    let (key, id) = create("counted");
    let counter = format!("deg:rl:{{{id}}}:*rpd*");
    let g = common::gateway_on(&config, &[], &data);
    let degraded = |text: &str| metric(text, "switchyard_state_degraded ");

    for _ in 0..3 {
        assert_eq!(chat(&g, Some(&key), "up/echo").await.status(), 200);
    }
    assert_eq!(redis.value_of(&counter).await, Some(3));
    assert_eq!(degraded(&metrics(&g.url).await), Some(0.0));
    let spend = format!("deg:spend:{{{id}}}:total");
    // Spend reaches Redis just after each answer: read it once it has settled.
    let mut seen = -1.0;
    let deadline = Instant::now() + Duration::from_secs(5);
    let per_call = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = redis.value_of::<f64>(&spend).await.unwrap_or(0.0);
        if now > 0.0 && now == seen {
            break now / 3.0;
        }
        assert!(Instant::now() < deadline, "no settled spend in Redis");
        seen = now;
    };

    // Load from 4 callers while Redis dies and comes back: every call is answered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (url, k, stop) = (g.url.clone(), load_key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let resp = client()
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(&k)
                        .json(&json!({"model": "up/echo", "messages": [{"role": "user", "content": "load"}]}))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(resp.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    for _ in 0..5 {
        assert_eq!(chat(&g, Some(&key), "up/echo").await.status(), 200);
    }
    let text = metrics(&g.url).await;
    assert_eq!(degraded(&text), Some(1.0), "{text}");
    assert!(metric(&text, "switchyard_state_errors_total").unwrap() >= 1.0);
    assert!(
        g.stderr_text().contains("Redis failed"),
        "{}",
        g.stderr_text()
    );

    // It comes back (empty): the calls counted here meanwhile are added to it.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = 0;
    while degraded(&metrics(&g.url).await) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the gateway never used Redis again"
        );
        assert_eq!(chat(&g, Some(&key), "up/echo").await.status(), 200);
        after += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut calls = 0;
    for t in load {
        let statuses = t.await.unwrap();
        calls += statuses.len();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert!(calls > 20, "the load made only {calls} calls");
    let text = metrics(&g.url).await;
    assert!(metric(&text, "switchyard_state_recoveries_total").unwrap() >= 1.0);
    // Everything since the kill: the 5 calls of the outage and those after the restart.
    assert_eq!(redis.value_of(&counter).await, Some(5 + after));
    // The outage's spend too, so that other replicas hold the key to its budget.
    let want = per_call * (5 + after) as f64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = redis.value_of::<f64>(&spend).await.unwrap_or(0.0);
        if (got - want).abs() < 1e-6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis holds ${got} of spend, not the ${want} spent since it was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stream_started_on_one_replica_is_resumed_on_the_other() {
    use futures_util::StreamExt;
    let Some((redis, pg)) = services("a_stream_started_on_one_replica_is_resumed_on_the_other")
    else {
        return;
    };
    let m = mock();
    let config = replica_config(&m, &redis, &pg, &prefix("streams"), "");
    let key = create_key(&config, &["--name", "streams"]);
    let other = create_key(&config, &["--name", "streams-other"]);
    let (a, b) = replicas(&config);
    let resp = client()
        .post(format!("{}/v1/chat/completions", a.url))
        .bearer_auth(&key)
        .header("x-switchyard-resumable", "true")
        .json(&json!({"model": "up/stream-30+itl-30ms", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = common::request_id(&resp);
    // Read three events from A, then lose the connection.
    let mut seen = String::new();
    let mut bytes = resp.bytes_stream();
    while seen.matches("\n\n").count() < 3 {
        seen.push_str(std::str::from_utf8(&bytes.next().await.unwrap().unwrap()).unwrap());
    }
    drop(bytes);
    let cut = seen.match_indices("\n\n").nth(2).unwrap().0 + 2;
    seen.truncate(cut);
    // B serves the rest (live, from Redis) while A is still producing it.
    let resume = |g: &Proc, after: u64, k: &str| {
        client()
            .get(format!("{}/v1/streams/{id}", g.url))
            .header("last-event-id", after.to_string())
            .bearer_auth(k.to_owned())
            .send()
    };
    let rest = resume(&b, 3, &key).await.unwrap();
    assert_eq!(rest.status(), 200);
    let rest = rest.text().await.unwrap();
    assert!(rest.starts_with("id: 4\n"), "{rest}");
    let whole = format!("{seen}{rest}");
    let (_, text) = common::chat_chunks(&common::sse_data(&whole));
    assert_eq!(text.split_whitespace().count(), 30, "{whole}");
    // After the end, B gives it whole; another key gets nothing.
    let again = resume(&b, 0, &key).await.unwrap().text().await.unwrap();
    assert_eq!(again, whole);
    assert_eq!(resume(&b, 0, &other).await.unwrap().status(), 404);
    assert_eq!(mock_requests(&m).await, 1, "one upstream call in all");

    // An Anthropic Messages stream from A, read whole on B after its end, in Anthropic's events.
    let resp = client()
        .post(format!("{}/v1/messages", a.url))
        .bearer_auth(&key)
        .header("x-switchyard-resumable", "true")
        .json(&json!({"model": "up/stream-5", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let id = common::request_id(&resp);
    let original = resp.text().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let resumed = loop {
        let r = common::get_text(format!("{}/v1/streams/{id}?after=0", b.url), Some(&key)).await;
        // The last batch reaches Redis just after the stream ends on A.
        if r.contains("event: message_stop") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(original.contains("event: message_stop"), "{original}");
    assert_eq!(resumed, original);
}

#[tokio::test]
async fn an_answer_cached_by_one_replica_is_a_hit_on_the_other() {
    let Some((redis, pg)) = services("an_answer_cached_by_one_replica_is_a_hit_on_the_other")
    else {
        return;
    };
    let m = mock();
    // No [cache] redis_url: [state] redis holds the cache too.
    let config = replica_config(
        &m,
        &redis,
        &pg,
        &prefix("cache"),
        "[cache.models]\n\"up/echo\" = \"1m\"\n",
    );
    let key = create_key(&config, &["--name", "cache", "--cache-namespace", "shared"]);
    let (a, b) = replicas(&config);
    let ask = |g: &Proc| {
        client()
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth(&key)
            .json(&json!({"model": "up/echo", "messages": [{"role": "user", "content": "cached across replicas"}]}))
            .send()
    };
    let first = ask(&a).await.unwrap();
    assert_eq!(first.headers()["x-switchyard-cache"], "MISS");
    let first: Value = first.json().await.unwrap();
    // The write goes out in the background: B sees it shortly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = ask(&b).await.unwrap();
        if resp.headers()["x-switchyard-cache"] == "HIT" {
            assert_eq!(resp.json::<Value>().await.unwrap(), first);
            break;
        }
        assert!(Instant::now() < deadline, "B never hit A's answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(mock_requests(&m).await <= 2);
}
