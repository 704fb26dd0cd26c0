//! The Responses-shaped route of the mock: `POST /v1/responses`, with the same scripted
//! behaviours as the chat route (the request is read through the same canonical translation the
//! gateway uses, answered by the same `decide`, and written by the gateway's own encoders).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Map;
use switchyard_protocol::chat::StreamOptions;
use switchyard_protocol::responses::{
    Echo, ResponsesRequest, StreamTranslator, from_canonical, to_canonical,
};
use switchyard_protocol::{decode_json, sse};

use crate::openai::{
    chat_answer, error, next_id, now, respond, scenario, scenario_error, scripted_failure,
    stream_chunks,
};
use crate::stats::Stats;

pub(crate) async fn responses(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.record("/v1/responses", &headers, &body);
    let bad = |message: String| {
        error(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            None,
        )
    };
    let req: ResponsesRequest = match decode_json(&body) {
        Ok(r) => r,
        Err(e) => return bad(e.message),
    };
    let mut chat = match to_canonical(&req, Vec::new()) {
        Ok(c) => c,
        Err(e) => return bad(e.message),
    };
    // A Responses stream always ends with its usage.
    chat.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        extra: Map::new(),
    });
    let s = match scenario(&chat.model, &headers, &stats) {
        Ok(s) => s,
        Err(e) => return scenario_error(e),
    };
    let echo = Echo::of(&req, next_id("resp"), now());
    respond(
        &chat,
        &s,
        stats,
        scripted_failure,
        || {
            let mut out = Vec::new();
            if s.malformed {
                out.push(Bytes::from_static(
                    b"event: response.created\ndata: {\"type\": \"response.created\", \n\n",
                ));
            }
            let mut t = StreamTranslator::new(echo.clone());
            let mut push = |events: Vec<(String, serde_json::Value)>| {
                for (kind, body) in events {
                    out.push(sse::encode(Some(&kind), &body.to_string()));
                }
            };
            for chunk in stream_chunks(&chat, &s) {
                push(t.push(chunk));
            }
            push(t.finish().0);
            out
        },
        "{\"id\": \"resp_mock\", \"output\": [",
        || from_canonical(&echo, &chat_answer(&chat, &s)),
    )
    .await
}
