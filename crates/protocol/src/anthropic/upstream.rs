//! The other direction, for Anthropic *upstreams*: a canonical request → a Messages request, and
//! a Messages answer or event stream → canonical answers and chunks.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::request::TranslateError;
use crate::chat::{
    ChatChunk, ChatRequest, ChatResponse, Choice, CompletionTokensDetails, Content, Delta,
    FinishReason, Message, Part, PromptTokensDetails, ResponseFormat, Role, ToolCall,
    ToolCallDelta, ToolCallFunction, ToolCallFunctionDelta, ToolChoice, Usage, has_no_effect,
};

/// The tool that carries JSON output (`response_format`) on Anthropic; its input comes back as
/// the answer's text.
pub const JSON_TOOL: &str = "switchyard_json_output";

/// The delta field carrying reasoning text in canonical chunks.
pub const REASONING: &str = "reasoning_content";
/// The delta field carrying a reasoning block's signature in canonical chunks.
pub const REASONING_SIGNATURE: &str = "reasoning_signature";

/// The delta field carrying an encrypted (redacted) reasoning block in canonical chunks.
pub const REDACTED_REASONING: &str = "reasoning_redacted";

/// The `anthropic-version` header sent upstream.
pub const API_VERSION: &str = "2023-06-01";

/// The canonical `extra` key that carries an Anthropic caller's `thinking` object, so that an
/// Anthropic upstream gets it exactly (its budget, or `adaptive`); other upstreams read the
/// `reasoning_effort` derived from it, and OpenAI-shaped ones never see this key.
pub const THINKING: &str = "x_switchyard_anthropic_thinking";
/// The chunk `extra` key (on a stream's first delta) that carries an Anthropic upstream's
/// `message_start` usage (its input and cache counts), so that the Messages surface reports them
/// in its own `message_start`, where clients read input tokens; OpenAI-shaped callers never see
/// it.
pub const PROMPT_USAGE: &str = "x_switchyard_prompt_usage";
/// The canonical `extra` key for a Messages caller's `anthropic-beta` header: sent on to
/// Anthropic upstreams (as that header), ignored by the others.
pub const BETA: &str = "x_switchyard_anthropic_beta";
/// The canonical `extra` key for a Messages caller's top-level fields this translation has no
/// canonical place for (`context_management`, `mcp_servers`, `container`, a field added
/// later): an Anthropic upstream gets them as they are, any other refuses them by name.
pub const FIELDS: &str = "x_switchyard_anthropic_fields";

/// The first of a request's Anthropic-only fields ([`FIELDS`]), which only an Anthropic
/// upstream can take.
pub fn anthropic_only_field(req: &ChatRequest) -> Option<&str> {
    req.extra
        .get(FIELDS)
        .and_then(Value::as_object)
        .and_then(|m| m.keys().next())
        .map(String::as_str)
}
/// The same for an Anthropic caller's `output_config`.
pub const OUTPUT_CONFIG: &str = "x_switchyard_anthropic_output_config";

/// `max_tokens` when the caller gives none (Anthropic requires it): the model family's documented
/// output limit, capped at 16,384 so that a forgotten limit does not become a 64k-token bill.
pub fn default_max_tokens(model: &str) -> u32 {
    let m = model.to_ascii_lowercase();
    if m.contains("claude-3-haiku") || m.contains("claude-3-opus") || m.contains("claude-3-sonnet")
    {
        4096
    } else if m.contains("3-5") || m.contains("3.5") {
        8192
    } else {
        16384
    }
}

