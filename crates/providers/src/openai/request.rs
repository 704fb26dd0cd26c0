//! Building upstream requests.

use serde::Serialize;
use switchyard_protocol::chat::{ChatRequest, Content, Part, Role};

use crate::ProviderError;

/// Readies a canonical request for OpenAI's wire, which has no place for two things the
/// canonical form can carry from other surfaces: reasoning blocks (Anthropic `thinking`, kept
/// for upstreams that take them back) are left out of assistant history, and a tool result that
/// reports an error says so in its text. For OpenAI itself (`completion_tokens`), `max_tokens`
/// is sent as `max_completion_tokens`, which every OpenAI model takes and its reasoning models
/// require (an Anthropic caller always sends `max_tokens`, and a cost ceiling sets it).
pub(super) fn to_wire(req: &mut ChatRequest, completion_tokens: bool) {
    if completion_tokens && req.max_completion_tokens.is_none() {
        req.max_completion_tokens = req.max_tokens.take();
    }
    // The gateway's own keys (a Messages caller's thinking settings, say: OpenAI's wire has
    // the `reasoning_effort` made from them instead) never go upstream.
    switchyard_protocol::drop_private(&mut req.extra);
    for t in req.tools.iter_mut().flatten() {
        t.extra.remove("cache_control");
    }
    for m in &mut req.messages {
        // Anthropic cache hints on text blocks: OpenAI caches by itself; keep the text.
        if let Some(Content::Parts(parts)) = &mut m.content {
            for p in parts.iter_mut() {
                if let Part::Other(v) = p
                    && v["type"] == "text"
                    && let Some(text) = v["text"].as_str()
                {
                    *p = Part::Text {
                        text: text.to_owned(),
                    };
                }
            }
        }
        if m.role == Role::Assistant
            && let Some(Content::Parts(parts)) = &mut m.content
        {
            parts.retain(|p| !is_reasoning(p));
            if parts.is_empty() {
                m.content = None;
            } else if let [Part::Text { text }] = parts.as_slice() {
                m.content = Some(Content::Text(text.clone()));
            }
        }
        if m.is_error {
            m.is_error = false;
            let text = m.text();
            m.content = Some(Content::Text(format!("Error: {text}")));
        }
    }
}

fn is_reasoning(p: &Part) -> bool {
    matches!(p, Part::Other(v) if matches!(v.get("type").and_then(|t| t.as_str()), Some("thinking" | "redacted_thinking")))
}

/// Refuses a request with fields only Anthropic's Messages API takes (a Messages caller's
/// `context_management`, say): an OpenAI-compatible upstream would reject or ignore them.
pub(super) fn refuse_anthropic_only(
    provider: &str,
    req: &ChatRequest,
) -> Result<(), ProviderError> {
    match switchyard_protocol::anthropic::upstream::anthropic_only_field(req) {
        None => Ok(()),
        Some(k) => Err(ProviderError::Request {
            provider: provider.to_owned(),
            param: k.to_owned(),
            message: format!(
                "`{k}` is an Anthropic Messages field; provider `{provider}` (OpenAI-compatible) cannot honour it"
            ),
        }),
    }
}

pub(super) fn encode<T: Serialize>(provider: &str, body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|e| ProviderError::Internal {
        detail: format!("encoding the request for `{provider}`: {e}"),
    })
}
