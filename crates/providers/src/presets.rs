//! Presets for the common OpenAI-compatible hosts. A preset gives a provider name its base URL
//! and the environment variable its key comes from; `<NAME>_BASE_URL` overrides the URL, as the
//! official SDKs do with `OPENAI_BASE_URL`.

use crate::WireKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub kind: WireKind,
    /// Default base URL; `None` when it depends on the user's deployment (Azure).
    pub base_url: Option<&'static str>,
    /// Environment variables holding the key, first found wins.
    pub key_env: &'static [&'static str],
    /// Environment variable holding the base URL.
    pub base_url_env: &'static str,
    /// A local server that needs no key: enabled whether or not a key is found.
    pub keyless: bool,
    /// The key goes in this header instead of `Authorization: Bearer`.
    pub key_header: Option<&'static str>,
    /// Whether the host accepts `stream_options.include_usage`.
    pub stream_usage: bool,
}

/// An OpenAI-compatible host: hosted ones need a key, local servers (`keyless`) do not.
const fn compatible(
    name: &'static str,
    url: &'static str,
    key: &'static [&'static str],
    url_env: &'static str,
    keyless: bool,
) -> Preset {
    Preset {
        name,
        kind: WireKind::OpenAi,
        base_url: Some(url),
        key_env: key,
        base_url_env: url_env,
        keyless,
        key_header: None,
        stream_usage: true,
    }
}

const fn hosted(
    name: &'static str,
    url: &'static str,
    key: &'static [&'static str],
    url_env: &'static str,
) -> Preset {
    compatible(name, url, key, url_env, false)
}

const fn local(
    name: &'static str,
    url: &'static str,
    key: &'static [&'static str],
    url_env: &'static str,
) -> Preset {
    compatible(name, url, key, url_env, true)
}

pub const PRESETS: &[Preset] = &[
    hosted(
        "openai",
        "https://api.openai.com/v1",
        &["OPENAI_API_KEY"],
        "OPENAI_BASE_URL",
    ),
    Preset {
        name: "anthropic",
        kind: WireKind::Anthropic,
        base_url: Some("https://api.anthropic.com"),
        key_env: &["ANTHROPIC_API_KEY"],
        base_url_env: "ANTHROPIC_BASE_URL",
        keyless: false,
        key_header: Some("x-api-key"),
        stream_usage: true,
    },
    Preset {
        name: "gemini",
        kind: WireKind::Gemini,
        base_url: Some("https://generativelanguage.googleapis.com"),
        key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        base_url_env: "GEMINI_BASE_URL",
        keyless: false,
        key_header: Some("x-goog-api-key"),
        stream_usage: true,
    },
    Preset {
        name: "azure",
        kind: WireKind::OpenAi,
        // Azure OpenAI's v1 API: https://<resource>.openai.azure.com/openai/v1
        base_url: None,
        key_env: &["AZURE_OPENAI_API_KEY"],
        base_url_env: "AZURE_OPENAI_BASE_URL",
        keyless: false,
        key_header: Some("api-key"),
        stream_usage: true,
    },
    hosted(
        "groq",
        "https://api.groq.com/openai/v1",
        &["GROQ_API_KEY"],
        "GROQ_BASE_URL",
    ),
    hosted(
        "together",
        "https://api.together.xyz/v1",
        &["TOGETHER_API_KEY"],
        "TOGETHER_BASE_URL",
    ),
    hosted(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        &["FIREWORKS_API_KEY"],
        "FIREWORKS_BASE_URL",
    ),
    hosted(
        "openrouter",
        "https://openrouter.ai/api/v1",
        &["OPENROUTER_API_KEY"],
        "OPENROUTER_BASE_URL",
    ),
    hosted(
        "deepseek",
        "https://api.deepseek.com/v1",
        &["DEEPSEEK_API_KEY"],
        "DEEPSEEK_BASE_URL",
    ),
    hosted(
        "mistral",
        "https://api.mistral.ai/v1",
        &["MISTRAL_API_KEY"],
        "MISTRAL_BASE_URL",
    ),
    hosted(
        "xai",
        "https://api.x.ai/v1",
        &["XAI_API_KEY"],
        "XAI_BASE_URL",
    ),
    hosted(
        "perplexity",
        "https://api.perplexity.ai",
        &["PERPLEXITY_API_KEY"],
        "PERPLEXITY_BASE_URL",
    ),
    hosted(
        "cerebras",
        "https://api.cerebras.ai/v1",
        &["CEREBRAS_API_KEY"],
        "CEREBRAS_BASE_URL",
    ),
    local(
        "ollama",
        "http://127.0.0.1:11434/v1",
        &["OLLAMA_API_KEY"],
        "OLLAMA_BASE_URL",
    ),
    local(
        "vllm",
        "http://127.0.0.1:8000/v1",
        &["VLLM_API_KEY"],
        "VLLM_BASE_URL",
    ),
    local(
        "lmstudio",
        "http://127.0.0.1:1234/v1",
        &["LMSTUDIO_API_KEY"],
        "LMSTUDIO_BASE_URL",
    ),
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_urls_have_no_trailing_slash() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(
                PRESETS[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
            if let Some(url) = p.base_url {
                assert!(!url.ends_with('/'), "{url}");
                assert!(url.starts_with("http"), "{url}");
            }
            assert!(p.base_url_env.ends_with("_BASE_URL"));
        }
        assert_eq!(preset("groq").unwrap().key_env, ["GROQ_API_KEY"]);
    }
}
