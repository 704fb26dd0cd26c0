//! Server-sent events: an incremental decoder and the encoder.
//!
//! The decoder follows the WHATWG event-stream parsing rules: lines end in LF, CRLF or CR;
//! `data` lines accumulate (joined by LF); `event`, `id` and `retry` set fields; lines starting
//! with `:` are comments; a blank line dispatches the event; a leading BOM is skipped. Input may
//! be split anywhere, even inside a multi-byte character or between CR and LF.

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, `None` for the default `message` type.
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Incremental decoder: feed bytes as they arrive, take events as they complete.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Whether the last byte consumed was a CR (so a following LF is part of the same ending).
    after_cr: bool,
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

/// Upper bound on one line; a peer that sends more without a line break is broken or hostile.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event-stream line exceeded {MAX_LINE} bytes")]
    LineTooLong,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut rest = bytes;
        if !self.started && !rest.is_empty() {
            // Skip a UTF-8 BOM, which may itself arrive split.
            self.buf.extend_from_slice(rest);
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Ok(events);
            }
            self.started = true;
            let pending = std::mem::take(&mut self.buf);
            let start = if pending.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            self.consume(&pending[start..], &mut events)?;
            return Ok(events);
        }
        if rest.is_empty() {
            return Ok(events);
        }
        if rest[0] == b'\n' && self.after_cr {
            rest = &rest[1..];
        }
        self.after_cr = false;
        self.consume(rest, &mut events)?;
        Ok(events)
    }

    fn consume(&mut self, mut rest: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // memchr scans a word (or a vector) at a time: a stream's bytes are mostly JSON text.
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let ending_cr = rest[pos] == b'\r';
            if self.buf.is_empty() {
                self.process_line(&rest[..pos], events);
            } else {
                self.buf.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.buf);
                self.process_line(&line, events);
            }
            rest = &rest[pos + 1..];
            if ending_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        if self.buf.len() + rest.len() > MAX_LINE {
            return Err(SseError::LineTooLong);
        }
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(SseEvent {
                    event: self.event.take(),
                    data,
                    id: self.id.clone(),
                });
            } else {
                self.event = None;
            }
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the rule; `from_utf8` checks it much faster than the lossy decoder,
        // which is kept for the exception.
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {}
        }
    }

    /// True when bytes of an unfinished event are pending (the stream ended mid-event).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.has_data
    }
}

