//! Resumable streams: the stream buffer.
//!
//! A resumable stream (`[streams] resumable = true`, or a call with
//! `x-switchyard-resumable: true`) is produced by a task of its own, independent of the
//! caller's connection: the task reads the upstream, encodes each event in the caller's
//! protocol, numbers it (an SSE `id:` line) and appends it to the stream's buffer under the
//! call's request id. The caller's response is a reader of that buffer, like any later reader:
//! `GET /v1/streams/{id}` with `Last-Event-ID` (or `?after=N`) gets the events after N, then
//! follows the stream live until it ends — or, after it ended, the rest at once. No second
//! upstream call is made and nothing is paid twice: the call was metered and logged once, by
//! its task.
//!
//! When the caller goes away the task goes on to the end (`[streams] detach = true`, the
//! default), so the answer can be collected later; with `detach = false` it stops, as an
//! unbuffered stream would, and the buffer keeps what was produced.
//!
//! Buffers live in this process (bounded by `[streams] max_mb`; ended streams are kept for
//! `[streams] ttl`, the oldest dropped first beyond the bound) and, with `[state] redis`, are
//! mirrored to a Redis stream (`switchyard:stream:<id>`, entries written in batches in the
//! background, expiring `ttl` after the last write), so that any replica can serve the resume.
//! A Redis failure stops the mirroring of that stream (it stays resumable on its replica).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, stream};
use tokio::sync::{Notify, mpsc, watch};

use crate::config::StreamsPolicy;
use crate::shared::Shared;

/// A reader's events: frames of one or more SSE events.
pub type Events = Pin<Box<dyn Stream<Item = Result<Bytes, std::convert::Infallible>> + Send>>;

/// How long a reader of a Redis stream waits for news before checking the stream still exists.
const BLOCK_MS: u64 = 2_000;
/// A live stream's writer adds a heartbeat entry when it has written nothing for this long…
const HEARTBEAT: Duration = Duration::from_secs(5);
/// …and a reader on another replica gives up on a stream that shows no entry for this long
/// (its replica died).
const STALLED: Duration = Duration::from_secs(16);

pub struct Streams {
    policy: StreamsPolicy,
    local: Mutex<Local>,
    shared: Option<Arc<Shared>>,
    /// Streams whose task is still producing (a shutdown waits for them).
    active: AtomicUsize,
    idle: Notify,
    resumes: AtomicU64,
    /// How long a stream on another replica may show no entry before a reader gives up.
    stalled: Duration,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Local {
    map: HashMap<uuid::Uuid, Arc<Buffer>>,
    /// Ended streams, oldest first, with when they ended.
    ended: VecDeque<(uuid::Uuid, Instant)>,
    bytes: u64,
}

/// One stream's events, numbered from 1.
struct Buffer {
    owner: Option<String>,
    events: Mutex<Vec<Bytes>>,
    bytes: AtomicU64,
    /// (events so far, ended).
    state: watch::Sender<(usize, bool)>,
}

/// Why a stream cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Never buffered, expired, or another key's.
    NotFound,
}

impl Streams {
    pub fn new(policy: StreamsPolicy, shared: Option<Arc<Shared>>) -> Self {
        Self {
            policy,
            local: Mutex::default(),
            shared,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            resumes: AtomicU64::new(0),
            stalled: STALLED,
        }
    }

    /// Whether a stream is buffered: the caller's header, else the configuration.
    pub fn wanted(&self, header: Option<bool>) -> bool {
        header.unwrap_or(self.policy.resumable)
    }

    /// Whether the task goes on when its caller goes away.
    pub fn detach(&self) -> bool {
        self.policy.detach
    }

