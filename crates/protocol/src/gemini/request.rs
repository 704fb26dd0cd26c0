//! Canonical → Gemini requests (and, for the mock, back).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::TranslateError;
use crate::anthropic::upstream::{BETA, OUTPUT_CONFIG, THINKING, anthropic_only_field};
use crate::chat::{
    ChatRequest, Content, FunctionDef, Message, Part, ResponseFormat, Role, Stop, Tool, ToolCall,
    ToolCallFunction, ToolChoice, has_no_effect,
};
use crate::embeddings::EmbeddingRequest;

/// Gemini's `thinkingBudget`: an Anthropic caller's exact budget (`-1`, dynamic, for adaptive
/// thinking), else one for an OpenAI-style `reasoning_effort`; an effort with no budget is
/// refused by name, never guessed.
fn thinking_budget(provider: &str, req: &ChatRequest) -> Result<Option<i64>, TranslateError> {
    if let Some(t) = req.extra.get(THINKING) {
        return Ok(match t["type"].as_str() {
            Some("enabled") => t["budget_tokens"].as_i64(),
            Some("adaptive") => Some(-1),
            _ => None,
        });
    }
    let Some(effort) = req.extra.get("reasoning_effort") else {
        return Ok(None);
    };
    Ok(Some(match effort.as_str() {
        Some("none" | "minimal") => 0,
        Some("low") => 1024,
        Some("medium") => 8192,
        Some("high") => 24576,
        Some("xhigh") => 32768,
        _ => {
            return Err(refuse(
                provider,
                "reasoning_effort",
                &format!("is {effort}, not one of none, minimal, low, medium, high or xhigh"),
            ));
        }
    }))
}

fn refuse(provider: &str, param: &str, why: &str) -> TranslateError {
    TranslateError {
        param: param.to_owned(),
        message: format!("`{param}` {why}; provider `{provider}` (Gemini API) cannot honour it"),
    }
}

/// Canonical extra fields this translation maps; any other is refused by name.
const KNOWN_EXTRA: &[&str] = &[
    "top_k",
    "reasoning_effort",
    "metadata",
    "store",
    THINKING,
    OUTPUT_CONFIG,
    BETA,
];

pub(crate) fn thought_signature(call: &ToolCall) -> Option<&Value> {
    call.extra
        .get("extra_content")?
        .get("google")?
        .get("thought_signature")
}

/// An image: inline data for `data:` URLs, a file reference for files Gemini can read itself
/// (its File API or Cloud Storage). Gemini does not fetch arbitrary web URLs, so those are
/// refused by name rather than sent to fail upstream.
fn image_part(provider: &str, at: &str, url: &str) -> Result<Value, TranslateError> {
    if let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    {
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("gs://") || url.starts_with("https://generativelanguage.googleapis.com/") {
        let lower = url.to_ascii_lowercase();
        let mime = match lower.rsplit('.').next() {
            Some("png") => "image/png",
            Some("webp") => "image/webp",
            Some("gif") => "image/gif",
            _ => "image/jpeg",
        };
        return Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}));
    }
    Err(refuse(
        provider,
        at,
        "is an image URL Gemini cannot fetch; send it as a data: URL (base64)",
    ))
}

