//! Canonical stream chunks → Messages stream events.

use super::response::{
    arguments_to_input, call_id_with_extra, finish_to_stop_reason, usage_to_anthropic,
};
use super::upstream::{PROMPT_USAGE, REASONING, REASONING_SIGNATURE, REDACTED_REASONING};
use super::wire::{
    BlockDelta, ErrorDetail, MessageDelta, MessagesResponse, OutBlock, StreamEvent, Usage,
};
use crate::chat::ChatChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// A tool call, by its canonical index.
    Tool(u32),
    Thinking,
    /// A redacted thinking block: complete at its start, closed by whatever comes next.
    Redacted,
}

/// Turns canonical chunks into Messages events: `message_start`, then per content block a
/// `content_block_start`, its deltas and a `content_block_stop`, then `message_delta` with the
/// stop reason and usage, and `message_stop`. Text and tool-call arguments are forwarded as
/// they come (`text_delta`, `input_json_delta`).
#[derive(Debug)]
pub struct StreamTranslator {
    started: bool,
    open: Open,
    next_index: u32,
    stop_reason: Option<&'static str>,
    usage: Usage,
    model: String,
    /// The id of the open tool call, as the upstream gave it.
    open_call_id: Option<String>,
}

impl StreamTranslator {
    /// `model` names the model in `message_start` until the upstream's first chunk says.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            started: false,
            open: Open::None,
            next_index: 0,
            stop_reason: None,
            usage: Usage::default(),
            model: model.into(),
            open_call_id: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            message: MessagesResponse {
                id: id.to_owned(),
                kind: "message",
                role: "assistant",
                model: self.model.clone(),
                content: vec![],
                stop_reason: None,
                stop_sequence: None,
                // What is known of the input so far (from an Anthropic upstream's own start);
                // the final counts come in `message_delta`.
                usage: Usage {
                    output_tokens: 0,
                    ..self.usage.clone()
                },
            },
        });
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if self.open != Open::None {
            out.push(StreamEvent::ContentBlockStop {
                index: self.next_index - 1,
            });
            self.open = Open::None;
        }
    }

    fn open(&mut self, kind: Open, block: OutBlock, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = kind;
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }

    /// The events one chunk produces.
    pub fn push(&mut self, chunk: ChatChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if !self.started && !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if !self.started
            && let Some(u) = chunk
                .choices
                .first()
                .and_then(|c| c.delta.extra.get(PROMPT_USAGE))
        {
            // An Anthropic upstream's input counts, known from its first event.
            let n = |k: &str| u[k].as_u64();
            self.usage.input_tokens = n("input_tokens").unwrap_or(0);
            self.usage.cache_creation_input_tokens = n("cache_creation_input_tokens");
            self.usage.cache_read_input_tokens = n("cache_read_input_tokens");
        }
        self.start(&chunk.id, &mut out);
        if let Some(u) = &chunk.usage {
            self.usage = usage_to_anthropic(u);
        }
        // Only the first choice maps onto a Messages answer.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return out;
        };
        if let Some(data) = choice
            .delta
            .extra
            .get(REDACTED_REASONING)
            .and_then(|v| v.as_str())
        {
            let block = OutBlock::RedactedThinking {
                data: data.to_owned(),
            };
            self.open(Open::Redacted, block, &mut out);
        }
        let reasoning = choice
            .delta
            .extra
            .get(REASONING)
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty());
        if let Some(thinking) = reasoning {
            let index = if self.open == Open::Thinking {
                self.next_index - 1
            } else {
                let block = OutBlock::Thinking {
                    thinking: String::new(),
                    signature: String::new(),
                };
                self.open(Open::Thinking, block, &mut out)
            };
            let delta = BlockDelta::ThinkingDelta {
                thinking: thinking.to_owned(),
            };
            out.push(StreamEvent::ContentBlockDelta { index, delta });
        }
        if let Some(sig) = choice
            .delta
            .extra
            .get(REASONING_SIGNATURE)
            .and_then(|v| v.as_str())
            && self.open == Open::Thinking
        {
            let delta = BlockDelta::SignatureDelta {
                signature: sig.to_owned(),
            };
            out.push(StreamEvent::ContentBlockDelta {
                index: self.next_index - 1,
                delta,
            });
        }
        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
            let index = if self.open == Open::Text {
                self.next_index - 1
            } else {
                self.open(
                    Open::Text,
                    OutBlock::Text {
                        text: String::new(),
                    },
                    &mut out,
                )
            };
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text },
            });
        }
        for call in choice.delta.tool_calls.unwrap_or_default() {
            let function = call.function.unwrap_or_default();
            // A piece of the open call: the same index, and no id or the same id (some hosts
            // repeat it on every piece; others number parallel calls all 0, each with its id).
            let same_call = matches!(self.open, Open::Tool(i) if i == call.index)
                && call
                    .id
                    .as_ref()
                    .is_none_or(|id| self.open_call_id.as_deref() == Some(id.as_str()));
            let index = match (same_call, call.id) {
                (true, _) => self.next_index - 1,
                (false, id) => {
                    self.open_call_id.clone_from(&id);
                    let block = OutBlock::ToolUse {
                        id: call_id_with_extra(
                            &id.unwrap_or_else(|| format!("toolu_{}", call.index)),
                            &call.extra,
                        ),
                        name: function.name.clone().unwrap_or_default(),
                        input: arguments_to_input(""),
                    };
                    self.open(Open::Tool(call.index), block, &mut out)
                }
            };
            if let Some(args) = function.arguments.filter(|a| !a.is_empty()) {
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta { partial_json: args },
                });
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.stop_reason = Some(finish_to_stop_reason(f));
            self.close(&mut out);
        }
        out
    }

    /// The closing events, once the upstream stream has ended.
    pub fn finish(&mut self, id: &str) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.start(id, &mut out);
        self.close(&mut out);
        out.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(self.stop_reason.unwrap_or("end_turn")),
                stop_sequence: None,
            },
            usage: self.usage.clone(),
        });
        out.push(StreamEvent::MessageStop);
        out
    }

    /// The event for a failure mid-stream; the stream ends after it.
    pub fn error(kind: &'static str, message: impl Into<String>) -> StreamEvent {
        StreamEvent::Error {
            error: ErrorDetail {
                kind,
                message: message.into(),
            },
        }
    }
}
