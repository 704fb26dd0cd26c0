//! The HTTP application: routes, shared state and the layers around them.
//!
//! Layers, outermost first:
//! 1. the envelope ([`crate::envelope`]): every response carries `x-switchyard-request-id`, a
//!    debug line per request, and a bug becomes a 500 in OpenAI's error shape, never a dropped
//!    connection.
//! 2. the dispatch ([`Dispatch`]): inference calls go to their handlers directly, the rest to
//!    the router.
//! 3. body limit: `server.max_body_bytes`, a 413 in OpenAI's error shape (the inference
//!    handlers read their bodies with the same limit, [`RawBody::read`]).
//!
//! Domain stages run inside the handlers, in the order `pipeline` documents.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::Either;

use crate::error::GatewayError;
use switchyard_providers::Secret;

use crate::auth::AuthMode;
use crate::budgets::Spend;
use crate::config::ConfigSource;
use crate::envelope::Envelope;
use crate::keys::Keys;
use crate::limits::Limiter;
use crate::logs::Logger;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::routing::{HealthTable, Routes};
use crate::surface::{RawBody, anthropic, openai, responses};
use crate::vault::Vault;
use switchyard_store::logs::LogStore;

pub struct AppState {
    /// Replaced whole when provider credentials change (the admin API's vault).
    pub routes: ArcSwap<Routes>,
    pub vault: Vault,
    /// To build the routes again: the configuration's source, the embedded mock's address, and
    /// the targets' health (kept across rebuilds).
    pub source: ConfigSource,
    pub mock_url: Option<String>,
    /// Models in the data directory, served as `local/<name>`.
    pub local: switchyard_providers::local::LocalProvider,
    pub health: HealthTable,
    pub metrics: Metrics,
    pub keys: Arc<Keys>,
    pub limiter: Arc<Limiter>,
    /// `[state] redis`, when replicas share state.
    pub shared: Option<Arc<crate::shared::Shared>>,
    pub spend: Arc<Spend>,
    pub logger: Arc<Logger>,
    /// Responses kept for `previous_response_id` (the Responses surface).
    pub responses: Arc<crate::conversations::Conversations>,
    /// Traces of calls, when exported.
    pub telemetry: crate::telemetry::Telemetry,
    /// Buffered streams, for callers that resume them.
    pub streams: Arc<crate::streams::Streams>,
    /// Answers kept to serve identical calls again.
    pub cache: Arc<crate::cache::Cache>,
    /// `[firewall]`: policies and the compiled detectors, when configured (replaced by a
    /// reload).
    pub firewall: arc_swap::ArcSwapOption<crate::config::firewall::FirewallConfig>,
    /// The configuration loaded at start-up: what a reload compares the keys it cannot apply
    /// against.
    pub started: crate::config::Config,
    /// Successful reloads since start-up.
    pub reloads: std::sync::atomic::AtomicU64,
    pub logs: LogStore,
    pub auth: AuthMode,
    /// Whether the gateway listens on a loopback address (the dashboard is open to local
    /// callers then).
    pub loopback: bool,
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
    /// Set when shutdown begins: `/readyz` turns 503 so load balancers stop sending.
    pub draining: AtomicBool,
}

impl AppState {
    /// Loads the configuration again (file, environment and the vault's credentials) and
    /// swaps in what can change while serving: providers, aliases, routes, retries, breakers'
    /// policy, the catalog, cache rules and firewall policies. Calls under way finish on the
    /// old ones. A configuration that does not load is refused with the reason, and the running
    /// one stays. Settings read only at start-up (the listen address, the store, Redis, …) are
    /// named in the answer when they changed: they take effect at the next restart.
    pub async fn reload(&self) -> Result<Reloaded, GatewayError> {
        let internal = |message: String| GatewayError::Internal { message };
        let credentials = self
            .vault
            .unsealed()
            .await
            .map_err(|e| internal(e.to_string()))?;
        let config = self.source.load(&credentials).map_err(|e| {
            GatewayError::bad_request(
                format!("the new configuration was refused, the running one stays: {e}"),
                None,
            )
        })?;
        let registry = Registry::build(&config, self.mock_url.as_deref(), Some(&self.local))
            .map_err(|e| {
                GatewayError::bad_request(
                    format!("the new configuration was refused, the running one stays: {e}"),
                    None,
                )
            })?;
        let routes = Routes::new(registry, &config, self.health.clone())?;
        let restart_needed = self.started.restart_needed(&config);
        self.routes.store(Arc::new(routes));
        self.firewall.store(config.firewall.clone().map(Arc::new));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(Reloaded { restart_needed })
    }
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// Keys whose new values wait for a restart.
    pub restart_needed: Vec<&'static str>,
}

/// The request id of the call and the caller's address, in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub uuid::Uuid, pub Option<std::net::SocketAddr>);

