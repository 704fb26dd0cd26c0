use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().copied().collect()
}

fn names(c: &Config) -> Vec<&str> {
    c.providers
        .iter()
        .map(|p| p.settings.name.as_str())
        .collect()
}

#[test]
fn defaults_enable_presets_with_keys_local_servers_and_the_mock() {
    let c = Config::defaults(&env(&[
        ("GROQ_API_KEY", "gsk-1"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
    ]))
    .unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(
        names(&c),
        [
            "groq",
            "ollama",
            "vllm",
            "lmstudio",
            "mock",
            "mock-anthropic",
            "mock-gemini"
        ]
    );
    let groq = &c.providers[0].settings;
    assert_eq!(groq.api_key.as_ref().unwrap().expose(), "gsk-1");
    assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
    assert!(
        c.disabled_presets
            .iter()
            .any(|(n, v)| n == "openai" && v == "OPENAI_API_KEY")
    );
    let mock = &c.providers[c.providers.len() - 3];
    assert!(mock.embedded_mock && mock.kind == WireKind::OpenAi);
    let mock_anthropic = &c.providers[c.providers.len() - 2];
    assert!(mock_anthropic.embedded_mock && mock_anthropic.kind == WireKind::Anthropic);
}

#[test]
fn base_url_from_env_and_file_precedence() {
    let e = env(&[
        ("OPENAI_API_KEY", "sk-1"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
    ]);
    let c = Config::defaults(&e).unwrap();
    assert_eq!(c.providers[0].settings.base_url, "http://127.0.0.1:9/v1");
    let c = Config::from_toml(
        "[providers.openai]\nbase_url = \"https://proxy.example/v1\"\n",
        &e,
    )
    .unwrap();
    assert_eq!(c.providers[0].settings.base_url, "https://proxy.example/v1");
}

#[test]
fn custom_providers_aliases_and_secret_references() {
    let dir = std::env::temp_dir().join(format!("sy-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key");
    std::fs::write(&key_file, "sk-from-file\n").unwrap();
    let text = format!(
        r#"
default_provider = "myco"
[server]
listen = "localhost:9999"
[aliases]
fast = "myco/small"
quick = "fast"
[providers.myco]
kind = "openai"
base_url = "https://llm.myco.internal/v1"
api_key = "file:{}"
headers = {{ "x-org" = "research" }}
models = ["small", "large"]
[providers.other]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key = "env:OTHER_KEY"
auth_header = "api-key"
"#,
        key_file.display()
    );
    let c = Config::from_toml(&text, &env(&[("OTHER_KEY", "k2")])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
    let myco = c
        .providers
        .iter()
        .find(|p| p.settings.name == "myco")
        .unwrap();
    assert_eq!(
        myco.settings.api_key.as_ref().unwrap().expose(),
        "sk-from-file"
    );
    assert_eq!(
        myco.settings.headers,
        [("x-org".to_owned(), "research".to_owned())]
    );
    assert_eq!(myco.models, ["small", "large"]);
    let other = c
        .providers
        .iter()
        .find(|p| p.settings.name == "other")
        .unwrap();
    assert_eq!(other.settings.auth, AuthStyle::Header("api-key".into()));
    assert_eq!(c.aliases["quick"], "fast");
    assert_eq!(c.default_provider.as_deref(), Some("myco"));
    std::fs::remove_dir_all(dir).ok();
}

fn error_of(text: &str) -> String {
    Config::from_toml(text, &env(&[])).unwrap_err().0
}

#[test]
fn errors_name_the_key_the_value_and_the_fix() {
    let e = error_of("[server]\nlisten = \"nowhere\"\n");
    assert!(
        e.contains("server.listen") && e.contains("nowhere") && e.contains("127.0.0.1:8787"),
        "{e}"
    );
    let e = error_of("[server]\nlisn = 1\n");
    assert!(e.contains("lisn"), "{e}");
    let e = error_of("[providers.myco]\nbase_url = \"https://x.example/v1\"\n");
    assert!(
        e.contains("providers.myco.kind") && e.contains("kind = \"openai\""),
        "{e}"
    );
    let e = error_of(
        "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://x.example/v1\"\napi_key = \"sk-literal\"\n",
    );
    assert!(
        e.contains("providers.myco.api_key") && e.contains("env:NAME") && !e.contains("sk-literal"),
        "{e}"
    );
    let e = error_of(
        "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://x.example/v1\"\napi_key = \"env:NOPE\"\n",
    );
    assert!(e.contains("NOPE is not set"), "{e}");
    let e = error_of("[aliases]\nfast = \"groq/llama\"\n");
    assert!(
        e.contains("aliases.fast") && e.contains("set GROQ_API_KEY"),
        "{e}"
    );
    let e = error_of("[aliases]\na = \"b\"\nb = \"a\"\n");
    assert!(e.contains("cycle"), "{e}");
    let e = error_of("[providers.anthropic]\nkind = \"openai\"\n");
    assert!(
        e.contains("providers.anthropic.kind") && e.contains("speaks `anthropic`"),
        "{e}"
    );
    let e = error_of("[providers.x]\nkind = \"gemini-ish\"\nbase_url = \"https://x.example\"\n");
    assert!(
        e.contains("providers.x.kind") && e.contains("\"anthropic\""),
        "{e}"
    );
    let e = error_of("[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n");
    assert!(
        e.contains("providers.x.base_url") && e.contains("ftp://x"),
        "{e}"
    );
    let e = error_of("default_provider = \"openai\"\n");
    assert!(e.contains("default_provider"), "{e}");
    let e = error_of("[server]\nrequest_timeout_ms = 0\n");
    assert!(e.contains("server.request_timeout_ms"), "{e}");
}

#[test]
fn presets_can_be_disabled_and_mock_pointed_elsewhere() {
    let c = Config::from_toml(
        "[providers.ollama]\nenabled = false\n[providers.mock]\nbase_url = \"http://127.0.0.1:5/v1\"\n",
        &env(&[]),
    )
    .unwrap();
    assert!(!names(&c).contains(&"ollama"));
    let mock = c
        .providers
        .iter()
        .find(|p| p.settings.name == MOCK)
        .unwrap();
    assert!(!mock.embedded_mock);
    assert_eq!(mock.settings.base_url, "http://127.0.0.1:5/v1");
}
