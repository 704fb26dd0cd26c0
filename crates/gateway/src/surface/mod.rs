//! API surfaces: decoding callers' requests into canonical ones and encoding answers back in the
//! caller's protocol. (Handlers await the pipeline through `Box::pin`: its future holds a
//! provider call and is several kilobytes, which would otherwise be moved by value on every
//! poll of the handler's own state machine; callgrind showed it as the top `memcpy` caller.) `openai` serves OpenAI's chat-completions API, `anthropic` Anthropic's
//! Messages API; both run the same pipeline. This module holds what they share: reading the
//! body, the `x-switchyard-*` headers of a served answer, and writing an event stream.

pub mod anthropic;
pub mod openai;
pub mod responses;
pub mod streams;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt, stream};
use http_body_util::BodyExt;
use serde::Serialize;
use switchyard_protocol::chat::ChatChunk;
use switchyard_protocol::decode_json;
use switchyard_providers::{ChatStream, ProviderError};

use crate::app::AppState;
use crate::error::GatewayError;
use crate::keys::VirtualKey;
use crate::logs::{CallLog, Tokens};
use crate::routing::{Attempts, CallOptions};

/// A request body read within the configured limit (413 beyond it).
pub struct RawBody(pub Bytes);

impl RawBody {
    /// Reads `body` whole; more than `limit` bytes is a 413.
    pub async fn read(body: Body, limit: usize) -> Result<Self, GatewayError> {
        match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Self(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(GatewayError::PayloadTooLarge { limit })
            }
            Err(e) => Err(GatewayError::bad_request(
                format!("failed to read the request body: {e}"),
                None,
            )),
        }
    }
}

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Self::read(req.into_body(), state.max_body_bytes).await
    }
}

/// Decodes a JSON body; a wrong field is a 400 naming it.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    decode_json(body).map_err(|e| {
        let param = (!e.path.is_empty()).then_some(e.path);
        GatewayError::BadRequest {
            message: e.message,
            param,
        }
    })
}

/// The auth stage, first on every call: the caller's key, or a 401.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<VirtualKey>>, GatewayError> {
    crate::auth::authenticate(state.auth, state.loopback, &state.keys, headers)
}

/// The start of an OpenAI-shaped call: the caller's key, the decoded body (kept for the log) and
/// the call options (`metadata` picks the body's metadata object, if any).
fn admit<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<RawBody, GatewayError>,
    log: &mut CallLog,
    metadata: impl Fn(&T) -> Option<&serde_json::Value>,
) -> Result<(T, CallOptions), GatewayError> {
    log.traced(state, headers);
    let key = authenticate(state, headers)?;
    let RawBody(bytes) = body?;
    log.body(&bytes);
    let req: T = decode(&bytes)?;
    let options = options(headers, metadata(&req), key)?;
    Ok((req, options))
}

/// The call options from the headers, with the body's `metadata` object and the caller's key.
fn options(
    headers: &HeaderMap,
    body_metadata: Option<&serde_json::Value>,
    key: Option<Arc<VirtualKey>>,
) -> Result<CallOptions, GatewayError> {
    Ok(CallOptions::from_headers(headers)?
        .with_body_metadata(body_metadata)
        .with_key(key))
}

// Parsed once: inserting by `&str` parses (and checks) the name on every call.
const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
const HEDGED: HeaderName = HeaderName::from_static("x-switchyard-hedged");
const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
const CACHE_AGE: HeaderName = HeaderName::from_static("x-switchyard-cache-age");
const CACHE_SIMILARITY: HeaderName = HeaderName::from_static("x-switchyard-cache-similarity");

