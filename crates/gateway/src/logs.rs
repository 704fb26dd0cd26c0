//! Request logs: one record per call, written by a background task in batches so that the
//! request path never waits on the database.
//!
//! A [`CallLog`] is started when a call arrives and finished once its answer is known (for a
//! stream, when the stream ends or the caller goes away). Finishing hands the record to the
//! [`Logger`]'s bounded queue; when the queue is full the record is dropped and counted
//! (`switchyard_log_records_dropped_total`, and a warning), never silently. On shutdown the
//! queue is flushed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use switchyard_store::logs::{LogRow, LogStore};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::config::BodyMode;
use crate::routing::Attempts;
use crate::routing::attempt::Tried;

/// Records written per transaction, at most.
const BATCH: usize = 512;
/// How long a record may wait for its batch to fill.
const LINGER: Duration = Duration::from_millis(200);
/// How many queued records make the writer write without waiting out [`LINGER`]: a batch, or
/// half of a smaller queue, so that a small queue does not fill while the writer waits. (The
/// writer holds one more, the record that woke it.)
fn ready_at(queue: usize) -> usize {
    BATCH.min(queue.div_ceil(2))
}

/// The first and the longest pause before a failed batch is written again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The whole record, as stored (JSON) and as `GET /admin/logs/{id}` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: String,
    /// Unix milliseconds when the call arrived.
    pub ts: i64,
    pub surface: &'static str,
    pub stream: bool,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub client: Option<std::net::IpAddr>,
    pub requested_model: String,
    pub route: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub attempts: Vec<Tried>,
    pub status: u16,
    pub error_class: Option<String>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// List price of the call in US dollars; `null` when the model has no price.
    pub cost_usd: Option<f64>,
    /// Where the price comes from: the built-in catalog's source and date, or the configuration.
    pub price_source: Option<String>,
    /// What the cache did: `hit`, `miss`, `bypass`; `null` when it was off for the call.
    pub cache: Option<&'static str>,
    /// For an answer served from the cache: what it would have cost at list prices.
    pub saved_usd: Option<f64>,
    /// What the firewall found and did, when the call had a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallRecord>,
    pub metadata: Map<String, Value>,
    /// What the log keeps of this call: `none`, `metadata` or `full`.
    pub bodies: BodyMode,
    /// The request body, with secrets redacted (`full` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The answer, with secrets redacted (`full` only; for a stream, its text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// The firewall's part of a record.
#[derive(Debug, Clone, Serialize)]
pub struct FirewallRecord {
    pub policy: String,
    /// The strongest action taken; `null` when nothing was found.
    pub action: Option<switchyard_firewall::Action>,
    pub verdicts: switchyard_firewall::Verdicts,
}

/// Token counts of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

