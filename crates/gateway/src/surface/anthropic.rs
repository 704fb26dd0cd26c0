//! Anthropic's Messages surface: `POST /v1/messages`, for any provider behind the gateway.
//!
//! The request is translated into the canonical form (`switchyard_protocol::anthropic`), runs
//! the same pipeline as the OpenAI surface, and the answer is translated back: a Messages
//! object, or the Messages event stream. Errors use Anthropic's shape and status codes.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::BytesMut;
use serde_json::Map;
use switchyard_protocol::anthropic::{
    MessagesRequest, StreamEvent, StreamTranslator, to_anthropic, to_canonical,
};
use switchyard_protocol::chat::{ChatRequest, StreamOptions};
use switchyard_protocol::sse;
use switchyard_providers::{ChatStream, ChunkDetail};

use super::{Item, RawBody, authenticate, decode, json, options};
use crate::app::{AppState, RequestId};
use crate::error::GatewayError;
use crate::logs::{CallLog, Tokens};
use crate::pipeline::{self, Failure};
use crate::routing::Attempts;

fn failure((attempts, err): Failure) -> Response {
    super::failure(&attempts, err, true)
}

/// Reads a Messages request into the canonical form, with the caller's `anthropic-beta`
/// header for Anthropic upstreams. A `count_tokens` request (`counting`) carries no
/// `max_tokens`, which the translation otherwise requires.
fn read(
    body: Result<RawBody, GatewayError>,
    headers: &HeaderMap,
    counting: bool,
) -> Result<ChatRequest, GatewayError> {
    let RawBody(body) = body?;
    let req: MessagesRequest = if counting {
        let mut value: serde_json::Value = decode(&body)?;
        if let Some(obj) = value.as_object_mut() {
            obj.entry("max_tokens").or_insert(1.into());
        }
        serde_json::from_value(value)
            .map_err(|e| GatewayError::bad_request(format!("invalid request body: {e}"), None))?
    } else {
        decode(&body)?
    };
    let mut canonical = to_canonical(req).map_err(|e| GatewayError::BadRequest {
        message: e.message,
        param: Some(e.param),
    })?;
    if let Some(beta) = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
        canonical.extra.insert(
            switchyard_protocol::anthropic::upstream::BETA.to_owned(),
            beta.into(),
        );
    }
    Ok(canonical)
}

pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<RawBody, GatewayError>,
) -> Response {
    let mut log = CallLog::start(&state.logger, rid.0, rid.1, "messages");
    log.traced(&state, &headers);
    let (mut canonical, options) = match authenticate(&state, &headers).and_then(|key| {
        let body = body?;
        log.body(&body.0);
        let c = read(Ok(body), &headers, false)?;
        let o = options(&headers, c.extra.get("metadata"), key)?;
        Ok((c, o))
    }) {
        Ok(c) => c,
        Err(e) => return super::fail(&state, log, &Attempts::default(), e, true),
    };
    log.request(&options, &canonical.model, canonical.is_stream());
    if canonical.is_stream() {
        // Messages streams always end with usage, so the upstream is asked for it.
        canonical.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
        let model = canonical.model.clone();
        match Box::pin(pipeline::chat_stream(
            &state,
            &options,
            canonical,
            ChunkDetail::Decoded,
        ))
        .await
        {
            Ok((attempts, stream, _)) => {
                let stream = super::logged(&state, log, &attempts, stream);
                let resume = super::resume(&state, rid.0, &options);
                event_stream(&attempts, resume, stream, model)
            }
            Err((attempts, e)) => super::fail(&state, log, &attempts, e, true),
        }
    } else {
        match Box::pin(pipeline::chat(&state, &options, canonical)).await {
            Ok((attempts, resp)) => {
                let tokens = resp.usage.as_ref().map(Tokens::of);
                let answer = to_anthropic(resp);
                super::done(&state, log, &attempts, tokens, &answer);
                json(&attempts, &answer)
            }
            Err((attempts, e)) => super::fail(&state, log, &attempts, e, true),
        }
    }
}

/// `POST /v1/messages/count_tokens`: counted by the upstream where it has a counting endpoint
/// (Anthropic, Gemini); other providers answer 400 rather than with a guess.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<RawBody, GatewayError>,
) -> Response {
    let (canonical, options) = match authenticate(&state, &headers).and_then(|key| {
        let c = read(body, &headers, true)?;
        Ok((c, options(&headers, None, key)?))
    }) {
        Ok(c) => c,
        Err(e) => return e.into_anthropic_response(),
    };
    match Box::pin(pipeline::count_tokens(&state, &options, canonical)).await {
        Ok((attempts, n)) => json(&attempts, &serde_json::json!({ "input_tokens": n })),
        Err(f) => failure(f),
    }
}

fn push_event(frame: &mut BytesMut, event: &StreamEvent) {
    // These types always encode; one that did not would be left out.
    let _ = sse::put_json_event(frame, Some(event.name()), event);
}

/// The Messages event stream; a failure mid-stream is an `error` event, then the stream ends.
fn event_stream(
    attempts: &Attempts,
    resume: Option<super::Resume>,
    upstream: ChatStream,
    model: String,
) -> Response {
    let mut translator = StreamTranslator::new(model);
    let mut id = String::from("msg_switchyard");
    super::sse_response(attempts, resume, upstream, move |item, frame| match item {
        Item::Chunk(chunk) => {
            if id == "msg_switchyard" {
                id.clone_from(&chunk.id);
            }
            for event in translator.push(chunk) {
                push_event(frame, &event);
            }
            true
        }
        Item::Failed(e) => {
            let err = GatewayError::Upstream(e);
            let kind = switchyard_protocol::anthropic::wire::error_type(err.status().as_u16());
            push_event(
                frame,
                &StreamTranslator::error(kind, err.openai_body().error.message),
            );
            false
        }
        Item::End => {
            for event in translator.finish(&id) {
                push_event(frame, &event);
            }
            false
        }
    })
}
