//! Anthropic's event stream: named events from `message_start` to `message_stop`, with `ping`s
//! between and an `error` event on failure.

use switchyard_protocol::anthropic::upstream::{Decoded, EventDecoder};
use switchyard_protocol::sse::SseEvent;

use crate::ProviderError;
use crate::events::{EventParser, Parsed};

pub(super) struct AnthropicEvents(EventDecoder);

impl AnthropicEvents {
    pub(super) fn new(created: i64) -> Self {
        Self(EventDecoder::new(created))
    }
}

impl EventParser for AnthropicEvents {
    fn parse(&mut self, provider: &str, ev: SseEvent) -> Result<Parsed, ProviderError> {
        match self.0.event(&ev.data) {
            Ok(Decoded::Chunks(c)) => Ok(Parsed::Chunks(c)),
            Ok(Decoded::Done(last)) => Ok(Parsed::Done(vec![*last])),
            Ok(Decoded::Error(message)) => Err(ProviderError::Interrupted {
                provider: provider.to_owned(),
                detail: format!("upstream error event: {message}"),
            }),
            Err(detail) => Err(ProviderError::Decode {
                provider: provider.to_owned(),
                detail,
            }),
        }
    }

    fn complete(&self) -> bool {
        self.0.finished()
    }
}
