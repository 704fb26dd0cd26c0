//! The one pooled HTTP client every provider shares.
//!
//! Calls to `https://` upstreams go through hyper-util's pooled client over rustls (keep-alive,
//! HTTP/2 where the upstream offers it by ALPN, connect timeout, no redirects); calls to
//! `http://` ones (a local model server) over HTTP/1.1 connections that the call's own task
//! drives ([`crate::h1pool`]), which saves the hand-offs between tasks that hyper-util's pool
//! costs per request and per streamed piece. When the environment names a
//! proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, in either case, honouring `NO_PROXY`), or
//! one is given, calls go through reqwest instead, which speaks to proxies. The direct path is
//! the fast one: callgrind counted 13 k instructions per call through it against ~40 k through
//! reqwest, which re-parses the URL for its redirect layer (`docs/benchmarks.md`).

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::ProviderError;
use crate::h1pool::{H1Pool, PooledBody, SendError};

/// The environment variables that name a proxy, as reqwest (and curl) read them.
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// A pooled HTTP client; cloning it shares the pool.
#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    // Behind an `Arc`: the client is over 300 bytes, and every provider holds a clone.
    Direct(
        Arc<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
        H1Pool,
    ),
    Proxied(reqwest::Client),
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match self.transport {
            Transport::Direct(..) => "direct",
            Transport::Proxied(_) => "proxied",
        };
        f.debug_struct("HttpClient").field("via", &via).finish()
    }
}

/// Where the client sends its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Straight to the upstream, unless the environment names a proxy.
    FromEnvironment,
    /// Through this proxy (`http://host:port`), for every upstream.
    Proxy(String),
}

impl HttpClient {
    /// A client whose route follows the environment (see the module documentation).
    pub fn new(connect_timeout: Duration) -> Result<Self, ProviderError> {
        Self::with_route(connect_timeout, Route::FromEnvironment)
    }

    pub fn with_route(connect_timeout: Duration, route: Route) -> Result<Self, ProviderError> {
        let proxied = match &route {
            Route::Proxy(_) => true,
            Route::FromEnvironment => PROXY_VARS
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty())),
        };
        let transport = if proxied {
            Transport::Proxied(reqwest_client(connect_timeout, &route)?)
        } else {
            Transport::Direct(
                Arc::new(direct_client(connect_timeout)?),
                H1Pool::new(connect_timeout),
            )
        };
        Ok(Self { transport })
    }

    /// Whether calls go through a proxy.
    pub fn is_proxied(&self) -> bool {
        matches!(self.transport, Transport::Proxied(_))
    }

    /// Sends a request and returns the answer's head; the body is read from the result. Errors
    /// name the provider and the cause, never the URL (a base URL may carry a token).
    pub(crate) async fn send(
        &self,
        provider: &str,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, ProviderError> {
        match &self.transport {
            Transport::Direct(_, pool) if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) => {
                match pool.send(req).await {
                    Ok(resp) => Ok(resp.map(Body::Pooled)),
                    Err(e) => Err(ProviderError::Connect {
                        provider: provider.to_owned(),
                        detail: match e {
                            SendError::Connect(detail) => detail,
                            SendError::Exchange(e) => chain(&e),
                            SendError::Closed => "the upstream closed the connection".into(),
                        },
                    }),
                }
            }
            Transport::Direct(client, _) => match client.request(req.map(Full::new)).await {
                Ok(resp) => Ok(resp.map(Body::Direct)),
                Err(e) => Err(ProviderError::Connect {
                    provider: provider.to_owned(),
                    detail: chain(&e),
                }),
            },
            Transport::Proxied(client) => {
                let req =
                    reqwest::Request::try_from(req.map(reqwest::Body::from)).map_err(|e| {
                        ProviderError::Internal {
                            detail: format!("provider `{provider}`: {}", chain(&e.without_url())),
                        }
                    })?;
                match client.execute(req).await {
                    Ok(resp) => Ok(http::Response::from(resp).map(Body::Proxied)),
                    Err(e) => Err(ProviderError::from_reqwest(provider, e)),
                }
            }
        }
    }
}

fn direct_client(
    connect_timeout: Duration,
) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The system's roots too, as reqwest's `rustls-tls-native-roots` does (a company CA).
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as reqwest skips it.
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ProviderError::Internal {
        detail: format!("setting up TLS: {e}"),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

fn reqwest_client(
    connect_timeout: Duration,
    route: &Route,
) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Route::Proxy(url) = route {
        let proxy = reqwest::Proxy::all(url).map_err(|e| ProviderError::Internal {
            detail: format!("the proxy URL is not valid: {}", chain(&e.without_url())),
        })?;
        builder = builder.proxy(proxy);
    }
    builder.build().map_err(|e| ProviderError::Internal {
        detail: format!("building the HTTP client: {}", chain(&e)),
    })
}

/// An answer's body, from whichever transport carried the call.
pub(crate) enum Body {
    Pooled(PooledBody),
    Direct(hyper::body::Incoming),
    Proxied(reqwest::Body),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Pooled(b) => Pin::new(b).poll_frame(cx),
            Self::Direct(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Proxied(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Pooled(b) => b.is_end_stream(),
            Self::Direct(b) => b.is_end_stream(),
            Self::Proxied(b) => b.is_end_stream(),
        }
    }
}

impl Body {
    /// The next piece of data (trailers are skipped), `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, BoxError>> {
        loop {
            match self.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The whole body, up to `limit` bytes (more is an error: an answer that large is not one).
    pub(crate) async fn bytes(mut self, limit: usize) -> Result<Bytes, BoxError> {
        let first = match self.chunk().await {
            None => return Ok(Bytes::new()),
            Some(r) => r?,
        };
        if first.len() > limit {
            return Err(too_large(limit));
        }
        // Most answers arrive in one piece: no copy then.
        let Some(second) = self.chunk().await else {
            return Ok(first);
        };
        let mut all = Vec::with_capacity(first.len() * 2);
        all.extend_from_slice(&first);
        let mut next = Some(second);
        while let Some(piece) = next {
            let piece = piece?;
            if all.len() + piece.len() > limit {
                return Err(too_large(limit));
            }
            all.extend_from_slice(&piece);
            next = self.chunk().await;
        }
        Ok(all.into())
    }
}

fn too_large(limit: usize) -> BoxError {
    format!("the answer is larger than {limit} bytes").into()
}

/// An error and its causes on one line ("client error (Connect): tcp connect error:
/// Connection refused"): the chain carries the useful part.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // hyper and reqwest sometimes repeat the cause in the outer message.
        if !detail.ends_with(&s_text) {
            detail.push_str(": ");
            detail.push_str(&s_text);
        }
        source = s.source();
    }
    detail
}
