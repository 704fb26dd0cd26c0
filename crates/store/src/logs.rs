//! Request logs: one row per call, with the columns the filters and analytics read, and the
//! whole record as JSON.

use sqlx::any::AnyRow;
use sqlx::{Acquire, Row};

use crate::{Backend, Db, Millis, StoreError};

/// One call, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRow {
    pub id: String,
    /// When the call arrived.
    pub ts: Millis,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub route: Option<String>,
    pub requested_model: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: i64,
    pub error_class: Option<String>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    /// What the cache did: `hit`, `miss`, `bypass`, or `None` when it was off.
    pub cache: Option<String>,
    /// For an answer served from the cache: its list price.
    pub saved_usd: Option<f64>,
    /// The firewall's strongest action on the call: `block`, `redact` or `flag`; `None` when
    /// nothing was found (or the call was not screened).
    pub firewall: Option<String>,
    /// The caller's metadata, JSON object (compact).
    pub metadata: String,
    /// The whole record, JSON.
    pub record: String,
}

/// Which rows a query wants. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub key: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<i64>,
    /// Only failed calls (status ≥ 400).
    pub errors: bool,
    pub metadata: Vec<(String, String)>,
    /// Text anywhere in the record.
    pub search: Option<String>,
    /// Calls on which the firewall took this action (`block`, `redact`, `flag`), or `any`.
    pub firewall: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LogStore {
    db: Db,
}

const COLUMNS: &str = "id, ts, key_id, key_name, route, requested_model, provider, model, status, error_class, latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd, metadata, record, cache, saved_usd, firewall";

/// The most rows one `INSERT` carries: 20 parameters each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535.
const ROWS_PER_INSERT: usize = 64;

