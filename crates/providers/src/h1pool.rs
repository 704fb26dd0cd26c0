//! Plain-HTTP upstreams (`http://`: a local model server, the mock) over HTTP/1.1 connections
//! that the call's own task drives.
//!
//! hyper-util's pooled client runs each connection in a task of its own, so every request and
//! every piece of an answer crosses between that task and the call's: a wake-up, and often a
//! thread's, per hand-off, and a stream's events leave the gateway one write each because the
//! call's task sees them one at a time. Here the connection is polled wherever its answer is:
//! while the head is awaited, by the call; while the body is read, by whoever reads it (for a
//! stream, the caller's connection task). So a call costs the system calls of the exchange
//! itself, and the events of one upstream read are all ready at once and leave in one write.
//!
//! Each Tokio runtime has connections of its own: a connection's I/O wakes the runtime it was
//! opened in, so a call made on another runtime (the gateway serves on one single-threaded
//! runtime per thread) would wait for that runtime's thread to pass the wake-up on.
//!
//! A connection goes back to the pool when its answer's body has been read to the end; a body
//! dropped early closes its connection (that is how a caller who goes away cancels the call).
//! Idle connections are reused newest first and dropped after [`IDLE_TIMEOUT`]. A request
//! that an idle connection could not take (the upstream closed it meanwhile) is sent again on
//! another; one that was written is never sent twice.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http_body::Frame;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::BoxError;

/// How long a connection may sit idle before it is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream host, at most.
const MAX_IDLE: usize = 256;
/// TCP keep-alive on upstream connections.
const KEEPALIVE: Duration = Duration::from_secs(60);

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Where idle connections are kept: by upstream host, and by the runtime that opened them.
///
/// The host compares as written: `Authority`'s own `Hash` lowercases it and feeds the hasher
/// one byte at a time (callgrind, 2,000 plain calls: 1.5 k instructions a call more for the
/// look-up and the return). A provider's URL is parsed once, so its calls always write it the
/// same way.
#[derive(Clone)]
struct Key {
    authority: Authority,
    runtime: Option<tokio::runtime::Id>,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.authority.as_str() == other.authority.as_str() && self.runtime == other.runtime
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.authority.as_str().hash(state);
        self.runtime.hash(state);
    }
}

impl Key {
    fn here(authority: Authority) -> Self {
        Self {
            authority,
            runtime: tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
        }
    }
}

/// One HTTP/1.1 connection: the side that sends requests and the side that does the I/O.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    io: Connection,
    /// The pool's key: where it goes back to.
    key: Key,
    /// Whether the I/O side has finished (closed or failed); it is not polled again then.
    done: bool,
}

impl Conn {
    /// Lets the connection read and write what it can.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && Pin::new(&mut self.io).poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Waits until the connection can take a request; an error if it closed instead.
    async fn ready(&mut self) -> Result<(), SendError> {
        poll_fn(|cx| {
            self.drive(cx);
            if self.done {
                return Poll::Ready(Err(SendError::Closed));
            }
            self.send.poll_ready(cx).map_err(SendError::Exchange)
        })
        .await
    }
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The connections to plain-HTTP upstreams; cloning it shares them.
#[derive(Clone)]
pub(crate) struct H1Pool {
    idle: Arc<Mutex<foldhash::HashMap<Key, Vec<Idle>>>>,
    connect_timeout: Duration,
}

/// Why a request could not be sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made.
    Connect(String),
    /// The exchange failed (the upstream closed the connection, or sent what is not HTTP).
    Exchange(hyper::Error),
    /// The upstream closed the connection before it could take the request.
    Closed,
}

