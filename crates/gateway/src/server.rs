//! Starting and stopping the gateway: bind, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::app::{AppState, build_app};
use crate::config::ConfigSource;
use switchyard_store::Db;
use switchyard_store::credentials::CredentialStore;
use switchyard_store::keys::KeyStore;
use switchyard_store::logs::LogStore;
use switchyard_store::responses::ResponseStore;
use switchyard_store::spend::SpendStore;

use crate::logs::Logger;
use crate::workers::Workers;

use crate::budgets::Spend;
use crate::cache::{Cache, Store};
use crate::vault::Vault;

use crate::auth::AuthMode;
use crate::keys::Keys;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::routing::{HealthTable, Routes};
use crate::shared::Shared;

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
    #[error("{0}; check store.url, or the data directory (--data-dir)")]
    Store(#[from] switchyard_store::StoreError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("the Redis URL (state.redis or cache.redis_url): {0}; fix the URL")]
    Redis(String),
    #[error("the trace exporter (telemetry.otlp_endpoint): {0}")]
    Telemetry(String),
    #[error("the credential vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
}

impl Gateway {
    /// Loads the configuration, opens the database (`store.url`, or `switchyard.db` in
    /// `data_dir`) and the credential vault, loads the configuration again with the vault's
    /// provider keys, binds the listen address, starts the embedded mock if the config uses it,
    /// and builds the providers. Must run inside a Tokio runtime.
    pub async fn bind(source: ConfigSource, data_dir: &Path) -> Result<Self, StartError> {
        let first = source.load_before_vault()?;
        let db = match &first.store_url {
            Some(url) => Db::connect(url.expose()).await?,
            None => Db::open_sqlite(&data_dir.join("switchyard.db")).await?,
        };
        let master = crate::vault::master_key(source.env.get("SWITCHYARD_MASTER_KEY"), data_dir)?;
        let vault = Vault::new(&master, CredentialStore::new(db.clone()))?;
        // Loaded again with the vault open, so that `vault:NAME` references resolve (a provider
        // whose credential is not stored yet waits for it; see `ProviderConfig::waiting_for`).
        let config = source.load(&vault.unsealed().await?)?;
        let config = &config;
        let keys = Arc::new(Keys::load(KeyStore::new(db.clone())).await?);
        let clock = crate::limits::system_clock();
        let shared = match &config.state.redis {
            Some(url) => Some(Arc::new(
                Shared::connect(url.expose(), &config.state.prefix)
                    .await
                    .map_err(StartError::Redis)?,
            )),
            None => None,
        };
        let spend = Spend::load(SpendStore::new(db.clone()), clock.clone()).await?;
        let spend = Arc::new(match &shared {
            Some(s) => spend.with_shared(s.clone()).await,
            None => spend,
        });
        let limiter = Arc::new(match &shared {
            Some(s) => Limiter::shared(clock.clone(), s.clone()),
            None => Limiter::new(clock.clone()),
        });
        let responses = crate::conversations::Conversations::new(ResponseStore::new(db.clone()));
        let logs = LogStore::new(db);
        let logs_store = logs.clone();
        let logger = if config.log_enabled {
            Logger::start(logs.clone(), config.log_queue)
        } else {
            tracing::info!("request logging is off (logs.enabled = false)");
            Logger::off()
        };
        if let Some(keep) = config.log_retention {
            tokio::spawn(async move {
                loop {
                    let cutoff = SystemTime::now()
                        .checked_sub(keep)
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    match logs.delete_before(cutoff).await {
                        Ok(n) if n > 0 => tracing::info!(deleted = n, "old request logs deleted"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "deleting old request logs failed"),
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
        // Keys changed by another process (`switchyard keys …` on the same database).
        let weak = Arc::downgrade(&keys);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::keys::REFRESH).await;
                let Some(keys) = weak.upgrade() else { break };
                if let Err(e) = keys.refresh().await {
                    tracing::warn!(error = %e, "reloading virtual keys failed; keeping the last ones");
                }
            }
        });
        let auth = AuthMode::new(config.auth_open, config.listen.ip().is_loopback());
        let mock_url = if config.providers.iter().any(|p| p.embedded_mock) {
            let (addr, _) = switchyard_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(StartError::Mock)?;
            Some(format!("http://{addr}/v1"))
        } else {
            None
        };
        let local = switchyard_providers::local::LocalProvider::new(data_dir);
        let registry = Registry::build(config, mock_url.as_deref(), Some(&local))?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let health = match &shared {
            Some(s) => crate::routing::shared::table(s.clone()).await,
            None => HealthTable::default(),
        };
        let routes = Routes::new(registry, config, health.clone()).map_err(StartError::Routes)?;
        let semantic_entries = config.cache.semantic.as_ref().map_or(1, |s| s.max_entries);
        let telemetry = match &config.telemetry {
            Some(t) => crate::telemetry::Telemetry::start(t).map_err(StartError::Telemetry)?,
            None => crate::telemetry::Telemetry::off(),
        };
        let cache = match (&config.cache.redis_url, &shared) {
            (None, _) => Cache::new(config.cache.max_bytes, semantic_entries),
            (Some(url), Some(s)) if config.state.redis.as_ref() == Some(url) => Cache::with_store(
                Store::redis(s.clone()),
                config.cache.max_bytes,
                semantic_entries,
            ),
            (Some(url), _) => {
                let own = Shared::connect(url.expose(), &config.state.prefix)
                    .await
                    .map_err(StartError::Redis)?;
                Cache::with_store(
                    Store::redis(Arc::new(own)),
                    config.cache.max_bytes,
                    semantic_entries,
                )
            }
        };
        let streams = Arc::new(crate::streams::Streams::new(
            config.streams.clone(),
            shared.clone(),
        ));
        let state = Arc::new(AppState {
            routes: ArcSwap::from_pointee(routes),
            vault,
            source,
            mock_url,
            local,
            health: health.clone(),
            metrics: {
                let mut m = Metrics::new(health.clone());
                m.watch_logger(logger.clone());
                m.watch_cache(cache.clone());
                m.watch_streams(streams.clone());
                if let Some(s) = &shared {
                    m.watch_shared(s.clone());
                }
                m
            },
            cache,
            firewall: arc_swap::ArcSwapOption::from(config.firewall.clone().map(Arc::new)),
            started: config.clone(),
            reloads: std::sync::atomic::AtomicU64::new(0),
            telemetry,
            logger,
            logs: logs_store,
            responses,
            keys,
            limiter,
            streams,
            shared,
            spend,
            auth,
            loopback: config.listen.ip().is_loopback(),
            admin_token: config.admin_token.clone(),
            max_body_bytes: config.max_body_bytes,
            draining: AtomicBool::new(false),
        });
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether calls need a virtual key, in words, for the start-up line.
    pub fn auth_summary(&self) -> &'static str {
        match (self.state.auth, self.state.keys.any_live()) {
            (AuthMode::Open, _) => "open: keys optional (auth.open = true)",
            (AuthMode::Required, _) => "virtual keys required",
            (AuthMode::OnceKeysExist, true) => "virtual keys required",
            (AuthMode::OnceKeysExist, false) => {
                "no virtual keys yet: loopback calls need none until the first is created"
            }
        }
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.state
            .routes
            .load()
            .registry()
            .provider_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Serves on `threads` serving threads (see [`crate::workers`]) until `shutdown`
    /// completes, then stops accepting, marks itself not ready, and waits up to
    /// [`DRAIN_TIMEOUT`] for in-flight requests to finish.
    pub async fn run(
        self,
        threads: NonZeroUsize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // SIGHUP: read the configuration again.
        #[cfg(unix)]
        {
            let weak = Arc::downgrade(&self.state);
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let Some(state) = weak.upgrade() else { break };
                    match state.reload().await {
                        Ok(done) => {
                            tracing::info!(restart_needed = ?done.restart_needed, "configuration reloaded (SIGHUP)")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "configuration reload refused (SIGHUP)")
                        }
                    }
                }
            });
        }
        let app = build_app(self.state.clone());
        let mut workers = Workers::start(threads, app)?;
        workers.accept(self.listener, shutdown).await;
        self.state.draining.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: draining in-flight requests");
        let result = match tokio::time::timeout(DRAIN_TIMEOUT, workers.drain()).await {
            Ok(res) => res,
            Err(_) => {
                tracing::warn!(
                    "in-flight requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"
                );
                Ok(())
            }
        };
        // Resumable streams whose callers went away may still be producing: let them end.
        if self.state.streams.active() > 0 {
            tracing::info!(
                streams = self.state.streams.active(),
                "waiting for detached streams to finish"
            );
            if !self.state.streams.drained(DRAIN_TIMEOUT).await {
                tracing::warn!(
                    "detached streams still running after {DRAIN_TIMEOUT:?}; stopping anyway"
                );
            }
        }
        // The calls are done: write the request logs still queued.
        self.state.logger.flush_and_stop().await;
        tracing::info!(
            written = self.state.logger.written(),
            dropped = self.state.logger.dropped(),
            "request logs flushed"
        );
        // And the traces still queued (the exporter blocks while it sends).
        let traced = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || traced.telemetry.shutdown()).await;
        // Now the serving threads may end: nothing more runs on their runtimes.
        drop(workers);
        result
    }
}
