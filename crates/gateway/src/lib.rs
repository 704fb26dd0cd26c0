//! The Switchyard gateway: configuration, the HTTP application and the request pipeline.
//!
//! Depends downward only: on `switchyard-providers` (adapters), `switchyard-protocol` (wire and
//! canonical types) and `switchyard-mock` (the embedded fake provider). The binary (`cli`) only
//! parses flags and calls [`Gateway`].

pub mod admin;
pub mod analytics;
pub mod app;
pub mod auth;
pub mod budgets;
pub mod cache;
pub mod config;
pub mod conversations;
pub mod dashboard;
pub mod embedding;
pub mod envelope;
pub mod error;
pub mod firewall;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod redact;
pub mod registry;
mod request_id;
pub mod routing;
pub mod server;
pub mod shared;
pub mod streams;
pub mod surface;
pub mod telemetry;
pub mod vault;
pub mod workers;

pub use app::{AppState, build_app};
pub use config::{Config, ConfigError, Env};
pub use error::GatewayError;
pub use server::{Gateway, StartError};