/// The `INSERT` for the next rows of a batch of `len` and how many rows it takes: the largest
/// power of two up to [`ROWS_PER_INSERT`], so a batch needs few statements and each
/// connection caches at most seven prepared ones. SQLite gets anonymous `?` parameters: for a
/// numbered one, binding looks its name up in a list as long as the statement's parameters,
/// which made a 64-row statement cost more than 64 single-row ones (callgrind).
fn insert_statement(backend: Backend, len: usize) -> (&'static str, usize) {
    static SQL: [std::sync::OnceLock<Vec<String>>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let all = SQL[backend as usize].get_or_init(|| {
        let width = COLUMNS.split(',').count();
        (0..=ROWS_PER_INSERT.trailing_zeros())
            .map(|p| {
                let rows = (0..1usize << p)
                    .map(|r| {
                        let params: Vec<String> = (1..=width)
                            .map(|c| match backend {
                                Backend::Sqlite => "?".to_owned(),
                                Backend::Postgres => format!("${}", r * width + c),
                            })
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("INSERT INTO logs ({COLUMNS}) VALUES {rows} ON CONFLICT (id) DO NOTHING")
            })
            .collect()
    });
    let p = len.min(ROWS_PER_INSERT).ilog2() as usize;
    (&all[p], 1 << p)
}

fn row(r: &AnyRow) -> Result<LogRow, StoreError> {
    Ok(LogRow {
        id: r.try_get("id")?,
        ts: r.try_get("ts")?,
        key_id: r.try_get("key_id")?,
        key_name: r.try_get("key_name")?,
        route: r.try_get("route")?,
        requested_model: r.try_get("requested_model")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        status: r.try_get("status")?,
        error_class: r.try_get("error_class")?,
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        cost_usd: r.try_get("cost_usd")?,
        metadata: r.try_get("metadata")?,
        record: r.try_get("record")?,
        cache: r.try_get("cache")?,
        saved_usd: r.try_get("saved_usd")?,
        firewall: r.try_get("firewall")?,
    })
}

/// Escapes `%`, `_` and `\` for a LIKE pattern (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl LogStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Writes a batch in one transaction, up to [`ROWS_PER_INSERT`] rows per statement: on
    /// SQLite every statement is a round trip to the connection's own thread, so one statement
    /// per row cost two thread wake-ups per call logged.
    pub async fn insert(&self, rows: &[LogRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.db.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            let (sql, n) = insert_statement(self.db.backend(), rest.len());
            let (chunk, after) = rest.split_at(n);
            let mut q = sqlx::query(sql);
            for r in chunk {
                q = q
                    .bind(&r.id)
                    .bind(r.ts)
                    .bind(&r.key_id)
                    .bind(&r.key_name)
                    .bind(&r.route)
                    .bind(&r.requested_model)
                    .bind(&r.provider)
                    .bind(&r.model)
                    .bind(r.status)
                    .bind(&r.error_class)
                    .bind(r.latency_ms)
                    .bind(r.ttft_ms)
                    .bind(r.input_tokens)
                    .bind(r.output_tokens)
                    .bind(r.cost_usd)
                    .bind(&r.metadata)
                    .bind(&r.record)
                    .bind(&r.cache)
                    .bind(r.saved_usd)
                    .bind(&r.firewall);
            }
            q.execute(&mut *tx).await?;
            rest = after;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<LogRow>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM logs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Rows matching `filter`, newest first, after the cursor `(ts, id)` of the last row of the
    /// previous page.
    pub async fn query(
        &self,
        filter: &LogFilter,
        before: Option<(Millis, String)>,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let arg = |b: Bind, binds: &mut Vec<Bind>| {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(t) = filter.from {
            let p = arg(Bind::Int(t), &mut binds);
            clauses.push(format!("ts >= {p}"));
        }
        if let Some(t) = filter.to {
            let p = arg(Bind::Int(t), &mut binds);
            clauses.push(format!("ts < {p}"));
        }
        if let Some(k) = &filter.key {
            let p1 = arg(Bind::Text(k.clone()), &mut binds);
            let p2 = arg(Bind::Text(k.clone()), &mut binds);
            clauses.push(format!("(key_id = {p1} OR key_name = {p2})"));
        }
        if let Some(m) = &filter.model {
            let p1 = arg(Bind::Text(m.clone()), &mut binds);
            let p2 = arg(Bind::Text(m.clone()), &mut binds);
            clauses.push(format!("(model = {p1} OR requested_model = {p2})"));
        }
        if let Some(p) = &filter.provider {
            let p = arg(Bind::Text(p.clone()), &mut binds);
            clauses.push(format!("provider = {p}"));
        }
        if let Some(s) = filter.status {
            let p = arg(Bind::Int(s), &mut binds);
            clauses.push(format!("status = {p}"));
        }
        if filter.errors {
            clauses.push("status >= 400".to_owned());
        }
        for (k, v) in &filter.metadata {
            // The metadata column is compact JSON: `"k":"v"` appears as written.
            let needle = serde_json::json!({ k: v }).to_string();
            let inner = needle.trim_start_matches('{').trim_end_matches('}');
            let p = arg(Bind::Text(format!("%{}%", like_literal(inner))), &mut binds);
            clauses.push(format!("metadata LIKE {p} ESCAPE '\\'"));
        }
        match filter.firewall.as_deref() {
            None => {}
            Some("any") => clauses.push("firewall IS NOT NULL".to_owned()),
            Some(a) => {
                let p = arg(Bind::Text(a.to_owned()), &mut binds);
                clauses.push(format!("firewall = {p}"));
            }
        }
        if let Some(s) = &filter.search {
            let p = arg(Bind::Text(format!("%{}%", like_literal(s))), &mut binds);
            clauses.push(format!("record LIKE {p} ESCAPE '\\'"));
        }
        if let Some((ts, id)) = &before {
            let p1 = arg(Bind::Int(*ts), &mut binds);
            let p2 = arg(Bind::Int(*ts), &mut binds);
            let p3 = arg(Bind::Text(id.clone()), &mut binds);
            clauses.push(format!("(ts < {p1} OR (ts = {p2} AND id < {p3}))"));
        }
        let p = arg(Bind::Int(limit), &mut binds);
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql =
            format!("SELECT {COLUMNS} FROM logs {filter_sql} ORDER BY ts DESC, id DESC LIMIT {p}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Int(i) => q.bind(i),
                Bind::Text(t) => q.bind(t),
            };
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        rows.iter().map(row).collect()
    }

    /// Deletes rows older than `before`; returns how many.
    pub async fn delete_before(&self, before: Millis) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM logs WHERE ts < $1")
            .bind(before)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

enum Bind {
    Int(i64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(id: &str, ts: Millis, model: &str, status: i64, metadata: &str) -> LogRow {
        LogRow {
            id: id.into(),
            ts,
            key_name: Some("app".into()),
            requested_model: model.into(),
            provider: Some("mock".into()),
            model: Some(model.into()),
            status,
            latency_ms: 5,
            input_tokens: 10,
            output_tokens: 3,
            cost_usd: None,
            metadata: metadata.into(),
            record: format!("{{\"id\":\"{id}\",\"note\":\"100% {model}\"}}"),
            ..LogRow::default()
        }
    }

    async fn filters_and_pages(db: Db, tag: &str) {
        let s = LogStore::new(db);
        let id = |n: u32| format!("{tag}-{n:03}");
        let tagged = format!("{{\"team\":\"{tag}\",\"n\":1}}");
        let rows: Vec<LogRow> = (0..10)
            .map(|i| {
                log(
                    &id(i),
                    1_000 + i64::from(i),
                    if i % 2 == 0 { "echo" } else { "stream-2" },
                    if i == 7 { 502 } else { 200 },
                    if i < 3 { &tagged } else { "{}" },
                )
            })
            .collect();
        s.insert(&rows).await.unwrap();
        s.insert(&rows[..1]).await.unwrap(); // idempotent
        let mine = |f: LogFilter| LogFilter {
            from: Some(1_000),
            to: Some(1_010),
            search: Some(tag.to_owned()),
            ..f
        };
        let all = s
            .query(&mine(LogFilter::default()), None, 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0].id, id(9), "newest first");
        let page1 = s.query(&mine(LogFilter::default()), None, 4).await.unwrap();
        let last = page1.last().unwrap();
        let page2 = s
            .query(
                &mine(LogFilter::default()),
                Some((last.ts, last.id.clone())),
                4,
            )
            .await
            .unwrap();
        assert_eq!(page2[0].id, id(5));
        let echo = LogFilter {
            model: Some("echo".into()),
            ..LogFilter::default()
        };
        assert_eq!(s.query(&mine(echo), None, 100).await.unwrap().len(), 5);
        let errors = LogFilter {
            errors: true,
            ..LogFilter::default()
        };
        assert_eq!(
            s.query(&mine(errors), None, 100).await.unwrap()[0].id,
            id(7)
        );
        let team = LogFilter {
            metadata: vec![("team".into(), tag.into())],
            ..LogFilter::default()
        };
        assert_eq!(s.query(&mine(team), None, 100).await.unwrap().len(), 3);
        // LIKE wildcards in the search text are literal.
        let pct = LogFilter {
            search: Some("100% stream".to_owned()),
            from: Some(1_000),
            to: Some(1_010),
            ..LogFilter::default()
        };
        assert!(s.query(&pct, None, 100).await.unwrap().len() >= 5);
        assert_eq!(
            s.get(&id(3)).await.unwrap().unwrap().model.as_deref(),
            Some("stream-2")
        );
    }

    /// What goes in comes back, field for field: numbers past 2^53, small floats, nulls and
    /// quoting.
    async fn every_field_round_trips(db: Db, tag: &str) {
        let s = LogStore::new(db);
        let full = LogRow {
            id: format!("{tag}-full"),
            ts: 1_796_181_899_123,
            key_id: Some("k'1\"; DROP".into()),
            key_name: Some("naïve \\ key\n".into()),
            route: Some("smart".into()),
            requested_model: "smart".into(),
            provider: Some("up".into()),
            model: Some("gpt-4o-mini".into()),
            status: 429,
            error_class: Some("rate_limited".into()),
            latency_ms: 12_345,
            ttft_ms: Some(7),
            input_tokens: 9_007_199_254_740_993, // above 2^53: no float on the way
            output_tokens: 0,
            cost_usd: Some(0.000_123_456_789_012_345_6),
            cache: Some("miss".into()),
            saved_usd: Some(1e-12),
            firewall: Some("redact".into()),
            metadata: r#"{"team":"a\"b","n":1}"#.into(),
            record: r#"{"id":"x","text":"\u00e9 \"quoted\""}"#.into(),
        };
        let empty = LogRow {
            id: format!("{tag}-empty"),
            metadata: "{}".into(),
            record: "{}".into(),
            ..LogRow::default()
        };
        s.insert(&[full.clone(), empty.clone()]).await.unwrap();
        assert_eq!(s.get(&full.id).await.unwrap(), Some(full));
        assert_eq!(s.get(&empty.id).await.unwrap(), Some(empty));
        s.insert(&[]).await.unwrap();
    }

    /// Batches of every awkward size are written whole, each row once, whatever mix of
    /// statement sizes they split into; a row sent twice (in one batch or again later) is kept
    /// once.
    async fn batches_of_any_size(db: Db, tag: &str) {
        let s = LogStore::new(db);
        let key = format!("{tag}-batch");
        let mut sent = 0;
        for (b, size) in [1usize, 2, 7, 63, 64, 65, 200].into_iter().enumerate() {
            let rows: Vec<LogRow> = (0..size)
                .map(|i| LogRow {
                    key_id: Some(key.clone()),
                    ..log(
                        &format!("{tag}-b{b}-{i}"),
                        5_000 + i as i64,
                        "echo",
                        200,
                        "{}",
                    )
                })
                .collect();
            let mut with_repeat = rows.clone();
            with_repeat.push(rows[0].clone());
            s.insert(&with_repeat).await.unwrap();
            s.insert(&rows[size / 2..]).await.unwrap();
            sent += size;
            assert_eq!(
                s.get(&rows[size - 1].id).await.unwrap().as_ref(),
                rows.last()
            );
        }
        let filter = LogFilter {
            key: Some(key),
            ..LogFilter::default()
        };
        let stored = s.query(&filter, None, 10_000).await.unwrap();
        assert_eq!(stored.len(), sent);
        let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), sent);
    }

    #[test]
    fn insert_statements_take_the_largest_power_of_two() {
        for (len, rows) in [
            (1, 1),
            (2, 2),
            (3, 2),
            (63, 32),
            (64, 64),
            (65, 64),
            (1000, 64),
        ] {
            let (sql, n) = insert_statement(Backend::Postgres, len);
            assert_eq!(n, rows, "batch of {len}");
            assert_eq!(sql.matches('(').count(), rows + 2, "{sql}");
            assert!(sql.contains(&format!("${})", rows * 20)), "{sql}");
            assert!(!sql.contains(&format!("${}", rows * 20 + 1)), "{sql}");
            let (sql, n) = insert_statement(Backend::Sqlite, len);
            assert_eq!(n, rows, "batch of {len}");
            assert_eq!(sql.matches('?').count(), rows * 20, "{sql}");
            assert!(!sql.contains('$'), "{sql}");
        }
    }

    #[tokio::test]
    async fn sqlite_batches_of_any_size() {
        let path = crate::db::test_sqlite("logbatch");
        batches_of_any_size(Db::open_sqlite(&path).await.unwrap(), "sq").await;
    }

    #[tokio::test]
    async fn postgres_batches_of_any_size() {
        let Some(url) = crate::db::test_postgres("postgres_batches_of_any_size") else {
            return;
        };
        let tag = format!("pg{}", std::process::id());
        batches_of_any_size(Db::connect(&url).await.unwrap(), &tag).await;
    }

    #[tokio::test]
    async fn sqlite_log_rows_round_trip() {
        let path = crate::db::test_sqlite("logrow");
        every_field_round_trips(Db::open_sqlite(&path).await.unwrap(), "sq").await;
    }

    #[tokio::test]
    async fn postgres_log_rows_round_trip() {
        let Some(url) = crate::db::test_postgres("postgres_log_rows_round_trip") else {
            return;
        };
        let tag = format!("pg{}", std::process::id());
        every_field_round_trips(Db::connect(&url).await.unwrap(), &tag).await;
    }

    #[tokio::test]
    async fn sqlite_logs_filter_and_page() {
        let path = crate::db::test_sqlite("logs");
        let db = Db::open_sqlite(&path).await.unwrap();
        filters_and_pages(db.clone(), "sq").await;
        assert_eq!(LogStore::new(db).delete_before(1_005).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn postgres_logs_filter_and_page() {
        let Some(url) = crate::db::test_postgres("postgres_logs_filter_and_page") else {
            return;
        };
        let db = Db::connect(&url).await.unwrap();
        let tag = format!("pg{}", std::process::id());
        filters_and_pages(db, &tag).await;
    }
}
