//! Redaction of secrets in text that is about to be stored (recorded request and response
//! bodies): API keys and tokens of the common providers and platforms, bearer tokens and PEM
//! private keys become `[REDACTED:<kind>]`.
//!
//! A scanner over words (runs of letters, digits, `-`, `_`, `.`), not regular expressions: each
//! word is checked against known prefixes and a minimum length, so ordinary prose is left alone.

use std::borrow::Cow;

/// (prefix, minimum length of the whole word, kind)
const PREFIXES: &[(&str, usize, &str)] = &[
    ("sk-ant-", 24, "anthropic_key"),
    ("sk-proj-", 24, "openai_key"),
    ("sk-sy-", 20, "switchyard_key"),
    ("sk-", 24, "api_key"),
    ("gsk_", 24, "groq_key"),
    ("xai-", 24, "xai_key"),
    ("AIza", 35, "google_key"),
    ("AKIA", 20, "aws_access_key"),
    ("ASIA", 20, "aws_access_key"),
    ("ghp_", 36, "github_token"),
    ("gho_", 36, "github_token"),
    ("github_pat_", 40, "github_token"),
    ("glpat-", 26, "gitlab_token"),
    ("xoxb-", 20, "slack_token"),
    ("xoxp-", 20, "slack_token"),
    ("hf_", 30, "huggingface_token"),
    ("eyJ", 40, "jwt"),
];

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn kind(word: &str) -> Option<&'static str> {
    PREFIXES
        .iter()
        .find(|(p, min, _)| word.starts_with(p) && word.len() >= *min)
        .map(|(_, _, k)| *k)
}

/// The text with secrets replaced; borrowed when there were none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        // PEM private keys: the whole block.
        if bytes[i] == b'-'
            && text[i..].starts_with("-----BEGIN")
            && let Some(head_end) = text[i..]
                .find("-----\n")
                .or_else(|| text[i..].find("-----\\n"))
            && text[i..i + head_end].contains("PRIVATE KEY")
        {
            let end = text[i..]
                .find("-----END")
                .and_then(|e| text[i + e + 8..].find("-----").map(|f| i + e + 8 + f + 5))
                .unwrap_or(text.len());
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[last..i]);
            o.push_str("[REDACTED:private_key]");
            last = end;
            i = end;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if !is_word(c) {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let len = text[i..]
            .char_indices()
            .find(|&(_, ch)| !is_word(ch))
            .map_or(text.len() - i, |(n, _)| n);
        let word = &text[start..start + len];
        let before = text[..start].trim_end();
        let bearer = (before.ends_with("Bearer") || before.ends_with("bearer")) && word.len() >= 16;
        if let Some(k) = kind(word).or(bearer.then_some("bearer_token")) {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[last..start]);
            o.push_str("[REDACTED:");
            o.push_str(k);
            o.push(']');
            last = start + len;
        }
        i = start + len;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[last..]);
            Cow::Owned(o)
        }
    }
}

/// Redacts every string in a JSON value.
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_secrets_are_replaced_and_prose_is_not() {
        let text = "use sk-proj-abcdefghijklmnopqrstuvwx and AKIAABCDEFGHIJKLMNOP, \
                    header Authorization: Bearer abcdefghijklmnopqrstu; skip-this is fine";
        let r = redact(text);
        assert!(!r.contains("sk-proj-abc"), "{r}");
        assert!(!r.contains("AKIAABCD"), "{r}");
        assert!(!r.contains("abcdefghijklmnopqrstu;"), "{r}");
        assert!(r.contains("[REDACTED:openai_key]") && r.contains("[REDACTED:aws_access_key]"));
        assert!(r.contains("[REDACTED:bearer_token]"), "{r}");
        assert!(r.contains("skip-this is fine"));
        let plain = "The sky is blue; ask-me-anything.";
        assert!(matches!(redact(plain), Cow::Borrowed(_)));
        let pem =
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nafter";
        assert_eq!(redact(pem), "key:\n[REDACTED:private_key]\nafter");
    }

    #[test]
    fn json_strings_are_redacted_everywhere() {
        let mut v = serde_json::json!({"messages": [{"content": "my key is sk-ant-api03-abcdefghijklmnopqrst"}]});
        redact_json(&mut v);
        assert_eq!(
            v["messages"][0]["content"],
            "my key is [REDACTED:anthropic_key]"
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(text in "\\PC{0,200}") {
            let once = redact(&text).into_owned();
            prop_assert_eq!(redact(&once).into_owned(), once.clone());
        }

        #[test]
        fn planted_keys_never_survive(pre in "[a-z ]{0,20}", key in "[A-Za-z0-9]{24,40}", post in "[a-z ]{0,20}") {
            let text = format!("{pre} sk-proj-{key} {post}");
            prop_assert!(!redact(&text).contains(&key));
        }
    }
}