fn parts_of(
    provider: &str,
    at: &str,
    content: &Option<Content>,
) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) if t.is_empty() => {}
        Some(Content::Text(t)) => out.push(json!({"text": t})),
        Some(Content::Parts(parts)) => {
            for (i, p) in parts.iter().enumerate() {
                match p {
                    Part::Text { text } => out.push(json!({"text": text})),
                    Part::ImageUrl { image_url } => {
                        out.push(image_part(
                            provider,
                            &format!("{at}.content[{i}]"),
                            &image_url.url,
                        )?);
                    }
                    // Reasoning blocks of other providers mean nothing to Gemini.
                    Part::Other(v)
                        if matches!(v["type"].as_str(), Some("thinking" | "redacted_thinking")) => {
                    }
                    // A text block kept for its cache hint: Gemini takes the text.
                    Part::Other(v) if v["type"] == "text" => out.push(json!({"text": v["text"]})),
                    Part::Other(v) => {
                        return Err(refuse(
                            provider,
                            &format!("{at}.content[{i}]"),
                            &format!("is a `{}` part", v["type"].as_str().unwrap_or("untyped")),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn push(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut()
        && last["role"] == role
        && let Some(existing) = last["parts"].as_array_mut()
    {
        existing.extend(parts);
        return;
    }
    contents.push(json!({"role": role, "parts": parts}));
}

/// Builds a `generateContent` body. The model goes in the URL, not the body.
pub fn request_from_canonical(provider: &str, req: &ChatRequest) -> Result<Value, TranslateError> {
    if let Some(k) = anthropic_only_field(req) {
        return Err(refuse(provider, k, "is an Anthropic Messages field"));
    }
    if let Some((k, _)) = req
        .extra
        .iter()
        .find(|(k, v)| !KNOWN_EXTRA.contains(&k.as_str()) && !has_no_effect(k, v))
    {
        return Err(refuse(provider, k, "has no Gemini equivalent"));
    }
    let mut system = Vec::new();
    let mut contents = Vec::new();
    // Gemini answers a function call by name: remember the names of the calls by id.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for (i, m) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match m.role {
            Role::System | Role::Developer => system.extend(parts_of(provider, &at, &m.content)?),
            Role::User => push(&mut contents, "user", parts_of(provider, &at, &m.content)?),
            Role::Assistant => {
                let mut parts = parts_of(provider, &at, &m.content)?;
                for call in m.tool_calls.iter().flatten() {
                    names.insert(&call.id, &call.function.name);
                    let args: Value = serde_json::from_str(&call.function.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    let mut part =
                        json!({"functionCall": {"name": call.function.name, "args": args}});
                    if let Some(sig) = thought_signature(call) {
                        part["thoughtSignature"] = sig.clone();
                    }
                    parts.push(part);
                }
                push(&mut contents, "model", parts);
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let Some(name) = names.get(id) else {
                    return Err(refuse(
                        provider,
                        &format!("{at}.tool_call_id"),
                        &format!(
                            "(`{id}`) matches no earlier tool call, and Gemini answers calls by function name"
                        ),
                    ));
                };
                let text = m.text();
                let result = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"result": text}));
                let response = if m.is_error {
                    json!({"error": result})
                } else {
                    result
                };
                push(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
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
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut generation = Map::new();
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        generation.insert("topP".into(), p.into());
    }
    if let Some(k) = req.extra.get("top_k") {
        generation.insert("topK".into(), k.clone());
    }
    if let Some(max) = req.max_output_tokens() {
        generation.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(stop) = &req.stop {
        generation.insert("stopSequences".into(), json!(stop.sequences()));
    }
    if let Some(n) = req.n {
        generation.insert("candidateCount".into(), n.into());
    }
    if let Some(seed) = req.seed {
        generation.insert("seed".into(), seed.into());
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            generation.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            generation.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = &json_schema.schema {
                generation.insert("responseJsonSchema".into(), schema.clone());
            }
        }
    }
    if let Some(budget) = thinking_budget(provider, req)? {
        generation.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = &req.tools {
        let mut decls = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            let Some(f) = t.function.as_ref().filter(|_| t.kind == "function") else {
                return Err(refuse(
                    provider,
                    &format!("tools[{i}]"),
                    &format!("is a `{}` tool", t.kind),
                ));
            };
            let mut d = json!({"name": f.name});
            if let Some(desc) = &f.description {
                d["description"] = desc.clone().into();
            }
            if let Some(p) = &f.parameters {
                d["parametersJsonSchema"] = p.clone();
            }
            decls.push(d);
        }
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let mode = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
        Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
        Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
        Some(ToolChoice::Function(name)) => {
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
        Some(ToolChoice::Other(_)) => {
            return Err(refuse(
                provider,
                "tool_choice",
                "uses a form other than auto, none, required or a named function",
            ));
        }
    };
    if let Some(mode) = mode {
        body.insert("toolConfig".into(), json!({"functionCallingConfig": mode}));
    }
    Ok(Value::Object(body))
}

/// An `embedContent` / `batchEmbedContents` body for `model` (always the batch form).
pub fn embed_request(
    provider: &str,
    req: &EmbeddingRequest,
    model: &str,
) -> Result<Value, TranslateError> {
    let Some(texts) = req.input.texts() else {
        return Err(refuse(
            provider,
            "input",
            "is pre-tokenized; Gemini embeds text",
        ));
    };
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// A Gemini request read back into the canonical form (the mock answers Gemini-shaped calls
/// with the same logic as the others). Function calls get ids `call_<n>`.
pub fn to_canonical_request(v: &Value, model: &str, stream: bool) -> Result<ChatRequest, String> {
    let mut messages = Vec::new();
    if let Some(parts) = v["systemInstruction"]["parts"].as_array() {
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        messages.push(Message::new(Role::System, text));
    }
    let contents = v["contents"]
        .as_array()
        .ok_or("`contents` must be an array")?;
    let mut calls_seen = 0;
    let mut ids_by_name: HashMap<String, String> = HashMap::new();
    for c in contents {
        let role = match c["role"].as_str() {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for p in c["parts"].as_array().ok_or("`parts` must be an array")? {
            if let Some(t) = p["text"].as_str() {
                parts.push(Part::Text { text: t.to_owned() });
            } else if let Some(f) = p.get("functionCall") {
                calls_seen += 1;
                let id = format!("call_{calls_seen}");
                let name = f["name"].as_str().unwrap_or_default().to_owned();
                ids_by_name.insert(name.clone(), id.clone());
                calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: ToolCallFunction {
                        name,
                        arguments: f["args"].to_string(),
                    },
                    extra: Map::new(),
                });
            } else if let Some(r) = p.get("functionResponse") {
                let name = r["name"].as_str().unwrap_or_default();
                let mut m = Message::new(
                    Role::Tool,
                    r["response"]["result"]
                        .as_str()
                        .map_or_else(|| r["response"].to_string(), str::to_owned),
                );
                m.tool_call_id = ids_by_name.get(name).cloned();
                messages.push(m);
            } else if p.get("inlineData").is_some() || p.get("fileData").is_some() {
                parts.push(Part::Other(p.clone()));
            }
        }
        if parts.is_empty() && calls.is_empty() {
            continue;
        }
        let mut m = Message::new(role, "");
        m.content = match parts.as_slice() {
            [] => None,
            [Part::Text { text }] => Some(Content::Text(text.clone())),
            _ => Some(Content::Parts(parts)),
        };
        if !calls.is_empty() {
            m.tool_calls = Some(calls);
        }
        messages.push(m);
    }
    let generation = &v["generationConfig"];
    let tools = v["tools"].as_array().map(|tools| {
        tools
            .iter()
            .flat_map(|t| {
                t["functionDeclarations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|d| Tool {
                kind: "function".into(),
                function: Some(FunctionDef {
                    name: d["name"].as_str().unwrap_or_default().to_owned(),
                    description: d["description"].as_str().map(str::to_owned),
                    parameters: d
                        .get("parametersJsonSchema")
                        .or_else(|| d.get("parameters"))
                        .cloned(),
                    strict: None,
                }),
                extra: Map::new(),
            })
            .collect::<Vec<_>>()
    });
    let fc = &v["toolConfig"]["functionCallingConfig"];
    let tool_choice = match (fc["mode"].as_str(), fc["allowedFunctionNames"][0].as_str()) {
        (Some("ANY"), Some(name)) => Some(ToolChoice::Function(name.to_owned())),
        (Some("ANY"), None) => Some(ToolChoice::Required),
        (Some("NONE"), _) => Some(ToolChoice::None),
        (Some("AUTO"), _) => Some(ToolChoice::Auto),
        _ => None,
    };
    let response_format = match (
        generation["responseMimeType"].as_str(),
        generation
            .get("responseJsonSchema")
            .or_else(|| generation.get("responseSchema")),
    ) {
        (Some("application/json"), Some(schema)) => Some(ResponseFormat::JsonSchema {
            json_schema: crate::chat::JsonSchemaFormat {
                name: "response".into(),
                description: None,
                schema: Some(schema.clone()),
                strict: None,
            },
        }),
        (Some("application/json"), None) => Some(ResponseFormat::JsonObject),
        _ => None,
    };
    let mut req: ChatRequest = serde_json::from_value(json!({"model": model, "messages": []}))
        .map_err(|e| e.to_string())?;
    req.messages = messages;
    req.stream = stream.then_some(true);
    req.tools = tools;
    req.tool_choice = tool_choice;
    req.response_format = response_format;
    req.max_tokens = generation["maxOutputTokens"].as_u64().map(|n| n as u32);
    req.temperature = generation["temperature"].as_f64();
    req.stop = generation["stopSequences"].as_array().map(|s| {
        Stop::Many(
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        )
    });
    Ok(req)
}
