//! Canonical chat ↔ OpenAI's Responses API as an upstream (`kind = "openai-responses"`).
//!
//! The request goes out stateless (`store: false`, the whole conversation as input items): the
//! gateway keeps conversation state itself. Output `message` items become the answer's text,
//! `function_call` items its tool calls, `reasoning` summaries its `reasoning_content`; the
//! typed event stream becomes canonical chunks ([`EventDecoder`]). Built-in tools a Responses
//! caller sent ride in [`BUILTIN_TOOLS`] and go out beside the function tools; what they do
//! happens on OpenAI's side and shows in the answer's text.

use serde_json::{Map, Value, json};

use crate::TranslateError;
use crate::chat::{
    ChatChunk, ChatRequest, ChatResponse, Choice, CompletionTokensDetails, Content, Delta,
    FinishReason, Message, Part, PromptTokensDetails, ResponseFormat, Role, ToolCall,
    ToolCallDelta, ToolCallFunction, ToolCallFunctionDelta, ToolChoice, Usage,
};

/// The canonical `extra` key that carries a Responses caller's built-in tools (web search, file
/// search…), which only a Responses upstream can run.
pub const BUILTIN_TOOLS: &str = "x_switchyard_builtin_tools";

/// Chat fields the Responses API has no place for.
const REFUSED: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "frequency_penalty",
    "presence_penalty",
];

fn refuse(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError {
        param: param.to_owned(),
        message: message.into(),
    }
}

fn parts(m: &Message, assistant: bool) -> Vec<Value> {
    let text_type = if assistant {
        "output_text"
    } else {
        "input_text"
    };
    match &m.content {
        None => Vec::new(),
        Some(Content::Text(t)) => vec![json!({"type": text_type, "text": t})],
        Some(Content::Parts(ps)) => ps
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(json!({"type": text_type, "text": text})),
                Part::ImageUrl { image_url } => Some(json!({
                    "type": "input_image",
                    "image_url": image_url.url,
                    "detail": image_url.detail.as_deref().unwrap_or("auto"),
                })),
                Part::Other(_) => None,
            })
            .collect(),
    }
}

/// The Responses request body for a canonical request.
pub fn request_from_canonical(req: &ChatRequest) -> Result<Value, TranslateError> {
    if let Some(k) = crate::anthropic::upstream::anthropic_only_field(req) {
        return Err(refuse(
            k,
            format!(
                "`{k}` is an Anthropic Messages field, which the Responses API has no place for"
            ),
        ));
    }
    if req.n.is_some_and(|n| n > 1) {
        return Err(refuse(
            "n",
            "the Responses API answers once per call; use n = 1",
        ));
    }
    if req.stop.is_some() {
        return Err(refuse("stop", "the Responses API has no stop sequences"));
    }
    if let Some(k) = REFUSED.iter().find(|k| {
        req.extra
            .get(**k)
            .is_some_and(|v| !crate::chat::has_no_effect(k, v))
    }) {
        return Err(refuse(
            k,
            format!("`{k}` has no place in the Responses API"),
        ));
    }
    let mut input = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System | Role::Developer | Role::User => {
                let role = match m.role {
                    Role::System => "system",
                    Role::Developer => "developer",
                    _ => "user",
                };
                input.push(json!({"role": role, "content": parts(m, false)}));
            }
            Role::Assistant => {
                let content = parts(m, true);
                if !content.is_empty() {
                    input.push(json!({"type": "message", "role": "assistant", "content": content}));
                }
                for call in m.tool_calls.iter().flatten() {
                    input.push(json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    }));
                }
            }
            Role::Tool | Role::Function => input.push(json!({
                "type": "function_call_output",
                "call_id": m.tool_call_id.clone().unwrap_or_default(),
                "output": m.text(),
            })),
        }
    }
    let mut body = json!({"model": req.model, "input": input, "store": false});
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref())
        .map(|f| {
            let mut t = json!({"type": "function", "name": f.name, "parameters": f.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
            if let Some(d) = &f.description {
                t["description"] = Value::from(d.clone());
            }
            if let Some(s) = f.strict {
                t["strict"] = Value::from(s);
            }
            t
        })
        .collect();
    if let Some(Value::Array(builtin)) = req.extra.get(BUILTIN_TOOLS) {
        tools.extend(builtin.iter().cloned());
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(choice) = &req.tool_choice {
        body["tool_choice"] = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "name": name}),
            ToolChoice::Other(v) => v.clone(),
        };
    }
    if let Some(p) = req.parallel_tool_calls {
        body["parallel_tool_calls"] = Value::from(p);
    }
    if let Some(f) = &req.response_format {
        body["text"] = json!({"format": match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { json_schema: s } => {
                let mut f = json!({"type": "json_schema", "name": s.name, "schema": s.schema.clone().unwrap_or_else(|| json!({}))});
                if let Some(d) = &s.description { f["description"] = Value::from(d.clone()); }
                if let Some(strict) = s.strict { f["strict"] = Value::from(strict); }
                f
            }
        }});
    }
    if let Some(n) = req.max_output_tokens() {
        body["max_output_tokens"] = Value::from(n);
    }
    if let Some(t) = req.temperature {
        body["temperature"] = Value::from(t);
    }
    if let Some(p) = req.top_p {
        body["top_p"] = Value::from(p);
    }
    if let Some(u) = &req.user {
        body["user"] = Value::from(u.clone());
    }
    if let Some(effort) = req.extra.get("reasoning_effort") {
        body["reasoning"] = json!({"effort": effort});
    }
    if req.is_stream() {
        body["stream"] = Value::from(true);
    }
    Ok(body)
}

