//! Coalescing: while one call for a key is under way (the leader), identical calls (followers)
//! wait for its answer instead of calling the provider too.
//!
//! The leader records what it receives on the flight's tape: a streamed answer chunk by chunk,
//! so that a follower that asked for a stream gets each chunk as the leader does; a whole
//! answer at once. When the leader's answer is complete it is stored in the cache and the
//! flight ends; a leader that fails before any answer ends it with its failure, which its
//! followers share (they asked the same thing at the same moment, and the gateway has already
//! retried it). A leader whose caller went away, or whose stream broke after its first chunk,
//! abandons the flight: followers that have received nothing look the key up again (one of
//! them leads next), those already streaming end with an error. A follower waits no longer
//! than its own deadline.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, stream};
use switchyard_protocol::chat::ChatChunk;
use switchyard_providers::{ChatStream, ProviderError};
use tokio::sync::watch;

use super::semantic::Probe;
use super::{Answer, Cache, Entry, Key};
use crate::pipeline::Failure;
use crate::registry::Target;
use crate::routing::Attempts;

/// One call under way for a key.
#[derive(Debug)]
pub struct Flight {
    tape: Mutex<Tape>,
    /// Bumped whenever the tape changes.
    version: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Tape {
    /// Who answers, once the leader's stream started.
    served: Option<(Option<Target>, Option<Arc<str>>)>,
    chunks: Vec<ChatChunk>,
    end: Option<End>,
}

#[derive(Debug, Clone)]
enum End {
    Done(Arc<Entry>),
    Failed(Box<Failure>),
    Abandoned,
}

/// What a follower got.
pub enum Followed<T> {
    Answer(T),
    Failed(Box<Failure>),
    /// The leader's caller went away before anything came: look the key up again.
    Abandoned,
}

impl Flight {
    pub(super) fn new() -> Self {
        Self {
            tape: Mutex::new(Tape::default()),
            version: watch::channel(0).0,
        }
    }

