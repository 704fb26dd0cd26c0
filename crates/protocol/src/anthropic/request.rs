//! A Messages request → a canonical chat request.

use serde_json::{Map, Value, json};

use super::response::extra_from_call_id;
use super::upstream;
use super::wire::{
    Block, ImageSource, InputRole, MessagesRequest, TextOrBlocks, ToolChoice as AToolChoice,
};
pub use crate::TranslateError;
use crate::chat::{
    ChatRequest, Content, FunctionDef, ImageUrl, Message, Part, Role, Stop, Tool, ToolCall,
    ToolCallFunction, ToolChoice,
};

fn refuse(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError {
        param: param.into(),
        message: message.into(),
    }
}

/// The OpenAI-style reasoning effort closest to a caller's `thinking` (and, for adaptive
/// thinking, its `output_config.effort`); `None` when thinking is off.
fn reasoning_effort(
    thinking: Option<&Value>,
    output_config: Option<&Value>,
) -> Result<Option<&'static str>, TranslateError> {
    let Some(thinking) = thinking else {
        return Ok(None);
    };
    match thinking["type"].as_str() {
        Some("enabled") => {
            let Some(budget) = thinking["budget_tokens"].as_u64() else {
                return Err(refuse(
                    "thinking.budget_tokens",
                    "`thinking` of type `enabled` needs `budget_tokens`, a number of tokens",
                ));
            };
            Ok(Some(match budget {
                0..=2047 => "low",
                2048..=8191 => "medium",
                _ => "high",
            }))
        }
        Some("adaptive") => Ok(Some(
            match output_config.and_then(|c| c["effort"].as_str()) {
                Some("low") => "low",
                Some("high" | "max") => "high",
                _ => "medium",
            },
        )),
        Some("disabled") => Ok(None),
        _ => Err(refuse(
            "thinking.type",
            "`thinking.type` must be `enabled`, `adaptive` or `disabled`",
        )),
    }
}

/// Translates a Messages request into the canonical form.
///
/// `system` becomes a leading system message; user `tool_result` blocks become tool messages
/// (in order, ahead of the user's other content, as OpenAI-style history requires); assistant
/// `tool_use` blocks become tool calls; `thinking` blocks are kept as parts for upstreams that
/// understand them; `top_k` travels as an extra field, so upstreams that support it honour it and
/// the others refuse it by name.
pub fn to_canonical(mut req: MessagesRequest) -> Result<ChatRequest, TranslateError> {
    // Top-level fields with no canonical place go on for Anthropic upstreams only.
    let mut anthropic_only = std::mem::take(&mut req.extra);
    crate::drop_private(&mut anthropic_only);
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match req.system {
        None => {}
        Some(TextOrBlocks::Text(t)) => messages.push(Message::new(Role::System, t)),
        Some(TextOrBlocks::Blocks(blocks)) => {
            let parts = blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| match b {
                    Block::Text {
                        text,
                        cache_control,
                    } => Ok(text_part(text, cache_control)),
                    _ => Err(refuse(format!("system[{i}]"), "system blocks must be text")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut m = Message::new(Role::System, "");
            m.content = Some(Content::Parts(parts));
            messages.push(m);
        }
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            InputRole::User => user_message(i, m.content, &mut messages)?,
            InputRole::Assistant => messages.push(assistant_message(i, m.content)?),
        }
    }

    let mut tools = None;
    if let Some(defs) = req.tools {
        let mut out = Vec::with_capacity(defs.len());
        for (i, t) in defs.into_iter().enumerate() {
            if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
                return Err(refuse(
                    format!("tools[{i}].type"),
                    format!(
                        "server tool `{kind}` runs only on Anthropic's API; Switchyard cannot translate it"
                    ),
                ));
            }
            out.push(Tool {
                kind: "function".to_owned(),
                function: Some(FunctionDef {
                    name: t.name,
                    description: t.description,
                    parameters: Some(t.input_schema.unwrap_or_else(|| json!({"type": "object"}))),
                    strict: None,
                }),
                extra: t
                    .cache_control
                    .map(|cc| Map::from_iter([("cache_control".to_owned(), cc)]))
                    .unwrap_or_default(),
            });
        }
        tools = Some(out);
    }
    let (tool_choice, parallel) = match req.tool_choice {
        None => (None, None),
        Some(AToolChoice::Auto {
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Auto), d),
        Some(AToolChoice::Any {
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Required), d),
        Some(AToolChoice::Tool {
            name,
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Function(name)), d),
        Some(AToolChoice::None) => (Some(ToolChoice::None), None),
    };

    let mut extra = Map::new();
    if let Some(k) = req.top_k {
        extra.insert("top_k".to_owned(), Value::from(k));
    }
    if let Some(effort) = reasoning_effort(req.thinking.as_ref(), req.output_config.as_ref())? {
        // The closest canonical knob, for upstreams other than Anthropic's.
        extra.insert("reasoning_effort".to_owned(), Value::from(effort));
    }
    // Anthropic upstreams get the caller's own settings.
    if let Some(t) = req.thinking {
        extra.insert(upstream::THINKING.to_owned(), t);
    }
    if let Some(c) = req.output_config {
        extra.insert(upstream::OUTPUT_CONFIG.to_owned(), c);
    }
    if !anthropic_only.is_empty() {
        extra.insert(upstream::FIELDS.to_owned(), Value::Object(anthropic_only));
    }
    let stream = req.stream == Some(true);
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: stream.then_some(true),
        stream_options: None,
        tools,
        tool_choice,
        parallel_tool_calls: parallel.map(|disable| !disable),
        response_format: None,
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        stop: req.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        n: None,
        seed: None,
        user: req.metadata.and_then(|m| m.user_id),
        extra,
    })
}

