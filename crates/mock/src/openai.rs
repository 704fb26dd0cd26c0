//! The OpenAI-compatible routes of the mock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde_json::{Map, json};
use switchyard_protocol::chat::{
    ChatChunk, ChatRequest, ChatResponse, Choice, Delta, FinishReason, Message, ResponseFormat,
    Role, ToolCall, ToolCallDelta, ToolCallFunction, ToolCallFunctionDelta, ToolChoice, Usage,
};
use switchyard_protocol::embeddings::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat,
    Vector,
};
use switchyard_protocol::error::ErrorBody;
use switchyard_protocol::models::{Model, ModelList};
use switchyard_protocol::{decode_json, sse};

use crate::scenario::{Scenario, ScenarioError};
use crate::stats::Stats;
use crate::{MODELS, schema, tokens};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id(prefix: &str) -> String {
    format!("{prefix}-mock-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Waits a scripted delay. Zero returns at once: a zero-length tokio sleep still waits for the
/// next timer tick (about a millisecond), which would dominate every benchmark.
pub(crate) async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn error(
    status: StatusCode,
    message: impl Into<String>,
    kind: &str,
    code: Option<&str>,
) -> Response {
    let body = ErrorBody::new(message, kind, None, code);
    json_response(status, &body)
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The scripted failure, if the scenario asks for one.
pub(crate) fn scripted_failure(s: &Scenario) -> Option<Response> {
    let code = s.fail?;
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, err_code) = match code {
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    };
    let mut resp = error(
        status,
        format!("mock: scripted failure {code}"),
        kind,
        err_code,
    );
    if let Some(after) = s.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    Some(resp)
}

/// The request's scenario, with its per-request directives (`flaky`, `chaos`) decided.
pub(crate) fn scenario(
    model: &str,
    headers: &HeaderMap,
    stats: &Stats,
) -> Result<Scenario, ScenarioError> {
    let header = headers.get("x-mock-scenario").and_then(|v| v.to_str().ok());
    let mut s = Scenario::parse(model, header)?;
    s.roll(|| stats.seen(model, header.unwrap_or_default()));
    Ok(s)
}

pub(crate) fn scenario_error(e: ScenarioError) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        e.0,
        "invalid_request_error",
        Some("model_not_found"),
    )
}

// === chat ===

/// What the mock decided to answer.
pub(crate) enum Reply {
    Text {
        text: String,
        finish: FinishReason,
        completion_tokens: u64,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

pub(crate) fn decide(req: &ChatRequest, s: &Scenario) -> Reply {
    let last = req.messages.last();
    let wants_tool = req.tools.as_ref().is_some_and(|t| !t.is_empty())
        && !matches!(req.tool_choice, Some(ToolChoice::None))
        && last.is_some_and(|m| m.role != Role::Tool);
    if wants_tool {
        let tools = req.tools.as_deref().unwrap_or_default();
        let named = match &req.tool_choice {
            Some(ToolChoice::Function(name)) => Some(name.as_str()),
            _ => None,
        };
        let function = tools
            .iter()
            .filter_map(|t| t.function.as_ref())
            .find(|f| named.is_none_or(|n| n == f.name));
        if let Some(f) = function {
            let args = f
                .parameters
                .as_ref()
                .map(schema::sample)
                .unwrap_or_else(|| json!({}));
            return Reply::ToolCall {
                id: next_id("call"),
                name: f.name.clone(),
                arguments: args.to_string(),
            };
        }
    }
    let base = if let Some(n) = s.words {
        (1..=n)
            .map(|i| format!("tok{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        match last {
            Some(m) if m.role == Role::Tool => format!("tool result received: {}", m.text()),
            _ => req
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(Message::text)
                .unwrap_or_default(),
        }
    };
    let mut text = match &req.response_format {
        Some(ResponseFormat::JsonObject) => json!({ "echo": base }).to_string(),
        Some(ResponseFormat::JsonSchema { json_schema }) => json_schema
            .schema
            .as_ref()
            .map(schema::sample)
            .unwrap_or_else(|| json!({}))
            .to_string(),
        _ => base,
    };
    let mut finish = FinishReason::Stop;
    if let Some(stop) = &req.stop
        && let Some(cut) = stop
            .sequences()
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s))
            .min()
    {
        text.truncate(cut);
    }
    let mut pieces = tokens::pieces(&text);
    if let Some(max) = req.max_output_tokens()
        && pieces.len() > max as usize
    {
        pieces.truncate(max as usize);
        finish = FinishReason::Length;
    }
    let completion_tokens = pieces.len() as u64;
    Reply::Text {
        text: pieces.concat(),
        finish,
        completion_tokens,
    }
}

pub(crate) fn prompt_tokens(req: &ChatRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| 3 + tokens::estimate_tokens(&m.text()))
        .sum::<u64>()
        + 3
}