/// The calls a gateway serves by the thousand: `POST` to these paths (under `/v1` or bare) is
/// dispatched straight to its handler, ahead of the router. Under callgrind that took 7 k
/// instructions off each plain call (the serving path 187.5 M -> 172.9 M for 2,000 calls: the
/// route's boxed service cloned and its future boxed, two route futures for the layered route,
/// the extractors cloning the headers; `docs/benchmarks.md`). The router has the same routes,
/// so other methods on them get its 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inference {
    Chat,
    Embeddings,
    Messages,
    Responses,
}

const INFERENCE: [(&str, Inference); 4] = [
    ("/chat/completions", Inference::Chat),
    ("/embeddings", Inference::Embeddings),
    ("/messages", Inference::Messages),
    ("/responses", Inference::Responses),
];

impl Inference {
    /// The inference endpoint at `path`, if it is one.
    fn at(path: &str) -> Option<Self> {
        let path = path
            .strip_prefix("/v1")
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path);
        INFERENCE.iter().find(|(p, _)| *p == path).map(|(_, i)| *i)
    }

    /// Its route, for the router.
    fn route(self) -> axum::routing::MethodRouter<Arc<AppState>> {
        match self {
            Self::Chat => post(openai::chat_completions),
            Self::Embeddings => post(openai::embeddings),
            Self::Messages => post(anthropic::messages),
            Self::Responses => post(responses::create),
        }
    }

    /// Serves `req` as the router would, with the headers moved rather than cloned.
    async fn serve(self, state: Arc<AppState>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let rid = parts
            .extensions
            .get::<RequestId>()
            .copied()
            .unwrap_or_else(|| RequestId(crate::request_id::new_v7(), None));
        let body = RawBody::read(body, state.max_body_bytes).await;
        let (state, rid, headers) = (State(state), Extension(rid), parts.headers);
        match self {
            Self::Chat => openai::chat_completions(state, rid, headers, body).await,
            Self::Embeddings => openai::embeddings(state, rid, headers, body).await,
            Self::Messages => anthropic::messages(state, rid, headers, body).await,
            Self::Responses => responses::create(state, rid, headers, body).await,
        }
    }
}

/// What every connection is served by: the [`Envelope`] around the [`Dispatch`].
pub type App = Envelope<Dispatch>;

/// Inference calls to their handlers directly ([`Inference`]), everything else to the router.
#[derive(Clone)]
pub struct Dispatch {
    state: Arc<AppState>,
    router: Router,
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        <Router as tower::Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == Method::POST
            && let Some(kind) = Inference::at(req.uri().path())
        {
            let state = self.state.clone();
            return Either::Left(Box::pin(async move { Ok(kind.serve(state, req).await) }));
        }
        Either::Right(tower::Service::call(&mut self.router, req))
    }
}

pub fn build_app(state: Arc<AppState>) -> App {
    let limit = state.max_body_bytes;
    // The API routes, under `/v1` and also bare for clients configured with a bare host. Each is
    // registered at both paths rather than nested: a nested router rewrites every request's URI
    // to strip its prefix and routes it a second time (6 k instructions per call under
    // callgrind, `docs/benchmarks.md`).
    let mut router = Router::new();
    for prefix in ["/v1", ""] {
        for (path, kind) in INFERENCE {
            router = router.route(&format!("{prefix}{path}"), kind.route());
        }
        router = router
            .route(
                &format!("{prefix}/messages/count_tokens"),
                post(anthropic::count_tokens),
            )
            .route(
                &format!("{prefix}/responses/{{id}}"),
                get(responses::get).delete(responses::delete),
            )
            .route(
                &format!("{prefix}/streams/{{id}}"),
                get(crate::surface::streams::resume),
            )
            .route(&format!("{prefix}/models"), get(openai::models))
            .route(&format!("{prefix}/models/{{*id}}"), get(openai::model));
    }
    let router = router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(crate::dashboard::page))
        .route("/dashboard", get(crate::dashboard::page))
        .merge(crate::admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(limit));
    Envelope::new(Dispatch { state, router })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return GatewayError::Unavailable {
            message: "shutting down".into(),
        }
        .into_response();
    }
    let body = serde_json::json!({ "status": "ready", "providers": state.routes.load().registry().provider_names() });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    GatewayError::NotFound {
        message: format!(
            "no route for {} {}; the OpenAI-compatible API is under /v1 (chat/completions, embeddings, models)",
            req.method(),
            req.uri().path()
        ),
    }
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    GatewayError::MethodNotAllowed {
        message: format!("{} is not allowed on {}", req.method(), req.uri().path()),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_paths_are_matched_under_v1_and_bare_and_nothing_else() {
        for (path, kind) in INFERENCE {
            assert_eq!(Inference::at(path), Some(kind), "{path}");
            assert_eq!(
                Inference::at(&format!("/v1{path}")),
                Some(kind),
                "/v1{path}"
            );
        }
        for path in [
            "/v1chat/completions",
            "/v1/chat/completions/",
            "/v1/v1/chat/completions",
            "/v2/chat/completions",
            "/v1/messages/count_tokens",
            "/v1/responses/resp_1",
            "/v1/models",
            "/v1",
            "/",
            "",
        ] {
            assert_eq!(Inference::at(path), None, "{path}");
        }
    }
}