/// The `thinking` object for Anthropic: an Anthropic caller's own, else one made from an
/// OpenAI-style `reasoning_effort` (`none` turns thinking off; an effort Anthropic has no budget
/// for is refused by name, never guessed).
fn thinking(provider: &str, req: &ChatRequest) -> Result<Option<Value>, TranslateError> {
    if let Some(t) = req.extra.get(THINKING) {
        return Ok(Some(t.clone()));
    }
    let Some(effort) = req.extra.get("reasoning_effort") else {
        return Ok(None);
    };
    let budget = match effort.as_str() {
        Some("none") => return Ok(None),
        Some("minimal" | "low") => 1024,
        Some("medium") => 4096,
        Some("high") => 16384,
        Some("xhigh") => 24576,
        _ => {
            return Err(refuse(
                provider,
                "reasoning_effort",
                &format!("is {effort}, not one of none, minimal, low, medium, high or xhigh"),
            ));
        }
    };
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

/// The most `max_tokens` a default gives a thinking call: the smallest output limit among the
/// Claude models that think (Opus 4 and 4.1 stop at 32,000).
const MAX_TOKENS_WITH_THINKING: u32 = 32_000;

fn refuse(provider: &str, param: &str, why: &str) -> TranslateError {
    TranslateError {
        param: param.to_owned(),
        message: format!(
            "`{param}` {why}; provider `{provider}` (Anthropic Messages API) cannot honour it"
        ),
    }
}

/// Canonical fields that travel in `extra` and that this translation maps; any other extra field
/// is refused by name.
const KNOWN_EXTRA: &[&str] = &[
    "top_k",
    "reasoning_effort",
    "metadata",
    "store",
    "service_tier",
    THINKING,
    OUTPUT_CONFIG,
    BETA,
    FIELDS,
];

fn image_block(url: &str) -> Value {
    match url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    {
        Some((media_type, data)) => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn blocks_of(
    provider: &str,
    at: &str,
    content: &Option<Content>,
) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) if !t.is_empty() => out.push(json!({"type": "text", "text": t})),
        Some(Content::Text(_)) => {}
        Some(Content::Parts(parts)) => {
            for (i, p) in parts.iter().enumerate() {
                match p {
                    Part::Text { text } => out.push(json!({"type": "text", "text": text})),
                    Part::ImageUrl { image_url } => out.push(image_block(&image_url.url)),
                    Part::Other(v) => match v.get("type").and_then(Value::as_str) {
                        // Anthropic-native blocks (thinking with its signature, text with
                        // cache_control) go back exactly as they came.
                        Some("thinking" | "redacted_thinking" | "text" | "image" | "document") => {
                            out.push(v.clone())
                        }
                        other => {
                            return Err(refuse(
                                provider,
                                &format!("{at}.content[{i}]"),
                                &format!("is a `{}` part", other.unwrap_or("untyped")),
                            ));
                        }
                    },
                }
            }
        }
    }
    Ok(out)
}

