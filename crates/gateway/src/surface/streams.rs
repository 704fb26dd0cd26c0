//! `GET /v1/streams/{id}`: the rest of a resumable stream (see [`crate::streams`]).
//!
//! The id is the stream call's `x-switchyard-request-id`. Events after `Last-Event-ID` (the
//! header EventSource clients send when they reconnect) or `?after=N` come back in the
//! protocol the stream was started in, then the stream follows live until its end. A stream is
//! readable only with the virtual key that started it; an unknown, expired or foreign stream
//! is a 404.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::GatewayError;
use crate::routing::Attempts;
use crate::streams::Missing;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    after: Option<String>,
}

pub async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    match read(&state, &id, query, &headers).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn read(
    state: &AppState,
    id: &str,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let key = crate::auth::authenticate(state.auth, state.loopback, &state.keys, headers)?;
    let Query(q) = query.map_err(|e| GatewayError::bad_request(e.body_text(), Some("after")))?;
    let not_found = || GatewayError::NotFound {
        message: format!(
            "no resumable stream `{id}`: it was not buffered (send x-switchyard-resumable: true, or set [streams] resumable), it expired, or it belongs to another key"
        ),
    };
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let after = match q.after.as_deref().or(header) {
        None | Some("") => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            GatewayError::bad_request(
                format!("`{v}` is not an event number; give the id of the last event received (Last-Event-ID or ?after=N), or 0 for all"),
                Some("after"),
            )
        })?,
    };
    let events = state
        .streams
        .read(uuid, after, key.as_ref().map(|k| k.id.as_str()))
        .await
        .map_err(|Missing::NotFound| not_found())?;
    let mut resp = super::sse_body(&Attempts::default(), Body::from_stream(events), true);
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-switchyard-stream-id", v);
    }
    Ok(resp)
}
