//! Starting the real `switchyard` binary (gateway and mock) on loopback ports for tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub stderr: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{}-{name}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// Spawns the binary with a clean environment (plus `env`) and waits for its "listening on" line.
fn spawn(args: &[&str], env: &[(&str, &str)], name: &str) -> Proc {
    let dir = temp_dir(name);
    let stderr = dir.join("stderr.log");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("SWITCHYARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches("/v1")
                    .to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => Proc {
            child,
            url: format!("http://{addr}"),
            stderr,
        },
        Err(_) => {
            let _ = child.kill();
            panic!(
                "{name} did not start: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
    }
}

pub fn mock() -> Proc {
    spawn(&["mock", "--listen", "127.0.0.1:0"], &[], "mock")
}

/// A gateway in front of a mock of its own, the provider `up` (`up/echo`, `up/slow-300ms`…),
/// with `extra` appended to the configuration: (gateway, mock).
pub fn gateway_with_up(extra: &str, env: &[(&str, &str)]) -> (Proc, Proc) {
    let m = mock();
    let config = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n{extra}\n",
        m.url
    );
    (gateway(&config, env), m)
}

/// The requests a mock has answered.
pub async fn mock_requests(m: &Proc) -> u64 {
    get_json(format!("{}/mock/stats", m.url)).await["requests"]
        .as_u64()
        .unwrap()
}

/// The gateway with `config` (TOML) and extra environment variables.
pub fn gateway(config: &str, env: &[(&str, &str)]) -> Proc {
    let data = temp_dir("gw").join("data");
    gateway_on(config, env, &data)
}

/// The gateway with its data directory at `data` (to restart on the same database).
pub fn gateway_on(config: &str, env: &[(&str, &str)], data: &std::path::Path) -> Proc {
    gateway_at("127.0.0.1:0", config, env, data)
}

/// The gateway reading the configuration file at `path` (which the test may rewrite).
pub fn gateway_with_file(
    path: &std::path::Path,
    env: &[(&str, &str)],
    data: &std::path::Path,
) -> Proc {
    spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        env,
        "gateway",
    )
}

/// The same, listening on `listen`.
pub fn gateway_at(
    listen: &str,
    config: &str,
    env: &[(&str, &str)],
    data: &std::path::Path,
) -> Proc {
    let dir = temp_dir("gw");
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    spawn(
        &[
            "serve",
            "--listen",
            listen,
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        env,
        "gateway",
    )
}

/// GETs a URL and reads its JSON body.
pub async fn get_json(url: String) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GETs a URL (with a bearer token, if given) and reads its body as text.
pub async fn get_text(url: String, token: Option<&str>) -> String {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().text().await.unwrap()
}

/// The `x-switchyard-request-id` an answer carries.
pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The gateway's `/metrics` text.
pub async fn metrics(base: &str) -> String {
    get_text(format!("{base}/metrics"), None).await
}

/// The ids `GET /v1/models` lists.
pub async fn model_ids(base: &str) -> Vec<String> {
    model_ids_for(base, None).await
}

/// The ids `GET /v1/models` lists to a caller presenting `key`.
pub async fn model_ids_for(base: &str, key: Option<&str>) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&get_text(format!("{base}/v1/models"), key).await).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A configuration with a price for `mock/echo` and a route that retries onto it.
pub const PRICED_WITH_RETRY: &str = r#"
[catalog."mock/echo"]
input_per_mtok = 1000.0
output_per_mtok = 2000.0
[routes.sturdy]
targets = ["mock/fail-503", "mock/echo"]
[retry]
backoff_ms = 1
"#;

/// Waits until the background writer has stored at least `n` request-log records matching
/// `query` (read with the admin `token`, if given) and returns them, newest first.
pub async fn wait_for_logs(
    base: &str,
    query: &str,
    n: usize,
    token: Option<&str>,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = get_text(format!("{base}/admin/logs?limit=500&{query}"), token).await;
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = page["data"].as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} records for {query}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the binary to completion with a clean environment plus `env`: (exit code, stdout,
/// stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts an error answer's status and returns its `error.message` (OpenAI's and Anthropic's
/// shapes both have it there).
pub async fn error_message(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Reads a whole SSE body into its `data:` payloads (of events with or without `id:` and
/// `event:` lines).
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// An OpenAI chat stream's `data:` payloads (which must end with `[DONE]`) as JSON chunks, and
/// the text their first choice's deltas carry.
pub fn chat_chunks(events: &[String]) -> (Vec<serde_json::Value>, String) {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (chunks, text)
}
