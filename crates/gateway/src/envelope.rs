//! The envelope around every request: its id (in the request's extensions for the handlers, and
//! as `x-switchyard-request-id` on the response), a debug line per request, and a panic turned
//! into a 500 in OpenAI's error shape instead of a dropped connection.
//!
//! One hand-written service rather than `axum::middleware::from_fn` plus tower-http's
//! `CatchPanicLayer`: `from_fn` clones the boxed inner service and boxes its future on every
//! request, and the two layers were two more futures around each call (callgrind:
//! `docs/benchmarks.md`). This one wraps the inner future in place.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{CatchUnwind, Either, Ready};
use pin_project_lite::pin_project;
use tower::Service;
use uuid::Uuid;

use crate::app::RequestId;
use crate::error::{ErrorKind, GatewayError};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");

/// A service whose every request is put in the envelope.
#[derive(Debug, Clone)]
pub struct Envelope<S> {
    inner: S,
    /// The caller's address, for the connection being served.
    peer: Option<SocketAddr>,
}

impl<S> Envelope<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, peer: None }
    }

    /// The same service, for a connection from `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> Self
    where
        S: Clone,
    {
        Self {
            inner: self.inner.clone(),
            peer: Some(peer),
        }
    }
}

type Panic = Box<dyn std::any::Any + Send>;
type Caught<F> =
    Either<CatchUnwind<AssertUnwindSafe<F>>, Ready<Result<Result<Response, Infallible>, Panic>>>;

impl<S, B> Service<Request<B>> for Envelope<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = crate::request_id::new_v7();
        let started = Instant::now();
        // Only the debug line reads these; most deployments log at info.
        let described = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        req.extensions_mut().insert(RequestId(id, self.peer));
        // Routing and the handler's extractors run inside `call` for some services, so a panic
        // there is caught too, not only one while the future is polled.
        let inner = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Either::Left(AssertUnwindSafe(fut).catch_unwind()),
            Err(panic) => Either::Right(futures_util::future::ready(Err(panic))),
        };
        EnvelopeFuture {
            inner,
            id,
            started,
            described,
        }
    }
}

pin_project! {
    /// The inner service's future, with what the response needs once it is ready.
    pub struct EnvelopeFuture<F> {
        #[pin]
        inner: Caught<F>,
        id: Uuid,
        started: Instant,
        described: Option<(Method, String)>,
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut resp = match ready!(this.inner.poll(cx)) {
            Ok(Ok(resp)) => resp,
            Ok(Err(never)) => match never {},
            Err(_panic) => GatewayError::Internal {
                message: "the gateway hit a bug; the request id identifies it in the logs".into(),
            }
            .into_response(),
        };
        let mut buf = Uuid::encode_buffer();
        if let Ok(v) = HeaderValue::from_str(this.id.hyphenated().encode_lower(&mut buf)) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        if let Some((method, path)) = this.described.take() {
            let error = resp.extensions().get::<ErrorKind>().map(|k| k.0);
            tracing::debug!(
                request_id = %this.id,
                %method,
                path,
                status = resp.status().as_u16(),
                error,
                micros = this.started.elapsed().as_micros() as u64,
                "request"
            );
        }
        Poll::Ready(Ok(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;

    /// What the inner service does with the request it is handed.
    #[derive(Clone, Copy)]
    enum Inner {
        /// Answers 200 with the request id it found in the extensions as the body.
        EchoId,
        PanicInCall,
        PanicInPoll,
    }

    impl Service<Request<Body>> for Inner {
        type Response = Response;
        type Error = Infallible;
        type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<Body>) -> Self::Future {
            let seen = req
                .extensions()
                .get::<RequestId>()
                .map(|r| format!("{} {:?}", r.0, r.1));
            match *self {
                Self::EchoId => {
                    Box::pin(async move { Ok(seen.unwrap_or_default().into_response()) })
                }
                Self::PanicInCall => panic!("a bug while routing"),
                Self::PanicInPoll => Box::pin(async move {
                    tokio::task::yield_now().await;
                    panic!("a bug in a handler");
                }),
            }
        }
    }

    async fn send(inner: Inner) -> (axum::http::StatusCode, Option<String>, String) {
        let mut svc = Envelope::new(inner).for_peer(([127, 0, 0, 1], 9).into());
        let resp = svc
            .call(Request::new(Body::empty()))
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status();
        let id = resp
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, id, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_handler_sees_the_id_that_the_response_carries_and_the_callers_address() {
        let (status, id, body) = send(Inner::EchoId).await;
        assert_eq!(status, 200);
        let id = id.expect("the response carries x-switchyard-request-id");
        assert_eq!(
            body,
            format!("{id} Some(127.0.0.1:9)"),
            "the id in the extensions is the one in the header, with the caller's address"
        );
        let parsed = Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        let (_, other, _) = send(Inner::EchoId).await;
        assert_ne!(
            other.as_deref(),
            Some(id.as_str()),
            "every request gets its own id"
        );
    }

    #[tokio::test]
    async fn a_panic_is_a_500_in_openai_shape_with_the_request_id() {
        for inner in [Inner::PanicInCall, Inner::PanicInPoll] {
            let (status, id, body) = send(inner).await;
            assert_eq!(status, 500);
            assert!(id.is_some(), "the 500 still carries the request id");
            let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
            assert_eq!(v["error"]["type"], "server_error", "{body}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("hit a bug"),
                "{body}"
            );
        }
    }
}