/// A text block; one with `cache_control` is kept whole so the hint reaches an Anthropic
/// upstream unchanged (other wire families read its text and drop the hint).
fn text_part(text: String, cache_control: Option<Value>) -> Part {
    match cache_control {
        None => Part::Text { text },
        Some(cc) => Part::Other(json!({"type": "text", "text": text, "cache_control": cc})),
    }
}

fn image(source: ImageSource) -> Part {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
    };
    Part::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }
}

fn content_of(parts: Vec<Part>) -> Option<Content> {
    match parts.as_slice() {
        [] => None,
        [Part::Text { text }] => Some(Content::Text(text.clone())),
        _ => Some(Content::Parts(parts)),
    }
}

fn user_message(
    i: usize,
    content: TextOrBlocks,
    out: &mut Vec<Message>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        TextOrBlocks::Text(t) => {
            out.push(Message::new(Role::User, t));
            return Ok(());
        }
        TextOrBlocks::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match block {
            Block::Text {
                text,
                cache_control,
            } => parts.push(text_part(text, cache_control)),
            Block::Image { source } => parts.push(image(source)),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let result_parts = match content {
                    None => vec![],
                    Some(TextOrBlocks::Text(t)) => vec![Part::Text { text: t }],
                    Some(TextOrBlocks::Blocks(bs)) => bs
                        .into_iter()
                        .map(|b| match b {
                            Block::Text {
                                text,
                                cache_control,
                            } => Ok(text_part(text, cache_control)),
                            Block::Image { source } => Ok(image(source)),
                            _ => Err(refuse(
                                format!("{at}.content"),
                                "tool results may hold text and image blocks",
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                };
                let mut m = Message::new(Role::Tool, "");
                m.content = Some(content_of(result_parts).unwrap_or(Content::Text(String::new())));
                m.tool_call_id = Some(tool_use_id);
                m.is_error = is_error == Some(true);
                out.push(m);
            }
            Block::ToolUse { .. } | Block::Thinking { .. } | Block::RedactedThinking { .. } => {
                return Err(refuse(
                    at,
                    "this block type belongs in an assistant message",
                ));
            }
        }
    }
    if let Some(content) = content_of(parts) {
        let mut m = Message::new(Role::User, "");
        m.content = Some(content);
        out.push(m);
    }
    Ok(())
}

fn assistant_message(i: usize, content: TextOrBlocks) -> Result<Message, TranslateError> {
    let mut m = Message::new(Role::Assistant, "");
    let blocks = match content {
        TextOrBlocks::Text(t) => {
            m.content = Some(Content::Text(t));
            return Ok(m);
        }
        TextOrBlocks::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text {
                text,
                cache_control,
            } => parts.push(text_part(text, cache_control)),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                extra: extra_from_call_id(&id),
                id,
                kind: "function".to_owned(),
                function: ToolCallFunction {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Thinking {
                thinking,
                signature,
            } => parts.push(Part::Other(json!({
                "type": "thinking", "thinking": thinking, "signature": signature,
            }))),
            Block::RedactedThinking { data } => {
                parts.push(Part::Other(
                    json!({"type": "redacted_thinking", "data": data}),
                ));
            }
            Block::Image { .. } | Block::ToolResult { .. } => {
                return Err(refuse(
                    format!("messages[{i}].content[{j}]"),
                    "this block type belongs in a user message",
                ));
            }
        }
    }
    m.content = content_of(parts);
    if !calls.is_empty() {
        m.tool_calls = Some(calls);
    }
    Ok(m)
}
