//! The HTTP application: routes, shared state and the layers around them.
//!
//! Layers, outermost first:
//! 1. the envelope ([`crate::envelope`]): every response carries `x-switchyard-request-id`, a
//!    debug line per request, and a bug becomes a 500 in OpenAI's error shape, never a dropped
//!    connection.
//! 2. body limit: `server.max_body_bytes`, a 413 in OpenAI's error shape.
//!
//! Domain stages run inside the handlers, in the order `pipeline` documents.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::GatewayError;
use switchyard_providers::Secret;

use crate::auth::AuthMode;
use crate::budgets::Spend;
use crate::config::ConfigSource;
use crate::keys::Keys;
use crate::limits::Limiter;
use crate::logs::Logger;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::routing::{HealthTable, Routes};
use crate::surface::{anthropic, openai, responses};
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

pub fn build_app(state: Arc<AppState>) -> Router {
    let limit = state.max_body_bytes;
    // The API routes, under `/v1` and also bare for clients configured with a bare host. Each is
    // registered at both paths rather than nested: a nested router rewrites every request's URI
    // to strip its prefix and routes it a second time (6 k instructions per call under
    // callgrind, `docs/benchmarks.md`).
    let mut router = Router::new();
    for prefix in ["/v1", ""] {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                post(openai::chat_completions),
            )
            .route(&format!("{prefix}/embeddings"), post(openai::embeddings))
            .route(&format!("{prefix}/messages"), post(anthropic::messages))
            .route(
                &format!("{prefix}/messages/count_tokens"),
                post(anthropic::count_tokens),
            )
            .route(&format!("{prefix}/responses"), post(responses::create))
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
    router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(crate::dashboard::page))
        .route("/dashboard", get(crate::dashboard::page))
        .merge(crate::admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(crate::envelope::EnvelopeLayer)
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
