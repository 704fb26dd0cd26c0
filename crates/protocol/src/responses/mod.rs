//! OpenAI's Responses API (`POST /v1/responses`) ↔ canonical chat.
//!
//! A Responses request becomes a canonical chat request: `instructions` a system message,
//! `input` (a string, or items: messages with text and image parts, `function_call`,
//! `function_call_output`) the conversation, after the earlier turns of `previous_response_id`
//! (which the gateway stores and passes in), function tools and `tool_choice`, `text.format`
//! the response format, `max_output_tokens`, sampling, `reasoning.effort`. A canonical answer
//! becomes a Response object with `message` and `function_call` output items; a canonical
//! stream becomes the typed event stream ([`stream::StreamTranslator`]).
//!
//! Built-in tools (web search, file search, computer use…) run on OpenAI's servers: they are
//! carried to an OpenAI Responses upstream ([`upstream`]) and refused for any other.

pub mod stream;
#[cfg(test)]
mod tests;
pub mod upstream;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::TranslateError;
use crate::chat::{
    ChatRequest, ChatResponse, Content, FinishReason, FunctionDef, ImageUrl, JsonSchemaFormat,
    Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolCallFunction, ToolChoice, Usage,
};

use crate::extra::with_extra;

pub use stream::StreamTranslator;

/// A Responses request as callers send it. Items stay JSON until translated, so that every
/// error can name its place (`input[2].content[0].type`).
#[derive(Debug, Clone, Serialize)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: Option<Input>,
    pub instructions: Option<String>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub text: Option<Value>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub reasoning: Option<Value>,
    /// Tags for the call (a flat JSON object), as the other surfaces' `metadata`.
    pub metadata: Option<Value>,
    pub store: Option<bool>,
    pub stream: Option<bool>,
    pub previous_response_id: Option<String>,
    pub user: Option<String>,
    /// Accepted and not acted on: `truncation`, `include`, `service_tier`, `prompt_cache_key`…
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(ResponsesRequest {
    model: "model" => required,
    input: "input" => default,
    instructions: "instructions" => default,
    tools: "tools" => default,
    tool_choice: "tool_choice" => default,
    parallel_tool_calls: "parallel_tool_calls" => default,
    text: "text" => default,
    max_output_tokens: "max_output_tokens" => default,
    temperature: "temperature" => default,
    top_p: "top_p" => default,
    reasoning: "reasoning" => default,
    metadata: "metadata" => default,
    store: "store" => default,
    stream: "stream" => default,
    previous_response_id: "previous_response_id" => default,
    user: "user" => default,
});

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the response is kept for `previous_response_id` and `GET` (the default).
    pub fn stores(&self) -> bool {
        self.store != Some(false)
    }
}

fn refuse(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError {
        param: param.into(),
        message: message.into(),
    }
}

/// The conversation the request's `input` adds, as canonical messages (without `instructions`).
pub fn input_messages(req: &ResponsesRequest) -> Result<Vec<Message>, TranslateError> {
    let mut out = Vec::new();
    match &req.input {
        None => {}
        Some(Input::Text(t)) => out.push(Message::new(Role::User, t.clone())),
        Some(Input::Items(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(&format!("input[{i}]"), item, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn str_field<'v>(item: &'v Value, at: &str, key: &str) -> Result<&'v str, TranslateError> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        refuse(
            format!("{at}.{key}"),
            format!("`{at}.{key}` must be a string"),
        )
    })
}

fn add_item(at: &str, item: &Value, out: &mut Vec<Message>) -> Result<(), TranslateError> {
    if !item.is_object() {
        return Err(refuse(at, format!("`{at}` must be an object")));
    }
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = match str_field(item, at, "role")? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" => Role::System,
                "developer" => Role::Developer,
                other => {
                    return Err(refuse(
                        format!("{at}.role"),
                        format!("role `{other}`: use user, assistant, system or developer"),
                    ));
                }
            };
            let content = match item.get("content") {
                Some(Value::String(s)) => Content::Text(s.clone()),
                Some(Value::Array(parts)) => {
                    let mut out_parts = Vec::with_capacity(parts.len());
                    for (j, p) in parts.iter().enumerate() {
                        out_parts.push(content_part(&format!("{at}.content[{j}]"), p)?);
                    }
                    match out_parts.as_slice() {
                        [Part::Text { text }] => Content::Text(text.clone()),
                        _ => Content::Parts(out_parts),
                    }
                }
                _ => {
                    return Err(refuse(
                        format!("{at}.content"),
                        "`content` must be a string or a list of parts",
                    ));
                }
            };
            let mut m = Message::new(role, "");
            m.content = Some(content);
            out.push(m);
        }
        "function_call" => {
            let call = ToolCall {
                id: str_field(item, at, "call_id")?.to_owned(),
                kind: "function".to_owned(),
                function: ToolCallFunction {
                    name: str_field(item, at, "name")?.to_owned(),
                    arguments: str_field(item, at, "arguments")?.to_owned(),
                },
                extra: carried(item),
            };
            // Calls made in one turn belong to one assistant message.
            match out.last_mut() {
                Some(m) if m.role == Role::Assistant && m.tool_calls.is_some() => {
                    m.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                Some(m)
                    if m.role == Role::Assistant
                        && m.tool_calls.is_none()
                        && matches!(&m.content, Some(Content::Text(_))) =>
                {
                    m.tool_calls = Some(vec![call]);
                }
                _ => {
                    let mut m = Message::new(Role::Assistant, "");
                    m.content = None;
                    m.tool_calls = Some(vec![call]);
                    out.push(m);
                }
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => {
                    return Err(refuse(
                        format!("{at}.output"),
                        "`output` must be a string or a list of text parts",
                    ));
                }
            };
            let mut m = Message::new(Role::Tool, output);
            m.tool_call_id = Some(str_field(item, at, "call_id")?.to_owned());
            out.push(m);
        }
        // Reasoning the model did before: its summary is not part of what later turns need.
        "reasoning" => {}
        other => {
            return Err(refuse(
                format!("{at}.type"),
                format!(
                    "input item type `{other}` is not supported; use message, function_call or function_call_output"
                ),
            ));
        }
    }
    Ok(())
}

