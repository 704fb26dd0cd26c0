//! One form of an answer from the other: the chunks of a stream joined into a whole answer, and
//! a whole answer cut into the chunks a stream would have carried. The cache uses both, so an
//! answer recorded as a stream can be served to a plain request and the other way round.

use serde_json::{Map, Value};

use super::message::{Content, Message, Role, ToolCall, ToolCallFunction};
use super::response::{ChatResponse, Choice};
use super::stream::{ChatChunk, ChunkChoice, Delta, ToolCallDelta, ToolCallFunctionDelta};

/// Joins a stream's chunks into the whole answer they make up: per choice, the text and any
/// other string fields of the deltas (such as `reasoning_content`) concatenated, tool calls
/// assembled by index, the last finish reason; the usage of the chunk that carried it.
pub fn assemble(chunks: &[ChatChunk]) -> ChatResponse {
    let first = chunks.first();
    let mut choices: Vec<Choice> = Vec::new();
    // Per choice, the stream's index of each of its tool calls, in the order they came.
    let mut call_indices: Vec<Vec<u32>> = Vec::new();
    let mut usage = None;
    for chunk in chunks {
        if chunk.usage.is_some() {
            usage.clone_from(&chunk.usage);
        }
        for c in &chunk.choices {
            let pos = match choices.iter().position(|x| x.index == c.index) {
                Some(p) => p,
                None => {
                    choices.push(Choice {
                        index: c.index,
                        message: Message {
                            content: None,
                            ..Message::new(Role::Assistant, "")
                        },
                        finish_reason: None,
                        logprobs: None,
                        extra: Map::new(),
                    });
                    call_indices.push(Vec::new());
                    choices.len() - 1
                }
            };
            let choice = &mut choices[pos];
            add_delta(&mut choice.message, &mut call_indices[pos], &c.delta);
            if c.finish_reason.is_some() {
                choice.finish_reason.clone_from(&c.finish_reason);
            }
            if let Some(lp) = &c.logprobs {
                add_logprobs(&mut choice.logprobs, lp);
            }
        }
    }
    for (choice, indices) in choices.iter_mut().zip(&call_indices) {
        if let Some(calls) = &mut choice.message.tool_calls {
            let mut by_index: Vec<(u32, ToolCall)> =
                indices.iter().copied().zip(calls.drain(..)).collect();
            by_index.sort_by_key(|(i, _)| *i);
            calls.extend(by_index.into_iter().map(|(_, call)| call));
        }
    }
    choices.sort_by_key(|c| c.index);
    ChatResponse {
        id: first.map(|c| c.id.clone()).unwrap_or_default(),
        object: "chat.completion".to_owned(),
        created: first.map_or(0, |c| c.created),
        model: first.map(|c| c.model.clone()).unwrap_or_default(),
        choices,
        usage,
        system_fingerprint: chunks.iter().find_map(|c| c.system_fingerprint.clone()),
        extra: Map::new(),
        wire: Default::default(),
    }
}