    /// Starts buffering the stream `id` of the key `owner`.
    pub fn open(self: &Arc<Self>, id: uuid::Uuid, owner: Option<String>) -> Writer {
        let (state, _) = watch::channel((0, false));
        let buffer = Arc::new(Buffer {
            owner: owner.clone(),
            events: Mutex::default(),
            bytes: AtomicU64::new(0),
            state,
        });
        {
            let mut local = self.lock();
            self.expire(&mut local);
            local.map.insert(id, buffer.clone());
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        let mirror = self.shared.as_ref().filter(|s| s.available()).map(|s| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(mirror(s.clone(), id, owner, self.policy.ttl, rx));
            tx
        });
        Writer {
            streams: self.clone(),
            id,
            buffer,
            next: 1,
            mirror,
            ended: false,
        }
    }

    /// The events of stream `id` after event `after`, then the rest live, for the key
    /// `caller` (a stream is only its own key's). Looks in this process first, then in Redis.
    pub async fn read(
        &self,
        id: uuid::Uuid,
        after: u64,
        caller: Option<&str>,
    ) -> Result<Events, Missing> {
        let local = {
            let mut l = self.lock();
            self.expire(&mut l);
            l.map.get(&id).cloned()
        };
        if let Some(buffer) = local {
            if buffer.owner.as_deref() != caller {
                return Err(Missing::NotFound);
            }
            self.resumes.fetch_add(1, Ordering::Relaxed);
            return Ok(follow_local(buffer, after));
        }
        let Some(shared) = self.shared.clone().filter(|s| s.available()) else {
            return Err(Missing::NotFound);
        };
        let events = read_shared(shared, id, after, caller, self.stalled).await?;
        self.resumes.fetch_add(1, Ordering::Relaxed);
        Ok(events)
    }

    /// The reader of a stream that the caller who started it gets.
    pub fn first_reader(&self, writer: &Writer) -> Events {
        follow_local(writer.buffer.clone(), 0)
    }

