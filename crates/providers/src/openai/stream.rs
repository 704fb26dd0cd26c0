//! OpenAI's event stream: `data: {chunk}` events, then `data: [DONE]`.

use bytes::Bytes;
use switchyard_protocol::chat::{ChatChunk, WireJson};
use switchyard_protocol::error::ErrorBody;
use switchyard_protocol::sse::SseEvent;

use crate::ProviderError;
use crate::events::{EventParser, Parsed};

#[derive(Debug, Default)]
pub(super) struct OpenAiEvents {
    /// A chunk with a finish reason was seen: the answer is complete even without `[DONE]`.
    finished: bool,
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
        let mut chunk: ChatChunk =
            serde_json::from_str(data).map_err(|e| ProviderError::Decode {
                provider: provider.to_owned(),
                detail: format!("stream event: {e}"),
            })?;
        if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
            self.finished = true;
        }
        // The event's own text goes with the chunk (no copy: the string becomes the bytes), so
        // an OpenAI-shaped caller can be sent it as it came.
        let start = data.as_ptr() as usize - ev.data.as_ptr() as usize;
        let end = start + data.len();
        chunk.wire = WireJson::line(Bytes::from(ev.data).slice(start..end));
        Ok(Parsed::Chunks(vec![chunk]))
    }

    fn complete(&self) -> bool {
        self.finished
    }
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
