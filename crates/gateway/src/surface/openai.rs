//! The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchyard_protocol::anthropic::upstream::{REASONING_SIGNATURE, REDACTED_REASONING};
use switchyard_protocol::chat::{ChatRequest, ChatResponse, Content, Part};
use switchyard_protocol::embeddings::EmbeddingRequest;
use switchyard_protocol::sse;
use switchyard_providers::{ChatStream, ChunkDetail};

use super::{Item, RawBody, authenticate, json, json_body};

use crate::app::{AppState, RequestId};
use crate::error::GatewayError;
use crate::logs::{CallLog, Tokens};
use crate::pipeline::{self, Failure, StreamShape};
use crate::routing::Attempts;

fn failure(state: &AppState, log: CallLog, (attempts, err): Failure) -> Response {
    super::fail(state, log, &attempts, err, false)
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<RawBody, GatewayError>,
) -> Response {
    let mut log = CallLog::start(&state.logger, rid.0, rid.1, "chat");
    let admitted = super::admit(&state, &headers, body, &mut log, |r: &ChatRequest| {
        r.extra.get("metadata")
    });
    let (mut req, options) = match admitted {
        Ok(c) => c,
        Err(e) => return failure(&state, log, (Attempts::default(), e)),
    };
    // Keys only the gateway sets (a Messages caller's thinking, say) are not a caller's to send.
    switchyard_protocol::drop_private(&mut req.extra);
    log.request(&options, &req.model, req.is_stream());
    if req.is_stream() {
        // Events go out as the upstream sent them; only a log that keeps the answer reads its
        // text.
        let reader = if log.may_record_bodies(&state) {
            ChunkDetail::Decoded
        } else {
            ChunkDetail::Wire
        };
        match Box::pin(pipeline::chat_stream(&state, &options, req, reader)).await {
            Ok((attempts, stream, shape)) => {
                let stream = super::logged(&state, log, &attempts, stream);
                let resume = super::resume(&state, rid.0, &options);
                sse_response(&attempts, resume, stream, shape)
            }
            Err(f) => failure(&state, log, f),
        }
    } else {
        match Box::pin(pipeline::chat(&state, &options, req)).await {
            Ok((attempts, mut resp)) => {
                let tokens = resp.usage.as_ref().map(Tokens::of);
                openai_answer(&mut resp);
                super::done(&state, log, &attempts, tokens, &resp);
                match resp.wire.get() {
                    Some(body) => json_body(&attempts, body.clone()),
                    None => json(&attempts, &resp),
                }
            }
            Err(f) => failure(&state, log, f),
        }
    }
}

/// OpenAI's answers carry the assistant's text as one string. Canonical answers from other wire
/// families may hold parts (Anthropic thinking blocks with signatures): the text is joined into
/// `content` and reasoning goes to `reasoning_content`, the field OpenAI-compatible reasoning
/// hosts use.
fn openai_answer(resp: &mut ChatResponse) {
    let mut changed = false;
    for choice in &mut resp.choices {
        let m = &mut choice.message;
        // Signatures of reasoning blocks (an answer assembled from an Anthropic stream carries
        // them) mean nothing to OpenAI-shaped callers.
        if !m.extra.is_empty() {
            changed |= m.extra.remove(REASONING_SIGNATURE).is_some();
            changed |= m.extra.remove(REDACTED_REASONING).is_some();
        }
        let Some(Content::Parts(parts)) = &m.content else {
            continue;
        };
        changed = true;
        let mut text = String::new();
        let mut reasoning = String::new();
        for p in parts {
            match p {
                Part::Text { text: t } => text.push_str(t),
                Part::Other(v) if v["type"] == "thinking" => {
                    reasoning.push_str(v["thinking"].as_str().unwrap_or_default());
                }
                _ => {}
            }
        }
        m.content = Some(Content::Text(text));
        if !reasoning.is_empty() {
            m.extra.insert("reasoning_content".into(), reasoning.into());
        }
    }
    if changed {
        resp.changed();
    }
}

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<RawBody, GatewayError>,
) -> Response {
    let mut log = CallLog::start(&state.logger, rid.0, rid.1, "embeddings");
    let admitted = super::admit(&state, &headers, body, &mut log, |_: &EmbeddingRequest| {
        None
    });
    let (req, options) = match admitted {
        Ok(c) => c,
        Err(e) => return failure(&state, log, (Attempts::default(), e)),
    };
    log.request(&options, &req.model, false);
    match Box::pin(pipeline::embed(&state, &options, req)).await {
        Ok((attempts, resp)) => {
            let tokens = resp.usage.as_ref().map(|u| Tokens {
                input: u.prompt_tokens,
                ..Tokens::default()
            });
            super::done(&state, log, &attempts, tokens, &resp);
            json(&attempts, &resp)
        }
        Err(f) => failure(&state, log, f),
    }
}

/// The models the caller may use: all of them, or those its key's allow-list matches.
pub async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let key = match authenticate(&state, &headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let routes = state.routes.load();
    let all = routes.registry().models();
    match key {
        None => axum::Json(all).into_response(),
        Some(k) => {
            let mut mine = all.clone();
            mine.data.retain(|m| k.allows(&m.id, None));
            axum::Json(mine).into_response()
        }
    }
}

pub async fn model(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let key = match authenticate(&state, &headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let routes = state.routes.load();
    let listed = routes.registry().models().data.iter().find(|m| m.id == id);
    match listed.filter(|m| key.as_ref().is_none_or(|k| k.allows(&m.id, None))) {
        Some(m) => axum::Json(m).into_response(),
        None => GatewayError::ModelNotFound {
            message: format!("model `{id}` is not in the model list"),
        }
        .into_response(),
    }
}

/// OpenAI's SSE: one `data:` event per chunk, then `data: [DONE]`; an upstream failure mid-stream
/// becomes a `data: {"error":…}` event and the stream ends without `[DONE]`.
fn sse_response(
    attempts: &Attempts,
    resume: Option<super::Resume>,
    upstream: ChatStream,
    shape: StreamShape,
) -> Response {
    super::sse_response(attempts, resume, upstream, move |item, frame| match item {
        Item::Chunk(chunk) => {
            let Some(chunk) = shape.apply(chunk) else {
                return true;
            };
            // Unchanged since the upstream sent it: its own JSON, not a re-encoding.
            if let Some(json) = chunk.wire.get() {
                sse::put_json_line(frame, json);
                return true;
            }
            if let Err(e) = sse::put_json_event(frame, None, &chunk) {
                let err = GatewayError::Internal {
                    message: format!("encoding a chunk: {e}"),
                };
                frame.extend_from_slice(&error_event(&err));
                return false;
            }
            true
        }
        Item::Failed(e) => {
            frame.extend_from_slice(&error_event(&GatewayError::Upstream(e)));
            false
        }
        Item::End => {
            frame.extend_from_slice(b"data: [DONE]\n\n");
            false
        }
    })
}

fn error_event(err: &GatewayError) -> Bytes {
    let body = serde_json::to_vec(&err.openai_body()).unwrap_or_default();
    sse::encode_json_line(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_thinking_parts_become_openai_shaped() {
        let mut resp: ChatResponse = serde_json::from_value(serde_json::json!({
            "id": "msg_1", "model": "claude", "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                    {"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]}}]
        }))
        .unwrap();
        openai_answer(&mut resp);
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(
            v["choices"][0]["message"]["reasoning_content"],
            "Let me think."
        );
    }
}
