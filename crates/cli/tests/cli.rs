//! The command line: help, validation and start-up errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{run_cli as run, temp_dir};

#[test]
fn help_explains_the_commands() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("serve") && out.contains("mock") && out.contains("keys"));
    let (code, out, _) = run(&["keys", "--help"], &[]);
    assert_eq!(code, 0);
    for word in [
        "create",
        "list",
        "show",
        "revoke",
        "rotate",
        "--url",
        "--data-dir",
        "SWITCHYARD_ADMIN_TOKEN",
    ] {
        assert!(out.contains(word), "{word} in {out}");
    }
    let (_, out, _) = run(&["serve", "--help"], &[]);
    for flag in [
        "--config",
        "--listen",
        "--data-dir",
        "--validate",
        "SWITCHYARD_CONFIG",
        "SWITCHYARD_LISTEN",
        "SWITCHYARD_DATA_DIR",
    ] {
        assert!(out.contains(flag), "{flag} in {out}");
    }
}

#[test]
fn validate_reports_what_is_enabled_and_rejects_bad_files() {
    let dir = temp_dir("cli");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[aliases]\nfast = \"groq/llama-3.1-8b-instant\"\n[routes.smart]\ntargets = [\"fast\", \"mock/echo\"]\n[firewall.policies.default]\ninput = { secrets = \"block\" }\n[firewall.policies.audit]\ninput = { all = \"flag\" }\n",
    )
    .unwrap();
    let (code, out, err) = run(
        &["serve", "--validate", "--config", good.to_str().unwrap()],
        &[("GROQ_API_KEY", "gsk")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("groq")
            && out.contains("mock")
            && out.contains("routes: smart")
            && out.contains("firewall: policies audit, default (every call: default)"),
        "{out}"
    );

    let (code, _, err) = run(
        &["serve", "--validate", "--config", good.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("aliases.fast") && err.contains("GROQ_API_KEY"),
        "{err}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = 8787\n").unwrap();
    let (code, _, err) = run(
        &["serve", "--validate"],
        &[("SWITCHYARD_CONFIG", bad.to_str().unwrap())],
    );
    assert_eq!(code, 2);
    assert!(err.contains("listen"), "{err}");

    let (code, _, err) = run(&["serve", "--validate", "--listen", "nowhere"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--listen") && err.contains("127.0.0.1:8787"),
        "{err}"
    );

    let (code, _, err) = run(&["serve", "--config", "/nonexistent/switchyard.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/switchyard.toml"), "{err}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let dir = temp_dir("port");
    let (code, _, err) = run(
        &[
            "serve",
            "--listen",
            &addr,
            "--data-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot listen") && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn models_finds_the_data_directory_the_configuration_names() {
    let dir = temp_dir("models-config");
    let data = dir.join("elsewhere");
    switchyard_local::testing::tiny_model(&data.join("models").join("tiny")).unwrap();
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let (code, out, err) = run(
        &["models", "list", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("local/tiny"), "{out}");
    // --data-dir wins over the file.
    let empty = dir.join("empty");
    let (code, out, err) = run(
        &[
            "models",
            "list",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no models installed"), "{out}");
}
