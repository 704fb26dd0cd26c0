//! OpenAI's Responses surface: `POST /v1/responses` (plain and streamed), `GET` and `DELETE
//! /v1/responses/{id}`, for any provider behind the gateway.
//!
//! The request is translated into the canonical form (`switchyard_protocol::responses`), after
//! the conversation of `previous_response_id`, which the gateway rebuilds from the responses it
//! stored (`store: false` keeps one out); it runs the same pipeline as the other surfaces, and
//! the answer is translated back: a Response object, or the typed event stream. Stored responses
//! belong to the key that made them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use serde_json::{Map, Value, json};
use switchyard_protocol::chat::{Message, StreamOptions};
use switchyard_protocol::responses::{
    Echo, ResponsesRequest, StreamTranslator, from_canonical, input_messages, output_messages,
    to_canonical,
};
use switchyard_protocol::sse;
use switchyard_providers::{ChatStream, ChunkDetail};
use switchyard_store::responses::StoredResponse;

use super::{Item, RawBody, authenticate, json};
use crate::app::{AppState, RequestId};
use crate::error::GatewayError;
use crate::keys::VirtualKey;
use crate::logs::{CallLog, Tokens};
use crate::pipeline;
use crate::routing::Attempts;

/// How many turns back `previous_response_id` is followed.
const MAX_TURNS: usize = 200;

fn key_id(key: Option<&Arc<VirtualKey>>) -> Option<&str> {
    key.map(|k| k.id.as_str())
}

fn store_error(e: switchyard_store::StoreError) -> GatewayError {
    GatewayError::Internal {
        message: format!("the response store: {e}"),
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::NotFound {
        message: format!(
            "response `{id}` was not found: it was never stored (store: false), was deleted, or belongs to another key"
        ),
    }
}

/// The conversation before this turn: each earlier turn's input and output.
async fn history(
    state: &AppState,
    previous: &str,
    key: Option<&str>,
) -> Result<Vec<Message>, GatewayError> {
    let Some(chain) = state
        .responses
        .chain(previous, key, MAX_TURNS)
        .await
        .map_err(store_error)?
    else {
        return Err(GatewayError::BadRequest {
            message: not_found(previous).to_string(),
            param: Some("previous_response_id".to_owned()),
        });
    };
    let mut out = Vec::new();
    for turn in chain {
        let record: Value =
            serde_json::from_str(&turn.record).map_err(|e| GatewayError::Internal {
                message: format!("stored response {} is unreadable: {e}", turn.id),
            })?;
        let input: Vec<Message> =
            serde_json::from_value(record["input"].clone()).unwrap_or_default();
        out.extend(input);
        out.extend(output_messages(&record["response"]));
    }
    Ok(out)
}

/// Keeps a finished response for later turns and `GET`.
fn keep(
    state: &Arc<AppState>,
    key: Option<String>,
    req: &ResponsesRequest,
    input: Vec<Message>,
    response: &Value,
) {
    if !req.stores() {
        return;
    }
    state.responses.put(StoredResponse {
        id: response["id"].as_str().unwrap_or_default().to_owned(),
        created_at: now_secs() * 1000,
        key_id: key,
        previous_id: req.previous_response_id.clone(),
        record: json!({"response": response, "input": input}).to_string(),
    });
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<RawBody, GatewayError>,
) -> Response {
    let mut log = CallLog::start(&state.logger, rid.0, rid.1, "responses");
    let admitted = super::admit(&state, &headers, body, &mut log, |r: &ResponsesRequest| {
        r.metadata.as_ref()
    });
    let (req, options) = match admitted {
        Ok(a) => a,
        Err(e) => return super::fail(&state, log, &Attempts::default(), e, false),
    };
    log.request(&options, &req.model, req.is_stream());
    let key = key_id(options.key.as_ref()).map(str::to_owned);
    let prepared = async {
        let history = match &req.previous_response_id {
            Some(p) => history(&state, p, key.as_deref()).await?,
            None => Vec::new(),
        };
        let bad = |e: switchyard_protocol::TranslateError| GatewayError::BadRequest {
            message: e.message,
            param: Some(e.param),
        };
        let canonical = to_canonical(&req, history).map_err(bad)?;
        let input = input_messages(&req).map_err(bad)?;
        Ok::<_, GatewayError>((canonical, input))
    };
    let (mut canonical, input) = match prepared.await {
        Ok(p) => p,
        Err(e) => return super::fail(&state, log, &Attempts::default(), e, false),
    };
    let echo = Echo::of(
        &req,
        format!("resp_{}", uuid::Uuid::new_v4().simple()),
        now_secs(),
    );
    if req.is_stream() {
        // The completed response carries usage, so the upstream is asked for it.
        canonical.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
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
                let done = Done {
                    state: state.clone(),
                    key,
                    req,
                    input,
                };
                let resume = super::resume(&state, rid.0, &options);
                event_stream(&attempts, resume, stream, echo, done)
            }
            Err((attempts, e)) => super::fail(&state, log, &attempts, e, false),
        }
    } else {
        match Box::pin(pipeline::chat(&state, &options, canonical)).await {
            Ok((attempts, resp)) => {
                let tokens = resp.usage.as_ref().map(Tokens::of);
                let response = from_canonical(&echo, &resp);
                keep(&state, key, &req, input, &response);
                super::done(&state, log, &attempts, tokens, &response);
                json(&attempts, &response)
            }
            Err((attempts, e)) => super::fail(&state, log, &attempts, e, false),
        }
    }
}