/// Joins a chunk's `logprobs` onto the choice's: OpenAI streams one entry per token in
/// `content` (and `refusal`), which add up to the whole answer's lists.
fn add_logprobs(whole: &mut Option<Value>, piece: &Value) {
    let Some(piece) = piece.as_object() else {
        return;
    };
    let whole = whole.get_or_insert_with(|| Value::Object(Map::new()));
    let Some(whole) = whole.as_object_mut() else {
        return;
    };
    for (k, v) in piece {
        match (whole.get_mut(k), v) {
            (Some(Value::Array(acc)), Value::Array(more)) => acc.extend(more.iter().cloned()),
            (Some(Value::Array(_)), Value::Null) => {}
            _ => {
                whole.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Adds a delta to the message being assembled; `call_indices` holds the stream's index of each
/// of its tool calls so far. The index only identifies a call: a stream that numbers its calls
/// 0, 7 and 4000000000 makes three calls, not four billion.
fn add_delta(m: &mut Message, call_indices: &mut Vec<u32>, d: &Delta) {
    if let Some(role) = d.role {
        m.role = role;
    }
    if let Some(text) = &d.content {
        match &mut m.content {
            Some(Content::Text(t)) => t.push_str(text),
            _ => m.content = Some(Content::Text(text.clone())),
        }
    }
    for (k, v) in &d.extra {
        // The gateway's own keys describe the stream (an upstream's first counts, say), not
        // the answer.
        if k.starts_with(crate::PRIVATE_PREFIX) {
            continue;
        }
        match (m.extra.get_mut(k), v) {
            (Some(Value::String(acc)), Value::String(more)) => acc.push_str(more),
            _ => {
                m.extra.insert(k.clone(), v.clone());
            }
        }
    }
    for t in d.tool_calls.iter().flatten() {
        let calls = m.tool_calls.get_or_insert_with(Vec::new);
        let at = match call_indices.iter().position(|i| *i == t.index) {
            Some(at) => at,
            None => {
                call_indices.push(t.index);
                calls.push(ToolCall {
                    id: String::new(),
                    kind: "function".to_owned(),
                    function: ToolCallFunction {
                        name: String::new(),
                        arguments: String::new(),
                    },
                    extra: Map::new(),
                });
                calls.len() - 1
            }
        };
        let call = &mut calls[at];
        if let Some(id) = &t.id {
            call.id.clone_from(id);
        }
        if let Some(kind) = &t.kind {
            call.kind.clone_from(kind);
        }
        if let Some(f) = &t.function {
            if let Some(name) = &f.name {
                call.function.name.push_str(name);
            }
            if let Some(args) = &f.arguments {
                call.function.arguments.push_str(args);
            }
        }
        for (k, v) in &t.extra {
            call.extra.insert(k.clone(), v.clone());
        }
    }
}

/// The chunks a stream of this answer carries, the way OpenAI frames them: per choice, a chunk
/// with the role and the text (and any other fields of the message, such as
/// `reasoning_content`), one with the tool calls, one with the finish reason; then a last chunk
/// with no choices and the usage, if the answer has one.
pub fn chunks_of(resp: &ChatResponse) -> Vec<ChatChunk> {
    let chunk = |choices: Vec<ChunkChoice>| ChatChunk {
        id: resp.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: resp.created,
        model: resp.model.clone(),
        choices,
        usage: None,
        system_fingerprint: resp.system_fingerprint.clone(),
        extra: Map::new(),
        wire: Default::default(),
    };
    let one = |index: u32, delta: Delta, finish| ChunkChoice {
        index,
        delta,
        finish_reason: finish,
        logprobs: None,
        extra: Map::new(),
    };
    let mut out = Vec::new();
    for c in &resp.choices {
        let m = &c.message;
        let mut text = one(
            c.index,
            Delta {
                role: Some(m.role),
                content: m.content.as_ref().map(|_| m.text()),
                tool_calls: None,
                extra: m.extra.clone(),
            },
            None,
        );
        // The whole answer's token log-probabilities go with its text.
        text.logprobs.clone_from(&c.logprobs);
        out.push(chunk(vec![text]));
        if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
            let deltas = calls
                .iter()
                .enumerate()
                .map(|(i, t)| ToolCallDelta {
                    index: i as u32,
                    id: Some(t.id.clone()),
                    kind: Some(t.kind.clone()),
                    function: Some(ToolCallFunctionDelta {
                        name: Some(t.function.name.clone()),
                        arguments: Some(t.function.arguments.clone()),
                    }),
                    extra: t.extra.clone(),
                })
                .collect();
            out.push(chunk(vec![one(
                c.index,
                Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                },
                None,
            )]));
        }
        out.push(chunk(vec![one(
            c.index,
            Delta::default(),
            c.finish_reason.clone(),
        )]));
    }
    if resp.usage.is_some() {
        let mut last = chunk(Vec::new());
        last.usage.clone_from(&resp.usage);
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{FinishReason, Usage};
    use proptest::prelude::*;

    fn response(texts: &[String], tools: &[(String, String)], usage: bool) -> ChatResponse {
        let choices = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut message = Message::new(Role::Assistant, t.clone());
                if i == 0 && !tools.is_empty() {
                    message.tool_calls = Some(
                        tools
                            .iter()
                            .enumerate()
                            .map(|(n, (name, args))| ToolCall {
                                id: format!("call_{n}"),
                                kind: "function".into(),
                                function: ToolCallFunction {
                                    name: name.clone(),
                                    arguments: args.clone(),
                                },
                                extra: Map::new(),
                            })
                            .collect(),
                    );
                }
                Choice {
                    index: i as u32,
                    message,
                    finish_reason: Some(if tools.is_empty() {
                        FinishReason::Stop
                    } else {
                        FinishReason::ToolCalls
                    }),
                    logprobs: None,
                    extra: Map::new(),
                }
            })
            .collect();
        ChatResponse {
            id: "chatcmpl-1".into(),
            object: "chat.completion".into(),
            created: 1_700_000_000,
            model: "m".into(),
            choices,
            usage: usage.then(|| Usage::new(12, 7)),
            system_fingerprint: None,
            extra: Map::new(),
            wire: Default::default(),
        }
    }

    proptest! {
        #[test]
        fn an_answer_cut_into_chunks_assembles_back_to_itself(
            texts in proptest::collection::vec(".{0,40}", 1..4),
            tools in proptest::collection::vec(("[a-z_]{1,12}", ".{0,30}"), 0..3),
            usage: bool,
        ) {
            let resp = response(&texts, &tools, usage);
            prop_assert_eq!(assemble(&chunks_of(&resp)), resp);
        }

        #[test]
        fn chunks_split_anywhere_assemble_to_the_same_text(text in ".{0,80}", cuts in proptest::collection::vec(0usize..80, 0..6)) {
            let chars: Vec<char> = text.chars().collect();
            let mut at: Vec<usize> = cuts.into_iter().map(|c| c.min(chars.len())).collect();
            at.sort_unstable();
            at.dedup();
            let mut pieces = Vec::new();
            let mut from = 0;
            for to in at.into_iter().chain([chars.len()]) {
                pieces.push(chars[from..to].iter().collect::<String>());
                from = to;
            }
            let chunks: Vec<ChatChunk> = pieces
                .into_iter()
                .map(|p| ChatChunk::new("c", "m", 1, Delta { content: Some(p), ..Delta::default() }, None))
                .collect();
            let whole = assemble(&chunks);
            prop_assert_eq!(whole.choices[0].message.text(), text);
        }
    }

    #[test]
    fn tool_call_arguments_streamed_in_pieces_are_joined() {
        let piece = |id: Option<&str>, name: Option<&str>, args: &str| {
            ChatChunk::tool_call_piece(0, id, name, args)
        };
        let chunks = vec![
            piece(Some("call_a"), Some("get_weather"), ""),
            piece(None, None, "{\"city\":"),
            piece(None, None, "\"Paris\"}"),
            ChatChunk::new("c", "m", 1, Delta::default(), Some(FinishReason::ToolCalls)),
        ];
        let whole = assemble(&chunks);
        let call = &whole.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            (call.id.as_str(), call.function.name.as_str()),
            ("call_a", "get_weather")
        );
        assert_eq!(call.function.arguments, "{\"city\":\"Paris\"}");
        assert_eq!(
            whole.choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );
        assert_eq!(whole.choices[0].message.content, None);
    }

    #[test]
    fn tool_calls_are_told_apart_by_index_and_a_huge_index_allocates_nothing() {
        let piece = |index: u32, id: Option<&str>, args: &str| {
            ChatChunk::tool_call_piece(index, id, id.map(|_| "f"), args)
        };
        let chunks = vec![
            piece(4_000_000_000, Some("call_big"), "{\"a\":"),
            piece(1, Some("call_one"), "{}"),
            piece(4_000_000_000, None, "1}"),
        ];
        let whole = assemble(&chunks);
        let calls = whole.choices[0].message.tool_calls.as_ref().unwrap();
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.function.arguments.as_str()))
            .collect();
        // In the stream's index order, each call's pieces joined, no empty calls in between.
        assert_eq!(got, [("call_one", "{}"), ("call_big", "{\"a\":1}")]);
    }

    #[test]
    fn log_probabilities_survive_both_ways() {
        let piece = |token: &str| {
            let mut c = ChatChunk::new(
                "c",
                "m",
                1,
                Delta {
                    content: Some(token.to_owned()),
                    ..Delta::default()
                },
                None,
            );
            c.choices[0].logprobs = Some(serde_json::json!({
                "content": [{"token": token, "logprob": -0.5, "bytes": null, "top_logprobs": []}],
                "refusal": null
            }));
            c
        };
        let whole = assemble(&[piece("Hel"), piece("lo")]);
        let lp = whole.choices[0].logprobs.clone().unwrap();
        let tokens: Vec<&str> = lp["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(tokens, ["Hel", "lo"]);
        // And back: the stream form carries them with the text.
        let again = assemble(&chunks_of(&whole));
        assert_eq!(again.choices[0].logprobs, Some(lp));
    }

    #[test]
    fn the_gateways_own_keys_on_chunks_stay_out_of_the_whole_answer() {
        let mut first = ChatChunk::new(
            "c",
            "m",
            1,
            Delta {
                content: Some("hi".into()),
                ..Delta::default()
            },
            None,
        );
        first.choices[0].delta.extra.insert(
            "x_switchyard_prompt_usage".into(),
            serde_json::json!({"input_tokens": 3}),
        );
        first.choices[0]
            .delta
            .extra
            .insert("reasoning_content".into(), "because".into());
        let whole = assemble(&[first]);
        let extra = &whole.choices[0].message.extra;
        assert!(
            !extra.contains_key("x_switchyard_prompt_usage"),
            "{extra:?}"
        );
        assert_eq!(extra["reasoning_content"], "because");
    }
}