/// Builds the Messages request for `model`. Fields Anthropic cannot honour are refused by name.
pub fn request_from_canonical(
    provider: &str,
    req: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<Value, TranslateError> {
    if let Some((k, _)) = req
        .extra
        .iter()
        .find(|(k, v)| !KNOWN_EXTRA.contains(&k.as_str()) && !has_no_effect(k, v))
    {
        return Err(refuse(provider, k, "has no Anthropic equivalent"));
    }
    if req.n.is_some_and(|n| n > 1) {
        return Err(refuse(provider, "n", "asks for several choices"));
    }
    if req.seed.is_some() {
        return Err(refuse(provider, "seed", "has no Anthropic equivalent"));
    }
    // JSON output is asked of Anthropic by forcing one tool whose input is the answer.
    let json_schema = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(
            json_schema
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object"})),
        ),
    };
    let tools_given = req.tools.as_ref().is_some_and(|t| !t.is_empty());
    if json_schema.is_some() && tools_given {
        return Err(refuse(
            provider,
            "response_format",
            "together with `tools` has no Anthropic equivalent",
        ));
    }
    if req
        .tools
        .iter()
        .flatten()
        .any(|t| t.function.as_ref().is_some_and(|f| f.name == JSON_TOOL))
    {
        return Err(refuse(
            provider,
            "tools",
            &format!("uses the name `{JSON_TOOL}`, which Switchyard reserves"),
        ));
    }

    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match m.role {
            Role::System | Role::Developer => system.extend(blocks_of(provider, &at, &m.content)?),
            Role::User => push(&mut messages, "user", blocks_of(provider, &at, &m.content)?),
            Role::Assistant => {
                let mut blocks = blocks_of(provider, &at, &m.content)?;
                // Thinking blocks must lead the assistant turn.
                blocks.sort_by_key(|b| {
                    !matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking"))
                });
                for call in m.tool_calls.iter().flatten() {
                    let input: Value = serde_json::from_str(&call.function.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}));
                }
                push(&mut messages, "assistant", blocks);
            }
            Role::Tool => {
                let content = blocks_of(provider, &at, &m.content)?;
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": content,
                });
                if m.is_error {
                    block["is_error"] = Value::Bool(true);
                }
                push(&mut messages, "user", vec![block]);
            }
            Role::Function => {
                return Err(refuse(
                    provider,
                    &format!("{at}.role"),
                    "is the deprecated `function` role",
                ));
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(messages));
    let thinking = thinking(provider, req)?;
    let budget = thinking
        .as_ref()
        .and_then(|t| t["budget_tokens"].as_u64())
        .map_or(0, |b| u32::try_from(b).unwrap_or(u32::MAX));
    let max = match req.max_output_tokens() {
        Some(max) => max,
        // A thinking budget comes out of max_tokens: leave the answer its usual room beside it,
        // within what every model that thinks can produce.
        None if budget > 0 => default_max_tokens(model)
            .saturating_add(budget)
            .min(MAX_TOKENS_WITH_THINKING),
        None => default_max_tokens(model),
    };
    if budget > 0 && budget >= max {
        return Err(refuse(
            provider,
            "max_tokens",
            &format!("must be above the thinking budget ({budget}); it is {max}"),
        ));
    }
    body.insert("max_tokens".into(), max.into());
    if let Some(t) = thinking {
        body.insert("thinking".into(), t);
    }
    if let Some(c) = req.extra.get(OUTPUT_CONFIG) {
        body.insert("output_config".into(), c.clone());
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    if let Some(stop) = &req.stop {
        body.insert("stop_sequences".into(), json!(stop.sequences()));
    }
    if let Some(t) = req.temperature {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        if t > 1.0 {
            return Err(refuse(
                provider,
                "temperature",
                "is above 1, Anthropic's maximum",
            ));
        }
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(k) = req.extra.get("top_k") {
        body.insert("top_k".into(), k.clone());
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = &req.tools {
        let mut out = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            let Some(f) = t.function.as_ref().filter(|_| t.kind == "function") else {
                return Err(refuse(
                    provider,
                    &format!("tools[{i}]"),
                    &format!("is a `{}` tool", t.kind),
                ));
            };
            let mut def = json!({
                "name": f.name,
                "input_schema": f.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
            });
            if let Some(d) = &f.description {
                def["description"] = d.clone().into();
            }
            if let Some(cc) = t.extra.get("cache_control") {
                def["cache_control"] = cc.clone();
            }
            out.push(def);
        }
        body.insert("tools".into(), Value::Array(out));
    }
    let disable_parallel = req.parallel_tool_calls.map(|p| !p);
    let choice = match &req.tool_choice {
        None if disable_parallel.is_some() && req.tools.is_some() => Some(json!({"type": "auto"})),
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
        Some(ToolChoice::Other(_)) => {
            return Err(refuse(
                provider,
                "tool_choice",
                "uses a form other than auto, none, required or a named function",
            ));
        }
    };
    if let Some(mut c) = choice {
        if let (Some(d), false) = (disable_parallel, c["type"] == "none") {
            c["disable_parallel_tool_use"] = d.into();
        }
        body.insert("tool_choice".into(), c);
    }
    if let Some(schema) = json_schema {
        body.insert(
            "tools".into(),
            json!([{"name": JSON_TOOL, "description": "Give the answer as this tool's input.", "input_schema": schema}]),
        );
        body.insert(
            "tool_choice".into(),
            json!({"type": "tool", "name": JSON_TOOL}),
        );
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    // A Messages caller's fields with no canonical place, as they were sent.
    if let Some(Value::Object(fields)) = req.extra.get(FIELDS) {
        for (k, v) in fields {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Appends blocks as a message, merging into the previous one when the role repeats (tool
/// results that follow each other become one user turn, as Anthropic requires alternation).
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(existing) = last["content"].as_array_mut()
    {
        // A tool result must come before other content of the same user turn.
        let results_first = blocks.iter().all(|b| b["type"] == "tool_result");
        if results_first {
            let at = existing
                .iter()
                .position(|b| b["type"] != "tool_result")
                .unwrap_or(existing.len());
            existing.splice(at..at, blocks);
        } else {
            existing.extend(blocks);
        }
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// Folds a `message_delta`'s usage into what `message_start` said. Its counts are cumulative,
/// and any may be absent or null: a null never erases a count, and the input and cache counts
/// never go down (a delta that says 0 input tokens has not un-read the prompt).
fn merge_usage(usage: &mut Value, delta: &Map<String, Value>) {
    for (k, val) in delta {
        let Some(n) = val.as_u64() else {
            continue;
        };
        let keeps_max = matches!(
            k.as_str(),
            "input_tokens" | "cache_creation_input_tokens" | "cache_read_input_tokens"
        );
        if keeps_max && usage[k].as_u64().is_some_and(|old| old > n) {
            continue;
        }
        usage[k] = Value::from(n);
    }
}

/// Anthropic's `stop_reason` → the canonical finish reason: always one OpenAI documents, since
/// some official SDKs throw on any other; a reason added later is `stop`.
pub fn stop_reason_to_finish(s: &str) -> FinishReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Anthropic usage → canonical: cached input is counted inside `prompt_tokens`, as OpenAI does.
pub fn usage_to_canonical(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cache_read = n("cache_read_input_tokens");
    let cache_write = n("cache_creation_input_tokens");
    let prompt = n("input_tokens") + cache_read + cache_write;
    let mut usage = Usage::new(prompt, n("output_tokens"));
    let mut details = PromptTokensDetails {
        cached_tokens: Some(cache_read),
        ..Default::default()
    };
    details
        .extra
        .insert("cache_creation_tokens".into(), cache_write.into());
    usage.prompt_tokens_details = Some(details);
    usage.completion_tokens_details = Some(CompletionTokensDetails::default());
    usage
}

/// A Messages answer → a canonical answer. Thinking blocks are kept as parts (with their
/// signatures) so the next turn can send them back.
pub fn response_to_canonical(v: &Value) -> Result<ChatResponse, String> {
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array")?;
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text {
                text: block["text"].as_str().unwrap_or_default().to_owned(),
            }),
            Some("tool_use") if block["name"] == JSON_TOOL => {
                let input = block
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                parts.push(Part::Text { text: input });
            }
            Some("tool_use") => calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                kind: "function".into(),
                function: ToolCallFunction {
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: block
                        .get("input")
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                },
                extra: Map::new(),
            }),
            Some(_) => parts.push(Part::Other(block.clone())),
            None => return Err("a content block without `type`".into()),
        }
    }
    let mut message = Message::new(Role::Assistant, "");
    message.content = match parts.as_slice() {
        [] => None,
        [Part::Text { text }] => Some(Content::Text(text.clone())),
        _ => Some(Content::Parts(parts)),
    };
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    // A forced JSON answer ends with `tool_use`; to the caller it is a plain stop.
    let json_answer =
        message.tool_calls.is_none() && content.iter().any(|b| b["name"] == JSON_TOOL);
    let finish = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(|r| match r {
            "tool_use" if json_answer => FinishReason::Stop,
            other => stop_reason_to_finish(other),
        });
    Ok(ChatResponse {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        object: "chat.completion".into(),
        created: 0,
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: finish,
            logprobs: None,
            extra: Map::new(),
        }],
        usage: v.get("usage").map(usage_to_canonical),
        system_fingerprint: None,
        extra: Map::new(),
        wire: Default::default(),
    })
}

