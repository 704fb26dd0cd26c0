//! Spend per virtual key and period, in US dollars: what budgets are checked against.

use sqlx::Row;

use crate::{Db, StoreError};

/// The spend table: one running total per key and period (`day:2026-11-25`, `month:2026-11`,
/// `total`).
#[derive(Debug, Clone)]
pub struct SpendStore {
    db: Db,
}

impl SpendStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Adds `usd` to a key's total for a period.
    pub async fn add(&self, key_id: &str, period: &str, usd: f64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO spend (key_id, period, usd) VALUES ($1, $2, $3)
             ON CONFLICT (key_id, period) DO UPDATE SET usd = spend.usd + excluded.usd",
        )
        .bind(key_id)
        .bind(period)
        .bind(usd)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Every key's totals for the given periods.
    pub async fn load(&self, periods: &[String]) -> Result<Vec<(String, String, f64)>, StoreError> {
        let mut out = Vec::new();
        for period in periods {
            let rows = sqlx::query("SELECT key_id, usd FROM spend WHERE period = $1")
                .bind(period)
                .fetch_all(self.db.pool())
                .await?;
            for r in rows {
                out.push((r.try_get("key_id")?, period.clone(), r.try_get("usd")?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn totals(db: Db, key: &str) {
        let s = SpendStore::new(db);
        s.add(key, "day:1", 0.25).await.unwrap();
        s.add(key, "day:1", 0.5).await.unwrap();
        s.add(key, "total", 1.0).await.unwrap();
        let rows = s.load(&["day:1".into(), "total".into()]).await.unwrap();
        let day: f64 = rows
            .iter()
            .filter(|(k, p, _)| k == key && p == "day:1")
            .map(|r| r.2)
            .sum();
        assert!((day - 0.75).abs() < 1e-9, "{rows:?}");
        assert!(
            rows.iter()
                .any(|(k, p, v)| k == key && p == "total" && *v >= 1.0)
        );
    }

    #[tokio::test]
    async fn sqlite_spend_adds_up() {
        let path = crate::db::test_sqlite("spend");
        totals(Db::open_sqlite(&path).await.unwrap(), "k1").await;
    }

    #[tokio::test]
    async fn postgres_spend_adds_up() {
        let Some(url) = crate::db::test_postgres("postgres_spend_adds_up") else {
            return;
        };
        let db = Db::connect(&url).await.unwrap();
        let key = format!("k-{}", std::process::id());
        totals(db, &key).await;
    }
}
