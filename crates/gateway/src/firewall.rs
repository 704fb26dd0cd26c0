//! The firewall stage: the call's policy (its key's, else its route's, else `[firewall]
//! policy`), the request screened before it is planned further (stage 3a: blocked with a 403 in
//! the caller's shape, or redacted with typed placeholders), and the answer screened on its way
//! back: whole, or as a tap on the stream that holds back only a possible finding in progress
//! (see `switchyard_firewall::screen`). Verdicts go to the call's record and to the metrics.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::Stream;
use switchyard_firewall::{
    Action, Actions, Blocked, Classifier, Detector, Finding, Placeholders, Policy, Scanner, Stage,
    StreamScreen, Verdicts, screen_text,
};
use switchyard_protocol::chat::{
    ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Content, Delta, Part, Role, ToolCallDelta,
    ToolCallFunctionDelta,
};
use switchyard_protocol::embeddings::{EmbeddingInput, EmbeddingRequest};
use switchyard_providers::{ChatStream, ProviderError};

use crate::app::AppState;
use crate::config::firewall::{FirewallConfig, OFF};
use crate::error::GatewayError;
use crate::logs::Tokens;
use crate::pipeline::Failure;
use crate::routing::{Attempts, CallOptions, Plan};

/// One call's screening: its policy, what was found, and the request's placeholders.
pub struct Screening {
    pub policy: Arc<Policy>,
    scanner: Arc<Scanner>,
    hold_max: usize,
    verdicts: Mutex<Verdicts>,
    placeholders: Mutex<Placeholders>,
    /// `[firewall] classifier = true`: the injection classifier, of the same configuration.
    classifier: Option<Arc<Classifier>>,
}

impl fmt::Debug for Screening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Screening")
            .field("policy", &self.policy.name)
            .finish_non_exhaustive()
    }
}