/// Adds the headers every answer carries once a call was attempted: the target that answered
/// (or was tried last), how many attempts were made, the route, and whether a hedge ran.
fn served(headers: &mut HeaderMap, attempts: &Attempts) {
    if let Some(target) = &attempts.target {
        if let Ok(v) = HeaderValue::from_str(target.provider_name()) {
            headers.insert(PROVIDER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&target.model) {
            headers.insert(MODEL, v);
        }
    }
    if attempts.count > 0 {
        headers.insert(ATTEMPTS, HeaderValue::from(attempts.count));
    }
    if let Some(route) = &attempts.route
        && let Ok(v) = HeaderValue::from_str(route)
    {
        headers.insert(ROUTE, v);
    }
    if attempts.hedged {
        headers.insert(HEDGED, HeaderValue::from_static("true"));
    }
    if let Some(c) = &attempts.cache {
        headers.insert(CACHE, HeaderValue::from_static(c.status.header()));
        if let Some(age) = c.age {
            headers.insert(CACHE_AGE, HeaderValue::from(age.as_secs()));
        }
        if let Some(similarity) = c.similarity
            && let Ok(v) = HeaderValue::from_str(&format!("{similarity:.4}"))
        {
            headers.insert(CACHE_SIMILARITY, v);
        }
    }
    crate::limits::headers(headers, &attempts.rate);
}

/// Ends a call with an error: records it, then answers in the caller's shape (`anthropic` picks
/// Anthropic's).
fn fail(
    state: &AppState,
    mut log: CallLog,
    attempts: &Attempts,
    err: GatewayError,
    anthropic: bool,
) -> Response {
    log.attempts(state, attempts);
    if log.records_bodies() {
        log.response(serde_json::to_value(err.openai_body()).unwrap_or_default());
    }
    // An answer the firewall stopped was still paid for.
    let tokens = match &err {
        GatewayError::Blocked { tokens, .. } => *tokens,
        _ => None,
    };
    log.finish(state, err.status().as_u16(), Some(err.kind()), tokens);
    failure(attempts, err, anthropic)
}

/// Ends a call with a whole answer: records it with its tokens (and, if the log keeps bodies,
/// the answer `body` gives).
fn done<T: Serialize>(
    state: &AppState,
    mut log: CallLog,
    attempts: &Attempts,
    tokens: Option<Tokens>,
    body: &T,
) {
    log.attempts(state, attempts);
    if log.records_bodies() {
        log.response(serde_json::to_value(body).unwrap_or_default());
    }
    log.finish(state, 200, None, tokens);
}

/// What a streamed answer's record collects as the stream passes; it finishes the record when
/// dropped: with the usage the stream carried, the class of a failure mid-stream, or
/// `cancelled` if the caller went away first.
struct Logged {
    log: Option<CallLog>,
    state: Arc<AppState>,
    tokens: Option<Tokens>,
    error: Option<&'static str>,
    ended: bool,
    /// The answer's text, when the log keeps bodies.
    text: Option<String>,
}

impl Logged {
    fn see(&mut self, item: Option<&Result<ChatChunk, ProviderError>>) {
        match item {
            Some(Ok(chunk)) => {
                if let Some(u) = &chunk.usage {
                    self.tokens = Some(Tokens::of(u));
                }
                if let Some(text) = &mut self.text {
                    for c in &chunk.choices {
                        text.push_str(c.delta.content.as_deref().unwrap_or_default());
                    }
                }
            }
            Some(Err(e)) => self.error = Some(e.class().as_str()),
            None => self.ended = true,
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(mut log) = self.log.take() {
            let class = self.error.or((!self.ended).then_some("cancelled"));
            if let Some(text) = self.text.take() {
                log.response(serde_json::json!({ "content": text }));
            }
            log.finish(&self.state, 200, class, self.tokens);
        }
    }
}

/// The stream of a call that is being recorded; the first byte is ready now.
fn logged(
    state: &Arc<AppState>,
    mut log: CallLog,
    attempts: &Attempts,
    stream: ChatStream,
) -> ChatStream {
    log.attempts(state, attempts);
    log.first_byte();
    let mut logged = Logged {
        text: log.records_bodies().then(String::new),
        log: Some(log),
        state: state.clone(),
        tokens: None,
        error: None,
        ended: false,
    };
    crate::pipeline::tap(stream, move |item| logged.see(item))
}

/// The error answer of a call that was planned: the caller-shaped body (`anthropic` picks
/// Anthropic's), the `x-switchyard-*` headers, and `x-should-retry: false` when the gateway has
/// already retried (or every circuit is open): the official OpenAI and Anthropic SDKs obey it,
/// so their own retries do not multiply the gateway's.
fn failure(attempts: &Attempts, err: GatewayError, anthropic: bool) -> Response {
    let settled = attempts.count > 1
        || matches!(
            err,
            GatewayError::Unavailable { .. } | GatewayError::QuotaExceeded { .. }
        );
    let mut resp = if anthropic {
        err.into_anthropic_response()
    } else {
        err.into_response()
    };
    served(resp.headers_mut(), attempts);
    if settled {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    resp
}

fn json<T: Serialize>(attempts: &Attempts, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_body(attempts, bytes.into()),
        Err(e) => GatewayError::Internal {
            message: format!("encoding the answer: {e}"),
        }
        .into_response(),
    }
}

/// A 200 with a JSON body already encoded.
fn json_body(attempts: &Attempts, body: Bytes) -> Response {
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let mut resp = (StatusCode::OK, content_type, body).into_response();
    served(resp.headers_mut(), attempts);
    resp
}

/// What the upstream stream delivers to a surface's encoder.
#[allow(clippy::large_enum_variant)] // made and consumed at once, never stored
pub enum Item {
    Chunk(ChatChunk),
    /// The upstream failed after the first byte; the stream ends after this.
    Failed(ProviderError),
    /// The upstream finished.
    End,
}

/// A stream to buffer so that it can be resumed: the buffers, the call's request id and the key
/// that may read it.
pub(crate) struct Resume {
    streams: Arc<crate::streams::Streams>,
    id: uuid::Uuid,
    owner: Option<String>,
}

/// Whether the call's stream is buffered (`x-switchyard-resumable`, else `[streams]`).
pub(crate) fn resume(state: &AppState, id: uuid::Uuid, options: &CallOptions) -> Option<Resume> {
    state.streams.wanted(options.resumable).then(|| Resume {
        streams: state.streams.clone(),
        id,
        owner: options.key.as_ref().map(|k| k.id.clone()),
    })
}

/// Writes a chunk stream as server-sent events. `encode` appends the caller-shaped bytes for
/// each item to the frame being built and returns `false` to end the stream.
///
/// Each chunk is written as soon as it arrives; chunks already decoded when one is written go out
/// in the same frame (one write instead of one per event), and nothing waits for more. Dropping
/// the body (the client went away) drops the upstream stream, which closes the upstream
/// connection and so cancels the call.
///
/// A resumable stream (`resume`) is produced by a task of its own into its buffer
/// ([`crate::streams`]), and the body reads the buffer: the caller going away leaves the task
/// running (unless `[streams] detach = false`), and any reader can resume it.
fn sse_response<E>(
    attempts: &Attempts,
    resume: Option<Resume>,
    upstream: ChatStream,
    encode: E,
) -> Response
where
    E: FnMut(Item, &mut BytesMut) -> bool + Send + 'static,
{
    let Some(resume) = resume else {
        return sse_body(attempts, Body::from_stream(direct(upstream, encode)), false);
    };
    let mut writer = resume.streams.open(resume.id, resume.owner);
    let reader = resume.streams.first_reader(&writer);
    let detach = resume.streams.detach();
    let (attached, mut gone) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut upstream, mut encode) = (upstream, encode);
        loop {
            let next = if detach {
                upstream.next().await
            } else {
                tokio::select! {
                    next = upstream.next() => next,
                    _ = &mut gone => break,
                }
            };
            let mut frame = BytesMut::new();
            let more = encode_item(next, &mut encode, &mut frame);
            writer.push(&frame);
            if !more {
                break;
            }
        }
        // The call's record and meter settle as the upstream goes; then the stream ends (a
        // shutdown waits for that).
        drop(upstream);
        drop(writer);
    });
    // The body holds `attached`: dropping it (the caller went away) tells the task.
    let body = reader.map(move |frame| {
        let _ = &attached;
        frame
    });
    sse_body(attempts, Body::from_stream(body), true)
}