/// A 200 whose JSON body breaks off after at most `n * 8` bytes: the connection drops.
pub(crate) fn truncated<T: serde::Serialize>(value: &T, n: usize) -> Response {
    let Ok(full) = serde_json::to_vec(value) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let cut = full.len().min(n.max(1) * 8).min(full.len() / 2);
    let head = Bytes::copy_from_slice(&full[..cut]);
    let parts = stream::iter([Some(head), None]).then(|part| async move {
        match part {
            Some(head) => Ok(head),
            None => {
                // Let what was written reach the client first, as when a connection drops.
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err(std::io::Error::other("mock: scripted truncation"))
            }
        }
    });
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    (StatusCode::OK, content_type, Body::from_stream(parts)).into_response()
}

pub(crate) async fn chat(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.record("/v1/chat/completions", &headers, &body);
    let req: ChatRequest = match decode_json(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                e.message,
                "invalid_request_error",
                None,
            );
        }
    };
    let s = match scenario(&req.model, &headers, &stats) {
        Ok(s) => s,
        Err(e) => return scenario_error(e),
    };
    respond(
        &req,
        &s,
        stats,
        scripted_failure,
        || stream_events(&req, &s),
        "{\"id\": \"chatcmpl-mock\", \"choices\": [",
        || chat_answer(&req, &s),
    )
    .await
}

pub(crate) fn chat_answer(req: &ChatRequest, s: &Scenario) -> ChatResponse {
    let prompt = prompt_tokens(req);
    let (message, finish, completion) = match decide(req, s) {
        Reply::Text {
            text,
            finish,
            completion_tokens,
        } => (
            Message::new(Role::Assistant, text),
            finish,
            completion_tokens,
        ),
        Reply::ToolCall {
            id,
            name,
            arguments,
        } => {
            let completion = tokens::estimate_tokens(&arguments) + 5;
            let mut m = Message::new(Role::Assistant, "");
            m.content = None;
            m.tool_calls = Some(vec![ToolCall {
                id,
                kind: "function".to_owned(),
                function: ToolCallFunction { name, arguments },
                extra: Map::new(),
            }]);
            (m, FinishReason::ToolCalls, completion)
        }
    };
    ChatResponse {
        id: next_id("chatcmpl"),
        object: "chat.completion".to_owned(),
        created: now(),
        model: req.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: Some(Usage::new(prompt, completion)),
        system_fingerprint: Some("fp_mock".to_owned()),
        extra: Map::new(),
        wire: Default::default(),
    }
}

/// The scripted behaviours every wire format shares, in order. Streams: a scripted failure is
/// an error status after the delay, otherwise the events with their delays and truncation.
/// Plain answers: the delay, then a failure, a malformed body, or the answer (cut short if the
/// scenario truncates). Each format supplies its failure shape, events, broken body and answer.
pub(crate) async fn respond<T: serde::Serialize>(
    req: &ChatRequest,
    s: &Scenario,
    stats: Arc<Stats>,
    failure: impl Fn(&Scenario) -> Option<Response>,
    events: impl FnOnce() -> Vec<Bytes>,
    malformed: &'static str,
    answer: impl FnOnce() -> T,
) -> Response {
    if req.is_stream() {
        if let Some(resp) = failure(s) {
            pause(s.delay).await;
            return resp;
        }
        return stream_response(events(), s, stats);
    }
    pause(s.delay).await;
    if let Some(resp) = failure(s) {
        return resp;
    }
    if s.malformed {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            malformed,
        )
            .into_response();
    }
    let value = answer();
    if let Some(n) = s.truncate_after {
        return truncated(&value, n);
    }
    json_response(StatusCode::OK, &value)
}

fn chunk(
    id: &str,
    model: &str,
    created: i64,
    delta: Delta,
    finish: Option<FinishReason>,
) -> ChatChunk {
    let mut c = ChatChunk::new(id, model, created, delta, finish);
    c.system_fingerprint = Some("fp_mock".to_owned());
    c
}

fn encode(chunk: &ChatChunk) -> Bytes {
    match serde_json::to_vec(chunk) {
        Ok(v) => sse::encode_json_line(&v),
        Err(_) => Bytes::new(),
    }
}