impl Screening {
    /// What was found and done so far.
    pub fn verdicts(&self) -> Verdicts {
        self.verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stream_screen(&self) -> StreamScreen {
        let placeholders = self
            .placeholders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        StreamScreen::new(
            self.scanner.clone(),
            self.policy.output,
            placeholders,
            self.policy.restore,
            self.hold_max,
        )
    }

    /// `text` with what the request policy redacts redacted (the same placeholders), for what
    /// the request log keeps; `None` when nothing changes.
    pub fn scrub(&self, text: &str) -> Option<String> {
        let mut redact_only = Actions::default();
        for d in Detector::ALL {
            if self.policy.input.get(d) == Action::Redact {
                redact_only.set(d, Action::Redact);
            }
        }
        if !redact_only.any() {
            return None;
        }
        let mut placeholders = self
            .placeholders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        screen_text(
            &self.scanner,
            text,
            &redact_only,
            Stage::Input,
            false,
            &mut placeholders,
            &mut Verdicts::default(),
        )
        .ok()
        .flatten()
    }

    fn with_verdicts<T>(&self, f: impl FnOnce(&mut Verdicts) -> T) -> T {
        f(&mut self.verdicts.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The call's policy: its key's, else its route's, else the default. `None`: not screened.
fn policy(
    config: &FirewallConfig,
    options: &CallOptions,
    plan: &Plan,
) -> Result<Option<Arc<Policy>>, GatewayError> {
    let named = options
        .key
        .as_ref()
        .and_then(|k| k.policy.firewall.as_deref())
        .or(plan.route.firewall.as_deref())
        .or(config.default.as_deref());
    match named {
        None | Some(OFF) => Ok(None),
        Some(name) => config.policies.get(name).cloned().map(Some).ok_or_else(|| {
            // Fail closed: a key that names a policy the configuration lost is not let through
            // unscreened.
            GatewayError::Internal {
                message: format!(
                    "firewall policy `{name}` is not defined; add [firewall.policies.{name}] to the configuration or change the key's `firewall`"
                ),
            }
        }),
    }
}

fn blocked(b: &Blocked, tokens: Option<Tokens>) -> GatewayError {
    GatewayError::Blocked {
        message: b.message(),
        tokens,
    }
}

/// Stage 3a: screens the request's text (every turn for secrets, personal data and custom
/// terms; user turns and tool results for injection), redacting it in place. A block is a
/// failure that carries the screening, so its verdicts are logged. (The failure is the
/// pipeline's, moved once.)
///
/// Then, with `[firewall] classifier = true`, the injection classifier reads the call's new
/// input ([`classify`]).
pub async fn screen_request(
    state: &AppState,
    options: &CallOptions,
    plan: &Plan,
    req: &mut ChatRequest,
) -> Result<Option<Arc<Screening>>, Failure> {
    let screening = screen_with(
        state,
        options,
        plan,
        |scanner, policy, placeholders, verdicts| {
            screen_messages(scanner, policy, req, placeholders, verdicts)
        },
    )?;
    if let Some(s) = &screening {
        classify(state, s, plan, req).await?;
    }
    Ok(screening)
}

/// The injection classifier's reading of what is new in the request: the user turns and tool
/// results after the last assistant turn (earlier turns were read when they were new), as the
/// text the provider will see. One embedding call for all of them, by the local model. A text
/// scored at or above the threshold is an `injection` finding of kind `classifier`, acted on
/// as the policy says for injection. If the texts cannot be embedded (the model is not
/// installed, or busy) the call goes on with the rules' verdict alone, and a warning says so.
async fn classify(
    state: &AppState,
    screening: &Arc<Screening>,
    plan: &Plan,
    req: &ChatRequest,
) -> Result<(), Failure> {
    let action = match screening.policy.input.get(Detector::Injection) {
        Action::Off => return Ok(()),
        Action::Redact => Action::Flag,
        a => a,
    };
    let Some(classifier) = &screening.classifier else {
        return Ok(());
    };
    let start = req
        .messages
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .map_or(0, |i| i + 1);
    let (indices, texts): (Vec<usize>, Vec<String>) = req.messages[start..]
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.role, Role::User | Role::Tool))
        .map(|(i, m)| (start + i, message_text(&m.content)))
        .filter(|(_, t)| !t.trim().is_empty())
        .unzip();
    if texts.is_empty() {
        return Ok(());
    }
    let vectors = match crate::embedding::embed(state, &classifier.model, None, texts).await {
        Ok(v) => v,
        Err(e) => {
            // Told at the first failure and at every power of two after, not on every call.
            static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(model = %classifier.model, error = %e, failures = n, "the injection classifier could not embed the request; screened by the rules alone (is the model installed? `switchyard models pull all-minilm-l6-v2`)");
            }
            return Ok(());
        }
    };
    for (i, v) in indices.into_iter().zip(vectors) {
        if !classifier.is_injection(&v) {
            continue;
        }
        let finding = Finding {
            detector: Detector::Injection,
            kind: "classifier",
            range: 0..0,
        };
        screening.with_verdicts(|verdicts| verdicts.add(Stage::Input, &finding, action));
        if action == Action::Block {
            let b = Blocked {
                stage: Stage::Input,
                detector: Detector::Injection,
                kind: "classifier",
                location: Some(format!("messages[{i}]")),
            };
            let attempts = Attempts {
                route: plan.route.name.clone(),
                firewall: Some(screening.clone()),
                ..Attempts::default()
            };
            return Err((attempts, blocked(&b, None)));
        }
    }
    Ok(())
}

/// A message's text: its string, or its text parts joined.
fn message_text(content: &Option<Content>) -> String {
    match content {
        Some(Content::Text(t)) => t.clone(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                Part::Other(v) if v["type"] == "text" => v["text"].as_str(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None => String::new(),
    }
}

/// Stage 3a for embeddings: the texts to embed, screened like request turns (injection aside:
/// a text to embed instructs nobody).
#[allow(clippy::result_large_err)]
pub fn screen_embeddings(
    state: &AppState,
    options: &CallOptions,
    plan: &Plan,
    req: &mut EmbeddingRequest,
) -> Result<Option<Arc<Screening>>, Failure> {
    screen_with(
        state,
        options,
        plan,
        |scanner, policy, placeholders, verdicts| {
            let texts: Vec<&mut String> = match &mut req.input {
                EmbeddingInput::Text(t) => vec![t],
                EmbeddingInput::Texts(v) => v.iter_mut().collect(),
                EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => Vec::new(),
            };
            for (i, t) in texts.into_iter().enumerate() {
                let screened = screen_text(
                    scanner,
                    t,
                    &policy.input,
                    Stage::Input,
                    false,
                    placeholders,
                    verdicts,
                )
                .map_err(|mut b| {
                    b.location = Some(format!("input[{i}]"));
                    b
                })?;
                if let Some(new) = screened {
                    *t = new;
                }
            }
            Ok(())
        },
    )
}

/// The call's screening under its policy, with `screen` applied to the request.
#[allow(clippy::result_large_err)]
fn screen_with(
    state: &AppState,
    options: &CallOptions,
    plan: &Plan,
    screen: impl FnOnce(&Scanner, &Policy, &mut Placeholders, &mut Verdicts) -> Result<(), Blocked>,
) -> Result<Option<Arc<Screening>>, Failure> {
    let config = state.firewall.load_full();
    let Some(config) = config.as_deref() else {
        return Ok(None);
    };
    let policy = policy(config, options, plan).map_err(|e| (Attempts::default(), e))?;
    let Some(policy) = policy else {
        return Ok(None);
    };
    let screening = Arc::new(Screening {
        policy: policy.clone(),
        scanner: config.scanner.clone(),
        hold_max: config.hold_max,
        verdicts: Mutex::default(),
        placeholders: Mutex::default(),
        classifier: config.classifier.clone(),
    });
    if policy.input.any() {
        let mut verdicts = Verdicts::default();
        let mut placeholders = Placeholders::default();
        let outcome = screen(&config.scanner, &policy, &mut placeholders, &mut verdicts);
        *screening
            .verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = verdicts;
        *screening
            .placeholders
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = placeholders;
        if let Err(b) = outcome {
            let attempts = Attempts {
                route: plan.route.name.clone(),
                firewall: Some(screening),
                ..Attempts::default()
            };
            return Err((attempts, blocked(&b, None)));
        }
    }
    Ok(Some(screening))
}

/// Puts the screening on a call's outcome (for its record), when it had one.
pub fn screened<T>(screening: Option<Arc<Screening>>, result: &mut Result<(Attempts, T), Failure>) {
    if let Some(s) = screening {
        let (Ok((attempts, _)) | Err((attempts, _))) = result;
        attempts.firewall = Some(s);
    }
}

fn screen_messages(
    scanner: &Scanner,
    policy: &Policy,
    req: &mut ChatRequest,
    placeholders: &mut Placeholders,
    verdicts: &mut Verdicts,
) -> Result<(), Blocked> {
    for (i, m) in req.messages.iter_mut().enumerate() {
        let injection = matches!(m.role, Role::User | Role::Tool);
        let mut screen = |text: &str| {
            screen_text(
                scanner,
                text,
                &policy.input,
                Stage::Input,
                injection,
                placeholders,
                verdicts,
            )
            .map_err(|mut b| {
                b.location = Some(format!("messages[{i}]"));
                b
            })
        };
        match &mut m.content {
            Some(Content::Text(t)) => {
                if let Some(new) = screen(t)? {
                    *t = new;
                }
            }
            Some(Content::Parts(parts)) => {
                for p in parts {
                    match p {
                        Part::Text { text } => {
                            if let Some(new) = screen(text)? {
                                *text = new;
                            }
                        }
                        Part::Other(v) if v["type"] == "text" => {
                            let new = match v["text"].as_str() {
                                Some(t) => screen(t)?,
                                None => None,
                            };
                            if let Some(new) = new {
                                v["text"] = new.into();
                            }
                        }
                        _ => {}
                    }
                }
            }
            None => {}
        }
        // Earlier tool calls' arguments (a secret the model once put there goes on with every
        // later turn).
        for tc in m.tool_calls.iter_mut().flatten() {
            if let Some(new) = screen(&tc.function.arguments)? {
                tc.function.arguments = new;
            }
        }
    }
    Ok(())
}

/// The whole answer, screened (and its request placeholders restored); the screening is put
/// on the call's outcome for the log.
#[allow(clippy::result_large_err)]
pub fn screen_answer(
    screening: Option<Arc<Screening>>,
    result: Result<(Attempts, ChatResponse), Failure>,
) -> Result<(Attempts, ChatResponse), Failure> {
    let Some(screening) = screening else {
        return result;
    };
    let (mut attempts, mut resp) = match result {
        Ok(ok) => ok,
        Err((mut attempts, e)) => {
            attempts.firewall = Some(screening);
            return Err((attempts, e));
        }
    };
    attempts.firewall = Some(screening.clone());
    let mut screen = screening.stream_screen();
    if !screen.is_active() {
        return Ok((attempts, resp));
    }
    let mut segment = 0u32;
    let mut changed = false;
    let outcome = screening.with_verdicts(|verdicts| {
        let mut run = |text: &mut String| -> Result<(), Blocked> {
            segment += 1;
            let screened = screen.whole(segment, text, verdicts)?;
            if screened != *text {
                changed = true;
                *text = screened;
            }
            Ok(())
        };
        for choice in &mut resp.choices {
            match &mut choice.message.content {
                Some(Content::Text(t)) => run(t)?,
                Some(Content::Parts(parts)) => {
                    for p in parts {
                        if let Part::Text { text } = p {
                            run(text)?;
                        }
                    }
                }
                None => {}
            }
            // A tool call can carry a secret out as well as text can.
            for tc in choice.message.tool_calls.iter_mut().flatten() {
                run(&mut tc.function.arguments)?;
            }
        }
        Ok(())
    });
    // An answer the screen left as it was still goes out as the upstream's bytes.
    if changed {
        resp.changed();
    }
    match outcome {
        Ok(()) => Ok((attempts, resp)),
        Err(b) => {
            let tokens = resp.usage.as_ref().map(Tokens::of);
            Err((attempts, blocked(&b, tokens)))
        }
    }
}

/// The streamed answer, screened as it passes; the screening is put on the call's outcome.
#[allow(clippy::result_large_err)]
pub fn screen_stream<S>(
    screening: Option<Arc<Screening>>,
    result: Result<(Attempts, ChatStream, S), Failure>,
) -> Result<(Attempts, ChatStream, S), Failure> {
    let Some(screening) = screening else {
        return result;
    };
    match result {
        Ok((mut attempts, stream, shape)) => {
            attempts.firewall = Some(screening.clone());
            let screen = screening.stream_screen();
            if !screen.is_active() {
                return Ok((attempts, stream, shape));
            }
            let screened = Screened {
                inner: Some(stream),
                screen,
                screening,
                queue: VecDeque::new(),
                template: None,
            };
            Ok((attempts, Box::pin(screened), shape))
        }
        Err((mut attempts, e)) => {
            attempts.firewall = Some(screening);
            Err((attempts, e))
        }
    }
}

/// Screen parts: a choice's content is its index; its tool calls' arguments are apart.
const TOOL: u32 = 1 << 31;

fn tool_part(choice: u32, tool: u32) -> u32 {
    TOOL | ((choice & 0x7FFF) << 16) | (tool & 0xFFFF)
}

/// (choice, tool call) of a screen part.
fn parted(part: u32) -> (u32, Option<u32>) {
    if part & TOOL == 0 {
        (part, None)
    } else {
        ((part & !TOOL) >> 16, Some(part & 0xFFFF))
    }
}

/// A stream tap that passes each content delta and tool-call arguments delta through the
/// screen. Text held back is released
/// in a chunk of its own before the choice's finishing chunk (or the stream's end); a block
/// ends the stream with an error item.
struct Screened {
    /// `None` once the stream is over (ended, failed or blocked).
    inner: Option<ChatStream>,
    screen: StreamScreen,
    screening: Arc<Screening>,
    queue: VecDeque<Result<ChatChunk, ProviderError>>,
    /// The last chunk's id, model and creation time, for the chunks the screen adds.
    template: Option<ChatChunk>,
}

impl Screened {
    fn stop(&mut self, b: &Blocked) {
        self.inner = None;
        self.queue.clear();
        self.queue.push_back(Err(ProviderError::Blocked {
            message: b.message(),
        }));
    }

    /// A chunk that carries only released text for `part`: a choice's content, or one of its
    /// tool calls' arguments.
    fn text_chunk(&self, part: u32, text: String) -> Option<ChatChunk> {
        let mut chunk = self.template.clone()?;
        chunk.usage = None;
        let (choice, tool) = parted(part);
        let delta = match tool {
            None => Delta {
                content: Some(text),
                ..Default::default()
            },
            Some(index) => Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: Some(ToolCallFunctionDelta {
                        name: None,
                        arguments: Some(text),
                    }),
                    extra: Default::default(),
                }]),
                ..Default::default()
            },
        };
        chunk.choices = vec![ChunkChoice {
            index: choice,
            delta,
            finish_reason: None,
            logprobs: None,
            extra: Default::default(),
        }];
        Some(chunk)
    }

    /// Releases what is still held of `choice` (every choice when `None`: the stream ended or
    /// failed), each part in a chunk of its own; `except` is released by the caller.
    fn release(&mut self, choice: Option<u32>, except: Option<u32>) -> Result<(), Blocked> {
        let parts = self.screen.pending();
        for part in parts {
            if choice.is_some_and(|c| parted(part).0 != c) || Some(part) == except {
                continue;
            }
            let text = self
                .screening
                .with_verdicts(|v| self.screen.finish(part, v))?;
            if !text.is_empty()
                && let Some(c) = self.text_chunk(part, text)
            {
                self.queue.push_back(Ok(c));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Blocked> {
        self.release(None, None)
    }

    fn take(&mut self, mut chunk: ChatChunk) -> Result<(), Blocked> {
        // What leaves the screen is the screen's text, never the upstream's bytes.
        chunk.changed();
        let mut template = chunk.clone();
        template.choices.clear();
        self.template = Some(template);
        for c in &mut chunk.choices {
            if let Some(delta) = c.delta.content.take() {
                let out = self
                    .screening
                    .with_verdicts(|v| self.screen.push(c.index, &delta, v))?;
                c.delta.content = Some(out);
            }
            for tc in c.delta.tool_calls.iter_mut().flatten() {
                let part = tool_part(c.index, tc.index);
                if let Some(f) = &mut tc.function
                    && let Some(args) = f.arguments.take()
                {
                    let out = self
                        .screening
                        .with_verdicts(|v| self.screen.push(part, &args, v))?;
                    f.arguments = Some(out);
                }
            }
            if c.finish_reason.is_some() {
                // What is still held goes before the finishing chunk: the content's rest in this
                // chunk when it carries released content, the rest in chunks of their own.
                let inline = c.delta.content.as_ref().is_some_and(|t| !t.is_empty());
                if inline {
                    let rest = self
                        .screening
                        .with_verdicts(|v| self.screen.finish(c.index, v))?;
                    if let Some(t) = &mut c.delta.content {
                        t.push_str(&rest);
                    }
                }
                self.release(Some(c.index), inline.then_some(c.index))?;
            }
        }
        self.queue.push_back(Ok(chunk));
        Ok(())
    }
}

impl Stream for Screened {
    type Item = Result<ChatChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            let Some(inner) = self.inner.as_mut() else {
                return Poll::Ready(None);
            };
            let item = std::task::ready!(inner.as_mut().poll_next(cx));
            let outcome = match item {
                Some(Ok(chunk)) => self.take(chunk),
                Some(Err(e)) => {
                    self.inner = None;
                    let flushed = self.flush();
                    self.queue.push_back(Err(e));
                    flushed
                }
                None => {
                    self.inner = None;
                    self.flush()
                }
            };
            if let Err(b) = outcome {
                self.stop(&b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use switchyard_firewall::{Action, Actions, Custom, Detector};

    const KEY: &str = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";

    fn screening(output: &[(Detector, Action)]) -> Arc<Screening> {
        let mut actions = Actions::default();
        for (d, a) in output {
            actions.set(*d, *a);
        }
        Arc::new(Screening {
            policy: Arc::new(Policy {
                name: "test".into(),
                input: Actions::default(),
                output: actions,
                restore: false,
            }),
            scanner: Arc::new(Scanner::new(&Custom::default()).unwrap()),
            hold_max: 4096,
            verdicts: Mutex::default(),
            placeholders: Mutex::default(),
            classifier: None,
        })
    }

    fn chunk(delta: serde_json::Value, finish: Option<&str>) -> ChatChunk {
        serde_json::from_value(serde_json::json!({
            "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        }))
        .unwrap()
    }

    async fn run(
        s: Arc<Screening>,
        chunks: Vec<ChatChunk>,
    ) -> Vec<Result<ChatChunk, ProviderError>> {
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let result: Result<(Attempts, ChatStream, ()), Failure> =
            Ok((Attempts::default(), stream, ()));
        let (_, screened, ()) = screen_stream(Some(s), result).unwrap();
        screened.collect().await
    }

    /// A secret split across a tool call's argument deltas is redacted; what is held comes out
    /// before the finishing chunk, as a tool-call delta.
    #[tokio::test]
    async fn tool_call_arguments_are_screened_as_they_stream() {
        let (a, b) = KEY.split_at(12);
        let out = run(
            screening(&[(Detector::Secrets, Action::Redact)]),
            vec![
                chunk(serde_json::json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "send", "arguments": ""}}]}), None),
                chunk(serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": format!("{{\"key\": \"{a}")}}]}), None),
                chunk(serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": format!("{b}\"}}")}}]}), None),
                chunk(serde_json::json!({}), Some("tool_calls")),
            ],
        )
        .await;
        let chunks: Vec<ChatChunk> = out.into_iter().map(Result::unwrap).collect();
        let args: String = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .flat_map(|c| c.delta.tool_calls.iter().flatten())
            .filter_map(|t| t.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(args, "{\"key\": \"[SECRET_1]\"}");
        assert_eq!(
            chunks.last().unwrap().choices[0].finish_reason,
            Some(switchyard_protocol::chat::FinishReason::ToolCalls)
        );
    }

    #[tokio::test]
    async fn a_blocked_tool_call_ends_the_stream_with_an_error() {
        let out = run(
            screening(&[(Detector::Secrets, Action::Block)]),
            vec![
                chunk(serde_json::json!({"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "send", "arguments": format!("{{\"key\": \"{KEY}\"}}")}}]}), None),
                chunk(serde_json::json!({}), Some("tool_calls")),
            ],
        )
        .await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Blocked { .. }))),
            "{out:?}"
        );
        let sent = format!("{:?}", &out[..out.len() - 1]);
        assert!(!sent.contains("sk-proj"), "{sent}");
    }

    /// A whole answer the screen leaves as it was keeps the upstream's bytes; one it redacts
    /// does not, so the caller is sent the redaction.
    #[test]
    #[allow(clippy::result_large_err)] // screen_answer's own result type
    fn a_redacted_answer_drops_the_upstream_body() {
        let answer = |text: &str| {
            let v = serde_json::json!({"id": "c1", "model": "m", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
            let mut resp: ChatResponse = serde_json::from_value(v.clone()).unwrap();
            resp.wire = switchyard_protocol::chat::WireJson::new(v.to_string().into());
            Ok((Attempts::default(), resp))
        };
        let s = screening(&[(Detector::Secrets, Action::Redact)]);
        let (_, clean) = screen_answer(Some(s.clone()), answer("nothing to hide")).unwrap();
        assert!(clean.wire.get().is_some());
        let (_, redacted) = screen_answer(Some(s), answer(&format!("key {KEY}"))).unwrap();
        assert!(redacted.wire.get().is_none());
        assert_eq!(
            redacted.choices[0].message.content,
            Some(Content::Text("key [SECRET_1]".into()))
        );
    }
}
