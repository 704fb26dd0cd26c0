//! The dashboard in a real browser: headless Chromium loads the page from a gateway that served
//! recorded traffic, and the charts, figures and rows must show that traffic. Needs
//! `SWITCHYARD_TEST_CHROMIUM` (the browser's path; `.ci/run` installs Debian's `chromium`);
//! without it the test says loudly that it skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{PRICED_WITH_RETRY, Proc, client, gateway_at, gateway_on, temp_dir, wait_for_logs};
use serde_json::json;

fn chromium(browser: &str, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,1000",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn traffic(g: &Proc) {
    let c = client();
    let call = |model: &str, meta: Option<&str>| {
        let mut req = c.post(format!("{}/v1/chat/completions", g.url)).json(
            &json!({"model": model, "messages": [{"role": "user", "content": "hello dashboard"}]}),
        );
        if let Some(m) = meta {
            req = req.header("x-switchyard-metadata", m);
        }
        req.send()
    };
    for _ in 0..10 {
        assert_eq!(
            call("mock/echo", Some(r#"{"team":"search"}"#))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(call("sturdy", None).await.unwrap().status(), 200);
    }
    assert_eq!(call("mock/fail-400", None).await.unwrap().status(), 400);
    // One call the firewall stops.
    let blocked = c
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 403);
    // Wait for the writer (a local caller of a gateway on loopback needs no token).
    wait_for_logs(&g.url, "", 14, None).await;
}

#[tokio::test]
async fn the_dashboard_shows_the_recorded_traffic_in_a_real_browser() {
    let Ok(browser) = std::env::var("SWITCHYARD_TEST_CHROMIUM") else {
        eprintln!(
            "\n*** SKIPPED the_dashboard_shows_the_recorded_traffic_in_a_real_browser: SWITCHYARD_TEST_CHROMIUM is not set (.ci/run installs chromium and sets it).\n"
        );
        return;
    };
    let dir = temp_dir("dashboard");
    let config = format!(
        "{PRICED_WITH_RETRY}\n[firewall.policies.default]\ninput = {{ secrets = \"block\" }}\n"
    );
    let g = gateway_on(&config, &[], &dir.join("data"));
    traffic(&g).await;

    // The overview: figures, one line per series, and the breakdown rows.
    let dom = chromium(
        &browser,
        &dir.join("p1"),
        &["--dump-dom"],
        &format!("{}/", g.url),
    );
    assert!(dom.contains(r#"data-kpi="Requests">14<"#), "{dom}");
    assert!(dom.contains(r#"data-kpi="Error rate">14.3%<"#), "{dom}");
    assert!(
        dom.contains(
            r#"data-kpi="Firewall blocks">1<div class="sub">0 redacted · 0 flagged</div><"#
        ),
        "{dom}"
    );
    for series in ["requests", "errors", "p95", "input", "cost"] {
        assert!(
            dom.contains(&format!(r#"class="series" data-name="{series}""#)),
            "no {series} line in {dom}"
        );
    }
    assert!(
        dom.contains("<td>mock/echo</td><td class=\"num\">13</td>"),
        "{dom}"
    );

    // The logs page lists the calls; the retried ones show both attempts.
    let dom = chromium(
        &browser,
        &dir.join("p2"),
        &["--dump-dom"],
        &format!("{}/#logs", g.url),
    );
    // (The page's own script holds the row template once.)
    let rows = dom.matches(r#"<tr class="row" data-id=""#).count()
        - dom.matches(r#"<tr class="row" data-id="${"#).count();
    assert_eq!(rows, 14, "{dom}");
    assert!(
        dom.contains(r#"<span class="pill s5" title="firewall policy default">blocked</span>"#),
        "{dom}"
    );
    assert!(dom.contains("<td>sturdy</td><td>mock/echo</td>"), "{dom}");

    // A screenshot, for people.
    let shot = dir.join("dashboard.png");
    chromium(
        &browser,
        &dir.join("p3"),
        &[&format!("--screenshot={}", shot.display())],
        &format!("{}/", g.url),
    );
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 20_000, "{size}");
    eprintln!("dashboard screenshot: {}", shot.display());
}

#[tokio::test]
async fn off_loopback_the_dashboard_data_needs_the_admin_token() {
    let dir = temp_dir("dashboard-public");
    let token = "admin-token-dashboard-0123456789";
    let g = gateway_at(
        "0.0.0.0:0",
        "[auth]\nopen = true\n",
        &[("SWITCHYARD_ADMIN_TOKEN", token)],
        &dir.join("data"),
    );
    let c = client();
    let page = c.get(format!("{}/", g.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Admin token"));
    let resp = c
        .get(format!("{}/admin/analytics", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .get(format!("{}/admin/analytics", g.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
