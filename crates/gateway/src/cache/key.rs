//! What identifies an answer in the cache.
//!
//! The key is a SHA-256 over the namespace (whose answers these are), where the call goes (the
//! planned route's [`destination`](crate::routing::Route::destination): its name and targets,
//! after any metadata rule chose it), the call options that change the answer, and the
//! canonical request without what does not: `model` (the destination covers it), `stream` and
//! `stream_options` (a hit is served in either form), `user` and `metadata` (who asked, not
//! what). A caller-chosen key (`x-switchyard-cache-key`) replaces the request part; it stays
//! inside the namespace and the destination.

use sha2::{Digest, Sha256};
use switchyard_protocol::chat::{ChatRequest, Content, Part};

use crate::config::Namespace;
use crate::routing::CallOptions;

pub type Key = [u8; 32];

/// The namespace of a call: its key's setting, else the configured default; calls without a
/// key share one.
pub fn namespace(options: &CallOptions, default: &Namespace) -> String {
    let Some(key) = &options.key else {
        return "shared".to_owned();
    };
    let ns = key
        .policy
        .cache_namespace
        .as_deref()
        .and_then(|n| Namespace::parse(n).ok())
        .unwrap_or_else(|| default.clone());
    match ns {
        Namespace::Key => format!("key:{}", key.id),
        Namespace::Shared => "shared".to_owned(),
        Namespace::Group(g) => format!("group:{g}"),
    }
}

/// The key of a chat call planned to `destination`.
pub fn chat(namespace: &str, destination: &str, options: &CallOptions, req: &ChatRequest) -> Key {
    hash(
        b"chat/v2",
        namespace,
        destination,
        options,
        req,
        options.cache.key.as_deref(),
    )
}

/// The key of everything about a chat call but its last message: the semantic cache compares
/// the last user turns of the calls that share this key (same namespace, model, system prompt,
/// earlier turns, tools and parameters).
pub fn context(
    namespace: &str,
    destination: &str,
    options: &CallOptions,
    req: &ChatRequest,
) -> Key {
    let mut rest = req.clone();
    if let Some(mut last) = rest.messages.pop()
        && let Some(Content::Parts(parts)) = last.content.take()
    {
        // Only the last turn's text is compared by meaning; what else it holds (an image, a
        // file) must be the same, so it stays in the context.
        let others: Vec<Part> = parts.into_iter().filter(|p| p.text().is_none()).collect();
        if !others.is_empty() {
            last.content = Some(Content::Parts(others));
            rest.messages.push(last);
        }
    }
    hash(b"context/v2", namespace, destination, options, &rest, None)
}

fn hash(
    kind: &[u8],
    namespace: &str,
    destination: &str,
    options: &CallOptions,
    req: &ChatRequest,
    caller_key: Option<&str>,
) -> Key {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so that no two different field lists hash the same bytes.
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(kind);
    field(namespace.as_bytes());
    field(destination.as_bytes());
    field(&options.max_cost_usd.unwrap_or(0.0).to_le_bytes());
    match caller_key {
        Some(k) => {
            field(b"caller");
            field(k.as_bytes());
        }
        None => {
            field(b"request");
            let mut canonical = req.clone();
            // The destination says where the call goes; the name it was asked by does not
            // change the answer (each attempt is readdressed to its target's model).
            canonical.model.clear();
            canonical.stream = None;
            canonical.stream_options = None;
            canonical.user = None;
            canonical.extra.remove("metadata");
            // Serializing a canonical request cannot fail (string keys, finite numbers as
            // parsed); an empty field would only make every such request miss.
            field(&serde_json::to_vec(&canonical).unwrap_or_default());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn key_of(v: serde_json::Value) -> Key {
        chat("shared", "up/m", &CallOptions::default(), &req(v))
    }

    #[test]
    fn what_does_not_change_the_answer_does_not_change_the_key() {
        let plain = key_of(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0
        }));
        let streamed = key_of(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
            "stream": true, "stream_options": {"include_usage": true},
            "user": "u-1", "metadata": {"team": "a"}
        }));
        assert_eq!(plain, streamed);
        // An alias and the slug it names go to the same place.
        let by_alias = key_of(serde_json::json!({
            "model": "fast", "messages": [{"role": "user", "content": "hi"}], "temperature": 0
        }));
        assert_eq!(plain, by_alias);
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let base = serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0
        });
        let k = key_of(base.clone());
        for (field, value) in [
            (
                "messages",
                serde_json::json!([{"role": "user", "content": "hi!"}]),
            ),
            ("temperature", serde_json::json!(0.5)),
            ("max_tokens", serde_json::json!(5)),
            (
                "tools",
                serde_json::json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            (
                "response_format",
                serde_json::json!({"type": "json_object"}),
            ),
            ("seed", serde_json::json!(7)),
        ] {
            let mut changed = base.clone();
            changed[field] = value;
            assert_ne!(key_of(changed), k, "{field}");
        }
        let options = CallOptions::default();
        assert_ne!(
            chat("key:a", "up/m", &options, &req(base.clone())),
            chat("key:b", "up/m", &options, &req(base.clone())),
        );
        // The same name planned elsewhere (a metadata rule chose another route).
        assert_ne!(
            chat("shared", "smart up/m", &options, &req(base.clone())),
            chat("shared", " up/n", &options, &req(base.clone())),
        );
        assert_ne!(
            context("shared", "smart up/m", &options, &req(base.clone())),
            context("shared", " up/n", &options, &req(base)),
        );
    }

    #[test]
    fn a_caller_key_replaces_the_request_but_not_the_namespace_or_destination() {
        let mut options = CallOptions::default();
        options.cache.key = Some("faq-17".into());
        let a =
            req(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "a"}]}));
        let b =
            req(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "b"}]}));
        assert_eq!(
            chat("shared", "up/m", &options, &a),
            chat("shared", "up/m", &options, &b)
        );
        assert_ne!(
            chat("shared", "up/m", &options, &a),
            chat("shared", "up/n", &options, &a)
        );
        assert_ne!(
            chat("shared", "up/m", &options, &a),
            chat("key:x", "up/m", &options, &a)
        );
    }

    #[test]
    fn a_semantic_context_keeps_the_last_turns_images() {
        let ask = |image: &str| {
            req(
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": image}}]}]}),
            )
        };
        let options = CallOptions::default();
        let a = context(
            "shared",
            "up/m",
            &options,
            &ask("https://example.com/a.png"),
        );
        let b = context(
            "shared",
            "up/m",
            &options,
            &ask("https://example.com/b.png"),
        );
        assert_ne!(
            a, b,
            "two pictures asked about alike are not the same question"
        );
        assert_eq!(
            a,
            context(
                "shared",
                "up/m",
                &options,
                &ask("https://example.com/a.png")
            )
        );
        // Text alone: the last turn is out of the context (its meaning is compared instead).
        let text = |t: &str| {
            req(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": t}]}))
        };
        assert_eq!(
            context("shared", "up/m", &options, &text("hi")),
            context("shared", "up/m", &options, &text("hello"))
        );
    }
}
