//! Budgets, the kill switch: spend in US dollars per virtual key per UTC day, calendar month and
//! in total, from each call's usage at the catalog's list prices. A key whose budget is spent
//! is refused (OpenAI's `insufficient_quota`) until the period rolls over or the budget is
//! raised. Crossing the alert share of a budget posts once per period to the key's webhook.
//!
//! Spend is kept in memory for the check on the request path and added to the database after
//! each call (off the request path), so it survives restarts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use serde::{Deserialize, Serialize};
use switchyard_store::StoreError;
use switchyard_store::spend::SpendStore;

use crate::error::GatewayError;
use crate::keys::VirtualKey;
use crate::limits::Clock;
use crate::shared::Shared;

/// A key's budgets. Absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_usd: Option<f64>,
    /// Share of a budget (0–1) at which the webhook is told; default 0.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at: Option<f64>,
    /// `http(s)://…`: receives a JSON POST when spend crosses `alert_at` of a budget, and when
    /// a budget is exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

impl Budgets {
    pub fn is_empty(&self) -> bool {
        self.daily_usd.is_none() && self.monthly_usd.is_none() && self.total_usd.is_none()
    }

    /// Checks values a caller sent.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("daily_usd", self.daily_usd),
            ("monthly_usd", self.monthly_usd),
            ("total_usd", self.total_usd),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("budgets.{name} = {v}: give US dollars, 0 or more"));
            }
        }
        if let Some(a) = self.alert_at
            && !(a > 0.0 && a <= 1.0)
        {
            return Err(format!(
                "budgets.alert_at = {a}: give a share above 0 and at most 1"
            ));
        }
        if let Some(w) = &self.webhook
            && !(w.starts_with("http://") || w.starts_with("https://"))
        {
            return Err(format!("budgets.webhook `{w}` is not an http(s) URL"));
        }
        Ok(())
    }

    fn limits(&self) -> [(Period, Option<f64>); 3] {
        [
            (Period::Day, self.daily_usd),
            (Period::Month, self.monthly_usd),
            (Period::Total, self.total_usd),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Month,
    Total,
}

impl Period {
    fn name(self) -> &'static str {
        match self {
            Self::Day => "daily",
            Self::Month => "monthly",
            Self::Total => "total",
        }
    }

    /// The stored name of the period containing `ms` (UTC): `day:2026-11-25`, `month:2026-11`.
    fn key(self, ms: u64) -> String {
        let (y, m, d) = civil((ms / 86_400_000) as i64);
        match self {
            Self::Day => format!("day:{y:04}-{m:02}-{d:02}"),
            Self::Month => format!("month:{y:04}-{m:02}"),
            Self::Total => "total".to_owned(),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Spend by key and period, over its store.
pub struct Spend {
    totals: Mutex<HashMap<(String, String), f64>>,
    clock: Clock,
    /// `[state] redis`: totals every replica adds to and checks against.
    shared: Option<Arc<Shared>>,
    /// Spend recorded while Redis was away, by (key id, period): added to it once it is back,
    /// so that the other replicas see it too.
    missed: Arc<Missed>,
    /// Database writes and webhook calls, done in order by one background task.
    jobs: mpsc::UnboundedSender<Job>,
}

/// Work done off the request path, in the order it was recorded.
enum Job {
    Add {
        key_id: String,
        period: String,
        usd: f64,
    },
    Alert {
        key_id: String,
        body: serde_json::Value,
        url: String,
        once: (String, &'static str),
    },
}

async fn worker(store: SpendStore, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let http = reqwest::Client::new();
    let mut alerted: HashSet<(String, String, &'static str)> = HashSet::new();
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Add {
                key_id,
                period,
                usd,
            } => {
                // A database that is briefly away (a failover) is waited for, a few times.
                let mut pause = std::time::Duration::from_millis(100);
                for attempt in 1..=5 {
                    match store.add(&key_id, &period, usd).await {
                        Ok(()) => break,
                        Err(e) if attempt == 5 => {
                            tracing::error!(error = %e, key_id, period, usd, "recording spend failed 5 times; this amount is missing from the database's totals");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, key_id, attempt, "recording spend failed; trying again");
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                    }
                }
            }
            Job::Alert {
                key_id,
                body,
                url,
                once,
            } => {
                if !alerted.insert((key_id.clone(), once.0, once.1)) {
                    continue;
                }
                let sent = http
                    .post(&url)
                    .timeout(std::time::Duration::from_secs(10))
                    .json(&body)
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e.without_url(), key_id, "budget webhook failed");
                }
            }
        }
    }
}

impl std::fmt::Debug for Spend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spend").finish_non_exhaustive()
    }
}

