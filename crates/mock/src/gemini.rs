//! The Gemini-shaped routes of the mock: `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse` and `:batchEmbedContents`, with the same scripted
//! behaviours. Like Gemini 2.5+, it refuses a history whose function calls lost their
//! `thoughtSignature`, so a tool loop only works if signatures round-trip.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_protocol::chat::{ChatRequest, FinishReason};
use switchyard_protocol::gemini::to_canonical_request;
use switchyard_protocol::sse;

use crate::openai::{
    Reply, decide, json_response, next_id, pause, prompt_tokens, respond, scenario, vector,
};
use crate::scenario::Scenario;
use crate::stats::Stats;
use crate::tokens;

/// The signature the mock puts on its function calls and expects back.
pub const THOUGHT_SIGNATURE: &str = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ==";

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn error(code: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        json!({"error": {"code": code, "message": message.into(), "status": status_name(code)}});
    json_response(status, &body)
}

fn scripted_failure(s: &Scenario) -> Option<Response> {
    let code = s.fail?;
    let mut resp = error(code, format!("mock: scripted failure {code}"));
    if let Some(after) = s.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    Some(resp)
}

fn finish_name(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        _ => "STOP",
    }
}

fn missing_signature(v: &Value) -> bool {
    v["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["role"] == "model")
        .any(|c| {
            c["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p.get("functionCall").is_some() && p.get("thoughtSignature").is_none())
        })
}

fn usage(req: &ChatRequest, output: u64) -> Value {
    let prompt = prompt_tokens(req);
    json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output})
}

fn answer(
    id: &str,
    model: &str,
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Option<Value>,
) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = f.into();
    }
    let mut v = json!({"candidates": [cand], "modelVersion": model, "responseId": id});
    if let Some(u) = usage {
        v["usageMetadata"] = u;
    }
    v
}

fn call_part(name: &str, arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
    json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": THOUGHT_SIGNATURE})
}

pub(crate) async fn models_action(
    State(stats): State<Arc<Stats>>,
    Path(model_action): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1beta/models/{model_action}");
    stats.record(&path, &headers, &body);
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return error(
            404,
            format!("unknown method {model_action}; use models/MODEL:generateContent"),
        );
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("Invalid JSON payload received. {e}")),
    };
    let s = match scenario(model, &headers, &stats) {
        Ok(s) => s,
        Err(e) => return error(400, e.0),
    };
    match action {
        "generateContent" | "streamGenerateContent" => {}
        "batchEmbedContents" => return embed(&v, &s).await,
        "countTokens" => {
            return match to_canonical_request(&v["generateContentRequest"], model, false) {
                Ok(req) => json_response(
                    StatusCode::OK,
                    &json!({ "totalTokens": prompt_tokens(&req) }),
                ),
                Err(e) => error(400, e),
            };
        }
        other => return error(404, format!("unknown method `{other}`")),
    }
    if missing_signature(&v) {
        return error(
            400,
            "Function call is missing a thought_signature in functionCall parts.",
        );
    }
    let req = match to_canonical_request(&v, model, action == "streamGenerateContent") {
        Ok(r) => r,
        Err(e) => return error(400, e),
    };
    let streaming = action == "streamGenerateContent";
    if streaming && query.get("alt").map(String::as_str) != Some("sse") {
        return error(400, "this mock streams only with ?alt=sse");
    }
    respond(
        &req,
        &s,
        stats,
        scripted_failure,
        || events(&req, &s),
        "{\"candidates\": [",
        || generate_answer(&req, &s),
    )
    .await
}

fn generate_answer(req: &ChatRequest, s: &Scenario) -> Value {
    let id = next_id("gemini");
    let model = req.model.as_str();
    match decide(req, s) {
        Reply::Text {
            text,
            finish,
            completion_tokens,
        } => answer(
            &id,
            model,
            vec![json!({"text": text})],
            Some(finish_name(&finish)),
            Some(usage(req, completion_tokens)),
        ),
        Reply::ToolCall {
            name, arguments, ..
        } => {
            let tokens = tokens::estimate_tokens(&arguments) + 5;
            answer(
                &id,
                model,
                vec![call_part(&name, &arguments)],
                Some("STOP"),
                Some(usage(req, tokens)),
            )
        }
    }
}

/// `GET /v1beta/models`: the mock's models in Gemini's list shape.
pub(crate) async fn models() -> Response {
    let models: Vec<Value> = crate::MODELS
        .iter()
        .map(|m| json!({"name": format!("models/{m}")}))
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

fn encode(v: &Value) -> Bytes {
    sse::encode_json_line(v.to_string().as_bytes())
}

/// One event per word, the last with the finish reason and usage; a function call arrives
/// whole, as Gemini sends it.
fn events(req: &ChatRequest, s: &Scenario) -> Vec<Bytes> {
    let id = next_id("gemini");
    let model = req.model.as_str();
    let mut out = Vec::new();
    if s.malformed {
        out.push(Bytes::from_static(b"data: {\"candidates\": [\n\n"));
    }
    match decide(req, s) {
        Reply::Text {
            text,
            finish,
            completion_tokens,
        } => {
            let pieces = tokens::pieces(&text);
            let last = pieces.len().saturating_sub(1);
            if pieces.is_empty() {
                out.push(encode(&answer(
                    &id,
                    model,
                    vec![json!({"text": ""})],
                    Some(finish_name(&finish)),
                    Some(usage(req, 0)),
                )));
            }
            for (i, piece) in pieces.iter().enumerate() {
                let (f, u) = if i == last {
                    (
                        Some(finish_name(&finish)),
                        Some(usage(req, completion_tokens)),
                    )
                } else {
                    (None, None)
                };
                out.push(encode(&answer(
                    &id,
                    model,
                    vec![json!({"text": piece})],
                    f,
                    u,
                )));
            }
        }
        Reply::ToolCall {
            name, arguments, ..
        } => {
            let tokens = tokens::estimate_tokens(&arguments) + 5;
            out.push(encode(&answer(
                &id,
                model,
                vec![call_part(&name, &arguments)],
                Some("STOP"),
                Some(usage(req, tokens)),
            )));
        }
    }
    out
}

async fn embed(v: &Value, s: &Scenario) -> Response {
    pause(s.delay).await;
    if let Some(resp) = scripted_failure(s) {
        return resp;
    }
    let Some(requests) = v["requests"].as_array() else {
        return error(400, "`requests` must be an array");
    };
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|r| {
            let text: String = r["content"]["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["text"].as_str())
                .collect();
            let dims = r["outputDimensionality"]
                .as_u64()
                .unwrap_or(8)
                .clamp(1, 4096) as usize;
            json!({"values": vector(&text, dims)})
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "embeddings": embeddings }))
}
