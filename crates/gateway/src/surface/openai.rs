//! The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use switchyard_protocol::chat::ChatRequest;
use switchyard_protocol::embeddings::EmbeddingRequest;
use switchyard_protocol::{decode_json, sse};
use switchyard_providers::ChatStream;

use crate::app::AppState;
use crate::error::GatewayError;
use crate::pipeline::{self, Failure, StreamShape};
use crate::registry::Target;

/// A request body read within the configured limit; too large is a 413 in OpenAI's shape.
pub struct RawBody(pub Bytes);

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(GatewayError::PayloadTooLarge {
                    limit: state.max_body_bytes,
                })
            }
            Err(rej) => Err(GatewayError::bad_request(rej.body_text(), None)),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    decode_json(body).map_err(|e| {
        let param = (!e.path.is_empty()).then_some(e.path);
        GatewayError::BadRequest {
            message: e.message,
            param,
        }
    })
}

/// Adds the headers every served answer carries.
fn served(headers: &mut HeaderMap, target: &Target) {
    if let Ok(v) = HeaderValue::from_str(target.provider_name()) {
        headers.insert("x-switchyard-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        headers.insert("x-switchyard-model", v);
    }
}

fn json<T: Serialize>(target: &Target, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response();
            served(resp.headers_mut(), target);
            resp
        }
        Err(e) => GatewayError::Internal {
            message: format!("encoding the answer: {e}"),
        }
        .into_response(),
    }
}

fn failure((target, err): Failure) -> Response {
    let mut resp = err.into_response();
    if let Some(t) = &target {
        served(resp.headers_mut(), t);
    }
    resp
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Response {
    let req: ChatRequest = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if req.is_stream() {
        match pipeline::chat_stream(&state.registry, req).await {
            Ok((target, stream, shape)) => sse_response(&target, stream, shape),
            Err(f) => failure(f),
        }
    } else {
        match pipeline::chat(&state.registry, req).await {
            Ok((target, resp)) => json(&target, &resp),
            Err(f) => failure(f),
        }
    }
}

pub async fn embeddings(State(state): State<Arc<AppState>>, RawBody(body): RawBody) -> Response {
    let req: EmbeddingRequest = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match pipeline::embed(&state.registry, req).await {
        Ok((target, resp)) => json(&target, &resp),
        Err(f) => failure(f),
    }
}

pub async fn models(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(state.registry.models()).into_response()
}

pub async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.registry.models().data.iter().find(|m| m.id == id) {
        Some(m) => axum::Json(m).into_response(),
        None => GatewayError::ModelNotFound {
            message: format!("model `{id}` is not in the model list"),
        }
        .into_response(),
    }
}

/// Encodes a chunk stream as OpenAI's SSE: one `data:` event per chunk, then `data: [DONE]`; an
/// upstream failure mid-stream becomes a `data: {"error":…}` event and the stream ends cleanly.
/// Each chunk is written as soon as it arrives. Dropping the body (the client went away) drops
/// the upstream stream, which closes the upstream connection.
fn sse_response(target: &Target, upstream: ChatStream, shape: StreamShape) -> Response {
    // Chunks that are already decoded when one is written go out in the same frame (one write
    // instead of one per event); nothing waits for more to arrive.
    let events = stream::unfold(Some(upstream), move |state| async move {
        let mut upstream = state?;
        let mut frame = BytesMut::new();
        let mut item = upstream.next().await;
        loop {
            match item {
                Some(Ok(chunk)) => {
                    if let Some(chunk) = shape.apply(chunk) {
                        match serde_json::to_vec(&chunk) {
                            Ok(json) => frame.extend_from_slice(&sse::encode_json_line(&json)),
                            Err(e) => {
                                let err = GatewayError::Internal {
                                    message: format!("encoding a chunk: {e}"),
                                };
                                frame.extend_from_slice(&error_event(&err));
                                return Some((Ok(frame.freeze()), None));
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "upstream stream failed after the first byte");
                    frame.extend_from_slice(&error_event(&GatewayError::Upstream(e)));
                    return Some((Ok(frame.freeze()), None));
                }
                None => {
                    frame.extend_from_slice(b"data: [DONE]\n\n");
                    return Some((Ok(frame.freeze()), None));
                }
            }
            item = match upstream.next().now_or_never() {
                Some(next) => next,
                None if frame.is_empty() => upstream.next().await,
                None => {
                    return Some((
                        Ok::<Bytes, std::convert::Infallible>(frame.freeze()),
                        Some(upstream),
                    ));
                }
            };
        }
    });
    let mut resp = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(events),
    )
        .into_response();
    served(resp.headers_mut(), target);
    resp
}

fn error_event(err: &GatewayError) -> Bytes {
    let body = serde_json::to_vec(&err.openai_body()).unwrap_or_default();
    sse::encode_json_line(&body)
}