/// Encodes one event. Data containing line breaks becomes several `data:` lines.
pub fn encode(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    if let Some(e) = event {
        out.put_slice(b"event: ");
        out.put_slice(e.as_bytes());
        out.put_u8(b'\n');
    }
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// Appends an event whose data is `value` as JSON, serialized straight into `out` (serde_json
/// never writes a raw line break, so it is one `data:` line). Line breaks in the event's name
/// are left out, and a name with nothing else is no `event:` field. On an error `out` is left
/// as it was.
pub fn put_json_event<T: serde::Serialize + ?Sized>(
    out: &mut BytesMut,
    event: Option<&str>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if let Some(e) = event.filter(|e| e.chars().any(|c| c != '\r' && c != '\n')) {
        out.put_slice(b"event: ");
        for part in e.split(['\r', '\n']) {
            out.put_slice(part.as_bytes());
        }
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    if let Err(e) = serde_json::to_writer((&mut *out).writer(), value) {
        out.truncate(start);
        return Err(e);
    }
    out.put_slice(b"\n\n");
    Ok(())
}

/// Encodes a `data:` event whose payload is a single-line JSON document (serde_json never emits
/// raw line breaks), without scanning it.
pub fn encode_json_line(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    put_json_line(&mut out, json);
    out.freeze()
}

/// Appends a `data:` event whose payload is a single-line JSON document, without scanning it.
pub fn put_json_line(out: &mut BytesMut, json: &[u8]) {
    out.reserve(json.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(json);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.feed(c).unwrap());
        }
        out
    }

    #[test]
    fn openai_stream_fixture() {
        let body = b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n";
        let events = decode_all(&[body]);
        let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["{\"a\":1}", "{\"a\":2}", "[DONE]"]);
    }

    #[test]
    fn anthropic_style_named_events_and_comments() {
        let body = b": ping\r\nevent: message_start\r\ndata: {\"x\":1}\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n";
        let events = decode_all(&[body]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("message_start"));
        assert_eq!(events[1].event.as_deref(), Some("ping"));
    }

    #[test]
    fn multi_line_data_cr_endings_bom_and_id() {
        let events = decode_all(&[b"\xEF\xBB", b"\xBFid: 7\rdata: a\rdata:b\r", b"\n\r\n"]);
        assert_eq!(
            events,
            [SseEvent {
                event: None,
                data: "a\nb".into(),
                id: Some("7".into())
            }]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert!(decode_all(&[b"event: x\n\n"]).is_empty());
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: partial").unwrap().is_empty());
        assert!(d.has_partial());
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_even_split_mid_character() {
        // "é" is C3 A9; a lone C3 and a stray FF are not UTF-8.
        let events = decode_all(&[b"data: caf\xC3", b"\xA9 \xFF!\nevent: \xC3\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "caf\u{e9} \u{fffd}!");
        assert_eq!(events[0].event.as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn encode_splits_lines() {
        assert_eq!(
            &encode(Some("e"), "a\nb")[..],
            b"event: e\ndata: a\ndata: b\n\n"
        );
        assert_eq!(&encode_json_line(b"{}")[..], b"data: {}\n\n");
    }

    fn arb_event() -> impl Strategy<Value = SseEvent> {
        (
            proptest::option::of("[a-z_]{1,12}"),
            // Data without CR (an encoder normalises CRLF to LF), possibly multi-line, any unicode.
            "[^\r]{0,40}",
        )
            .prop_map(|(event, data)| SseEvent {
                event,
                data,
                id: None,
            })
    }

    #[test]
    fn a_json_event_that_fails_to_encode_leaves_the_frame_as_it_was() {
        let mut frame = BytesMut::from(&b"data: before\n\n"[..]);
        let bad = std::collections::BTreeMap::from([((1, 2), "a tuple is no JSON key")]);
        assert!(put_json_event(&mut frame, Some("x"), &bad).is_err());
        assert_eq!(&frame[..], b"data: before\n\n");
    }

    proptest! {
        /// Whatever the chunking, the decoder yields exactly the encoded events.
        #[test]
        fn round_trip_under_any_split(events in proptest::collection::vec(arb_event(), 0..8),
                                      cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
                                      crlf in any::<bool>()) {
            let mut wire = Vec::new();
            for e in &events {
                let mut enc = encode(e.event.as_deref(), &e.data).to_vec();
                if crlf {
                    let s = String::from_utf8(enc).unwrap().replace('\n', "\r\n");
                    enc = s.into_bytes();
                }
                wire.extend(enc);
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&wire[last..p]);
                last = p;
            }
            chunks.push(&wire[last..]);
            let got = decode_all(&chunks);
            prop_assert_eq!(got, events);
        }

        /// A JSON event written straight into a frame decodes to the same value, whatever the
        /// strings hold (line breaks included), and its name keeps no line break.
        #[test]
        fn json_events_decode_to_their_value(texts in proptest::collection::vec(".*", 0..4),
                                             name in proptest::option::of("[a-z_.\r\n]{0,12}")) {
            let value = serde_json::json!({ "texts": texts, "n": texts.len() });
            let mut frame = BytesMut::from(&b"data: before\n\n"[..]);
            put_json_event(&mut frame, name.as_deref(), &value).unwrap();
            let got = decode_all(&[&frame]);
            prop_assert_eq!(got.len(), 2);
            prop_assert_eq!(&got[0].data, "before");
            let back: serde_json::Value = serde_json::from_str(&got[1].data).unwrap();
            prop_assert_eq!(back, value);
            let expected = name.map(|n| n.replace(['\r', '\n'], "")).filter(|n| !n.is_empty());
            prop_assert_eq!(got[1].event.clone(), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = SseDecoder::new();
            for c in &chunks {
                let _ = d.feed(c);
            }
        }
    }
}
