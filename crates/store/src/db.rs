//! The database handle: connecting, the schema, and errors.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

/// Which engine is behind the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {what}: {detail}")]
    Open { what: String, detail: String },
    #[error("database error: {0}")]
    Query(String),
    #[error("a stored record could not be read: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Self::Conflict(db.message().to_owned());
        }
        Self::Query(e.to_string())
    }
}

/// A pool of connections to the gateway's database, with the schema in place.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// The schema, in statements both engines accept. Additive only: a new version appends.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS virtual_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        policy TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS spend (
        key_id TEXT NOT NULL,
        period TEXT NOT NULL,
        usd DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key_id, period)
    )",
    "CREATE TABLE IF NOT EXISTS logs (
        id TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        key_id TEXT,
        key_name TEXT,
        route TEXT,
        requested_model TEXT NOT NULL,
        provider TEXT,
        model TEXT,
        status BIGINT NOT NULL,
        error_class TEXT,
        latency_ms BIGINT NOT NULL,
        ttft_ms BIGINT,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION,
        metadata TEXT NOT NULL,
        record TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS logs_ts ON logs (ts, id)",
    "CREATE INDEX IF NOT EXISTS logs_key_ts ON logs (key_id, ts)",
    "CREATE TABLE IF NOT EXISTS credentials (
        provider TEXT PRIMARY KEY,
        sealed TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        key_id TEXT,
        previous_id TEXT,
        record TEXT NOT NULL
    )",
];

/// Changes to tables that already exist, applied once each and in order; their numbers are
/// recorded in `schema_migrations`. Append only.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, "ALTER TABLE logs ADD COLUMN cache TEXT"),
    (2, "ALTER TABLE logs ADD COLUMN saved_usd DOUBLE PRECISION"),
    (3, "ALTER TABLE logs ADD COLUMN firewall TEXT"),
];

/// Any number stands for "the schema" in PostgreSQL's advisory locks; this one is ours.
const SCHEMA_LOCK: i64 = 0x5357_5943_4844; // "SWYCHD"

/// Creates the tables and applies the migrations. On PostgreSQL, replicas starting at once
/// take turns: concurrent `CREATE TABLE IF NOT EXISTS` of one table can fail there (a unique
/// violation in `pg_type`), so the work runs under a session advisory lock, released when done
/// or when the connection closes.
async fn create_schema(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::Error> {
    let apply = async {
        for statement in SCHEMA {
            pool.execute(*statement).await?;
        }
        migrate(pool).await
    };
    if backend == Backend::Sqlite {
        // SQLite's own locks serialise writers (and `busy_timeout` waits for them).
        return apply.await;
    }
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT 1 FROM pg_advisory_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply.await;
    let unlocked = sqlx::query("SELECT 1 FROM pg_advisory_unlock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // The lock must not outlive this start-up: closing the connection releases it.
        let _ = conn.detach().close().await;
    }
    result
}

/// Applies the migrations not yet recorded. Two processes may start on the same database at
/// once: one of them applies a migration, and the other, whose attempt fails, finds it recorded.
async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    pool.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .await?;
    let applied = |pool: &AnyPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT version FROM schema_migrations")
                .fetch_all(&pool)
                .await
        }
    };
    let done = applied(pool).await?;
    for (version, statement) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let attempt = async {
            let mut tx = pool.begin().await?;
            tx.execute(*statement).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        if let Err(e) = attempt.await
            && !applied(pool).await?.contains(version)
        {
            return Err(e);
        }
    }
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the SQLite file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await.map_err(|e| match e {
            StoreError::Open { detail, .. } => StoreError::Open {
                what: path.display().to_string(),
                detail,
            },
            other => other,
        })
    }

    /// Connects to `sqlite://…` or `postgres://…` and creates the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let redacted = redact(url);
        let open_err = |e: sqlx::Error| StoreError::Open {
            what: redacted.clone(),
            detail: e.to_string(),
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Open {
                what: redacted.clone(),
                detail: "use a sqlite:// or postgres:// URL".to_owned(),
            });
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(open_err)?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Another process (the `switchyard keys` command) may write at the
                        // same time: wait for its lock instead of failing.
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(open_err)?;
        }
        create_schema(&pool, backend).await.map_err(open_err)?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs one SQL statement that returns nothing (maintenance, and tests that need the
    /// database to misbehave).
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The PostgreSQL URL the store's tests use (`SWITCHYARD_TEST_POSTGRES`, which `.ci/run` sets);
/// without it the test says loudly that it skipped.
#[cfg(test)]
pub(crate) fn test_postgres(test: &str) -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES").ok();
    if url.is_none() {
        eprintln!("\n*** SKIPPED {test}: SWITCHYARD_TEST_POSTGRES is not set (.ci/run sets it).\n");
    }
    url
}

/// A path for a new SQLite database in the temporary directory, unique to this test process and
/// `name`; any file a former run left there is removed.
#[cfg(test)]
pub(crate) fn test_sqlite(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    path
}

/// A connection URL without its passwords, for messages: the one in the user info, and any
/// query parameter whose name holds `password` (`?password=`, `sslpassword=`).
fn redact(url: &str) -> String {
    // The query starts at the first `?` after the path's first `/`: a `?` before it belongs to
    // the user info (a password, say).
    let after_scheme = url.find("://").map_or(0, |s| s + 3);
    let query_at = url[after_scheme..]
        .find('/')
        .map(|p| after_scheme + p)
        .and_then(|path| url[path..].find('?').map(|q| path + q));
    let (base, query) = match query_at {
        Some(q) => (&url[..q], Some(&url[q + 1..])),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://sy:s3cret@db:5432/sy"),
            "postgres://sy:***@db:5432/sy"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(
            redact("postgres://sy@db/sy?sslmode=require&password=s3cret&sslpassword=k3y"),
            "postgres://sy@db/sy?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(
            redact("postgres://sy:s3cret@db/sy?application_name=a@b"),
            "postgres://sy:***@db/sy?application_name=a@b"
        );
        // Characters a password should have had encoded do not expose it either.
        assert_eq!(
            redact("postgres://sy:pa?ss@db/sy"),
            "postgres://sy:***@db/sy"
        );
        assert_eq!(
            redact("postgres://sy:pa/ss@db/sy"),
            "postgres://sy:***@db/sy"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_replicas_starting_at_once_on_a_new_database_all_open_it() {
        let Some(url) = crate::db::test_postgres(
            "postgres_replicas_starting_at_once_on_a_new_database_all_open_it",
        ) else {
            return;
        };
        let admin = Db::connect(&url).await.unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("switchyard_fresh_{}_{nanos}", std::process::id());
        admin
            .execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = url.rsplit_once('/').unwrap();
        let fresh = format!("{base}/{name}");
        // Concurrent CREATE TABLE IF NOT EXISTS of one table can fail with a unique violation
        // in pg_type: the schema lock makes the starts take turns.
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let url = fresh.clone();
                tokio::spawn(async move { Db::connect(&url).await })
            })
            .collect();
        let mut opened = Vec::new();
        for start in starts {
            match start.await.unwrap() {
                Ok(db) => opened.push(db),
                Err(e) => panic!("a replica could not open the new database: {e}"),
            }
        }
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(opened[0].pool())
        .await
        .unwrap();
        let created = SCHEMA
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count();
        assert_eq!(
            tables,
            created as i64 + 1,
            "the tables and schema_migrations"
        );
        let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(opened[0].pool())
            .await
            .unwrap();
        assert_eq!(versions, MIGRATIONS.len() as i64);
        drop(opened);
        admin
            .execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
