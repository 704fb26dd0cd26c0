//! Scriptable fake model providers, for offline development, tests and benchmarks.
//!
//! `switchyard mock` serves [`router`] on its own port; the gateway also runs it in process
//! behind the `mock/*` models. Behaviour is chosen per request by the model name (`echo`,
//! `slow-250ms`, `fail-503`, `stream-40`, …, combined with `+`), or by the `x-mock-scenario`
//! header; see [`Scenario`] for the grammar.
//!
//! The mock speaks OpenAI's wire format (chat completions, and the Responses API at
//! `POST /v1/responses`), Anthropic's (`POST /v1/messages`) and Gemini's
//! (`POST /v1beta/models/{model}:generateContent`). It must never be the bottleneck of a
//! benchmark, so the request path does no more than parse, format and write.
//!
//! Depends only on the protocol crate.

mod anthropic;
mod gemini;
mod openai;
mod responses;
mod scenario;
mod schema;
mod stats;
mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use gemini::THOUGHT_SIGNATURE;
pub use scenario::{Scenario, ScenarioError};
pub use stats::{LastRequest, Stats, StatsSnapshot};
pub use tokens::estimate_tokens;

/// The models `GET /v1/models` lists; any name following the scenario grammar works.
pub const MODELS: &[&str] = &[
    "echo",
    "stream-40",
    "slow-250ms",
    "ttft-100ms+itl-10ms",
    "fail-503",
    "ratelimit-2s",
    "truncate-5",
    "malformed",
    "embed",
];

/// The mock's HTTP application: OpenAI-compatible routes plus `/mock/stats` and `/mock/last`.
pub fn router() -> Router {
    router_with(Arc::new(Stats::default()))
}

/// The same, sharing the given counters (tests read them directly).
pub fn router_with(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models", get(gemini::models))
        .route("/v1beta/models/{model_action}", post(gemini::models_action))
        .route("/mock/stats", get(stats::stats_handler))
        .route("/mock/last", get(stats::last_handler))
        .with_state(stats)
}

/// Serves the mock on an already bound listener until the future is dropped.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>) -> std::io::Result<()> {
    // Small answers go out at once: no Nagle delay waiting for the peer's ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router_with(stats)).await
}

/// Binds `addr` (port 0 for any), spawns the mock on the current runtime and returns its address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<(SocketAddr, Arc<Stats>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let s = stats.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, s).await {
            tracing::error!(error = %e, "mock provider stopped");
        }
    });
    Ok((local, stats))
}