fn usage_of(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let mut usage = Usage::new(
        u["input_tokens"].as_u64().unwrap_or(0),
        u["output_tokens"].as_u64().unwrap_or(0),
    );
    if let Some(c) = u["input_tokens_details"]["cached_tokens"].as_u64() {
        usage.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(c),
            extra: Map::new(),
        });
    }
    if let Some(r) = u["output_tokens_details"]["reasoning_tokens"].as_u64() {
        usage.completion_tokens_details = Some(CompletionTokensDetails {
            reasoning_tokens: Some(r),
            extra: Map::new(),
        });
    }
    Some(usage)
}

fn finish_of(response: &Value, called: bool) -> FinishReason {
    match (
        response["status"].as_str(),
        response["incomplete_details"]["reason"].as_str(),
    ) {
        (Some("incomplete"), Some("content_filter")) => FinishReason::ContentFilter,
        (Some("incomplete"), _) => FinishReason::Length,
        _ if called => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn summary_text(item: &Value) -> String {
    item["summary"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Response object as a canonical answer.
pub fn response_to_canonical(v: &Value) -> Result<ChatResponse, String> {
    let output = v["output"]
        .as_array()
        .ok_or("the response has no `output` list")?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item["type"].as_str() {
            Some("message") => {
                for c in item["content"].as_array().into_iter().flatten() {
                    if let Some(t) = c["text"].as_str().or_else(|| c["refusal"].as_str()) {
                        text.push_str(t);
                    }
                }
            }
            Some("function_call") => calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                kind: "function".to_owned(),
                function: ToolCallFunction {
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
                },
                extra: Map::new(),
            }),
            Some("reasoning") => reasoning.push_str(&summary_text(item)),
            // Built-in tool calls (web search…) happened upstream; their results are in the text.
            _ => {}
        }
    }
    let mut message = Message::new(Role::Assistant, text.clone());
    if text.is_empty() && !calls.is_empty() {
        message.content = None;
    }
    if !reasoning.is_empty() {
        message
            .extra
            .insert("reasoning_content".to_owned(), Value::from(reasoning));
    }
    let called = !calls.is_empty();
    if called {
        message.tool_calls = Some(calls);
    }
    Ok(ChatResponse {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        object: "chat.completion".to_owned(),
        created: v["created_at"].as_i64().unwrap_or(0),
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_of(v, called)),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: usage_of(&v["usage"]),
        system_fingerprint: None,
        extra: Map::new(),
        wire: Default::default(),
    })
}

