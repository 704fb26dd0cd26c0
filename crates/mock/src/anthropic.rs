//! The Anthropic-shaped route of the mock: `POST /v1/messages`, with the same scripted
//! behaviours as the OpenAI routes (the request is read through the same canonical translation
//! the gateway uses, and answered by the same `decide`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use switchyard_protocol::anthropic::wire::{
    BlockDelta, MessageDelta, MessagesResponse, OutBlock, StreamEvent, Usage,
};
use switchyard_protocol::anthropic::{
    ErrorResponse, MessagesRequest, finish_to_stop_reason, to_canonical,
};
use switchyard_protocol::chat::{ChatRequest, FinishReason};
use switchyard_protocol::{decode_json, sse};

use crate::openai::{Reply, decide, json_response, next_id, prompt_tokens, respond, scenario};
use crate::scenario::Scenario;
use crate::stats::Stats;
use crate::tokens;

fn error(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &ErrorResponse::for_status(status, message))
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

/// `POST /v1/messages/count_tokens`: the mock's estimate of the input tokens.
pub(crate) async fn count_tokens(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.record("/v1/messages/count_tokens", &headers, &body);
    let mut v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, e.to_string()),
    };
    // count_tokens requests carry no max_tokens.
    v["max_tokens"] = json!(1);
    let req = match serde_json::from_value::<MessagesRequest>(v)
        .map_err(|e| e.to_string())
        .and_then(|r| to_canonical(r).map_err(|e| e.message))
    {
        Ok(r) => r,
        Err(e) => return error(400, e),
    };
    json_response(
        StatusCode::OK,
        &json!({ "input_tokens": prompt_tokens(&req) }),
    )
}

fn reply_blocks(reply: Reply) -> (Vec<OutBlock>, FinishReason, u64) {
    match reply {
        Reply::Text {
            text,
            finish,
            completion_tokens,
        } => (vec![OutBlock::Text { text }], finish, completion_tokens),
        Reply::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input = serde_json::from_str(&arguments).unwrap_or_else(|_| json!({}));
            let tokens = tokens::estimate_tokens(&arguments) + 5;
            (
                vec![OutBlock::ToolUse {
                    id: id.replace("call", "toolu"),
                    name,
                    input,
                }],
                FinishReason::ToolCalls,
                tokens,
            )
        }
    }
}

pub(crate) async fn messages(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.record("/v1/messages", &headers, &body);
    let req: MessagesRequest = match decode_json(&body) {
        Ok(r) => r,
        Err(e) => return error(400, e.message),
    };
    let req: ChatRequest = match to_canonical(req) {
        Ok(r) => r,
        Err(e) => return error(400, e.message),
    };
    let s = match scenario(&req.model, &headers, &stats) {
        Ok(s) => s,
        Err(e) => return error(400, e.0),
    };
    respond(
        &req,
        &s,
        stats,
        scripted_failure,
        || events(&req, &s),
        "{\"type\": \"message\", \"content\": [",
        || messages_answer(&req, &s),
    )
    .await
}

fn messages_answer(req: &ChatRequest, s: &Scenario) -> MessagesResponse {
    let (content, finish, output) = reply_blocks(decide(req, s));
    MessagesResponse {
        id: next_id("msg"),
        kind: "message",
        role: "assistant",
        model: req.model.clone(),
        content,
        stop_reason: Some(finish_to_stop_reason(&finish)),
        stop_sequence: None,
        usage: Usage {
            input_tokens: prompt_tokens(req),
            output_tokens: output,
            ..Usage::default()
        },
    }
}

fn encode(event: &StreamEvent) -> Bytes {
    serde_json::to_string(event)
        .map(|data| sse::encode(Some(event.name()), &data))
        .unwrap_or_default()
}

/// The events of a streamed answer, in Anthropic's order, with a `ping` after the start.
fn events(req: &ChatRequest, s: &Scenario) -> Vec<Bytes> {
    let mut out = Vec::new();
    if s.malformed {
        out.push(Bytes::from_static(
            b"event: message_start\ndata: {\"type\": \"message_start\", \n\n",
        ));
    }
    let input = prompt_tokens(req);
    out.push(encode(&StreamEvent::MessageStart {
        message: MessagesResponse {
            id: next_id("msg"),
            kind: "message",
            role: "assistant",
            model: req.model.clone(),
            content: vec![],
            stop_reason: None,
            stop_sequence: None,
            usage: Usage {
                input_tokens: input,
                output_tokens: 1,
                ..Usage::default()
            },
        },
    }));
    out.push(encode(&StreamEvent::Ping));
    let (blocks, finish, output) = reply_blocks(decide(req, s));
    for (index, block) in blocks.into_iter().enumerate() {
        let index = index as u32;
        match block {
            OutBlock::Text { text } => {
                out.push(encode(&StreamEvent::ContentBlockStart {
                    index,
                    content_block: OutBlock::Text {
                        text: String::new(),
                    },
                }));
                for piece in tokens::pieces(&text) {
                    let delta = BlockDelta::TextDelta {
                        text: piece.to_owned(),
                    };
                    out.push(encode(&StreamEvent::ContentBlockDelta { index, delta }));
                }
            }
            OutBlock::ToolUse { id, name, input } => {
                let start = OutBlock::ToolUse {
                    id,
                    name,
                    input: json!({}),
                };
                out.push(encode(&StreamEvent::ContentBlockStart {
                    index,
                    content_block: start,
                }));
                let args: Vec<char> = input.to_string().chars().collect();
                for part in args.chunks(8) {
                    let delta = BlockDelta::InputJsonDelta {
                        partial_json: part.iter().collect(),
                    };
                    out.push(encode(&StreamEvent::ContentBlockDelta { index, delta }));
                }
            }
            OutBlock::Thinking { .. } | OutBlock::RedactedThinking { .. } => {}
        }
        out.push(encode(&StreamEvent::ContentBlockStop { index }));
    }
    out.push(encode(&StreamEvent::MessageDelta {
        delta: MessageDelta {
            stop_reason: Some(finish_to_stop_reason(&finish)),
            stop_sequence: None,
        },
        usage: Usage {
            output_tokens: output,
            ..Usage::default()
        },
    }));
    out.push(encode(&StreamEvent::MessageStop));
    out
}