/// Encodes what the upstream delivered; `false` when the stream ends with it.
fn encode_item<E>(
    next: Option<Result<ChatChunk, ProviderError>>,
    encode: &mut E,
    frame: &mut BytesMut,
) -> bool
where
    E: FnMut(Item, &mut BytesMut) -> bool,
{
    match next {
        Some(Ok(chunk)) => encode(Item::Chunk(chunk), frame),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "upstream stream failed after the first byte");
            encode(Item::Failed(e), frame);
            false
        }
        None => {
            encode(Item::End, frame);
            false
        }
    }
}

/// The frames of an unbuffered stream, read as the body is polled.
fn direct<E>(
    upstream: ChatStream,
    encode: E,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send
where
    E: FnMut(Item, &mut BytesMut) -> bool + Send + 'static,
{
    stream::unfold(Some((upstream, encode)), |state| async move {
        let (mut upstream, mut encode) = state?;
        let mut frame = BytesMut::new();
        let mut next = upstream.next().await;
        loop {
            let more = encode_item(next, &mut encode, &mut frame);
            if !more {
                return Some((Ok::<Bytes, std::convert::Infallible>(frame.freeze()), None));
            }
            next = match upstream.next().now_or_never() {
                Some(n) => n,
                None if frame.is_empty() => upstream.next().await,
                None => return Some((Ok(frame.freeze()), Some((upstream, encode)))),
            };
        }
    })
}

/// An event-stream response with the `x-switchyard-*` headers (and `x-switchyard-resumable`).
pub(crate) fn sse_body(attempts: &Attempts, body: Body, resumable: bool) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ];
    let mut resp = (StatusCode::OK, headers, body).into_response();
    served(resp.headers_mut(), attempts);
    if resumable {
        resp.headers_mut()
            .insert("x-switchyard-resumable", HeaderValue::from_static("true"));
    }
    resp
}
