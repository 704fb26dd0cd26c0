//! Storage for what the gateway keeps: one database handle ([`Db`]) over SQLite (the embedded
//! default, a file in the data directory) or PostgreSQL (when replicas share state), and one
//! store per concern on top of it ([`keys::KeyStore`], …). The SQL is written once, in the
//! dialect both engines accept, through sqlx's `Any` driver.
//!
//! A leaf crate: it knows rows and columns, not what the gateway means by them (a key's policy is
//! stored as JSON the gateway defines).

pub mod credentials;
mod db;
pub mod keys;
pub mod logs;
pub mod responses;
pub mod spend;

pub use db::{Backend, Db, StoreError};

/// Milliseconds since the Unix epoch: how the stores write times.
pub type Millis = i64;