/// The events of a streamed answer, ready to write.
fn stream_events(req: &ChatRequest, s: &Scenario) -> Vec<Bytes> {
    let mut events = Vec::new();
    if s.malformed {
        events.push(Bytes::from_static(
            b"data: {\"id\": \"chatcmpl-mock\", \"choices\": [\n\n",
        ));
    }
    events.extend(stream_chunks(req, s).iter().map(encode));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// The chunks of a streamed answer (other wire formats translate them).
pub(crate) fn stream_chunks(req: &ChatRequest, s: &Scenario) -> Vec<ChatChunk> {
    let id = next_id("chatcmpl");
    let created = now();
    let model = req.model.as_str();
    let mut events = Vec::new();
    let first = Delta {
        role: Some(Role::Assistant),
        content: Some(String::new()),
        ..Delta::default()
    };
    events.push(chunk(&id, model, created, first, None));
    let (finish, completion) = match decide(req, s) {
        Reply::Text {
            text,
            finish,
            completion_tokens,
        } => {
            for piece in tokens::pieces(&text) {
                let d = Delta {
                    content: Some(piece.to_owned()),
                    ..Delta::default()
                };
                events.push(chunk(&id, model, created, d, None));
            }
            (finish, completion_tokens)
        }
        Reply::ToolCall {
            id: call_id,
            name,
            arguments,
        } => {
            let head = ToolCallDelta {
                extra: Map::new(),
                index: 0,
                id: Some(call_id),
                kind: Some("function".to_owned()),
                function: Some(ToolCallFunctionDelta {
                    name: Some(name),
                    arguments: Some(String::new()),
                }),
            };
            let d = Delta {
                tool_calls: Some(vec![head]),
                ..Delta::default()
            };
            events.push(chunk(&id, model, created, d, None));
            let chars: Vec<char> = arguments.chars().collect();
            for part in chars.chunks(8) {
                let tail = ToolCallDelta {
                    extra: Map::new(),
                    index: 0,
                    id: None,
                    kind: None,
                    function: Some(ToolCallFunctionDelta {
                        name: None,
                        arguments: Some(part.iter().collect()),
                    }),
                };
                let d = Delta {
                    tool_calls: Some(vec![tail]),
                    ..Delta::default()
                };
                events.push(chunk(&id, model, created, d, None));
            }
            (
                FinishReason::ToolCalls,
                tokens::estimate_tokens(&arguments) + 5,
            )
        }
    };
    events.push(chunk(&id, model, created, Delta::default(), Some(finish)));
    if req.wants_stream_usage() {
        let mut last = chunk(&id, model, created, Delta::default(), None);
        last.choices.clear();
        last.usage = Some(Usage::new(prompt_tokens(req), completion));
        events.push(last);
    }
    events
}

/// Counts a stream as cancelled if it is dropped before its last event was handed over.
struct StreamGuard {
    stats: Arc<Stats>,
    done: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.stats.streams_completed
        } else {
            &self.stats.streams_cancelled
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct StreamState {
    events: std::vec::IntoIter<Bytes>,
    sent: usize,
    delay: Duration,
    inter_token: Duration,
    truncate_after: Option<usize>,
    guard: StreamGuard,
}

/// Streams prebuilt events with the scenario's delays and truncation.
pub(crate) fn stream_response(events: Vec<Bytes>, s: &Scenario, stats: Arc<Stats>) -> Response {
    stats.streams_started.fetch_add(1, Ordering::Relaxed);
    let state = StreamState {
        events: events.into_iter(),
        sent: 0,
        delay: s.delay,
        inter_token: s.inter_token,
        truncate_after: s.truncate_after,
        guard: StreamGuard { stats, done: false },
    };
    let body = stream::unfold(state, |mut st| async move {
        if st.truncate_after == Some(st.sent) {
            // End the stream after this error, whatever is left.
            st.truncate_after = None;
            st.events = Vec::new().into_iter();
            // Let what was written reach the client first, as when a connection drops.
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Some((Err(std::io::Error::other("mock: scripted truncation")), st));
        }
        let wait = if st.sent == 0 {
            st.delay
        } else {
            st.inter_token
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match st.events.next() {
            Some(ev) => {
                st.sent += 1;
                if st.events.len() == 0 {
                    st.guard.done = true;
                }
                Some((Ok::<_, std::io::Error>(ev), st))
            }
            None => None,
        }
    });
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

// === embeddings ===

/// A deterministic unit vector for a text, from its words ("feature hashing"): each word
/// (lower-cased, letters and digits) adds a pseudo-random vector of its own, so the same text
/// always gives the same vector, texts with the same words in another order or case give the
/// same one too, texts sharing some words are similar in proportion (cosine ≈ shared words ÷
/// √(words₁·words₂) at enough dimensions), and unrelated texts are near orthogonal. That is
/// enough to test a semantic cache; a text without words hashes whole.
pub(crate) fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    let mut words = 0;
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add_word(&mut v, &word.to_lowercase());
        words += 1;
    }
    if words == 0 {
        add_word(&mut v, text);
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Adds the word's pseudo-random vector: FNV-1a of the word seeds an xorshift generator.
fn add_word(v: &mut [f32], word: &str) {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in word.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    for x in v.iter_mut() {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        *x += ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    }
}

pub(crate) async fn embeddings(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.record("/v1/embeddings", &headers, &body);
    let req: EmbeddingRequest = match decode_json(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                e.message,
                "invalid_request_error",
                None,
            );
        }
    };
    let s = match scenario(&req.model, &headers, &stats) {
        Ok(s) => s,
        Err(e) => return scenario_error(e),
    };
    pause(s.delay).await;
    if let Some(resp) = scripted_failure(&s) {
        return resp;
    }
    let dims = req.dimensions.unwrap_or(8).clamp(1, 4096) as usize;
    let texts: Vec<String> = match &req.input {
        EmbeddingInput::Text(t) => vec![t.clone()],
        EmbeddingInput::Texts(v) => v.clone(),
        EmbeddingInput::Tokens(t) => vec![format!("{t:?}")],
        EmbeddingInput::TokenBatches(b) => b.iter().map(|t| format!("{t:?}")).collect(),
    };
    let base64 = req.encoding_format == Some(EncodingFormat::Base64);
    let data = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Float(v.iter().map(|&x| f64::from(x)).collect())
            };
            Embedding {
                object: "embedding".to_owned(),
                index: i as u32,
                embedding,
            }
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| tokens::estimate_tokens(t)).sum();
    let resp = EmbeddingResponse {
        object: "list".to_owned(),
        data,
        model: req.model,
        usage: Some(EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }),
        extra: Map::new(),
    };
    json_response(StatusCode::OK, &resp)
}