impl Tokens {
    pub fn of(u: &switchyard_protocol::chat::Usage) -> Self {
        Self {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

/// A call being recorded.
#[derive(Debug)]
pub struct CallLog {
    started: Instant,
    record: Record,
    logger: Arc<Logger>,
    body: Option<bytes::Bytes>,
    /// The key's and the caller's say on what is kept.
    key_bodies: Option<BodyMode>,
    cap: Option<BodyMode>,
    /// The caller's span, from its `traceparent`, for the exported trace.
    parent: Option<opentelemetry::trace::SpanContext>,
    /// The firewall's screening of the call, read when the record is finished (a stream's
    /// verdicts arrive as it passes).
    screening: Option<Arc<crate::firewall::Screening>>,
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl CallLog {
    pub fn start(
        logger: &Arc<Logger>,
        id: uuid::Uuid,
        client: Option<SocketAddr>,
        surface: &'static str,
    ) -> Self {
        Self {
            started: Instant::now(),
            logger: logger.clone(),
            body: None,
            key_bodies: None,
            cap: None,
            parent: None,
            screening: None,
            record: Record {
                id: id.to_string(),
                ts: now_millis(),
                surface,
                stream: false,
                key_id: None,
                key_name: None,
                client: client.map(|a| a.ip()),
                requested_model: String::new(),
                route: None,
                provider: None,
                model: None,
                attempts: Vec::new(),
                status: 0,
                error_class: None,
                latency_ms: 0,
                ttft_ms: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                cost_usd: None,
                price_source: None,
                cache: None,
                saved_usd: None,
                firewall: None,
                metadata: Map::new(),
                bodies: BodyMode::default(),
                request: None,
                response: None,
            },
        }
    }

    /// The caller's trace context (`traceparent`), when traces are exported.
    pub fn traced(&mut self, state: &AppState, headers: &axum::http::HeaderMap) {
        self.parent = state.telemetry.parent(headers);
    }

    /// The request body as it came, kept in case the log records bodies.
    pub fn body(&mut self, body: &bytes::Bytes) {
        self.body = Some(body.clone());
    }

    /// Whether the answer should be handed over for the record.
    pub fn records_bodies(&self) -> bool {
        self.record.bodies == BodyMode::Full
    }

    /// Whether the log may keep this call's answer, known before routing: the key's setting,
    /// else the most of any route's (see [`CallLog::attempts`]), within the caller's cap.
    pub fn may_record_bodies(&self, state: &AppState) -> bool {
        let configured = self
            .key_bodies
            .unwrap_or_else(|| state.routes.load().most_log_bodies());
        configured.min(self.cap.unwrap_or(BodyMode::Full)) == BodyMode::Full
    }

    /// The answer, for a log that records bodies.
    pub fn response(&mut self, value: Value) {
        self.record.response = Some(value);
    }

    /// What the call asked for and who asked.
    pub fn request(&mut self, options: &crate::routing::CallOptions, model: &str, stream: bool) {
        let r = &mut self.record;
        r.requested_model = options.route.clone().unwrap_or_else(|| model.to_owned());
        r.stream = stream;
        r.metadata = options.metadata.clone();
        if let Some(k) = &options.key {
            r.key_id = Some(k.id.clone());
            r.key_name = Some(k.name.clone());
            self.key_bodies = k.policy.log_bodies;
        }
        self.cap = options.log_bodies;
    }

    /// What routing did: the target that answered (or was tried last) and every attempt; and
    /// so what the log keeps: the key's setting, else the route's, else `logs.bodies`, never
    /// more than the caller's `x-switchyard-log-bodies`.
    pub fn attempts(&mut self, state: &AppState, attempts: &Attempts) {
        let configured = self
            .key_bodies
            .unwrap_or_else(|| state.routes.load().log_bodies(attempts.route.as_deref()));
        self.record.bodies = configured.min(self.cap.unwrap_or(BodyMode::Full));
        let r = &mut self.record;
        r.route = attempts.route.as_deref().map(str::to_owned);
        if let Some(t) = &attempts.target {
            r.provider = Some(t.provider_name().to_owned());
            r.model = Some(t.model.clone());
        }
        r.attempts.clone_from(&attempts.tried);
        r.cache = attempts.cache.map(|c| c.status.as_str());
        self.screening.clone_from(&attempts.firewall);
    }

    /// The first byte of a stream is ready now.
    pub fn first_byte(&mut self) {
        self.record.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
    }

    /// Finishes the record and queues it.
    pub fn finish(
        mut self,
        state: &AppState,
        status: u16,
        error_class: Option<&str>,
        tokens: Option<Tokens>,
    ) {
        if let Some(s) = &self.screening {
            let verdicts = s.verdicts();
            self.record.firewall = Some(FirewallRecord {
                policy: s.policy.name.clone(),
                action: verdicts.strongest(),
                verdicts,
            });
        }
        let r = &mut self.record;
        r.status = status;
        r.error_class = error_class.map(str::to_owned);
        r.latency_ms = self.started.elapsed().as_millis() as u64;
        if r.ttft_ms.is_none() && status < 400 {
            r.ttft_ms = Some(r.latency_ms);
        }
        if let Some(t) = tokens {
            r.input_tokens = t.input;
            r.output_tokens = t.output;
            r.cached_tokens = t.cached;
            if let (Some(p), Some(m)) = (&r.provider, &r.model) {
                let slug = format!("{p}/{m}");
                let routes = state.routes.load();
                let catalog = routes.catalog();
                r.cost_usd = catalog
                    .get(&slug)
                    .and_then(|info| info.cost_cached(t.input, t.cached, t.output));
                if r.cost_usd.is_some() {
                    r.price_source = catalog.provenance(&slug).map(str::to_owned);
                }
                // A cached answer cost nothing; its price is what the cache saved.
                if matches!(r.cache, Some("hit" | "semantic_hit")) {
                    r.saved_usd = r.cost_usd.take();
                    r.cost_usd = Some(0.0);
                }
            }
        }
        state.metrics.call(r);
        state.telemetry.call(r, self.parent.as_ref());
        self.logger.submit(Finished {
            record: self.record,
            body: self.body,
            screening: self.screening,
        });
    }
}

/// A finished call on its way to the writer. What is not needed to answer the caller (the
/// request body's parsing and redaction, the JSON of the record) is done by the writer.
#[derive(Debug)]
struct Finished {
    record: Record,
    body: Option<bytes::Bytes>,
    /// The call's screening: what it redacted for the provider, the log does not keep either.
    screening: Option<Arc<crate::firewall::Screening>>,
}

impl Finished {
    /// The row as stored, with what the record's body mode keeps.
    fn into_row(self) -> LogRow {
        let mut r = self.record;
        match r.bodies {
            BodyMode::None => r.metadata.clear(),
            BodyMode::Metadata => {}
            BodyMode::Full => {
                let scrub = |text: &str| self.screening.as_ref().and_then(|s| s.scrub(text));
                r.request = self.body.as_ref().map(|b| {
                    let text = String::from_utf8_lossy(b);
                    let text = scrub(&text).unwrap_or_else(|| text.into_owned());
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                });
                if let Some(clean) = r.response.as_ref().and_then(|v| scrub(&v.to_string())) {
                    r.response = serde_json::from_str(&clean).ok();
                }
                for v in [&mut r.request, &mut r.response].into_iter().flatten() {
                    crate::redact::redact_json(v);
                }
            }
        }
        let record = serde_json::to_string(&r).unwrap_or_default();
        LogRow {
            metadata: Value::Object(r.metadata).to_string(),
            record,
            id: r.id,
            ts: r.ts,
            key_id: r.key_id,
            key_name: r.key_name,
            route: r.route,
            requested_model: r.requested_model,
            provider: r.provider,
            model: r.model,
            status: i64::from(r.status),
            error_class: r.error_class,
            latency_ms: r.latency_ms as i64,
            ttft_ms: r.ttft_ms.map(|t| t as i64),
            input_tokens: r.input_tokens as i64,
            output_tokens: r.output_tokens as i64,
            cost_usd: r.cost_usd,
            cache: r.cache.map(str::to_owned),
            saved_usd: r.saved_usd,
            firewall: r
                .firewall
                .and_then(|f| f.action)
                .map(|a| a.as_str().to_owned()),
        }
    }
}

/// The queue and its writer task.
#[derive(Debug)]
pub struct Logger {
    /// `None` when logging is off.
    tx: Option<mpsc::Sender<Finished>>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    /// Told when a batch's worth of records is queued, so the writer need not wait out LINGER.
    batch_ready: Arc<Notify>,
    shutdown: Arc<Notify>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Logger {
    /// Starts the writer; `capacity` bounds the records waiting to be written.
    pub fn start(store: LogStore, capacity: usize) -> Arc<Self> {
        Self::start_lingering(store, capacity, LINGER)
    }

    fn start_lingering(store: LogStore, capacity: usize, linger: Duration) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let batch_ready = Arc::new(Notify::new());
        let shutdown = Arc::new(Notify::new());
        let written = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write(
            store,
            rx,
            batch_ready.clone(),
            shutdown.clone(),
            linger,
            written.clone(),
            dropped.clone(),
        ));
        Arc::new(Self {
            tx: Some(tx),
            dropped,
            written,
            batch_ready,
            shutdown,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// A logger that records nothing (`logs.enabled = false`).
    pub fn off() -> Arc<Self> {
        Arc::new(Self {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
            written: Arc::new(AtomicU64::new(0)),
            batch_ready: Arc::new(Notify::new()),
            shutdown: Arc::new(Notify::new()),
            writer: Mutex::new(None),
        })
    }

    fn submit(&self, call: Finished) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send(call).is_ok() {
            if tx.max_capacity() - tx.capacity() == ready_at(tx.max_capacity()) {
                self.batch_ready.notify_one();
            }
            return;
        }
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                dropped = n,
                "the request-log queue is full; records are being dropped"
            );
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records written to the database.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer.
    pub async fn flush_and_stop(&self) {
        self.shutdown.notify_one();
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
        }
    }
}

async fn write(
    store: LogStore,
    mut rx: mpsc::Receiver<Finished>,
    batch_ready: Arc<Notify>,
    shutdown: Arc<Notify>,
    linger: Duration,
    written: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        if !stopping && batch.is_empty() {
            tokio::select! {
                row = rx.recv() => match row {
                    Some(row) => batch.push(row),
                    None => stopping = true,
                },
                () = shutdown.notified() => stopping = true,
            }
        }
        // Fill the batch: let records gather for LINGER (or until a batch's worth is queued),
        // then take what is there. Waiting on a timer rather than on the queue keeps callers
        // from waking this task once per record.
        if !stopping && !batch.is_empty() && rx.len() < ready_at(rx.max_capacity()) {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = batch_ready.notified() => {}
                () = shutdown.notified() => stopping = true,
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let rows: Vec<LogRow> = batch.drain(..).map(Finished::into_row).collect();
            // A database that is away (a PostgreSQL failover, a restart) is waited for: the
            // batch is tried again with a growing pause while new records wait in the queue
            // (beyond its bound they are dropped and counted). Stopping, it is tried 5 times.
            let mut pause = RETRY_FIRST;
            let mut tries = 0u32;
            loop {
                match store.insert(&rows).await {
                    Ok(()) => {
                        written.fetch_add(n, Ordering::Relaxed);
                        if tries > 0 {
                            tracing::info!(
                                records = n,
                                tries,
                                "request logs written after the database came back"
                            );
                        }
                        break;
                    }
                    Err(e) if stopping && tries >= 4 => {
                        dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(error = %e, records = n, "writing request logs failed at shutdown; these records are lost");
                        break;
                    }
                    Err(e) => {
                        tries += 1;
                        if tries.is_power_of_two() {
                            tracing::warn!(error = %e, records = n, tries, "writing request logs failed; trying again (records wait in the queue)");
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        }
        if stopping && rx.is_empty() {
            break;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(i: usize) -> Record {
        Record {
            id: format!("rec-{i:06}"),
            ts: 1_000 + i as i64,
            surface: "chat",
            stream: false,
            key_id: None,
            key_name: None,
            client: None,
            requested_model: "mock/echo".into(),
            route: None,
            provider: Some("mock".into()),
            model: Some("echo".into()),
            attempts: Vec::new(),
            status: 200,
            error_class: None,
            latency_ms: 1,
            ttft_ms: Some(1),
            input_tokens: 3,
            output_tokens: 1,
            cached_tokens: 0,
            cost_usd: None,
            price_source: None,
            cache: None,
            saved_usd: None,
            firewall: None,
            metadata: Map::new(),
            bodies: BodyMode::Metadata,
            request: None,
            response: None,
        }
    }

    async fn store() -> LogStore {
        let dir = std::env::temp_dir().join(format!("switchyard-logger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        LogStore::new(switchyard_store::Db::open_sqlite(&path).await.unwrap())
    }

    #[tokio::test]
    async fn within_its_bound_the_writer_drops_nothing_and_flushes_on_stop() {
        let logger = Logger::start(store().await, 5_000);
        for i in 0..5_000 {
            logger.submit(Finished {
                record: record(i),
                body: None,
                screening: None,
            });
        }
        logger.flush_and_stop().await;
        assert_eq!((logger.written(), logger.dropped()), (5_000, 0));
    }

    fn submit(logger: &Logger, range: std::ops::Range<usize>) {
        for i in range {
            logger.submit(Finished {
                record: record(i),
                body: None,
                screening: None,
            });
        }
    }

    async fn written_within(logger: &Logger, n: u64, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while logger.written() < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        logger.written() >= n
    }

    #[tokio::test]
    async fn records_wait_for_their_batch_and_a_full_batch_goes_at_once() {
        // A linger of an hour: whatever is written before the stop was written because a
        // batch's worth was queued, not because the timer ran out.
        let logger = Logger::start_lingering(store().await, 10_000, Duration::from_secs(3600));
        submit(&logger, 0..10);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            logger.written(),
            0,
            "a trickle is written as one batch, later"
        );
        // The writer holds the record that woke it; 512 more in the queue make it write.
        submit(&logger, 10..(BATCH + 1));
        assert!(
            written_within(&logger, BATCH as u64, Duration::from_secs(30)).await,
            "a full batch was not written: {} written",
            logger.written()
        );
        submit(&logger, (BATCH + 1)..(BATCH + 4));
        logger.flush_and_stop().await;
        assert_eq!((logger.written(), logger.dropped()), (BATCH as u64 + 4, 0));
    }

    #[tokio::test]
    async fn a_small_queue_is_written_at_half_full() {
        let logger = Logger::start_lingering(store().await, 8, Duration::from_secs(3600));
        submit(&logger, 0..1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        submit(&logger, 1..5);
        assert!(
            written_within(&logger, 5, Duration::from_secs(30)).await,
            "{} written",
            logger.written()
        );
        logger.flush_and_stop().await;
        assert_eq!((logger.written(), logger.dropped()), (5, 0));
    }

    #[tokio::test]
    async fn beyond_its_bound_records_are_dropped_and_counted() {
        let logger = Logger::start(store().await, 10);
        // No await between submissions: the writer cannot drain the queue meanwhile.
        for i in 0..1_000 {
            logger.submit(Finished {
                record: record(i),
                body: None,
                screening: None,
            });
        }
        logger.flush_and_stop().await;
        assert!(logger.dropped() >= 900, "{}", logger.dropped());
        assert_eq!(logger.written() + logger.dropped(), 1_000);
    }

    #[tokio::test]
    async fn a_database_that_goes_away_is_waited_for_and_nothing_is_lost() {
        let dir = std::env::temp_dir().join(format!("switchyard-logger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        let db = switchyard_store::Db::open_sqlite(&path).await.unwrap();
        let logger = Logger::start(LogStore::new(db.clone()), 1_000);
        // The table is gone for a while: every write fails.
        db.execute("ALTER TABLE logs RENAME TO logs_away")
            .await
            .unwrap();
        for i in 0..50 {
            logger.submit(Finished {
                record: record(i),
                body: None,
                screening: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(logger.written(), 0);
        db.execute("ALTER TABLE logs_away RENAME TO logs")
            .await
            .unwrap();
        logger.flush_and_stop().await;
        assert_eq!((logger.written(), logger.dropped()), (50, 0));
    }
}
