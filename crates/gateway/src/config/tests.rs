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
        [("x-org".to_owned(), Secret::new("research"))]
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
    let e = error_of(
        "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://me:hunter2@x.example/v1\"\n",
    );
    assert!(
        e.contains("providers.myco.base_url")
            && e.contains("user name or password")
            && !e.contains("hunter2"),
        "{e}"
    );
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

#[test]
fn routes_retry_breaker_and_catalog() {
    let c = Config::from_toml(
        r#"
[aliases]
quick = "mock/echo"
[retry]
max_attempts = 4
backoff_ms = 50
attempt_timeout_ms = 2000
[circuit_breaker]
consecutive_failures = 7
cooldown_ms = 1000
[routes.smart]
strategy = "weighted"
targets = ["mock/echo", { model = "quick", weight = 3, overrides = { temperature = 0.2 } }]
hedge = "p95"
max_attempts = 2
[[routes.smart.when]]
metadata = { tier = "free" }
route = "mock/stream-3"
[routes.calm]
targets = ["mock/echo"]
hedge = 250
[catalog."mock/echo"]
input_per_mtok = 1.5
output_per_mtok = 3.0
vision = false
"#,
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.retry.max_attempts, 4);
    assert_eq!(c.retry.backoff, Duration::from_millis(50));
    assert_eq!(c.breaker.consecutive_failures, 7);
    assert_eq!(c.breaker.cooldown, Duration::from_secs(1));
    let smart = c.routes.iter().find(|r| r.name == "smart").unwrap();
    assert_eq!(smart.strategy, Strategy::Weighted);
    assert_eq!(smart.targets[1].weight, 3);
    assert_eq!(smart.targets[1].overrides["temperature"], 0.2);
    assert_eq!(smart.hedge, Some(Hedge::Percentile(0.95)));
    // The route's own attempts, the file's defaults for the rest.
    assert_eq!(smart.retry.max_attempts, 2);
    assert_eq!(smart.retry.attempt_timeout, Some(Duration::from_secs(2)));
    assert_eq!(smart.rules[0].route, "mock/stream-3");
    let calm = c.routes.iter().find(|r| r.name == "calm").unwrap();
    assert_eq!(calm.hedge, Some(Hedge::After(Duration::from_millis(250))));
    let echo = c.catalog.get("mock/echo").unwrap();
    assert_eq!(echo.input_per_mtok, Some(1.5));
    assert!(!echo.features.vision);
    assert!(
        c.catalog.get("openai/gpt-4o-mini").is_some(),
        "built-ins stay"
    );
}

#[test]
fn routing_errors_name_the_key_and_the_fix() {
    for (text, key, hint) in [
        (
            "[routes.r]\ntargets = []\n",
            "routes.r.targets",
            "at least one",
        ),
        (
            "[routes.r]\nstrategy = \"fastest\"\ntargets = [\"mock/echo\"]\n",
            "routes.r.strategy",
            "least-latency",
        ),
        (
            "[routes.r]\ntargets = [\"groq/llama\"]\n",
            "routes.r.targets[0]",
            "set GROQ_API_KEY",
        ),
        (
            "[routes.r]\ntargets = [\"other\"]\n[routes.other]\ntargets = [\"mock/echo\"]\n",
            "routes.r.targets[0]",
            "do not nest",
        ),
        (
            "[routes.r]\nstrategy = \"weighted\"\ntargets = [{ model = \"mock/echo\", weight = 0 }]\n",
            "routes.r.targets",
            "positive weight",
        ),
        (
            "[routes.r]\ntargets = [\"mock/echo\"]\nhedge = \"soon\"\n",
            "routes.r.hedge",
            "p95",
        ),
        (
            "[routes.r]\ntargets = [{ model = \"mock/echo\", overrides = { model = \"x\" } }]\n",
            "routes.r.targets[0].overrides.model",
            "cannot be overridden",
        ),
        (
            "[routes.r]\ntargets = [\"mock/echo\"]\n[[routes.r.when]]\nmetadata = { a = \"b\" }\nroute = \"nowhere\"\n",
            "routes.r.when[0].route",
            "alias",
        ),
        (
            "[retry]\nmax_attempts = 0\n",
            "retry.max_attempts",
            "1 (no retry)",
        ),
        (
            "[retry]\nbackoff_ms = 500\nmax_backoff_ms = 100\n",
            "retry.max_backoff_ms",
            "raise it",
        ),
        (
            "[circuit_breaker]\nerror_rate = 2\n",
            "circuit_breaker.error_rate",
            "at most 1",
        ),
        (
            "[catalog.\"mock/echo\"]\ninput_per_mtok = -1\n",
            "catalog.\"mock/echo\"",
            "not a price",
        ),
        (
            "[aliases]\nsmart = \"mock/echo\"\n[routes.smart]\ntargets = [\"mock/echo\"]\n",
            "routes.smart",
            "alias has the same name",
        ),
    ] {
        let e = error_of(text);
        assert!(e.contains(key) && e.contains(hint), "{text}\n→ {e}");
    }
}