    /// Waits until every stream's task has ended, or `deadline` passes.
    pub async fn drained(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Reads through `GET /v1/streams/{id}` so far.
    pub fn resumes(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }

    /// Bytes held by this process's buffers.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops ended streams past their time, and the oldest ended ones beyond the size bound.
    fn expire(&self, local: &mut Local) {
        let now = Instant::now();
        while let Some((id, at)) = local.ended.front().copied() {
            let old = now.duration_since(at) >= self.policy.ttl;
            if !(old || local.bytes > self.policy.max_bytes) {
                break;
            }
            local.ended.pop_front();
            if let Some(b) = local.map.remove(&id) {
                local.bytes = local.bytes.saturating_sub(b.bytes.load(Ordering::Relaxed));
            }
        }
    }

    fn ended(&self, id: uuid::Uuid) {
        {
            let mut local = self.lock();
            local.ended.push_back((id, Instant::now()));
            self.expire(&mut local);
        }
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// Appends a stream's events; ends the stream when dropped.
pub struct Writer {
    streams: Arc<Streams>,
    id: uuid::Uuid,
    buffer: Arc<Buffer>,
    next: u64,
    mirror: Option<mpsc::UnboundedSender<Op>>,
    ended: bool,
}

enum Op {
    Event(u64, Bytes),
    End,
}

impl Writer {
    /// Appends the SSE events in `frame` (whole events, as the surfaces' encoders write them),
    /// each with an `id:` line carrying its number.
    pub fn push(&mut self, frame: &[u8]) {
        let mut added = 0u64;
        let mut rest = frame;
        let mut new = Vec::new();
        while !rest.is_empty() {
            let end = find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
            let (event, tail) = rest.split_at(end);
            rest = tail;
            let n = self.next;
            self.next += 1;
            let mut e = BytesMut::with_capacity(event.len() + 12);
            e.extend_from_slice(format!("id: {n}\n").as_bytes());
            e.extend_from_slice(event);
            let e = e.freeze();
            added += e.len() as u64;
            if let Some(m) = &self.mirror {
                let _ = m.send(Op::Event(n, e.clone()));
            }
            new.push(e);
        }
        if new.is_empty() {
            return;
        }
        let count = {
            let mut events = self.buffer.events.lock().unwrap_or_else(|e| e.into_inner());
            events.extend(new);
            events.len()
        };
        self.buffer.bytes.fetch_add(added, Ordering::Relaxed);
        self.streams.lock().bytes += added;
        self.buffer.state.send_modify(|s| s.0 = count);
    }

    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.buffer.state.send_modify(|s| s.1 = true);
        if let Some(m) = self.mirror.take() {
            let _ = m.send(Op::End);
        }
        self.streams.ended(self.id);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.end();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The events of a local buffer after `after`, then live until it ends; each frame holds what
/// was there when the reader woke.
fn follow_local(buffer: Arc<Buffer>, after: u64) -> Events {
    let rx = buffer.state.subscribe();
    let start = usize::try_from(after).unwrap_or(usize::MAX);
    Box::pin(stream::unfold(
        (buffer, rx, start),
        |(buffer, mut rx, next)| async move {
            loop {
                let (count, ended) = *rx.borrow_and_update();
                if next < count {
                    let frame = {
                        let events = buffer.events.lock().unwrap_or_else(|e| e.into_inner());
                        let mut frame = BytesMut::new();
                        for e in events.get(next..count).unwrap_or_default() {
                            frame.extend_from_slice(e);
                        }
                        frame.freeze()
                    };
                    return Some((Ok(frame), (buffer, rx, count)));
                }
                if ended || rx.changed().await.is_err() {
                    return None;
                }
            }
        },
    ))
}

/// `switchyard:stream:<id>`: a Redis stream whose first entry holds the owner, then one entry
/// per event (`n`, `e`), then an `end` entry.
fn stream_key(shared: &Shared, id: uuid::Uuid) -> String {
    shared.key(&format!("stream:{id}"))
}

/// Writes a stream's events to Redis in batches, as they come.
async fn mirror(
    shared: Arc<Shared>,
    id: uuid::Uuid,
    owner: Option<String>,
    ttl: Duration,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    let key = stream_key(&shared, id);
    let ttl_ms = ttl.as_millis().max(1) as u64;
    let mut conn = shared.conn();
    let mut first = true;
    let mut batch = Vec::new();
    loop {
        match tokio::time::timeout(HEARTBEAT, ops.recv_many(&mut batch, 256)).await {
            Ok(0) => return,
            Ok(_) => {}
            // Nothing for a while (a model thinking): tell readers the stream is alive.
            Err(_) => {}
        }
        let mut pipe = redis::pipe();
        if batch.is_empty() && !first {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("hb")
                .arg(1)
                .ignore();
        }
        if first {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("owner")
                .arg(owner.as_deref().unwrap_or(""))
                .ignore();
            first = false;
        }
        let mut done = false;
        for op in batch.drain(..) {
            match op {
                Op::Event(n, e) => {
                    pipe.cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("n")
                        .arg(n)
                        .arg("e")
                        .arg(e.as_ref())
                        .ignore();
                }
                Op::End => {
                    pipe.cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("end")
                        .arg(1)
                        .ignore();
                    done = true;
                }
            }
        }
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            shared.failed("buffering a stream in", &e);
            return;
        }
        if done {
            return;
        }
    }
}

/// One entry of a Redis stream: its id and fields.
type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

fn entries(v: redis::Value) -> Vec<Entry> {
    let redis::Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let redis::Value::Array(parts) = item else {
            continue;
        };
        let mut parts = parts.into_iter();
        let (Some(redis::Value::BulkString(id)), Some(redis::Value::Array(fields))) =
            (parts.next(), parts.next())
        else {
            continue;
        };
        let mut pairs = Vec::new();
        let mut fields = fields.into_iter();
        while let (Some(redis::Value::BulkString(k)), Some(redis::Value::BulkString(v))) =
            (fields.next(), fields.next())
        {
            pairs.push((k, v));
        }
        out.push((String::from_utf8_lossy(&id).into_owned(), pairs));
    }
    out
}

fn field<'a>(entry: &'a Entry, name: &str) -> Option<&'a [u8]> {
    entry
        .1
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// What an entry adds for a reader after `after`: an event, or the end.
enum Read {
    Event(Bytes),
    Skip,
    End,
}

fn read_entry(entry: &Entry, after: u64) -> Read {
    if field(entry, "end").is_some() {
        return Read::End;
    }
    let n = field(entry, "n")
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse::<u64>().ok());
    match (n, field(entry, "e")) {
        (Some(n), Some(e)) if n > after => Read::Event(Bytes::copy_from_slice(e)),
        _ => Read::Skip,
    }
}