pub(crate) async fn models() -> Response {
    let list = ModelList::new(
        MODELS
            .iter()
            .map(|m| Model::new(*m, "switchyard-mock"))
            .collect(),
    );
    json_response(StatusCode::OK, &list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use switchyard_protocol::chat::Content;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn echo_max_tokens_and_stop() {
        let r = req(
            json!({"model":"echo","messages":[{"role":"user","content":"one two three four"}],"max_tokens":2}),
        );
        let Reply::Text {
            text,
            finish,
            completion_tokens,
        } = decide(&r, &Scenario::default())
        else {
            panic!()
        };
        assert_eq!(
            (text.as_str(), finish, completion_tokens),
            ("one two ", FinishReason::Length, 2)
        );
        let r = req(
            json!({"model":"echo","messages":[{"role":"user","content":"one two END three"}],"stop":"END"}),
        );
        let Reply::Text { text, .. } = decide(&r, &Scenario::default()) else {
            panic!()
        };
        assert_eq!(text, "one two ");
    }

    #[test]
    fn tool_calls_follow_the_schema_and_stop_after_results() {
        let tools = json!([{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]);
        let r =
            req(json!({"model":"echo","messages":[{"role":"user","content":"hi"}],"tools":tools}));
        let Reply::ToolCall {
            name, arguments, ..
        } = decide(&r, &Scenario::default())
        else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), arguments.as_str()),
            ("weather", r#"{"city":"mock"}"#)
        );
        let r = req(json!({"model":"echo","tools":tools,"messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"}]}));
        let Reply::Text { text, .. } = decide(&r, &Scenario::default()) else {
            panic!()
        };
        assert_eq!(text, "tool result received: sunny");
    }

    #[test]
    fn stream_events_end_with_usage_and_done() {
        let r = req(
            json!({"model":"stream-3","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}),
        );
        let s = Scenario::parse("stream-3", None).unwrap();
        let events = stream_events(&r, &s);
        // role, 3 words, finish, usage, [DONE]
        assert_eq!(events.len(), 7);
        assert_eq!(&events[6][..], b"data: [DONE]\n\n");
        let usage: Value = serde_json::from_slice(&events[5][6..]).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        assert!(matches!(r.messages[0].content, Some(Content::Text(_))));
    }

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = vector("hello", 16);
        assert_eq!(a, vector("hello", 16));
        assert_ne!(a, vector("world", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn vectors_are_as_similar_as_their_words() {
        let cos = |a: &str, b: &str| -> f32 {
            let (x, y) = (vector(a, 512), vector(b, 512));
            x.iter().zip(&y).map(|(p, q)| p * q).sum()
        };
        assert!(
            cos(
                "What is the capital of France?",
                "what is the capital of france"
            ) > 0.999
        );
        let some = cos(
            "what is the capital of france",
            "tell me the capital of france please",
        );
        assert!((0.45..0.8).contains(&some), "{some}");
        assert!(
            cos(
                "what is the capital of france",
                "bake sourdough bread tonight"
            )
            .abs()
                < 0.25
        );
    }
}