impl H1Pool {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Self {
            idle: Arc::default(),
            connect_timeout,
        }
    }

    /// Sends `req` (an `http://` URI) and returns the answer's head; its body drives the
    /// connection from then on.
    pub(crate) async fn send(
        &self,
        mut req: http::Request<Bytes>,
    ) -> Result<http::Response<PooledBody>, SendError> {
        let authority = req
            .uri()
            .authority()
            .cloned()
            .ok_or_else(|| SendError::Connect("the URL has no host".into()))?;
        // HTTP/1.1 wants the path in the request line and the host in its own header.
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = http::Uri::from(path);
        if !req.headers().contains_key(http::header::HOST) {
            let host = match authority.port_u16() {
                Some(80) => authority.host(),
                _ => authority.as_str(),
            };
            if let Ok(value) = http::HeaderValue::from_str(host) {
                req.headers_mut().insert(http::header::HOST, value);
            }
        }
        let mut req = req.map(Full::new);
        let key = Key::here(authority);
        loop {
            let (mut conn, reused) = match self.take(&key) {
                Some(conn) => (conn, true),
                None => (self.connect(&key).await?, false),
            };
            if let Err(e) = conn.ready().await {
                if reused {
                    continue;
                }
                return Err(e);
            }
            let mut answer = std::pin::pin!(conn.send.try_send_request(req));
            let head = poll_fn(|cx| {
                conn.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match head {
                Ok(resp) => {
                    let pool = self.clone();
                    return Ok(resp.map(|body| PooledBody {
                        body,
                        conn: Some(conn),
                        pool,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: the connection was closed under it; another may take it.
                    Some(back) if reused => req = back,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    }

    /// The newest idle connection for `key` that has not been idle too long.
    fn take(&self, key: &Key) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < IDLE_TIMEOUT && !entry.conn.done {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, conn: Box<Conn>) {
        if conn.done || conn.send.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(conn.key.clone()).or_default();
        // The oldest are first: those idle too long go, then the oldest over the bound.
        let stale = list
            .iter()
            .take_while(|e| e.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        list.drain(..stale);
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// A new connection; boxed once here, so that an answer's body stays small as it moves.
    async fn connect(&self, key: &Key) -> Result<Box<Conn>, SendError> {
        let authority = &key.authority;
        let port = authority.port_u16().unwrap_or(80);
        // A bracketed IPv6 literal connects without its brackets.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(SendError::Connect(format!("tcp connect error: {e}"))),
            Err(_) => {
                return Err(SendError::Connect(format!(
                    "tcp connect timed out after {:?}",
                    self.connect_timeout
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let (send, io) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(SendError::Exchange)?;
        Ok(Box::new(Conn {
            send,
            io,
            key: key.clone(),
            done: false,
        }))
    }
}

/// An answer's body that drives its connection, and gives the connection back to the pool
/// once read to the end.
pub(crate) struct PooledBody {
    body: Incoming,
    conn: Option<Box<Conn>>,
    pool: H1Pool,
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut driven = false;
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    if let Some(mut conn) = this.conn.take() {
                        // Let the connection see that the answer is complete before it waits.
                        conn.drive(cx);
                        this.pool.put(conn);
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(frame)) => return Poll::Ready(Some(frame.map_err(Into::into))),
                // What the connection has read may hold the next frame: decode it and look
                // again, once, before waiting.
                Poll::Pending => match &mut this.conn {
                    Some(conn) if !driven => {
                        conn.drive(cx);
                        driven = true;
                    }
                    _ => return Poll::Pending,
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// How the scripted upstream treats each connection.
    #[derive(Clone, Copy)]
    enum Script {
        /// Answers every request on the connection.
        KeepAlive,
        /// Answers one request (without `connection: close`), then closes.
        CloseAfterOne,
        /// Starts a chunked answer and holds it open until the client goes away.
        Hold,
    }

    struct Upstream {
        base: String,
        accepted: Arc<AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
        hung_up: Arc<tokio::sync::Notify>,
    }

    async fn upstream(script: Script) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let hung_up = Arc::new(tokio::sync::Notify::new());
        let (a, h, n) = (accepted.clone(), heads.clone(), hung_up.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                let (h, n) = (h.clone(), n.clone());
                tokio::spawn(async move {
                    while let Some(head) = read_request(&mut s).await {
                        h.lock().unwrap().push(head);
                        match script {
                            Script::KeepAlive | Script::CloseAfterOne => {
                                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                    .await
                                    .unwrap();
                                if matches!(script, Script::CloseAfterOne) {
                                    return;
                                }
                            }
                            Script::Hold => {
                                s.write_all(
                                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                                )
                                .await
                                .unwrap();
                                let mut rest = [0u8; 64];
                                while s.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                                n.notify_one();
                                return;
                            }
                        }
                    }
                });
            }
        });
        Upstream {
            base,
            accepted,
            heads,
            hung_up,
        }
    }

    /// One request's head (to the blank line), its body read by `content-length`; `None` at
    /// the end of the connection.
    async fn read_request(s: &mut TcpStream) -> Option<String> {
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                while buf.len() < end + 4 + len {
                    let n = s.read(&mut piece).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&piece[..n]);
                }
                return Some(head);
            }
            let n = s.read(&mut piece).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&piece[..n]);
        }
    }

    fn post(uri: &str) -> http::Request<Bytes> {
        http::Request::post(uri)
            .header("content-type", "application/json")
            .body(Bytes::from_static(b"{\"model\":\"m\"}"))
            .unwrap()
    }

    async fn call(pool: &H1Pool, uri: &str) -> Bytes {
        let resp = pool.send(post(uri)).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn calls_in_turn_share_one_connection_and_send_origin_form_with_host() {
        let up = upstream(Script::KeepAlive).await;
        let pool = H1Pool::new(Duration::from_secs(2));
        for _ in 0..3 {
            assert_eq!(call(&pool, &format!("{}/v1/chat?x=1", up.base)).await, "ok");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
        let heads = up.heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 3);
        let authority = up.base.trim_start_matches("http://");
        for head in heads {
            assert!(head.starts_with("post /v1/chat?x=1 http/1.1\r\n"), "{head}");
            assert!(head.contains(&format!("\r\nhost: {authority}")), "{head}");
        }
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_that_later_calls_reuse() {
        let up = upstream(Script::KeepAlive).await;
        let pool = H1Pool::new(Duration::from_secs(2));
        let uri = format!("{}/v1/x", up.base);
        // Both heads are in flight before either body is read: two connections.
        let (a, b) = tokio::join!(pool.send(post(&uri)), pool.send(post(&uri)));
        for resp in [a.unwrap(), b.unwrap()] {
            assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        for _ in 0..4 {
            call(&pool, &uri).await;
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn each_runtime_reuses_only_the_connections_it_opened() {
        let up = upstream(Script::KeepAlive).await;
        let pool = H1Pool::new(Duration::from_secs(2));
        let uri = format!("{}/v1/x", up.base);
        call(&pool, &uri).await;
        call(&pool, &uri).await;
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
        // Another runtime, on another thread, as a serving thread has: one connection of its
        // own, reused for its second call, while this runtime keeps serving the upstream.
        let (other, at) = (pool.clone(), uri.clone());
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                call(&other, &at).await;
                call(&other, &at).await;
            });
        })
        .await
        .unwrap();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        // And this runtime still has its own.
        call(&pool, &uri).await;
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
        let up = upstream(Script::CloseAfterOne).await;
        let pool = H1Pool::new(Duration::from_secs(2));
        let uri = format!("{}/v1/x", up.base);
        for _ in 0..3 {
            assert_eq!(call(&pool, &uri).await, "ok");
            // Let the upstream's close arrive while the connection is idle in the pool.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
        assert_eq!(up.heads.lock().unwrap().len(), 3, "each request sent once");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_the_connection() {
        let up = upstream(Script::Hold).await;
        let pool = H1Pool::new(Duration::from_secs(2));
        let uri = format!("{}/v1/x", up.base);
        let mut body = pool.send(post(&uri)).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        drop(body);
        tokio::time::timeout(Duration::from_secs(5), up.hung_up.notified())
            .await
            .expect("the upstream saw the connection close");
        // Nothing went back to the pool: the next call connects anew.
        let _held = pool.send(post(&uri)).await.unwrap();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let pool = H1Pool::new(Duration::from_secs(2));
        match pool.send(post(&format!("http://{addr}/v1/x"))).await {
            Err(SendError::Connect(detail)) => assert!(detail.contains("tcp connect"), "{detail}"),
            Err(other) => panic!("expected a connect error, got {other:?}"),
            Ok(resp) => panic!("expected a connect error, got HTTP {}", resp.status()),
        }
    }
}
