//! Reading an upstream event stream into canonical chunks, whatever the wire family: the
//! family's [`EventParser`] turns each server-sent event into chunks; this module handles the
//! bytes, the end of the stream and its failures.

use std::collections::VecDeque;

use futures_util::stream;
use switchyard_protocol::chat::ChatChunk;
use switchyard_protocol::sse::{SseDecoder, SseEvent};

use crate::client::{Body, chain};
use crate::{ChatStream, ProviderError};

/// What one event means.
pub(crate) enum Parsed {
    /// Chunks to pass on (possibly none: keep-alives, pings).
    Chunks(Vec<ChatChunk>),
    /// The last chunks: the upstream said the answer is complete.
    Done(Vec<ChatChunk>),
}

/// A wire family's reading of its events.
pub(crate) trait EventParser: Send + 'static {
    fn parse(&mut self, provider: &str, ev: SseEvent) -> Result<Parsed, ProviderError>;
    /// Whether the answer is complete if the connection closes now (without an end marker).
    fn complete(&self) -> bool;
    /// Chunks to emit when the connection closes on a complete answer (Gemini's usage).
    fn end(&mut self) -> Vec<ChatChunk> {
        Vec::new()
    }
}

struct State<P> {
    provider: String,
    body: Body,
    decoder: SseDecoder,
    parser: P,
    pending: VecDeque<ChatChunk>,
    /// The upstream said it is done: drain the rest so the connection can be reused.
    saw_end: bool,
    failed: Option<ProviderError>,
    done: bool,
}

/// Decodes the body of a successful streaming answer. An upstream error event, undecodable data
/// or a connection that breaks before the answer is complete yields one `Err` and ends it.
pub(crate) fn chunks<P: EventParser>(
    provider: String,
    resp: http::Response<Body>,
    parser: P,
) -> ChatStream {
    let state = State {
        provider,
        body: resp.into_body(),
        decoder: SseDecoder::new(),
        parser,
        pending: VecDeque::new(),
        saw_end: false,
        failed: None,
        done: false,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            // Chunks decoded before a failure still reach the caller, then the failure.
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok(chunk), st));
            }
            if let Some(e) = st.failed.take() {
                st.done = true;
                return Some((Err(e), st));
            }
            if st.done {
                if st.saw_end {
                    st.drain().await;
                }
                return None;
            }
            match st.body.chunk().await {
                Some(Ok(bytes)) => match st.decoder.feed(&bytes) {
                    Ok(events) => {
                        for ev in events {
                            match st.parser.parse(&st.provider, ev) {
                                Ok(Parsed::Chunks(c)) => st.pending.extend(c),
                                Ok(Parsed::Done(c)) => {
                                    st.pending.extend(c);
                                    st.saw_end = true;
                                    st.done = true;
                                    break;
                                }
                                Err(e) => {
                                    st.failed = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        st.failed = Some(ProviderError::Decode {
                            provider: st.provider.clone(),
                            detail: e.to_string(),
                        });
                    }
                },
                Some(Err(e)) => {
                    st.failed = Some(ProviderError::Interrupted {
                        provider: st.provider.clone(),
                        detail: chain(&*e),
                    });
                }
                None if st.parser.complete() => {
                    let last = st.parser.end();
                    st.pending.extend(last);
                    st.done = true;
                }
                None => {
                    st.failed = Some(ProviderError::Interrupted {
                        provider: st.provider.clone(),
                        detail: "the connection closed before the answer was complete".to_owned(),
                    });
                }
            }
        }
    }))
}

impl<P> State<P> {
    /// Reads what is left of the body after the end marker (usually just the end of the chunked
    /// encoding), so the connection goes back to the pool instead of being closed.
    async fn drain(&mut self) {
        let limit = tokio::time::sleep(std::time::Duration::from_millis(100));
        tokio::pin!(limit);
        let mut budget = 64 * 1024usize;
        loop {
            tokio::select! {
                _ = &mut limit => return,
                next = self.body.chunk() => match next {
                    Some(Ok(b)) if b.len() <= budget => budget -= b.len(),
                    _ => return,
                },
            }
        }
    }
}
