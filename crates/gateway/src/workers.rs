//! The threads that serve callers' connections.
//!
//! Each serving thread runs a single-threaded Tokio runtime of its own, and a connection stays
//! on the thread it was given for its whole life: its requests, its upstream calls (the pool of
//! plain-HTTP upstream connections keeps each runtime's connections apart) and its streams.
//! The main runtime accepts, and gives each connection to the thread with the fewest open.
//!
//! Why not Tokio's work-stealing runtime: it does the same work with more wake-ups. A worker
//! that finds a task ready wakes an idle sibling to steal it; strace counted about one futex
//! wake and one eventfd write between the two workers per call under load (0.14 futex calls
//! per call with these threads). Measured in one sitting on a 2-core machine
//! (`docs/benchmarks.md`, 2026-12-03): 94-97 µs of CPU per plain call against 104-116 µs for
//! two stealing workers, the added p50 the same within the machine's noise. What this gives
//! up is the stealing itself: a thread busy with its connections does not hand them to an
//! idle one, so one connection uses at most one core.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tower::Service as _;

use crate::envelope::{Envelope, EnvelopeFuture};

/// How many serving threads to run by default: one per core.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// The serving threads. Dropping this lets them end, cancelling what still runs on them.
pub struct Workers {
    threads: Vec<Thread>,
    /// Set to `true`: stop taking connections and finish the open ones.
    stop: watch::Sender<bool>,
    /// Dropped: the threads may end (after [`Workers::drain`], and after what else has to
    /// finish on their runtimes, such as detached streams).
    _release: watch::Sender<()>,
}

