//! Conformance: the official `openai` and `anthropic` Python SDKs against the real binary.
//!
//! Needs `SWITCHYARD_TEST_PYTHON`: a Python interpreter with the packages of
//! `tests/conformance/requirements.txt` (`.ci/run` makes a virtualenv and sets it). Without it
//! each test says loudly that it skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

/// Runs one conformance script against a fresh gateway; `api_path` is appended to its URL.
fn run_script(name: &str, script: &str, api_path: &str) {
    let Ok(python) = std::env::var("SWITCHYARD_TEST_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED {name}: SWITCHYARD_TEST_PYTHON is not set.\n*** Run .ci/run, or set it to a python with tests/conformance/requirements.txt installed.\n"
        );
        return;
    };
    let gateway = common::gateway("", &[]);
    let path = format!(
        "{}/../../tests/conformance/{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(&python)
        .arg(path)
        .env("SWITCHYARD_BASE_URL", format!("{}{api_path}", gateway.url))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn official_openai_python_sdk() {
    run_script("official_openai_python_sdk", "openai_sdk.py", "/v1");
}

#[test]
fn official_anthropic_python_sdk() {
    run_script("official_anthropic_python_sdk", "anthropic_sdk.py", "");
}
