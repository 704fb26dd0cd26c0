//! The credential vault and secret hygiene end to end: a provider key stored through the admin
//! API is encrypted at rest, used at once and after a restart, and no planted secret appears in
//! any response, metric, listing or log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Proc, client, gateway_on, mock, temp_dir};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-planted-0123456789";
const VAULT_SECRET: &str = "sk-planted-vault-secret-7f3a9c";
const ENV_SECRET: &str = "sk-planted-env-secret-41be02";

async fn admin(
    g: &Proc,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = client()
        .request(method, format!("{}/admin{path}", g.url))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn chat(g: &Proc, model: &str) -> (u16, String) {
    let resp = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn get(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn assert_clean(what: &str, text: &str) {
    for secret in [VAULT_SECRET, ENV_SECRET, ADMIN] {
        assert!(
            !text.contains(secret),
            "{what} contains a planted secret: {text}"
        );
    }
}

#[tokio::test]
async fn stored_credentials_are_sealed_used_and_never_shown() {
    let m = mock();
    let data = temp_dir("vault").join("data");
    let config = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"env:UP_KEY\"\n",
        m.url
    );
    let openai_url = format!("{}/v1", m.url);
    let env = [
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN),
        ("UP_KEY", ENV_SECRET),
        ("OPENAI_BASE_URL", openai_url.as_str()),
        ("SWITCHYARD_LOG", "debug"),
    ];
    let g = gateway_on(&config, &env, &data);
    let mut seen = Vec::new();

    // No OpenAI key anywhere: the preset is off.
    let (status, body) = chat(&g, "openai/echo").await;
    assert_eq!(status, 404, "{body}");
    seen.push(body);

    // Stored through the admin API: encrypted, and used at once.
    let (status, body) = admin(
        &g,
        reqwest::Method::PUT,
        "/credentials/openai",
        Some(json!({"api_key": VAULT_SECRET})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"enabled\":true"), "{body}");
    seen.push(body);
    let (status, body) = chat(&g, "openai/echo").await;
    assert_eq!(status, 200, "{body}");
    seen.push(body);
    let last: Value = serde_json::from_str(&get(format!("{}/mock/last", m.url)).await).unwrap();
    assert_eq!(last["authorization"], format!("Bearer {VAULT_SECRET}"));

    // At rest, the database holds only ciphertext.
    for file in ["switchyard.db", "switchyard.db-wal"] {
        if let Ok(bytes) = std::fs::read(data.join(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(VAULT_SECRET),
                "{file} holds the key in clear"
            );
        }
    }

    // Every way out: listings, errors from an upstream that refuses the key, metrics, models.
    let (_, body) = admin(&g, reqwest::Method::GET, "/credentials", None).await;
    assert!(body.contains("openai"), "{body}");
    seen.push(body);
    seen.push(chat(&g, "up/fail-401").await.1);
    seen.push(chat(&g, "openai/fail-401").await.1);
    seen.push(chat(&g, "openai/fail-500").await.1);
    seen.push(chat(&g, "up/malformed").await.1);
    seen.push(get(format!("{}/metrics", g.url)).await);
    seen.push(get(format!("{}/v1/models", g.url)).await);
    seen.push(get(format!("{}/readyz", g.url)).await);
    let (_, body) = admin(&g, reqwest::Method::GET, "/keys", None).await;
    seen.push(body);
    for (i, text) in seen.iter().enumerate() {
        assert_clean(&format!("output {i}"), text);
    }

    assert_clean("the gateway's log", &g.stderr_text());

    // After a restart the stored key is found again.
    drop(g);
    let g = gateway_on(&config, &env, &data);
    assert_eq!(chat(&g, "openai/echo").await.0, 200);

    // Forgotten: the preset is off again, and the error says how to turn it on.
    let (status, body) = admin(&g, reqwest::Method::DELETE, "/credentials/openai", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(&g, "openai/echo").await;
    assert_eq!(status, 404);
    assert!(body.contains("OPENAI_API_KEY"), "{body}");
    let (status, _) = admin(&g, reqwest::Method::DELETE, "/credentials/openai", None).await;
    assert_eq!(status, 404);

    assert_clean("the gateway's log", &g.stderr_text());
    // The master key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_vault_reference_in_the_file_starts_off_is_used_once_stored_and_after_restarts() {
    let m = mock();
    let data = temp_dir("vault-ref").join("data");
    let config = format!(
        "[providers.myco]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"vault:myco-key\"\n[routes.smart]\ntargets = [\"myco/echo\"]\n",
        m.url
    );
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN)];
    // Nothing stored yet: the gateway starts (a route may name the provider), and calls are
    // refused saying how to store the credential, without reaching the provider.
    let g = gateway_on(&config, &env, &data);
    for model in ["myco/echo", "smart"] {
        let (status, body) = chat(&g, model).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("PUT /admin/credentials/myco-key"), "{body}");
    }
    assert!(
        g.stderr_text().contains("PUT /admin/credentials/myco-key"),
        "the log does not say how to store the credential"
    );

    let (status, body) = admin(
        &g,
        reqwest::Method::PUT,
        "/credentials/myco-key",
        Some(json!({"api_key": VAULT_SECRET})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(&g, "myco/echo").await;
    assert_eq!(status, 200, "{body}");
    let last: Value = serde_json::from_str(&get(format!("{}/mock/last", m.url)).await).unwrap();
    assert_eq!(last["authorization"], format!("Bearer {VAULT_SECRET}"));

    // A restart resolves the reference from the vault.
    drop(g);
    let g = gateway_on(&config, &env, &data);
    assert_eq!(chat(&g, "myco/echo").await.0, 200);
    let last: Value = serde_json::from_str(&get(format!("{}/mock/last", m.url)).await).unwrap();
    assert_eq!(last["authorization"], format!("Bearer {VAULT_SECRET}"));

    // Deleted: the provider waits again, not left on the old key.
    let (status, body) = admin(&g, reqwest::Method::DELETE, "/credentials/myco-key", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chat(&g, "smart").await.0, 400);
    assert_clean("the gateway's log", &g.stderr_text());
}