/// The typed event stream → canonical chunks.
#[derive(Debug, Default)]
pub struct EventDecoder {
    id: String,
    model: String,
    created: i64,
    started: bool,
    /// Output index → canonical tool-call index.
    calls: Vec<(u64, u32)>,
    finished: bool,
}

impl EventDecoder {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_owned(),
            created,
            ..Self::default()
        }
    }

    /// Whether the stream's last event (`response.completed` or `.incomplete`) came.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created, delta, finish)
    }

    fn begin(&mut self, out: &mut Vec<ChatChunk>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ));
        }
    }

    fn call_delta(
        &self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        args: String,
    ) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    kind: id.as_ref().map(|_| "function".to_owned()),
                    id,
                    function: Some(ToolCallFunctionDelta {
                        name,
                        arguments: Some(args),
                    }),
                    extra: Map::new(),
                }]),
                ..Delta::default()
            },
            None,
        )
    }

    /// The chunks one event makes; an `error` or `response.failed` event is an `Err`.
    pub fn event(&mut self, data: &str) -> Result<Vec<ChatChunk>, String> {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("event is not JSON: {e}"))?;
        let mut out = Vec::new();
        match v["type"].as_str().unwrap_or_default() {
            "response.created" | "response.in_progress" => {
                let r = &v["response"];
                if let Some(id) = r["id"].as_str() {
                    self.id = id.to_owned();
                }
                if let Some(m) = r["model"].as_str() {
                    self.model = m.to_owned();
                }
                if let Some(c) = r["created_at"].as_i64() {
                    self.created = c;
                }
                self.begin(&mut out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.begin(&mut out);
                let text = v["delta"].as_str().unwrap_or_default().to_owned();
                out.push(self.chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "response.reasoning_summary_text.delta" => {
                self.begin(&mut out);
                let mut delta = Delta::default();
                delta.extra.insert(
                    "reasoning_content".to_owned(),
                    Value::from(v["delta"].as_str().unwrap_or_default()),
                );
                out.push(self.chunk(delta, None));
            }
            "response.output_item.added" if v["item"]["type"] == "function_call" => {
                self.begin(&mut out);
                let index = self.calls.len() as u32;
                self.calls
                    .push((v["output_index"].as_u64().unwrap_or(0), index));
                let item = &v["item"];
                out.push(self.call_delta(
                    index,
                    Some(item["call_id"].as_str().unwrap_or_default().to_owned()),
                    Some(item["name"].as_str().unwrap_or_default().to_owned()),
                    item["arguments"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            "response.function_call_arguments.delta" => {
                let at = v["output_index"].as_u64().unwrap_or(0);
                if let Some((_, index)) = self.calls.iter().find(|(o, _)| *o == at) {
                    let args = v["delta"].as_str().unwrap_or_default().to_owned();
                    out.push(self.call_delta(*index, None, None, args));
                }
            }
            "response.completed" | "response.incomplete" => {
                self.begin(&mut out);
                self.finished = true;
                let r = &v["response"];
                out.push(self.chunk(Delta::default(), Some(finish_of(r, !self.calls.is_empty()))));
                if let Some(u) = usage_of(&r["usage"]) {
                    let mut last = self.chunk(Delta::default(), None);
                    last.choices.clear();
                    last.usage = Some(u);
                    out.push(last);
                }
            }
            "response.failed" => {
                let m = v["response"]["error"]["message"]
                    .as_str()
                    .unwrap_or("the response failed");
                return Err(format!("upstream error event: {m}"));
            }
            "error" => {
                let m = v["message"].as_str().unwrap_or("unknown error");
                return Err(format!("upstream error event: {m}"));
            }
            _ => {}
        }
        Ok(out)
    }
}