/// What storing a streamed response needs once it completes.
struct Done {
    state: Arc<AppState>,
    key: Option<String>,
    req: ResponsesRequest,
    input: Vec<Message>,
}

fn push_event(frame: &mut BytesMut, (kind, body): &(String, Value)) {
    // A `Value` always serializes.
    let _ = sse::put_json_event(frame, Some(kind), body);
}

/// The typed event stream; a failure mid-stream is an `error` event, then the stream ends (and
/// nothing is stored).
fn event_stream(
    attempts: &Attempts,
    resume: Option<super::Resume>,
    upstream: ChatStream,
    echo: Echo,
    done: Done,
) -> Response {
    let mut translator = StreamTranslator::new(echo);
    let mut done = Some(done);
    super::sse_response(attempts, resume, upstream, move |item, frame| match item {
        Item::Chunk(chunk) => {
            for event in translator.push(chunk) {
                push_event(frame, &event);
            }
            true
        }
        Item::Failed(e) => {
            let err = GatewayError::Upstream(e);
            let body = err.openai_body().error;
            let code = body.code.clone().or(body.kind.clone()).unwrap_or_default();
            push_event(frame, &translator.error(&code, &body.message));
            false
        }
        Item::End => {
            let (events, response) = translator.finish();
            for event in &events {
                push_event(frame, event);
            }
            if let Some(d) = done.take() {
                keep(&d.state, d.key, &d.req, d.input, &response);
            }
            false
        }
    })
}

/// `GET /v1/responses/{id}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let found = async {
        let key = authenticate(&state, &headers)?;
        let stored = state
            .responses
            .get(&id, key_id(key.as_ref()))
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(&id))?;
        let record: Value =
            serde_json::from_str(&stored.record).map_err(|e| GatewayError::Internal {
                message: format!("stored response {id} is unreadable: {e}"),
            })?;
        Ok::<_, GatewayError>(record["response"].clone())
    };
    match found.await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let deleted = async {
        let key = authenticate(&state, &headers)?;
        if !state
            .responses
            .delete(&id, key_id(key.as_ref()))
            .await
            .map_err(store_error)?
        {
            return Err(not_found(&id));
        }
        Ok::<_, GatewayError>(json!({"id": id, "object": "response", "deleted": true}))
    };
    match deleted.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