fn content_part(at: &str, p: &Value) -> Result<Part, TranslateError> {
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "refusal") => {
            let text = p
                .get("text")
                .or_else(|| p.get("refusal"))
                .and_then(Value::as_str)
                .ok_or_else(|| refuse(format!("{at}.text"), "a text part needs `text`"))?;
            Ok(Part::Text {
                text: text.to_owned(),
            })
        }
        Some("input_image") => {
            let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                refuse(
                    format!("{at}.image_url"),
                    "an image needs `image_url` (a URL or a data: URL); `file_id` is not supported",
                )
            })?;
            Ok(Part::ImageUrl {
                image_url: ImageUrl {
                    url: url.to_owned(),
                    detail: p
                        .get("detail")
                        .and_then(Value::as_str)
                        .filter(|d| *d != "auto")
                        .map(str::to_owned),
                },
            })
        }
        Some(other) => Err(refuse(
            format!("{at}.type"),
            format!("content part type `{other}` is not supported; use input_text or input_image"),
        )),
        None => Err(refuse(format!("{at}.type"), "a content part needs `type`")),
    }
}

/// The canonical request: `instructions`, then `history` (the earlier turns of
/// `previous_response_id`), then the request's input.
pub fn to_canonical(
    req: &ResponsesRequest,
    history: Vec<Message>,
) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    if let Some(i) = req.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(Message::new(Role::System, i.clone()));
    }
    messages.extend(history);
    messages.extend(input_messages(req)?);
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(refuse(
            "input",
            "`input` is empty; send a string or at least one item",
        ));
    }

    let mut tools = Vec::new();
    let mut builtin = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => tools.push(function_tool(&format!("tools[{i}]"), t)?),
            Some(_) => builtin.push(t.clone()),
            None => return Err(refuse(format!("tools[{i}].type"), "a tool needs `type`")),
        }
    }
    let tools = (!tools.is_empty()).then_some(tools);

    let tool_choice = match &req.tool_choice {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(refuse(
                    "tool_choice",
                    format!("`{other}`: use auto, none, required or a function"),
                ));
            }
        }),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| refuse("tool_choice.name", "a function tool choice needs `name`"))?;
            Some(ToolChoice::Function(name.to_owned()))
        }
        Some(other) => Some(ToolChoice::Other(other.clone())),
    };

    let response_format = match req.text.as_ref().and_then(|t| t.get("format")) {
        None => None,
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => None,
            Some("json_object") => Some(ResponseFormat::JsonObject),
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("response")
                        .to_owned(),
                    description: f
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    schema: f.get("schema").cloned(),
                    strict: f.get("strict").and_then(Value::as_bool),
                },
            }),
            _ => {
                return Err(refuse(
                    "text.format.type",
                    "use text, json_object or json_schema",
                ));
            }
        },
    };

    let mut extra = Map::new();
    if !builtin.is_empty() {
        extra.insert(upstream::BUILTIN_TOOLS.to_owned(), Value::Array(builtin));
    }
    if let Some(effort) = req
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
    {
        extra.insert("reasoning_effort".to_owned(), Value::from(effort));
    }
    if let Some(Value::Object(m)) = &req.metadata
        && !m.is_empty()
    {
        extra.insert("metadata".to_owned(), Value::Object(m.clone()));
    }
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        stream: req.stream,
        stream_options: None,
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        response_format,
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: None,
        max_completion_tokens: req.max_output_tokens,
        stop: None,
        n: None,
        seed: None,
        user: req.user.clone(),
        extra,
    })
}

