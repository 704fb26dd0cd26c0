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

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::{Listener, ListenerExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::envelope::Envelope;

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
    served: Option<oneshot::Receiver<io::Result<()>>>,
}

impl Workers {
    /// Starts `count` threads serving `app`; `local` is the address callers connect to.
    pub fn start<S>(count: NonZeroUsize, app: Envelope<S>, local: SocketAddr) -> io::Result<Self>
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
            let listener = Handoff {
                incoming,
                open: open.clone(),
                local,
            };
            let app = app.clone();
            let mut stopped = stopped.clone();
            let mut released = released.clone();
            std::thread::Builder::new()
                .name(format!("serve-{n}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        tokio::spawn(keep_timer_armed());
                        let listener = listener.tap_io(|conn: &mut Counted| {
                            // Answers and stream chunks go out at once: no Nagle delay.
                            let _ = conn.tcp.set_nodelay(true);
                        });
                        let app = PerConnection(app);
                        let signal = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        let res = axum::serve(listener, app)
                            .with_graceful_shutdown(signal)
                            .await;
                        let _ = served_tx.send(res);
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
            let res = served
                .await
                .unwrap_or_else(|_| Err(io::Error::other("a serving thread ended early")));
            if result.is_ok() {
                result = res;
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

/// The app for each connection, knowing the caller's address.
#[derive(Clone)]
struct PerConnection<S>(Envelope<S>);

impl<S: Clone, L: Listener<Addr = SocketAddr>> tower::Service<axum::serve::IncomingStream<'_, L>>
    for PerConnection<S>
{
    type Response = Envelope<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Envelope<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, conn: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(self.0.for_peer(*conn.remote_addr())))
    }
}

/// One thread's end of the hand-off: the connections given to it, as a listener for axum.
struct Handoff {
    incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
    local: SocketAddr,
}

impl Listener for Handoff {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let Some((tcp, peer)) = self.incoming.recv().await else {
                // No more connections will come; the shutdown signal ends the server.
                std::future::pending::<()>().await;
                continue;
            };
            // Registered with this thread's runtime, so its I/O wakes this thread only.
            match TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    return (
                        Counted {
                            tcp,
                            open: self.open.clone(),
                        },
                        peer,
                    );
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "a connection could not be served");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
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

    #[tokio::test]
    async fn connections_are_spread_over_the_threads_and_each_stays_on_its_own() {
        let app = Router::new().route(
            "/",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut workers =
            Workers::start(NonZeroUsize::new(2).unwrap(), Envelope::new(app), addr).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let calls = async move {
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
            let _ = stop.send(());
            seen
        };
        let accepting = workers.accept(listener, async {
            let _ = stopped.await;
        });
        let (mut seen, ()) = tokio::join!(calls, accepting);
        seen.sort();
        assert_eq!(seen, ["serve-0", "serve-0", "serve-1", "serve-1"]);
        workers.drain().await.unwrap();
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
            Workers::start(NonZeroUsize::new(1).unwrap(), Envelope::new(app), addr).unwrap();
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
}
