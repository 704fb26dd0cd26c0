//! Reading an upstream event stream into canonical chunks.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use switchyard_protocol::chat::ChatChunk;
use switchyard_protocol::error::ErrorBody;
use switchyard_protocol::sse::{SseDecoder, SseEvent};

use crate::{ChatStream, ProviderError};

struct State {
    provider: String,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    pending: VecDeque<SseEvent>,
    /// A chunk with a finish reason was seen: the answer is complete even without `[DONE]`.
    finished: bool,
    /// `[DONE]` arrived: the rest of the body is drained so the connection can be reused.
    saw_done: bool,
    done: bool,
}

/// Decodes the body of a successful streaming answer. The stream ends after `[DONE]`; an
/// upstream error event, undecodable data or a connection that breaks before the answer is
/// complete yields one `Err` and ends it.
pub(super) fn chunks(provider: String, resp: reqwest::Response) -> ChatStream {
    let state = State {
        provider,
        body: resp.bytes_stream().boxed(),
        decoder: SseDecoder::new(),
        pending: VecDeque::new(),
        finished: false,
        saw_done: false,
        done: false,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                if st.saw_done {
                    st.drain().await;
                }
                return None;
            }
            if let Some(ev) = st.pending.pop_front() {
                match st.event(ev) {
                    Ok(Some(chunk)) => return Some((Ok(chunk), st)),
                    Ok(None) => continue,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            match st.body.next().await {
                Some(Ok(bytes)) => match st.decoder.feed(&bytes) {
                    Ok(events) => st.pending.extend(events),
                    Err(e) => {
                        st.done = true;
                        let err = ProviderError::Decode {
                            provider: st.provider.clone(),
                            detail: e.to_string(),
                        };
                        return Some((Err(err), st));
                    }
                },
                Some(Err(e)) => {
                    st.done = true;
                    let err = ProviderError::Interrupted {
                        provider: st.provider.clone(),
                        detail: e.without_url().to_string(),
                    };
                    return Some((Err(err), st));
                }
                None => {
                    st.done = true;
                    if st.finished {
                        return None;
                    }
                    let err = ProviderError::Interrupted {
                        provider: st.provider.clone(),
                        detail: "the connection closed before the answer was complete".to_owned(),
                    };
                    return Some((Err(err), st));
                }
            }
        }
    }))
}

impl State {
    /// Reads what is left of the body after `[DONE]` (usually just the end of the chunked
    /// encoding), so the connection goes back to the pool instead of being closed.
    async fn drain(&mut self) {
        let limit = tokio::time::sleep(std::time::Duration::from_millis(100));
        tokio::pin!(limit);
        let mut budget = 64 * 1024usize;
        loop {
            tokio::select! {
                _ = &mut limit => return,
                next = self.body.next() => match next {
                    Some(Ok(b)) if b.len() <= budget => budget -= b.len(),
                    _ => return,
                },
            }
        }
    }

    /// One event: a chunk, nothing (keep-alives, `[DONE]`), or the upstream's error.
    fn event(&mut self, ev: SseEvent) -> Result<Option<ChatChunk>, ProviderError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            self.saw_done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        if ev.event.as_deref() == Some("error") || data.starts_with("{\"error\"") {
            let message = serde_json::from_str::<ErrorBody>(data)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| data.chars().take(300).collect());
            return Err(ProviderError::Interrupted {
                provider: self.provider.clone(),
                detail: format!("upstream error event: {message}"),
            });
        }
        let chunk: ChatChunk = serde_json::from_str(data).map_err(|e| ProviderError::Decode {
            provider: self.provider.clone(),
            detail: format!("stream event: {e}"),
        })?;
        if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
            self.finished = true;
        }
        Ok(Some(chunk))
    }
}
