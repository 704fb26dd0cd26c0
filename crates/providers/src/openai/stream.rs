//! OpenAI's event stream: `data: {chunk}` events, then `data: [DONE]`.

use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem::Finder;
use switchyard_protocol::chat::{ChatChunk, WireJson};
use switchyard_protocol::error::ErrorBody;
use switchyard_protocol::sse::SseEvent;

use crate::events::{EventParser, Parsed};
use crate::{ChunkDetail, ProviderError};

#[derive(Debug, Default)]
pub(super) struct OpenAiEvents {
    /// What the stream's reader reads of each chunk.
    detail: ChunkDetail,
    /// A chunk was read: the stream has passed its first event.
    started: bool,
    /// A chunk with a finish reason was seen: the answer is complete even without `[DONE]`,
    /// once every choice seen has finished (`n` > 1 streams several).
    finished: bool,
    /// Choices seen in decoded chunks that have not finished yet, and those that have.
    unfinished: Vec<u32>,
    done: Vec<u32>,
}

impl OpenAiEvents {
    pub(super) fn new(detail: ChunkDetail) -> Self {
        Self {
            detail,
            ..Self::default()
        }
    }
}

impl EventParser for OpenAiEvents {
    fn parse(&mut self, provider: &str, ev: SseEvent) -> Result<Parsed, ProviderError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(Parsed::Done(vec![]));
        }
        if data.is_empty() {
            return Ok(Parsed::Chunks(vec![]));
        }
        if ev.event.as_deref() == Some("error") || data.starts_with("{\"error\"") {
            let message = serde_json::from_str::<ErrorBody>(data)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| data.chars().take(300).collect());
            return Err(ProviderError::Interrupted {
                provider: provider.to_owned(),
                detail: format!("upstream error event: {message}"),
            });
        }
        let undecodable = |e: serde_json::Error| ProviderError::Decode {
            provider: provider.to_owned(),
            detail: format!("stream event: {e}"),
        };
        // The first event is decoded whatever the reader reads: one that does not decode is a
        // failure before the caller's first byte, which the gateway retries on another target.
        let glance = (self.detail == ChunkDetail::Wire && self.started).then(|| glance(data));
        self.started = true;
        let decoded: Option<ChatChunk> = match glance {
            Some(g) => {
                if g.finishes {
                    // A glance does not say whose finish it is; glanced streams serve the
                    // caller as they come and are not recorded, so one finish completes it.
                    self.finished = true;
                    self.unfinished.clear();
                }
                g.decode
                    .then(|| serde_json::from_str(data))
                    .transpose()
                    .map_err(undecodable)?
            }
            None => Some(serde_json::from_str(data).map_err(undecodable)?),
        };
        // The event's own text goes with the chunk (no copy: the string becomes the bytes), so
        // an OpenAI-shaped caller can be sent it as it came.
        let start = data.as_ptr() as usize - ev.data.as_ptr() as usize;
        let end = start + data.len();
        let wire = WireJson::line(Bytes::from(ev.data).slice(start..end));
        let Some(mut chunk) = decoded else {
            return Ok(Parsed::Chunks(vec![ChatChunk::wire_only(wire)]));
        };
        for c in &chunk.choices {
            if c.finish_reason.is_some() {
                self.finished = true;
                self.unfinished.retain(|&i| i != c.index);
                if !self.done.contains(&c.index) {
                    self.done.push(c.index);
                }
            } else if !self.unfinished.contains(&c.index) && !self.done.contains(&c.index) {
                self.unfinished.push(c.index);
            }
        }
        chunk.wire = wire;
        Ok(Parsed::Chunks(vec![chunk]))
    }

    fn complete(&self) -> bool {
        self.finished && self.unfinished.is_empty()
    }
}

/// What [`ChunkDetail::Wire`] reads of an event after the first: not its JSON (decoding
/// was the largest part of passing a stream on) but the keys the gateway acts on, found as
/// text.
struct Glance {
    /// A `finish_reason` has a value (a choice's: nothing else in a chunk has the key).
    finishes: bool,
    /// It must be decoded all the same: it carries usage (which the log, the meter and the
    /// caller's `include_usage` read), or the reasoning-block keys that OpenAI-shaped callers
    /// are not sent, or several lines (one `data:` line cannot carry them), or it is visibly
    /// not one JSON object (cut short, say), which the decoding then reports. Past that
    /// check, its JSON is the upstream's, passed on as it came, as any proxy does.
    decode: bool,
}

