//! Starting and stopping the gateway: bind, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::{AppState, build_app};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::routing::{HealthTable, Routes};

/// How long in-flight requests (streams included) may take to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A gateway bound to its address, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    state: Arc<AppState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr}: {source}; choose another address with --listen or SWITCHYARD_LISTEN"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the embedded mock provider: {0}")]
    Mock(std::io::Error),
    #[error("{0}")]
    Providers(#[from] switchyard_providers::ProviderError),
    #[error("building the routes: {0}")]
    Routes(crate::error::GatewayError),
}

impl Gateway {
    /// Binds the listen address, starts the embedded mock if the config uses it, and builds the
    /// providers. Must run inside a Tokio runtime.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let mock_url = if config.providers.iter().any(|p| p.embedded_mock) {
            let (addr, _) = switchyard_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(StartError::Mock)?;
            Some(format!("http://{addr}/v1"))
        } else {
            None
        };
        let registry = Registry::build(config, mock_url.as_deref())?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let health = HealthTable::default();
        let routes = Routes::new(registry, config, health.clone()).map_err(StartError::Routes)?;
        let state = Arc::new(AppState::new(
            routes,
            Metrics::new(health),
            config.max_body_bytes,
        ));
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.state
            .routes
            .registry()
            .provider_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, marks itself not ready, and
    /// waits up to [`DRAIN_TIMEOUT`] for in-flight requests to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            state.draining.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: draining in-flight requests");
            let _ = drained_tx.send(());
        };
        let app = build_app(self.state.clone());
        // Answers and stream chunks go out at once: no Nagle delay waiting for the peer's ACK.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(signal);
        let serve = tokio::spawn(async move { serve.await });
        tokio::pin!(serve);
        tokio::select! {
            res = &mut serve => return res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            _ = drained_rx => {}
        }
        match tokio::time::timeout(DRAIN_TIMEOUT, &mut serve).await {
            Ok(res) => res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(_) => {
                tracing::warn!(
                    "in-flight requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"
                );
                Ok(())
            }
        }
    }
}