#[test]
fn cache_settings_resolve_per_route_and_model() {
    let c = Config::from_toml(
        r#"
[cache]
ttl = "5m"
max_mb = 16
namespace = "team-a"
[cache.models]
"mock/echo" = "30s"
"mock/stream-3" = false
[cache.semantic]
embedding_model = "mock/embed"
threshold = 0.9
models = ["mock/echo"]
[routes.faq]
targets = ["mock/echo"]
cache = true
[routes.fresh]
targets = ["mock/echo"]
cache = false
semantic_cache = true
"#,
        &env(&[]),
    )
    .unwrap();
    let p = &c.cache;
    assert_eq!(p.max_bytes, 16 * 1024 * 1024);
    assert_eq!(p.namespace, Namespace::Group("team-a".into()));
    let route = |name: &str| c.routes.iter().find(|r| r.name == name).unwrap();
    assert_eq!(
        p.ttl_for(route("faq").cache, "faq"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(p.ttl_for(route("fresh").cache, "fresh"), None);
    assert_eq!(p.ttl_for(None, "mock/echo"), Some(Duration::from_secs(30)));
    assert_eq!(p.ttl_for(None, "mock/stream-3"), None);
    assert_eq!(p.ttl_for(None, "mock/other"), None, "off unless enabled");
    assert!(p.semantic_for(None, "mock/echo"));
    assert!(!p.semantic_for(None, "mock/other"));
    assert!(p.semantic_for(route("fresh").semantic_cache, "fresh"));
    assert_eq!(p.semantic.as_ref().unwrap().threshold, 0.9);
}

#[test]
fn cache_errors_name_the_key_and_the_fix() {
    for (text, needle) in [
        ("[cache]\nttl = \"soon\"", "cache.ttl"),
        ("[cache]\nnamespace = \"two words\"", "cache.namespace"),
        (
            "[cache.models]\n\"mock/echo\" = \"1y\"",
            "cache.models.\"mock/echo\"",
        ),
        (
            "[cache.semantic]\nembedding_model = \" \"",
            "embedding_model",
        ),
        (
            "[cache.semantic]\nembedding_model = \"mock/embed\"\nthreshold = 1.5",
            "cache.semantic.threshold",
        ),
        (
            "[routes.r]\ntargets = [\"mock/echo\"]\ncache = \"forever\"",
            "routes.r.cache",
        ),
    ] {
        let e = error_of(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn the_semantic_cache_embeds_with_the_local_model_by_default() {
    let c = Config::from_toml("[cache.semantic]\nmodels = [\"mock/echo\"]\n", &env(&[])).unwrap();
    let s = c.cache.semantic.unwrap();
    assert_eq!(s.embedding_model, "local/all-minilm-l6-v2");
    assert_eq!(s.threshold, 0.95);
}

#[test]
fn spans_parse_and_non_ascii_units_are_refused_not_a_panic() {
    assert_eq!(parse_span_ms("45s"), Some(45_000));
    assert_eq!(parse_span_ms("90m"), Some(5_400_000));
    assert_eq!(parse_span_ms("12h"), Some(43_200_000));
    assert_eq!(parse_span_ms("30d"), Some(2_592_000_000));
    for bad in [
        "",
        "s",
        "0s",
        "-5s",
        "5",
        "5x",
        "1é",
        "é",
        "5秒",
        "9999999999999999d",
    ] {
        assert_eq!(parse_span_ms(bad), None, "{bad:?}");
    }
    let e = error_of("[cache]\nttl = \"1é\"\n");
    assert!(e.contains("cache.ttl"), "{e}");
}

#[test]
fn a_vault_reference_resolves_from_the_vault_and_is_off_until_stored() {
    let text = "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://llm.myco.internal/v1\"\napi_key = \"vault:myco-key\"\n";
    let key_of = |c: &Config| {
        c.providers
            .iter()
            .find(|p| p.settings.name == "myco")
            .map(|p| p.settings.api_key.as_ref().map(|k| k.expose().to_owned()))
    };
    // Stored: used.
    let stored = env(&[]).with_vault([("myco-key".to_owned(), "sk-v".to_owned())].into());
    let c = Config::from_toml(text, &stored).unwrap();
    assert_eq!(key_of(&c), Some(Some("sk-v".to_owned())));
    // Not stored: the configuration still loads, a route may name the provider, and the
    // provider waits for the credential.
    let routed = format!("{text}[routes.r]\ntargets = [\"myco/m\"]\n");
    let c = Config::from_toml(&routed, &env(&[])).unwrap();
    assert_eq!(key_of(&c), Some(None));
    let myco = c
        .providers
        .iter()
        .find(|p| p.settings.name == "myco")
        .unwrap();
    assert_eq!(myco.waiting_for.as_deref(), Some("myco-key"));
    // Before the vault is open (the load that finds the database): accepted, unresolved.
    let c = Config::from_toml(text, &env(&[]).before_vault()).unwrap();
    assert!(key_of(&c).is_some());
}

#[test]
fn provider_headers_take_references_and_never_print() {
    let text = "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://llm.myco.internal/v1\"\nheaders = { authorization = \"env:MYCO_BASIC\", x-org = \"research\" }\n";
    let c = Config::from_toml(text, &env(&[("MYCO_BASIC", "Basic c2VjcmV0")])).unwrap();
    let myco = c
        .providers
        .iter()
        .find(|p| p.settings.name == "myco")
        .unwrap();
    let headers: Vec<(&str, &str)> = myco
        .settings
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [("authorization", "Basic c2VjcmV0"), ("x-org", "research")]
    );
    assert!(!format!("{:?}", myco.settings).contains("c2VjcmV0"));
    let e = error_of(
        "[providers.myco]\nkind = \"openai\"\nbase_url = \"https://x.example/v1\"\nheaders = { authorization = \"env:NOT_SET_ANYWHERE\" }\n",
    );
    assert!(
        e.contains("providers.myco.headers.authorization") && e.contains("NOT_SET_ANYWHERE"),
        "{e}"
    );
}