/// `"finish_reason"`, `"usage"`, then the keys of
/// `switchyard_protocol::anthropic::upstream::{REASONING_SIGNATURE, REDACTED_REASONING}` (a
/// test checks they match), quoted.
static KEYS: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
    [
        "\"finish_reason\"",
        "\"usage\"",
        "\"reasoning_signature\"",
        "\"reasoning_redacted\"",
    ]
    .map(|k| Finder::new(k.as_bytes()).into_owned())
});

fn glance(data: &str) -> Glance {
    let json = data.as_bytes();
    let [finish, usage, signature, redacted] = &*KEYS;
    let set = |v: &[u8]| !v.starts_with(b"null");
    let object = json.first() == Some(&b'{') && json.last() == Some(&b'}');
    Glance {
        finishes: values(json, finish).any(set),
        decode: !object
            || memchr::memchr2(b'\n', b'\r', json).is_some()
            || values(json, usage).any(set)
            || values(json, signature).next().is_some()
            || values(json, redacted).next().is_some(),
    }
}

/// What follows each `"key":` in `json`, at any depth. Inside a string a quote is escaped, so
/// the quoted key is found only as a key, or as a whole string value, which no colon follows.
/// (A key written with `\u` escapes is not found; no upstream writes its keys so.)
fn values<'a>(json: &'a [u8], key: &'a Finder<'static>) -> impl Iterator<Item = &'a [u8]> {
    let skip = |b: &'a [u8]| b.trim_ascii_start();
    key.find_iter(json).filter_map(move |at| {
        let after = skip(&json[at + key.needle().len()..]);
        after.strip_prefix(b":").map(skip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_owned(),
            ..Default::default()
        }
    }

    fn chunk(data: &str) -> ChatChunk {
        let Ok(Parsed::Chunks(mut c)) = OpenAiEvents::default().parse("p", event(data)) else {
            panic!("not a chunk: {data}");
        };
        c.pop().unwrap()
    }

    fn parse_as(p: &mut OpenAiEvents, data: &str) -> Result<ChatChunk, ProviderError> {
        match p.parse("p", event(data))? {
            Parsed::Chunks(mut c) if c.len() == 1 => Ok(c.pop().unwrap()),
            _ => panic!("not one chunk: {data}"),
        }
    }

    #[test]
    fn a_decoded_stream_is_complete_once_every_choice_has_finished() {
        let ev = |index: u32, finish: Option<&str>| {
            let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
            format!(
                r#"{{"id":"a","model":"m","choices":[{{"index":{index},"delta":{{"content":"x"}},"finish_reason":{finish}}}]}}"#
            )
        };
        let mut p = OpenAiEvents::new(ChunkDetail::Decoded);
        for e in [ev(0, None), ev(1, None), ev(0, Some("stop"))] {
            parse_as(&mut p, &e).unwrap();
        }
        // Choice 1 (of n = 2) has not finished: a connection that closes now cut it short.
        assert!(!p.complete());
        parse_as(&mut p, &ev(1, Some("length"))).unwrap();
        assert!(p.complete());
        // One choice, finished: complete without [DONE], as before.
        let mut one = OpenAiEvents::new(ChunkDetail::Decoded);
        parse_as(&mut one, &ev(0, None)).unwrap();
        assert!(!one.complete());
        parse_as(&mut one, &ev(0, Some("stop"))).unwrap();
        assert!(one.complete());
    }

    /// A reader of wire chunks, past the stream's first event (which is decoded in full).
    fn started() -> OpenAiEvents {
        let mut p = OpenAiEvents::new(ChunkDetail::Wire);
        let role = r#"{"id":"a","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
        let c = parse_as(&mut p, role).unwrap();
        assert_eq!(c.choices.len(), 1, "the first event is decoded");
        assert!(c.wire.get().is_some());
        p
    }

    #[test]
    fn a_wire_reader_gets_content_chunks_undecoded_and_the_rest_decoded() {
        let mut p = started();
        let content = r#"{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\"usage\": \"finish_reason\":1"},"finish_reason" : null}],"usage":null}"#;
        let c = parse_as(&mut p, content).unwrap();
        assert_eq!(c.wire.get().map(|b| &b[..]), Some(content.as_bytes()));
        assert!(c.choices.is_empty() && c.id.is_empty() && c.usage.is_none());
        assert!(!p.complete());

        // The finish is seen (the answer is complete without `[DONE]`), and still not decoded.
        let finish =
            r#"{"id":"a","model":"m","choices":[{"index":0,"delta":{},"finish_reason": "stop"}]}"#;
        let c = parse_as(&mut p, finish).unwrap();
        assert!(c.choices.is_empty() && c.wire.get().is_some());
        assert!(p.complete());

        // Usage is decoded: the log, the meter and the caller's `include_usage` read it.
        let usage = r#"{"id":"a","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let c = parse_as(&mut p, usage).unwrap();
        assert_eq!(c.usage.map(|u| u.completion_tokens), Some(2));
        assert_eq!(c.wire.get().map(|b| &b[..]), Some(usage.as_bytes()));

        // Reasoning-block keys are decoded, so the stream shape can remove them.
        for key in [
            switchyard_protocol::anthropic::upstream::REASONING_SIGNATURE,
            switchyard_protocol::anthropic::upstream::REDACTED_REASONING,
        ] {
            let json = format!(
                r#"{{"id":"a","model":"m","choices":[{{"index":0,"delta":{{"{key}" :"x"}}}}]}}"#
            );
            let c = parse_as(&mut p, &json).unwrap();
            assert_eq!(c.choices[0].delta.extra[key], "x", "{key}");
        }

        // Data of several lines is decoded, to be sent re-encoded on one line.
        let c = parse_as(&mut p, "{\"id\":\"a\",\n\"model\":\"m\"}").unwrap();
        assert_eq!((c.id.as_str(), c.wire.get()), ("a", None));
    }

    #[test]
    fn a_first_event_that_is_not_a_chunk_is_an_error_and_later_a_cut_one() {
        let bad = [
            "{\"id\":\"a\",\"model\":",
            "{\"id\": \"chatcmpl-mock\", \"choices\": [",
            "not json",
            "[1,2]",
        ];
        for data in bad.iter().chain(&[r#"{"model":"m","choices":[]}"#]) {
            let err = parse_as(&mut OpenAiEvents::new(ChunkDetail::Wire), data).unwrap_err();
            assert!(
                matches!(err, ProviderError::Decode { .. }),
                "{data}: {err:?}"
            );
        }
        for data in bad {
            let err = parse_as(&mut started(), data).unwrap_err();
            assert!(
                matches!(err, ProviderError::Decode { .. }),
                "{data}: {err:?}"
            );
        }
        // Past the first event, an object's JSON is the upstream's: passed on as it came.
        let odd = r#"{"model":"m","choices":[]}"#;
        let c = parse_as(&mut started(), odd).unwrap();
        assert_eq!(c.wire.get().map(|b| &b[..]), Some(odd.as_bytes()));
    }

    proptest::proptest! {
        /// Whatever a chunk's text holds (quotes, escapes, the key names in its content, as
        /// other keys' values, as keys set to null elsewhere), glancing at it sees what decoding it sees: whether it
        /// finishes the answer, its usage, the bytes sent on.
        #[test]
        fn a_glance_agrees_with_the_decoding(
            content in "[a-z\"\\\\: {}_]{0,24}",
            finish in proptest::option::of(proptest::sample::select(vec!["stop", "length"])),
            usage in proptest::option::of((0u64..1000, 0u64..1000)),
            // (A `finish_reason` key with a value elsewhere than in a choice would read as a
            // finish: no upstream sends one.)
            other in proptest::sample::select(vec!["usage", "note", "usage_x"]),
            spaced in proptest::bool::ANY,
        ) {
            let mut chunk = serde_json::json!({
                "id": "a", "model": "m",
                "choices": [{"index": 0, "delta": {"content": content, other: "usage"}, "finish_reason": finish}],
                "usage": usage.map(|(p, c)| serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})),
            });
            if other == "note" {
                chunk["x"] = serde_json::json!({"finish_reason": null, "usage": null});
            }
            let text = if spaced { serde_json::to_string_pretty(&chunk).unwrap().replace('\n', " ") } else { chunk.to_string() };
            let mut decoding = OpenAiEvents::new(ChunkDetail::Decoded);
            let mut glancing = started();
            let d = parse_as(&mut decoding, &text).unwrap();
            let g = parse_as(&mut glancing, &text).unwrap();
            proptest::prop_assert_eq!(decoding.complete(), glancing.complete());
            proptest::prop_assert_eq!(d.usage.map(|u| u.completion_tokens), g.usage.map(|u| u.completion_tokens));
            proptest::prop_assert_eq!(d.wire.get(), g.wire.get());
        }
    }

    #[test]
    fn a_chunk_keeps_the_json_it_was_decoded_from() {
        let json = r#"{"id":"a","model":"m","created":1,"choices":[{"index":0,"delta":{"content":"caf\u00e9"}}],"n":1.50}"#;
        let c = chunk(&format!(" {json}\r\n"));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("café"));
        assert_eq!(c.wire.get().map(|b| &b[..]), Some(json.as_bytes()));
        // Data of several lines is joined with line breaks, which one `data:` line cannot carry.
        let c = chunk("{\"id\":\"a\",\n\"model\":\"m\"}");
        assert_eq!((c.id.as_str(), c.wire.get()), ("a", None));
    }
}
