//! Canonical stream chunks → Responses stream events.
//!
//! `response.created` and `response.in_progress` first; then per output item
//! `response.output_item.added`, its deltas (`response.output_text.delta` after a
//! `response.content_part.added`, or `response.function_call_arguments.delta`), and on its
//! end the `…done` events and `response.output_item.done`; last `response.completed` (or
//! `response.incomplete` when the answer was cut short) with the whole response. Every event
//! carries the next `sequence_number`.

use serde_json::{Map, Value, json};

use super::{Echo, call_item, item_id, message_item, status_of, text_part};
use crate::chat::{ChatChunk, FinishReason, Usage};

/// One output item being streamed.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        /// The canonical tool-call index it streams.
        index: u32,
        call_id: String,
        name: String,
        arguments: String,
        /// Provider data to bring back on the next turn.
        extra: Map<String, Value>,
    },
}

#[derive(Debug)]
pub struct StreamTranslator {
    echo: Echo,
    seq: u64,
    started: bool,
    /// Output items in order; those at or after `open_from` may still get deltas.
    items: Vec<Item>,
    done: Vec<Value>,
    open_from: usize,
    calls: usize,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    model: Option<String>,
}

impl StreamTranslator {
    pub fn new(echo: Echo) -> Self {
        Self {
            echo,
            seq: 0,
            started: false,
            items: Vec::new(),
            done: Vec::new(),
            open_from: 0,
            calls: 0,
            finish: None,
            usage: None,
            model: None,
        }
    }

    fn event(&mut self, kind: &str, mut body: Value, out: &mut Vec<(String, Value)>) {
        body["type"] = Value::from(kind);
        body["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        out.push((kind.to_owned(), body));
    }

    fn start(&mut self, out: &mut Vec<(String, Value)>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress", Vec::new(), None);
        self.event("response.created", json!({"response": response}), out);
        let response = self.snapshot("in_progress", Vec::new(), None);
        self.event("response.in_progress", json!({"response": response}), out);
    }

    fn snapshot(&self, status: &str, output: Vec<Value>, incomplete: Option<&str>) -> Value {
        let mut r = self
            .echo
            .response(status, output, self.usage.as_ref(), incomplete);
        if let Some(m) = &self.model {
            r["model"] = Value::from(m.clone());
        }
        r
    }

    /// Closes the open items from `from` on, in order.
    fn close_from(&mut self, from: usize, out: &mut Vec<(String, Value)>) {
        for at in from..self.items.len() {
            let (item, events) = match &self.items[at] {
                Item::Message { id, text } => (
                    message_item(id, "completed", text),
                    vec![
                        (
                            "response.output_text.done",
                            json!({"item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                        ),
                        (
                            "response.content_part.done",
                            json!({"item_id": id, "output_index": at, "content_index": 0, "part": text_part(text)}),
                        ),
                    ],
                ),
                Item::Call {
                    id,
                    call_id,
                    name,
                    arguments,
                    extra,
                    ..
                } => (
                    call_item(id, "completed", call_id, name, arguments, extra),
                    vec![(
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": at, "arguments": arguments}),
                    )],
                ),
            };
            for (kind, body) in events {
                self.event(kind, body, out);
            }
            self.event(
                "response.output_item.done",
                json!({"output_index": at, "item": item}),
                out,
            );
            self.done.push(item);
        }
        self.open_from = self.items.len();
    }

    /// The events a chunk makes.
    pub fn push(&mut self, chunk: ChatChunk) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.start(&mut out);
        if self.model.is_none() && !chunk.model.is_empty() {
            self.model = Some(chunk.model.clone());
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage.clone();
        }
        // One output: the first choice.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return out;
        };
        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
            let open_message = self.items[self.open_from..]
                .iter()
                .position(|i| matches!(i, Item::Message { .. }))
                .map(|p| p + self.open_from);
            let at = match open_message {
                Some(at) => at,
                None => {
                    // Text after tool calls starts a new message item; earlier ones end.
                    self.close_from(self.open_from, &mut out);
                    let id = item_id("msg", &self.echo.id, self.items.len());
                    let at = self.items.len();
                    self.event(
                        "response.output_item.added",
                        json!({"output_index": at, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}),
                        &mut out,
                    );
                    self.event(
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": at, "content_index": 0, "part": text_part("")}),
                        &mut out,
                    );
                    self.items.push(Item::Message {
                        id,
                        text: String::new(),
                    });
                    at
                }
            };
            if let Item::Message { id, text: t } = &mut self.items[at] {
                t.push_str(&text);
                let id = id.clone();
                self.event(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "delta": text, "logprobs": []}),
                    &mut out,
                );
            }
        }
        for t in choice.delta.tool_calls.into_iter().flatten() {
            let found = self.items[self.open_from..]
                .iter()
                .position(|i| matches!(i, Item::Call { index, .. } if *index == t.index))
                .map(|p| p + self.open_from);
            let at = match found {
                Some(at) => at,
                None => {
                    // A new call: an open message ends first.
                    if self.items[self.open_from..]
                        .iter()
                        .any(|i| matches!(i, Item::Message { .. }))
                    {
                        self.close_from(self.open_from, &mut out);
                    }
                    let id = item_id("fc", &self.echo.id, self.calls);
                    self.calls += 1;
                    let call_id = t.id.clone().unwrap_or_else(|| id.replace("fc_", "call_"));
                    let name = t
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default();
                    let at = self.items.len();
                    self.event(
                        "response.output_item.added",
                        json!({"output_index": at, "item": call_item(&id, "in_progress", &call_id, &name, "", &t.extra)}),
                        &mut out,
                    );
                    self.items.push(Item::Call {
                        id,
                        index: t.index,
                        call_id,
                        name,
                        arguments: String::new(),
                        extra: Map::new(),
                    });
                    at
                }
            };
            if let Item::Call { extra, .. } = &mut self.items[at] {
                extra.extend(t.extra.clone());
            }
            let delta = t
                .function
                .and_then(|f| f.arguments)
                .filter(|a| !a.is_empty());
            if let Some(delta) = delta
                && let Item::Call { id, arguments, .. } = &mut self.items[at]
            {
                arguments.push_str(&delta);
                let id = id.clone();
                self.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": at, "delta": delta}),
                    &mut out,
                );
            }
        }
        if choice.finish_reason.is_some() {
            self.finish = choice.finish_reason;
        }
        out
    }

    /// The closing events, and the whole response as `response.completed` carries it.
    pub fn finish(&mut self) -> (Vec<(String, Value)>, Value) {
        let mut out = Vec::new();
        self.start(&mut out);
        if self.items.is_empty() {
            // An answer with no text and no calls is still one (empty) message.
            let id = item_id("msg", &self.echo.id, 0);
            self.event(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}),
                &mut out,
            );
            self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": 0, "content_index": 0, "part": text_part("")}),
                &mut out,
            );
            self.items.push(Item::Message {
                id,
                text: String::new(),
            });
        }
        self.close_from(self.open_from, &mut out);
        let (status, incomplete) = status_of(self.finish.as_ref());
        let response = self.snapshot(status, self.done.clone(), incomplete);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(kind, json!({"response": response.clone()}), &mut out);
        (out, response)
    }

    /// The `error` event for a failure mid-stream.
    pub fn error(&mut self, code: &str, message: &str) -> (String, Value) {
        let mut out = Vec::new();
        self.event(
            "error",
            json!({"code": code, "message": message, "param": null}),
            &mut out,
        );
        out.remove(0)
    }
}
