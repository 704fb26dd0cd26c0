//! Operations: reloading the configuration while serving (SIGHUP and `POST /admin/reload`), and
//! a graceful shutdown under streaming load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, client, mock, temp_dir};
use serde_json::{Value, json};

const ADMIN: &str = "ops-admin-token-0123456789";

fn write(path: &Path, upstream: &str, extra: &str) {
    std::fs::write(
        path,
        format!("[providers.up]\nkind = \"openai\"\nbase_url = \"{upstream}/v1\"\n{extra}\n"),
    )
    .unwrap();
}

async fn status_of(g: &Proc, model: &str) -> u16 {
    client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn reload(g: &Proc) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/admin/reload", g.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_configuration_reloads_without_dropping_calls_and_a_bad_one_is_refused() {
    let m = mock();
    let dir = temp_dir("reload");
    let path = dir.join("switchyard.toml");
    write(
        &path,
        &m.url,
        "[aliases]\nfast = \"up/stream-10+itl-60ms\"\n",
    );
    let g = common::gateway_with_file(
        &path,
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN)],
        &dir.join("data"),
    );
    assert_eq!(status_of(&g, "fast").await, 200);
    assert_eq!(status_of(&g, "quick").await, 404);

    // A stream under way when the configuration changes finishes on the old one.
    let slow = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);

    // The admin API: the new aliases apply at once.
    write(&path, &m.url, "[aliases]\nquick = \"up/echo\"\n");
    let (status, body) = reload(&g).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_needed"], json!([]));
    assert_eq!(status_of(&g, "quick").await, 200);
    assert_eq!(status_of(&g, "fast").await, 404);
    let text = slow.text().await.unwrap();
    let (_, streamed) = common::chat_chunks(&common::sse_data(&text));
    assert_eq!(streamed.split_whitespace().count(), 10, "{text}");

    // A configuration that does not load is refused with its reason; the running one stays.
    write(
        &path,
        &m.url,
        "[aliases]\nquick = \"up/echo\"\n[server]\nlisten_on = 1\n",
    );
    let (status, body) = reload(&g).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("listen_on"), "{message}");
    assert!(message.contains("the running one stays"), "{message}");
    assert_eq!(status_of(&g, "quick").await, 200);

    // What only a restart applies is named.
    write(
        &path,
        &m.url,
        "[aliases]\nquick = \"up/echo\"\n[server]\nmax_body_bytes = 65536\n",
    );
    let (status, body) = reload(&g).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_needed"], json!(["server.max_body_bytes"]));

    // SIGHUP does the same.
    write(&path, &m.url, "[aliases]\nhup = \"up/echo\"\n");
    std::process::Command::new("kill")
        .args(["-HUP", &g.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&g, "hup").await != 200 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(g.stderr_text().contains("configuration reloaded (SIGHUP)"));

    // The admin token is required.
    let resp = client()
        .post(format!("{}/admin/reload", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn sigterm_under_streaming_load_finishes_the_streams_and_loses_no_record() {
    let m = mock();
    let dir = temp_dir("drain");
    let path = dir.join("switchyard.toml");
    write(&path, &m.url, "");
    let data = dir.join("data");
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN)];
    let g = common::gateway_with_file(&path, &env, &data);
    let url = format!("{}/v1/chat/completions", g.url);
    // 16 streams of 20 chunks, 40 ms apart: each lasts about 0.8 s. SIGTERM once all of them
    // have their answer's head (a request not yet read when the gateway stops accepting is
    // not under way).
    let (started, mut heads) = tokio::sync::mpsc::channel::<()>(16);
    let streams: Vec<_> = (0..16)
        .map(|_| {
            let (url, started) = (url.clone(), started.clone());
            tokio::spawn(async move {
                let resp = client()
                    .post(url)
                    .json(&json!({"model": "up/stream-20+itl-40ms", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                started.send(()).await.unwrap();
                resp.text().await.unwrap()
            })
        })
        .collect();
    for _ in 0..16 {
        heads.recv().await.unwrap();
    }
    std::process::Command::new("kill")
        .args(["-TERM", &g.pid().to_string()])
        .status()
        .unwrap();
    // Every stream under way runs to its end…
    for s in streams {
        let text = s.await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        let (_, streamed) = common::chat_chunks(&common::sse_data(&text));
        assert_eq!(streamed.split_whitespace().count(), 20, "{text}");
    }
    // …then the gateway exits, after writing every record.
    let mut g = g;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = g.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}: {}", g.stderr_text());
    let again = common::gateway_with_file(&path, &env, &data);
    let rows = common::wait_for_logs(&again.url, "", 16, Some(ADMIN)).await;
    assert_eq!(rows.len(), 16, "{rows:?}");
    for r in rows {
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["error_class"].is_null(), "{r}");
        assert_eq!(r["output_tokens"], 20, "{r}");
    }
}