struct Thread {
    handoff: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Connections handed to this thread and not yet closed.
    open: Arc<AtomicUsize>,
    /// How its server ended; taken by [`Workers::drain`].
    served: Option<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` threads serving `app`.
    pub fn start<S>(count: NonZeroUsize, app: Envelope<S>) -> io::Result<Self>
    where
        S: tower::Service<Request, Response = Response, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(());
        let mut threads = Vec::with_capacity(count.get());
        for n in 0..count.get() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (handoff, incoming) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (served_tx, served) = oneshot::channel();
            let handed = Handoff {
                incoming,
                open: open.clone(),
            };
            let app = app.clone();
            let stopped = stopped.clone();
            let mut released = released.clone();
            std::thread::Builder::new()
                .name(format!("serve-{n}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        tokio::spawn(keep_timer_armed());
                        serve(handed, app, stopped).await;
                        let _ = served_tx.send(());
                        // Keep the runtime (and what was spawned on it) until released.
                        let _ = released.changed().await;
                    })
                })?;
            threads.push(Thread {
                handoff,
                open,
                served: Some(served),
            });
        }
        Ok(Self {
            threads,
            stop,
            _release: release,
        })
    }

    /// Accepts on `listener` until `shutdown` completes, giving each connection to the thread
    /// with the fewest open; then closes the listener.
    pub async fn accept(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let Ok(tcp) = tcp.into_std() else { continue };
            let Some(thread) = self
                .threads
                .iter()
                .min_by_key(|t| t.open.load(Ordering::Relaxed))
            else {
                return;
            };
            thread.open.fetch_add(1, Ordering::Relaxed);
            if thread.handoff.send((tcp, peer)).is_err() {
                thread.open.fetch_sub(1, Ordering::Relaxed);
                tracing::error!("a serving thread has stopped; the connection is closed");
            }
        }
    }

    /// Tells every thread to take no more connections and to finish the open ones (requests in
    /// flight run to their end), and waits until all have; the first error, if any.
    pub async fn drain(&mut self) -> io::Result<()> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for thread in &mut self.threads {
            let Some(served) = thread.served.take() else {
                continue;
            };
            if served.await.is_err() && result.is_ok() {
                result = Err(io::Error::other("a serving thread ended early"));
            }
        }
        result
    }
}

/// How often [`keep_timer_armed`] wakes its thread.
const TIMER_KEEPER_PERIOD: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`TIMER_KEEPER_PERIOD`] on this thread's runtime, for ever.
///
/// Tokio's timer wakes its own driver (an eventfd write, then an `epoll_wait` that returns at
/// once) whenever a timer is set earlier than the earliest one it already sleeps towards, or
/// when it has none: on a serving thread that is idle between calls, that was every call's
/// timeout. With a timer always due within a second, a call's timeout (seconds or more) is
/// later than it, and setting it costs no system call. The price is one wake-up per second per
/// thread.
async fn keep_timer_armed() {
    let mut tick = tokio::time::interval(TIMER_KEEPER_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Connection errors that concern one caller only; the next accept goes on.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves the connections handed to this thread until `stopped` turns `true`, then lets the
/// open ones finish (each after the request it is serving, if any) and returns.
///
/// hyper's server (HTTP/1.1, and HTTP/2 with prior knowledge) directly, rather than through
/// `axum::serve`: that one puts a tower-to-hyper adapter around the service and polls a watch
/// channel on every wake of every connection to learn of a shutdown (callgrind:
/// `docs/benchmarks.md`, 2026-12-04). Here a connection reads one flag when it is polled, and
/// is woken when the flag is set.
async fn serve<S>(mut handed: Handoff, app: Envelope<S>, mut stopped: watch::Receiver<bool>)
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let server = auto::Builder::new(TokioExecutor::new());
    let closing = Arc::new(Closing::default());
    // Each connection's task holds a sender; once all are dropped, every connection has ended.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = handed.accept() => accepted,
        };
        let Some((conn, peer)) = accepted else { break };
        let service = Hyper(app.for_peer(peer));
        let served = Served {
            conn: server
                .serve_connection(TokioIo::new(conn), service)
                .into_owned(),
            closing: Watcher::new(closing.clone()),
            finishing: false,
        };
        let open = open_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::trace!(error = %e, "a connection ended with an error");
            }
            drop(open);
        });
    }
    drop(handed);
    closing.close();
    drop(open_tx);
    let _ = open_rx.recv().await;
}

/// The app, as hyper calls it: the request's body as axum's.
struct Hyper<S>(Envelope<S>);

impl<S> hyper::service::Service<http::Request<Incoming>> for Hyper<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        // Called without asking whether it is ready: `Dispatch::poll_ready` and the router's
        // answer `Ready` at once, always.
        self.0.clone().call(req.map(axum::body::Body::new))
    }
}

/// The connections of one thread, told together to finish.
#[derive(Default)]
struct Closing {
    closing: AtomicBool,
    /// The wakers of the connections that were polled, by connection number.
    waiting: Mutex<HashMap<u64, Waker>>,
    numbers: AtomicU64,
}

impl Closing {
    /// Sets the flag and wakes every connection so that it reads it.
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in waiting.into_values() {
            waker.wake();
        }
    }
}

/// One connection's view of its thread's [`Closing`].
struct Watcher {
    closing: Arc<Closing>,
    number: u64,
    registered: bool,
}

impl Watcher {
    fn new(closing: Arc<Closing>) -> Self {
        let number = closing.numbers.fetch_add(1, Ordering::Relaxed);
        Self {
            closing,
            number,
            registered: false,
        }
    }

    /// Whether the connection is to finish. The first call leaves `cx`'s waker to be woken
    /// when it is: a connection is polled by its own task only, whose waker stays the same.
    fn is_closing(&mut self, cx: &Context<'_>) -> bool {
        if !self.registered {
            self.registered = true;
            self.closing
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.number, cx.waker().clone());
        }
        self.closing.closing.load(Ordering::Acquire)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.registered {
            self.closing
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.number);
        }
    }
}

pin_project! {
    /// A connection being served, finishing gracefully once its thread closes.
    struct Served<S>
    where
        S: tower::Service<Request, Response = Response, Error = Infallible>,
        S: Clone,
    {
        #[pin]
        conn: auto::Connection<'static, TokioIo<Counted>, Hyper<S>, TokioExecutor>,
        closing: Watcher,
        finishing: bool,
    }
}

impl<S> Future for Served<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
    S::Future: Send + 'static,
{
    type Output = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.finishing && this.closing.is_closing(cx) {
            *this.finishing = true;
            // Ends the connection after the request in flight, or now if it is idle.
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.poll(cx)
    }
}

/// One thread's end of the hand-off: the connections given to it.
struct Handoff {
    incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
}

impl Handoff {
    /// The next connection, registered with this thread's runtime so that its I/O wakes this
    /// thread only; `None` once no more will come.
    async fn accept(&mut self) -> Option<(Counted, SocketAddr)> {
        loop {
            let (tcp, peer) = self.incoming.recv().await?;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    // Answers and stream chunks go out at once: no Nagle delay.
                    let _ = tcp.set_nodelay(true);
                    let open = self.open.clone();
                    return Some((Counted { tcp, open }, peer));
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "a connection could not be served");
                }
            }
        }
    }
}

/// A caller's connection, counted among its thread's open ones until dropped.
struct Counted {
    tcp: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One `GET /` on `conn`; the answer's body.
    async fn get_on(conn: &mut TcpStream) -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut piece = [0u8; 1024];
        loop {
            let n = conn.read(&mut piece).await.unwrap();
            assert!(n > 0, "the connection closed before its answer");
            buf.extend_from_slice(&piece[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= len {
                    return body.to_owned();
                }
            }
        }
    }

    /// Serves `app` on `threads` threads while `calls` (given the address) runs, stops accepting
    /// when it has ended, then drains, which must end within 5 s; what `calls` returned.
    async fn serve_while<F, Fut, T>(threads: usize, app: Router, calls: F) -> T
    where
        F: FnOnce(SocketAddr) -> Fut,
        Fut: Future<Output = T>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut workers =
            Workers::start(NonZeroUsize::new(threads).unwrap(), Envelope::new(app)).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let calls = async move {
            let out = calls(addr).await;
            let _ = stop.send(());
            out
        };
        let accepting = workers.accept(listener, async {
            let _ = stopped.await;
        });
        let (out, ()) = tokio::join!(calls, accepting);
        tokio::time::timeout(Duration::from_secs(5), workers.drain())
            .await
            .expect("the drain waited for a connection with no call in flight")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn connections_are_spread_over_the_threads_and_each_stays_on_its_own() {
        let app = Router::new().route(
            "/",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        );
        let mut seen = serve_while(2, app, |addr| async move {
            let mut conns = Vec::new();
            for _ in 0..4 {
                conns.push(TcpStream::connect(addr).await.unwrap());
            }
            let mut seen = Vec::new();
            for conn in &mut conns {
                let first = get_on(conn).await;
                for _ in 0..3 {
                    assert_eq!(get_on(conn).await, first, "a connection moved threads");
                }
                seen.push(first);
            }
            seen
        })
        .await;
        seen.sort();
        assert_eq!(seen, ["serve-0", "serve-0", "serve-1", "serve-1"]);
    }

    #[tokio::test]
    async fn a_drain_lets_the_call_in_flight_finish_and_refuses_new_connections() {
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = finished.clone();
        let app = Router::new().route(
            "/",
            get(move || async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                "done"
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut workers =
            Workers::start(NonZeroUsize::new(1).unwrap(), Envelope::new(app)).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let call = tokio::spawn(async move { get_on(&mut conn).await });
        let accepting = workers.accept(listener, async {
            let _ = stopped.await;
        });
        let stopping = async {
            // The call is in flight on its thread before the shutdown begins.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = stop.send(());
        };
        tokio::join!(accepting, stopping);
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
        workers.drain().await.unwrap();
        assert!(
            finished.load(Ordering::SeqCst),
            "the drain ended before the call"
        );
        assert_eq!(call.await.unwrap(), "done");
    }

    #[tokio::test]
    async fn a_drain_closes_idle_keep_alive_connections() {
        let app = Router::new().route("/", get(|| async { "ok" }));
        // The connection has answered and waits for its next request when the drain begins:
        // the drain must not wait for it, but close it.
        let mut idle = serve_while(1, app, |addr| async move {
            let mut idle = TcpStream::connect(addr).await.unwrap();
            assert_eq!(get_on(&mut idle).await, "ok");
            idle
        })
        .await;
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection was left open")
            .unwrap();
        assert_eq!(n, 0, "unexpected bytes: {rest:?}");
    }

    #[tokio::test]
    async fn http2_with_prior_knowledge_is_served_and_drained() {
        use http_body_util::BodyExt;
        let app = Router::new().route("/", get(|| async { "ok" }));
        let (body, driven) = serve_while(1, app, |addr| async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .unwrap();
            let driven = tokio::spawn(conn);
            let req = http::Request::get("http://test/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert!(resp.headers().contains_key("x-switchyard-request-id"));
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (body, driven)
        })
        .await;
        assert_eq!(&body[..], b"ok");
        tokio::time::timeout(Duration::from_secs(5), driven)
            .await
            .expect("the HTTP/2 connection was left open")
            .unwrap()
            .unwrap();
    }
}