fn function_tool(at: &str, t: &Value) -> Result<Tool, TranslateError> {
    Ok(Tool {
        kind: "function".to_owned(),
        function: Some(FunctionDef {
            name: str_field(t, at, "name")?.to_owned(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: t.get("parameters").cloned().filter(|p| !p.is_null()),
            strict: t.get("strict").and_then(Value::as_bool),
        }),
        extra: Map::new(),
    })
}

/// The built-in tools (web search, file search…) a request carries, which only a Responses
/// upstream can run: their names, for the refusal elsewhere.
pub fn builtin_tools(req: &ChatRequest) -> Vec<String> {
    req.extra
        .get(upstream::BUILTIN_TOOLS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("type").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The echo of the request's settings that every Response object carries.
#[derive(Debug, Clone)]
pub struct Echo {
    pub id: String,
    pub created_at: i64,
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning_effort: Option<String>,
    pub store: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub text: Value,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
}

impl Echo {
    pub fn of(req: &ResponsesRequest, id: String, created_at: i64) -> Self {
        Self {
            id,
            created_at,
            model: req.model.clone(),
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            reasoning_effort: req
                .reasoning
                .as_ref()
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            store: req.stores(),
            temperature: req.temperature,
            top_p: req.top_p,
            text: req
                .text
                .clone()
                .unwrap_or_else(|| json!({"format": {"type": "text"}})),
            tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            tools: req.tools.clone().unwrap_or_default(),
            metadata: match &req.metadata {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            },
            user: req.user.clone(),
        }
    }

    /// The Response object with this status, output and usage.
    pub fn response(
        &self,
        status: &str,
        output: Vec<Value>,
        usage: Option<&Usage>,
        incomplete: Option<&str>,
    ) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete.map(|r| json!({"reason": r})),
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": {"effort": self.reasoning_effort, "summary": null},
            "store": self.store,
            "temperature": self.temperature.unwrap_or(1.0),
            "text": self.text,
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p.unwrap_or(1.0),
            "truncation": "disabled",
            "usage": usage.map(usage_json),
            "user": self.user,
            "metadata": self.metadata,
        })
    }
}

pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0)
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": u.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0)
        },
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// The status of a finished answer: `completed`, or `incomplete` with its reason.
pub fn status_of(finish: Option<&FinishReason>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", Some("max_output_tokens")),
        Some(FinishReason::ContentFilter) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// An output `message` item.
pub fn message_item(id: &str, status: &str, text: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    })
}

pub fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The provider data a call must bring back on the next turn (Gemini's thought signature, as
/// `extra_content.google.thought_signature`, the field Google's OpenAI-compatible layer uses):
/// a `function_call` item carries it beside its fields, and SDKs pass unknown fields back.
const CARRIED: &str = "extra_content";

fn carried(item: &Value) -> Map<String, Value> {
    item.get(CARRIED)
        .map(|v| Map::from_iter([(CARRIED.to_owned(), v.clone())]))
        .unwrap_or_default()
}

/// An output `function_call` item; `extra` is the call's provider data.
pub fn call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    extra: &Map<String, Value>,
) -> Value {
    let mut item = json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    });
    if let Some(v) = extra.get(CARRIED) {
        item[CARRIED] = v.clone();
    }
    item
}

/// Item ids derived from the response's: `msg_…` and `fc_…`, unique within it.
pub fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{n}")
}

/// A whole canonical answer as a Response object.
pub fn from_canonical(echo: &Echo, resp: &ChatResponse) -> Value {
    let choice = resp.choices.first();
    let mut output = Vec::new();
    if let Some(c) = choice {
        let text = match &c.message.content {
            Some(_) => c.message.text(),
            None => String::new(),
        };
        if !text.is_empty() || c.message.tool_calls.as_ref().is_none_or(Vec::is_empty) {
            output.push(message_item(
                &item_id("msg", &echo.id, 0),
                "completed",
                &text,
            ));
        }
        for (n, t) in c.message.tool_calls.iter().flatten().enumerate() {
            output.push(call_item(
                &item_id("fc", &echo.id, n),
                "completed",
                &t.id,
                &t.function.name,
                &t.function.arguments,
                &t.extra,
            ));
        }
    }
    let (status, incomplete) = status_of(choice.and_then(|c| c.finish_reason.as_ref()));
    let mut value = echo.response(status, output, resp.usage.as_ref(), incomplete);
    value["model"] = Value::from(resp.model.clone());
    value
}

/// The canonical messages a Response's output adds to the conversation, for the next turn.
pub fn output_messages(response: &Value) -> Vec<Message> {
    let mut out = Vec::new();
    for (i, item) in response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        // Output items are the gateway's own; a malformed one is skipped, not an error.
        let _ = add_item(&format!("output[{i}]"), item, &mut out);
    }
    out
}
