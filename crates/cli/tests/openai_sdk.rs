//! Conformance: the official `openai` Python SDK against the real binary.
//!
//! Needs `SWITCHYARD_TEST_PYTHON`: a Python interpreter with `openai` installed (`.ci/run` makes
//! a virtualenv and sets it). Without it the test says loudly that it skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

#[test]
fn official_openai_python_sdk() {
    let Ok(python) = std::env::var("SWITCHYARD_TEST_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED official_openai_python_sdk: SWITCHYARD_TEST_PYTHON is not set.\n*** Run .ci/run, or set it to a python with `pip install openai`.\n"
        );
        return;
    };
    let gateway = common::gateway("", &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/conformance/openai_sdk.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .env("SWITCHYARD_BASE_URL", format!("{}/v1", gateway.url))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