    fn tape(&self) -> MutexGuard<'_, Tape> {
        self.tape.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn change(&self, f: impl FnOnce(&mut Tape)) {
        f(&mut self.tape());
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits for the leader's whole answer.
    pub async fn whole(&self) -> Followed<Arc<Entry>> {
        let mut changed = self.version.subscribe();
        loop {
            if let Some(end) = self.tape().end.clone() {
                return match end {
                    End::Done(entry) => Followed::Answer(entry),
                    End::Failed(f) => Followed::Failed(f),
                    End::Abandoned => Followed::Abandoned,
                };
            }
            if changed.changed().await.is_err() {
                return Followed::Abandoned;
            }
        }
    }

    /// Waits for the leader's first chunk (or its end), then streams its answer as it comes,
    /// with who answers.
    pub async fn stream(
        self: Arc<Self>,
    ) -> Followed<(Option<Target>, Option<Arc<str>>, ChatStream)> {
        let mut changed = self.version.subscribe();
        let served = loop {
            {
                let tape = self.tape();
                match &tape.end {
                    Some(End::Failed(f)) if tape.chunks.is_empty() => {
                        return Followed::Failed(f.clone());
                    }
                    Some(End::Abandoned) if tape.chunks.is_empty() => {
                        return Followed::Abandoned;
                    }
                    Some(End::Done(entry)) => break (entry.target.clone(), entry.route.clone()),
                    _ => {}
                }
                if !tape.chunks.is_empty()
                    && let Some(served) = &tape.served
                {
                    break served.clone();
                }
            }
            if changed.changed().await.is_err() {
                return Followed::Abandoned;
            }
        };
        let (target, route) = served;
        let provider = target
            .as_ref()
            .map_or_else(String::new, |t| t.provider_name().to_owned());
        Followed::Answer((target, route, Box::pin(self.tail(changed, provider))))
    }

    /// The tape from its start, then its end.
    fn tail(
        self: Arc<Self>,
        changed: watch::Receiver<u64>,
        provider: String,
    ) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send + 'static {
        struct Tail {
            flight: Arc<Flight>,
            changed: watch::Receiver<u64>,
            at: usize,
            /// The stored answer's chunks, once the flight is done.
            replay: Option<Vec<ChatChunk>>,
            provider: String,
            over: bool,
        }
        let state = Tail {
            flight: self,
            changed,
            at: 0,
            replay: None,
            provider,
            over: false,
        };
        stream::unfold(state, |mut s| async move {
            loop {
                if s.over {
                    return None;
                }
                if let Some(chunks) = &s.replay {
                    let next = chunks.get(s.at).cloned()?;
                    s.at += 1;
                    return Some((Ok(next), s));
                }
                {
                    let tape = s.flight.tape();
                    if let Some(chunk) = tape.chunks.get(s.at).cloned() {
                        drop(tape);
                        s.at += 1;
                        return Some((Ok(chunk), s));
                    }
                    match &tape.end {
                        Some(End::Done(entry)) => {
                            let chunks = entry.answer.chunks();
                            drop(tape);
                            s.replay = Some(chunks);
                            continue;
                        }
                        Some(End::Failed(_) | End::Abandoned) => {
                            drop(tape);
                            s.over = true;
                            let e = ProviderError::Interrupted {
                                provider: s.provider.clone(),
                                detail: "the identical call this one was joined to ended early"
                                    .to_owned(),
                            };
                            return Some((Err(e), s));
                        }
                        None => {}
                    }
                }
                if s.changed.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// The call that fills the cache for a key. Dropped unsettled, it abandons its flight.
#[derive(Debug)]
pub struct Leader {
    pub(super) cache: Arc<Cache>,
    pub(super) key: Key,
    pub(super) ttl: std::time::Duration,
    pub(super) flight: Arc<Flight>,
    pub(super) settled: bool,
    pub(super) probe: Option<Probe>,
}

impl Leader {
    /// Settles a whole answer: stored and handed to the followers, or its failure shared.
    pub fn whole(
        mut self,
        result: &Result<(Attempts, switchyard_protocol::chat::ChatResponse), Failure>,
    ) {
        let end = match result {
            Ok((attempts, resp)) => {
                // The upstream's body may be a slice of a larger read buffer; a stored answer
                // does not keep it alive.
                let mut resp = resp.clone();
                resp.changed();
                End::Done(self.keep(Answer::Whole(Box::new(resp)), attempts))
            }
            Err(f) => End::Failed(Box::new(f.clone())),
        };
        self.settle(end);
    }

    /// Settles a failure before any answer.
    pub fn failed(mut self, failure: &Failure) {
        self.settle(End::Failed(Box::new(failure.clone())));
    }

    /// Records a stream as it passes to the caller; a complete one is stored when it ends.
    pub fn record(self, upstream: ChatStream, attempts: &Attempts) -> ChatStream {
        let served = (attempts.target.clone(), attempts.route.clone());
        self.flight.change(|t| t.served = Some(served));
        let attempts = attempts.clone();
        // `None` once settled; dropped unsettled with the stream, it abandons the flight.
        let mut leader = Some(self);
        crate::pipeline::tap(upstream, move |item| match item {
            Some(Ok(chunk)) => {
                if let Some(l) = &leader {
                    l.flight.change(|t| t.chunks.push(chunk.clone()));
                }
            }
            Some(Err(_)) => {
                // Failed after its first chunk: the leader's caller has part of an answer, and
                // a follower that has received nothing may still get a whole one by its own
                // call (which, unlike this one, can be retried), so the flight is abandoned
                // rather than failed.
                if let Some(mut l) = leader.take() {
                    l.settle(End::Abandoned);
                }
            }
            None => {
                if let Some(mut l) = leader.take() {
                    let mut chunks = std::mem::take(&mut l.flight.tape().chunks);
                    // The cache keeps the chunks' fields, not the upstream's bytes as well.
                    chunks.iter_mut().for_each(ChatChunk::changed);
                    let entry = l.keep(Answer::Stream(chunks), &attempts);
                    l.settle(End::Done(entry));
                }
            }
        })
    }

    /// Index the answer, once stored, for similar requests too.
    pub fn index(&mut self, probe: Probe) {
        self.probe = Some(probe);
    }

    /// Settles with another call's stored answer (a similar request's): the followers get it.
    pub fn serve(mut self, entry: Arc<Entry>) {
        self.settle(End::Done(entry));
    }

    /// Stores a complete answer (and indexes it, if it has a probe).
    fn keep(&mut self, answer: Answer, attempts: &Attempts) -> Arc<Entry> {
        let entry = self.cache.put(self.key, answer, attempts, self.ttl);
        if let Some(p) = self.probe.take() {
            self.cache.semantic.insert(p.context, self.key, p.vector);
        }
        entry
    }

    fn settle(&mut self, end: End) {
        self.settled = true;
        self.flight.change(|t| t.end = Some(end));
        self.cache.land(&self.key, &self.flight);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(End::Abandoned);
        }
    }
}