/// A stream another replica buffers: what Redis holds, then what is added, until its end.
async fn read_shared(
    shared: Arc<Shared>,
    id: uuid::Uuid,
    after: u64,
    caller: Option<&str>,
    stalled: Duration,
) -> Result<Events, Missing> {
    let key = stream_key(&shared, id);
    let mut conn = shared.conn();
    let all: redis::Value = match redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            shared.failed("reading a buffered stream from", &e);
            return Err(Missing::NotFound);
        }
    };
    let all = entries(all);
    let Some(head) = all.first() else {
        return Err(Missing::NotFound);
    };
    let owner = field(head, "owner").unwrap_or_default();
    if owner != caller.unwrap_or_default().as_bytes() {
        return Err(Missing::NotFound);
    }
    let mut frame = BytesMut::new();
    let mut ended = false;
    for entry in &all {
        match read_entry(entry, after) {
            Read::Event(e) => frame.extend_from_slice(&e),
            Read::Skip => {}
            Read::End => ended = true,
        }
    }
    let last = all.last().map(|e| e.0.clone()).unwrap_or_default();
    let first = stream::iter((!frame.is_empty()).then(|| Ok(frame.freeze())));
    if ended {
        return Ok(Box::pin(first));
    }
    // Live: block on the stream (a connection of its own) until its end.
    let live = stream::unfold(
        Some((shared, key, last, None::<redis::aio::MultiplexedConnection>)),
        move |state| async move {
            let (shared, key, mut last, mut conn) = state?;
            let mut heard = Instant::now();
            loop {
                if conn.is_none() {
                    conn = shared.dedicated().await.ok();
                }
                let c = conn.as_mut()?;
                let got: redis::Value = redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(BLOCK_MS)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(&last)
                    .query_async(c)
                    .await
                    .ok()?;
                // [[key, [entries]]], or nil after the block time.
                let news = match got {
                    redis::Value::Array(streams) => streams
                        .into_iter()
                        .filter_map(|s| match s {
                            redis::Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                            _ => None,
                        })
                        .flat_map(entries)
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                if news.is_empty() {
                    let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(c).await.ok()?;
                    if exists == 0 || heard.elapsed() >= stalled {
                        return None;
                    }
                    continue;
                }
                heard = Instant::now();
                let mut frame = BytesMut::new();
                let mut ended = false;
                for entry in &news {
                    match read_entry(entry, after) {
                        Read::Event(e) => frame.extend_from_slice(&e),
                        Read::Skip => {}
                        Read::End => ended = true,
                    }
                }
                if let Some(e) = news.last() {
                    last.clone_from(&e.0);
                }
                if frame.is_empty() {
                    if ended {
                        return None;
                    }
                    continue;
                }
                let next = (!ended).then_some((shared, key, last, conn));
                return Some((Ok(frame.freeze()), next));
            }
        },
    );
    Ok(Box::pin(futures_util::StreamExt::chain(first, live)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn shared(test: &str) -> Option<Arc<Shared>> {
        let Ok(url) = std::env::var("SWITCHYARD_TEST_REDIS") else {
            eprintln!("\n*** SKIPPED {test}: SWITCHYARD_TEST_REDIS is not set (run .ci/run).\n");
            return None;
        };
        let prefix = format!("sytest:streams:{}:", crate::request_id::new_v7());
        Some(Arc::new(Shared::connect(&url, &prefix).await.unwrap()))
    }

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn events_are_numbered_buffered_and_read_from_any_point() {
        let streams = Arc::new(Streams::new(StreamsPolicy::default(), None));
        let id = crate::request_id::new_v7();
        let mut w = streams.open(id, Some("key_1".into()));
        // One frame of two events, then one more.
        w.push(b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\n");
        w.push(b"event: x\ndata: 3\n\n");
        assert_eq!(streams.active(), 1);
        drop(w);
        assert_eq!(streams.active(), 0);
        let all: Vec<Bytes> = streams
            .read(id, 0, Some("key_1"))
            .await
            .unwrap()
            .map(|f| f.unwrap())
            .collect()
            .await;
        assert_eq!(
            text(&all),
            "id: 1\ndata: {\"a\":1}\n\nid: 2\ndata: {\"a\":2}\n\nid: 3\nevent: x\ndata: 3\n\n"
        );
        let rest: Vec<Bytes> = streams
            .read(id, 2, Some("key_1"))
            .await
            .unwrap()
            .map(|f| f.unwrap())
            .collect()
            .await;
        assert_eq!(text(&rest), "id: 3\nevent: x\ndata: 3\n\n");
        assert!(streams.read(id, 0, Some("key_2")).await.is_err());
        assert!(streams.read(id, 0, None).await.is_err());
    }

    #[tokio::test]
    async fn ended_streams_beyond_the_bound_are_dropped_oldest_first() {
        let policy = StreamsPolicy {
            max_bytes: 120,
            ..StreamsPolicy::default()
        };
        let streams = Arc::new(Streams::new(policy, None));
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| crate::request_id::new_v7()).collect();
        for id in &ids {
            let mut w = streams.open(*id, None);
            w.push(format!("data: {}\n\n", "x".repeat(40)).as_bytes());
        }
        // 54 bytes each: the first went when the third ended.
        assert!(streams.read(ids[0], 0, None).await.is_err());
        assert!(streams.read(ids[1], 0, None).await.is_ok());
        assert!(streams.read(ids[2], 0, None).await.is_ok());
        assert!(streams.bytes() <= 120, "{}", streams.bytes());
    }

    #[tokio::test]
    async fn a_reader_gives_up_on_a_stream_whose_replica_died() {
        let Some(shared) = shared("a_reader_gives_up_on_a_stream_whose_replica_died").await else {
            return;
        };
        // What a replica that died after two events left in Redis: no end entry.
        let id = crate::request_id::new_v7();
        let key = stream_key(&shared, id);
        let mut conn = shared.conn();
        for fields in [
            vec![("owner", "k".as_bytes())],
            vec![("n", b"1".as_slice()), ("e", b"id: 1\ndata: a\n\n")],
            vec![("n", b"2".as_slice()), ("e", b"id: 2\ndata: b\n\n")],
        ] {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&key).arg("*");
            for (f, v) in fields {
                cmd.arg(f).arg(v);
            }
            let _: String = cmd.query_async(&mut conn).await.unwrap();
        }
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        let started = Instant::now();
        let events = read_shared(shared, id, 1, Some("k"), Duration::from_millis(2500))
            .await
            .unwrap();
        let frames: Vec<Bytes> = events.map(|f| f.unwrap()).collect().await;
        assert_eq!(text(&frames), "id: 2\ndata: b\n\n");
        // Given up after the stall time (and at most one more blocking read).
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(2500), "{took:?}");
        assert!(
            took < Duration::from_millis(2500 + BLOCK_MS + 1500),
            "{took:?}"
        );
    }
}
