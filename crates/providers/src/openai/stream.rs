//! OpenAI's event stream: `data: {chunk}` events, then `data: [DONE]`.

use switchyard_protocol::chat::ChatChunk;
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
        let chunk: ChatChunk = serde_json::from_str(data).map_err(|e| ProviderError::Decode {
            provider: provider.to_owned(),
            detail: format!("stream event: {e}"),
        })?;
        if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
            self.finished = true;
        }
        Ok(Parsed::Chunks(vec![chunk]))
    }

    fn complete(&self) -> bool {
        self.finished
    }
}