impl Spend {
    /// Loads the current periods' totals.
    pub async fn load(store: SpendStore, clock: Clock) -> Result<Self, StoreError> {
        let now = clock();
        let periods: Vec<String> = [Period::Day, Period::Month, Period::Total]
            .iter()
            .map(|p| p.key(now))
            .collect();
        let mut totals = HashMap::new();
        for (key, period, usd) in store.load(&periods).await? {
            totals.insert((key, period), usd);
        }
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(store, rx));
        Ok(Self {
            totals: Mutex::new(totals),
            clock,
            shared: None,
            missed: Arc::default(),
            jobs,
        })
    }

    /// Checks and adds spend in Redis too, so that every replica sees every call's cost. The
    /// totals loaded from the database seed Redis where it has none for a period yet.
    pub async fn with_shared(mut self, shared: Arc<Shared>) -> Self {
        let seed: Vec<((String, String), f64)> = self
            .totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if !seed.is_empty() {
            let mut pipe = redis::pipe();
            for ((key_id, period), usd) in &seed {
                let k = spend_key(&shared, key_id, period);
                pipe.cmd("SET").arg(&k).arg(*usd).arg("NX").ignore();
                if let Some(at) = period_expiry(period) {
                    pipe.cmd("PEXPIREAT").arg(&k).arg(at).ignore();
                }
            }
            let mut conn = shared.conn();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                shared.failed("seeding budget totals in", &e);
            }
        }
        self.shared = Some(shared);
        self
    }

    fn spent(&self, key_id: &str, period: &str) -> f64 {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(key_id.to_owned(), period.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }

    /// What a key has spent in the current day, month and in total (budgeted keys only: spend
    /// is counted for keys with a budget).
    pub fn current(&self, key_id: &str) -> serde_json::Value {
        let now = (self.clock)();
        serde_json::json!({
            "daily_usd": self.spent(key_id, &Period::Day.key(now)),
            "monthly_usd": self.spent(key_id, &Period::Month.key(now)),
            "total_usd": self.spent(key_id, &Period::Total.key(now)),
        })
    }

    /// What Redis holds for these periods of a key, each at least what this replica knows
    /// (Redis may have lost it); this replica's totals alone when Redis is not there.
    async fn totals(&self, key_id: &str, periods: &[String]) -> Vec<f64> {
        let local: Vec<f64> = periods.iter().map(|p| self.spent(key_id, p)).collect();
        let Some(shared) = self.shared.as_ref().filter(|s| s.available()) else {
            return local;
        };
        let mut cmd = redis::cmd("MGET");
        for p in periods {
            cmd.arg(spend_key(shared, key_id, p));
        }
        let mut conn = shared.conn();
        match cmd.query_async::<Vec<Option<f64>>>(&mut conn).await {
            Ok(values) => {
                shared.succeeded();
                self.missed.flush(shared).await;
                local
                    .iter()
                    .zip(values)
                    .map(|(l, r)| r.unwrap_or(0.0).max(*l))
                    .collect()
            }
            Err(e) => {
                shared.failed("reading budget totals from", &e);
                local
            }
        }
    }

    /// Refuses a call whose key has spent a budget.
    pub async fn check(&self, key: &VirtualKey) -> Result<(), GatewayError> {
        let budgets = &key.policy.budgets;
        let now = (self.clock)();
        // The longest-lasting block first: that is the one the caller must deal with.
        let limited: Vec<(Period, f64)> = budgets
            .limits()
            .into_iter()
            .rev()
            .filter_map(|(p, l)| l.map(|l| (p, l)))
            .collect();
        let periods: Vec<String> = limited.iter().map(|(p, _)| p.key(now)).collect();
        let totals = self.totals(&key.id, &periods).await;
        for ((period, limit), spent) in limited.into_iter().zip(totals) {
            if spent >= limit {
                let when = match period {
                    Period::Day => "at the start of the next UTC day",
                    Period::Month => "at the start of the next month (UTC)",
                    Period::Total => "only if the budget is raised",
                };
                return Err(GatewayError::QuotaExceeded {
                    message: format!(
                        "You exceeded your current quota: the key `{}` has spent ${spent:.4} of its {} budget of ${limit:.2}. Calls resume {when}.",
                        key.name,
                        period.name()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Adds a call's cost to the key's totals (and, off the request path, to the database and
    /// to Redis), and tells the webhook when a budget's alert share or the budget itself is
    /// crossed: judged on Redis's totals when it is there (once across replicas), else on this
    /// replica's.
    pub fn record(&self, key: &VirtualKey, usd: f64) {
        if usd <= 0.0 || !usd.is_finite() {
            return;
        }
        let now = (self.clock)();
        let budgets = &key.policy.budgets;
        let mut local = Vec::new();
        {
            let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
            for (period, _) in budgets.limits() {
                let pk = period.key(now);
                let total = totals.entry((key.id.clone(), pk.clone())).or_insert(0.0);
                *total += usd;
                local.push((period, pk, *total));
            }
        }
        for (_, pk, _) in &local {
            let _ = self.jobs.send(Job::Add {
                key_id: key.id.clone(),
                period: pk.clone(),
                usd,
            });
        }
        let alerts = Alerts {
            jobs: self.jobs.clone(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            budgets: budgets.clone(),
            usd,
        };
        let handle = tokio::runtime::Handle::try_current().ok();
        match (&self.shared, handle) {
            (Some(shared), Some(handle)) if shared.available() => {
                let (shared, missed) = (shared.clone(), self.missed.clone());
                handle.spawn(async move {
                    match add_shared(&shared, &alerts.key_id, &local, usd).await {
                        Ok(totals) => {
                            shared.succeeded();
                            missed.flush(&shared).await;
                            alerts.send_shared(&shared, totals).await;
                        }
                        Err(e) => {
                            shared.failed("adding spend to", &e);
                            missed.add(&alerts.key_id, &local, usd);
                            alerts.send_local(local);
                        }
                    }
                });
            }
            (Some(_), _) => {
                // Redis is configured but away: it gets this spend when it is back.
                self.missed.add(&key.id, &local, usd);
                alerts.send_local(local);
            }
            (None, _) => alerts.send_local(local),
        }
    }
}

/// Spend not yet added to Redis, by (key id, period).
#[derive(Debug, Default)]
struct Missed(Mutex<HashMap<(String, String), f64>>);

/// How many (key, period) totals [`Missed`] keeps at most: beyond, the oldest outage spend is
/// only on this replica and in the database.
const MAX_MISSED: usize = 100_000;

impl Missed {
    fn add(&self, key_id: &str, periods: &[(Period, String, f64)], usd: f64) {
        let mut missed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (_, pk, _) in periods {
            if missed.len() >= MAX_MISSED && !missed.contains_key(&(key_id.to_owned(), pk.clone()))
            {
                continue;
            }
            *missed.entry((key_id.to_owned(), pk.clone())).or_insert(0.0) += usd;
        }
    }

    /// Adds what Redis missed to it (kept for the next try if that fails).
    async fn flush(&self, shared: &Shared) {
        let missed: Vec<((String, String), f64)> = {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if m.is_empty() {
                return;
            }
            m.drain().collect()
        };
        let mut pipe = redis::pipe();
        for ((key_id, period), usd) in &missed {
            let k = spend_key(shared, key_id, period);
            pipe.cmd("INCRBYFLOAT").arg(&k).arg(*usd).ignore();
            if let Some(at) = period_expiry(period) {
                pipe.cmd("PEXPIREAT").arg(&k).arg(at).ignore();
            }
        }
        let mut conn = shared.conn();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => tracing::info!(
                totals = missed.len(),
                "spend recorded while Redis was away was added to it"
            ),
            Err(e) => {
                shared.failed("adding spend recorded during its absence to", &e);
                let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
                for (k, usd) in missed {
                    *m.entry(k).or_insert(0.0) += usd;
                }
            }
        }
    }
}

/// `switchyard:spend:{<key id>}:<period>`.
fn spend_key(shared: &Shared, key_id: &str, period: &str) -> String {
    shared.key(&format!("spend:{{{key_id}}}:{period}"))
}

/// When Redis may forget a period's total (ms since the epoch): days after 3 days, months
/// after 40; the total never.
fn period_expiry(period: &str) -> Option<u64> {
    let now = crate::limits::system_clock()();
    if period.starts_with("day:") {
        Some(now + 3 * 86_400_000)
    } else if period.starts_with("month:") {
        Some(now + 40 * 86_400_000)
    } else {
        None
    }
}

/// Adds `usd` to each period's total in Redis; returns the new totals.
async fn add_shared(
    shared: &Shared,
    key_id: &str,
    periods: &[(Period, String, f64)],
    usd: f64,
) -> redis::RedisResult<Vec<(Period, String, f64)>> {
    let mut pipe = redis::pipe();
    for (_, pk, _) in periods {
        let k = spend_key(shared, key_id, pk);
        pipe.cmd("INCRBYFLOAT").arg(&k).arg(usd);
        if let Some(at) = period_expiry(pk) {
            pipe.cmd("PEXPIREAT").arg(&k).arg(at).ignore();
        }
    }
    let mut conn = shared.conn();
    let totals: Vec<f64> = pipe.query_async(&mut conn).await?;
    Ok(periods
        .iter()
        .zip(totals)
        .map(|((p, pk, _), t)| (*p, pk.clone(), t))
        .collect())
}

/// The webhook calls a recorded cost may cause.
struct Alerts {
    jobs: mpsc::UnboundedSender<Job>,
    key_id: String,
    key_name: String,
    budgets: Budgets,
    usd: f64,
}

/// A threshold a cost took a total across.
struct Crossing {
    period: Period,
    pk: String,
    what: &'static str,
    total: f64,
    limit: f64,
}

impl Alerts {
    fn crossings(&self, totals: Vec<(Period, String, f64)>) -> Vec<Crossing> {
        let budgets = &self.budgets;
        let limits = budgets.limits();
        let share = budgets.alert_at.unwrap_or(0.8);
        let mut out = Vec::new();
        for (period, pk, total) in totals {
            let Some(limit) = limits.iter().find(|(p, _)| *p == period).and_then(|l| l.1) else {
                continue;
            };
            let before = total - self.usd;
            for (what, at) in [("alert", limit * share), ("exhausted", limit)] {
                if before < at && total >= at {
                    out.push(Crossing {
                        period,
                        pk: pk.clone(),
                        what,
                        total,
                        limit,
                    });
                }
            }
        }
        out
    }

    /// Tells of every threshold crossed, judged on this replica's totals.
    fn send_local(&self, totals: Vec<(Period, String, f64)>) {
        for c in self.crossings(totals) {
            self.dispatch(c);
        }
    }

    /// Tells of every threshold crossed, judged on Redis's totals: the first replica to claim
    /// a threshold (`SET NX`) is the one that tells.
    async fn send_shared(&self, shared: &Shared, totals: Vec<(Period, String, f64)>) {
        for c in self.crossings(totals) {
            let claim = shared.key(&format!(
                "spend-alert:{{{}}}:{}:{}",
                self.key_id, c.pk, c.what
            ));
            let mut conn = shared.conn();
            let first: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&claim)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(40 * 86_400_000u64)
                .query_async(&mut conn)
                .await;
            // Told twice rather than not at all when Redis fails here.
            if matches!(first, Ok(None)) {
                continue;
            }
            self.dispatch(c);
        }
    }

    fn dispatch(&self, c: Crossing) {
        tracing::warn!(key_id = %self.key_id, budget = c.period.name(), spent_usd = c.total, limit_usd = c.limit, event = c.what, "budget threshold crossed");
        let Some(url) = self.budgets.webhook.clone() else {
            return;
        };
        let body = serde_json::json!({
            "event": format!("budget.{}", c.what),
            "key_id": self.key_id,
            "key_name": self.key_name,
            "budget": c.period.name(),
            "period": c.pk,
            "spent_usd": c.total,
            "limit_usd": c.limit,
        });
        let _ = self.jobs.send(Job::Alert {
            key_id: self.key_id.clone(),
            body,
            url,
            once: (c.pk, c.what),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_417), (2025, 11, 25));
        assert_eq!(civil(19_782), (2024, 2, 29));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(Period::Month.key(20_417 * 86_400_000), "month:2025-11");
        assert_eq!(Period::Day.key(20_417 * 86_400_000 + 1), "day:2025-11-25");
    }

    #[test]
    fn budget_values_are_checked() {
        let b = Budgets {
            daily_usd: Some(-1.0),
            ..Budgets::default()
        };
        assert!(b.validate().unwrap_err().contains("daily_usd"));
        let b = Budgets {
            alert_at: Some(1.5),
            ..Budgets::default()
        };
        assert!(b.validate().is_err());
        let b = Budgets {
            webhook: Some("ftp://x".into()),
            ..Budgets::default()
        };
        assert!(b.validate().is_err());
        assert!(Budgets::default().is_empty());
    }
}

#[cfg(test)]
mod spend_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::keys::KeyPolicy;

    fn key(budgets: Budgets) -> VirtualKey {
        VirtualKey {
            id: "key_1".into(),
            name: "app".into(),
            hint: "sk-sy-…".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            policy: KeyPolicy {
                budgets,
                ..KeyPolicy::default()
            },
        }
    }

    #[tokio::test]
    async fn a_spent_daily_budget_stops_calls_until_the_next_day() {
        let dir = std::env::temp_dir().join(format!("switchyard-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        let db = switchyard_store::Db::open_sqlite(&path).await.unwrap();
        // 2025-11-25, 23:00 UTC.
        let t = Arc::new(AtomicU64::new(20_417 * 86_400_000 + 23 * 3_600_000));
        let c = t.clone();
        let clock: Clock = Arc::new(move || c.load(Ordering::SeqCst));
        let spend = Arc::new(
            Spend::load(SpendStore::new(db.clone()), clock.clone())
                .await
                .unwrap(),
        );
        let k = key(Budgets {
            daily_usd: Some(1.0),
            total_usd: Some(10.0),
            ..Budgets::default()
        });
        assert!(spend.check(&k).await.is_ok());
        spend.record(&k, 0.6);
        assert!(spend.check(&k).await.is_ok());
        spend.record(&k, 0.6);
        let e = spend.check(&k).await.unwrap_err();
        assert!(matches!(e, GatewayError::QuotaExceeded { .. }));
        assert!(e.to_string().contains("daily budget of $1.00"), "{e}");
        // An hour later it is the next UTC day: the daily budget is fresh, the total is not.
        t.fetch_add(3_600_000, Ordering::SeqCst);
        assert!(spend.check(&k).await.is_ok());
        spend.record(&k, 9.0);
        assert!(
            spend
                .check(&k)
                .await
                .unwrap_err()
                .to_string()
                .contains("total budget")
        );

        // What was recorded is in the database: a new process sees it.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let again = Spend::load(SpendStore::new(db), clock).await.unwrap();
        assert!(
            again
                .check(&k)
                .await
                .unwrap_err()
                .to_string()
                .contains("total budget")
        );
    }

    #[tokio::test]
    async fn spend_waits_for_a_database_that_went_away() {
        let dir = std::env::temp_dir().join(format!("switchyard-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        let db = switchyard_store::Db::open_sqlite(&path).await.unwrap();
        let clock = crate::limits::system_clock();
        let spend = Spend::load(SpendStore::new(db.clone()), clock.clone())
            .await
            .unwrap();
        let k = key(Budgets {
            total_usd: Some(100.0),
            ..Budgets::default()
        });
        db.execute("ALTER TABLE spend RENAME TO spend_away")
            .await
            .unwrap();
        spend.record(&k, 2.5);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        db.execute("ALTER TABLE spend_away RENAME TO spend")
            .await
            .unwrap();
        // The retries land it: a new process sees the spend.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let again = Spend::load(SpendStore::new(db.clone()), clock.clone())
                .await
                .unwrap();
            if again.current(&k.id)["total_usd"] == 2.5 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the spend never landed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