/// Decodes a Messages event stream into canonical chunks.
#[derive(Debug, Default)]
pub struct EventDecoder {
    id: String,
    model: String,
    created: i64,
    /// Anthropic block index → canonical tool-call index.
    tools: HashMap<u64, u32>,
    usage: Value,
    finished: bool,
    /// The block index of the forced JSON tool, whose input streams as text.
    json_block: Option<u64>,
}

/// What one event means for the stream.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Chunks(Vec<ChatChunk>),
    /// `message_stop`: the answer is complete; the chunk carries the usage.
    Done(Box<ChatChunk>),
    /// An `error` event: the upstream failed mid-stream.
    Error(String),
}

impl EventDecoder {
    pub fn new(created: i64) -> Self {
        Self {
            created,
            usage: json!({}),
            ..Self::default()
        }
    }

    /// Whether a `message_delta` with a stop reason was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created, delta, finish)
    }

    /// Decodes one event's data. Unknown event types (and `ping`) yield nothing.
    pub fn event(&mut self, data: &str) -> Result<Decoded, String> {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("event is not JSON: {e}"))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_owned();
                self.model = m["model"].as_str().unwrap_or_default().to_owned();
                let mut delta = Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                if let Some(u) = m.get("usage").filter(|u| u.is_object()) {
                    self.usage = u.clone();
                    delta.extra.insert(PROMPT_USAGE.into(), u.clone());
                }
                out.push(self.chunk(delta, None));
            }
            "content_block_start" => {
                let block = &v["content_block"];
                let index = v["index"].as_u64().unwrap_or_default();
                match block["type"].as_str() {
                    Some("tool_use") if block["name"] == JSON_TOOL => {
                        self.json_block = Some(index);
                    }
                    // Encrypted reasoning arrives whole; it must go back on the next turn.
                    Some("redacted_thinking") => {
                        let mut delta = Delta::default();
                        delta
                            .extra
                            .insert(REDACTED_REASONING.into(), block["data"].clone());
                        out.push(self.chunk(delta, None));
                    }
                    Some("tool_use") => {
                        let n = self.tools.len() as u32;
                        self.tools.insert(index, n);
                        let call = ToolCallDelta {
                            extra: Map::new(),
                            index: n,
                            id: block["id"].as_str().map(str::to_owned),
                            kind: Some("function".into()),
                            function: Some(ToolCallFunctionDelta {
                                name: block["name"].as_str().map(str::to_owned),
                                arguments: Some(String::new()),
                            }),
                        };
                        out.push(self.chunk(
                            Delta {
                                tool_calls: Some(vec![call]),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                    Some("text") => {
                        if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(self.chunk(
                                Delta {
                                    content: Some(t.to_owned()),
                                    ..Delta::default()
                                },
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v["index"].as_u64().unwrap_or_default();
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let text = d["text"].as_str().unwrap_or_default().to_owned();
                        out.push(self.chunk(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                    Some("input_json_delta") if self.json_block == Some(index) => {
                        let text = d["partial_json"].as_str().unwrap_or_default().to_owned();
                        out.push(self.chunk(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                    Some("input_json_delta") => {
                        let Some(&n) = self.tools.get(&index) else {
                            return Err(format!(
                                "input_json_delta for block {index}, which is not a tool_use"
                            ));
                        };
                        let call = ToolCallDelta {
                            extra: Map::new(),
                            index: n,
                            id: None,
                            kind: None,
                            function: Some(ToolCallFunctionDelta {
                                name: None,
                                arguments: d["partial_json"].as_str().map(str::to_owned),
                            }),
                        };
                        out.push(self.chunk(
                            Delta {
                                tool_calls: Some(vec![call]),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                    // Reasoning travels as `reasoning_content` (the field OpenAI-compatible
                    // reasoning hosts use) and its signature beside it, so that the Messages
                    // surface can rebuild the thinking block.
                    Some("thinking_delta") => {
                        let mut delta = Delta::default();
                        delta.extra.insert(REASONING.into(), d["thinking"].clone());
                        out.push(self.chunk(delta, None));
                    }
                    Some("signature_delta") => {
                        let mut delta = Delta::default();
                        delta
                            .extra
                            .insert(REASONING_SIGNATURE.into(), d["signature"].clone());
                        out.push(self.chunk(delta, None));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    merge_usage(&mut self.usage, u);
                }
                if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                    self.finished = true;
                    let finish = match reason {
                        "tool_use" if self.json_block.is_some() && self.tools.is_empty() => {
                            FinishReason::Stop
                        }
                        other => stop_reason_to_finish(other),
                    };
                    out.push(self.chunk(Delta::default(), Some(finish)));
                }
            }
            "message_stop" => {
                self.finished = true;
                let mut last = self.chunk(Delta::default(), None);
                last.choices.clear();
                last.usage = Some(usage_to_canonical(&self.usage));
                return Ok(Decoded::Done(Box::new(last)));
            }
            "error" => {
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("upstream error event")
                    .to_owned();
                return Ok(Decoded::Error(message));
            }
            _ => {}
        }
        Ok(Decoded::Chunks(out))
    }
}
