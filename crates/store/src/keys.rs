//! Virtual keys as rows: the key's hash (never the key), a hint for people, times, and the policy
//! (allowed models, limits, budgets, metadata) as the gateway's JSON.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Db, Millis, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// The key's first and last characters, to recognise it (`sk-sy-AbC…xYz`).
    pub hint: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub policy: Value,
}

/// The virtual keys table.
#[derive(Debug, Clone)]
pub struct KeyStore {
    db: Db,
}

const COLUMNS: &str = "id, name, hash, hint, created_at, expires_at, revoked_at, policy";

fn row(r: &AnyRow) -> Result<KeyRow, StoreError> {
    let policy: String = r.try_get("policy")?;
    Ok(KeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        hash: r.try_get("hash")?,
        hint: r.try_get("hint")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        policy: serde_json::from_str(&policy)
            .map_err(|e| StoreError::Corrupt(format!("policy of key: {e}")))?,
    })
}

impl KeyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, k: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO virtual_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.hash)
        .bind(&k.hint)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.policy.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM virtual_keys ORDER BY created_at, id"
        ))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(row).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM virtual_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn by_hash(&self, hash: &str) -> Result<Option<KeyRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM virtual_keys WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.db.pool())
        .await?;
        r.as_ref().map(row).transpose()
    }

    /// Marks a key revoked; `false` if there is no such key or it was revoked already.
    pub async fn revoke(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE virtual_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a live key a new secret (its hash and hint); the old one stops working.
    pub async fn rotate(&self, id: &str, hash: &str, hint: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE virtual_keys SET hash = $1, hint = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(hash)
        .bind(hint)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn count_live(&self, now: Millis) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM virtual_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .fetch_one(self.db.pool())
        .await?;
        Ok(r.try_get("n")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, hash: &str) -> KeyRow {
        KeyRow {
            id: id.into(),
            name: format!("key {id}"),
            hash: hash.into(),
            hint: "sk-sy-AbC…xYz".into(),
            created_at: 1_000,
            expires_at: None,
            revoked_at: None,
            policy: serde_json::json!({"allow": ["mock/*"]}),
        }
    }

    /// Checks only its own rows: a shared PostgreSQL database holds other tests' keys too.
    async fn lifecycle(db: Db) {
        let store = KeyStore::new(db);
        let mine = |rows: Vec<KeyRow>| rows.iter().filter(|r| r.id == "k1" || r.id == "k2").count();
        let others = store.count_live(2_000).await.unwrap();
        store.insert(&key("k1", "h1")).await.unwrap();
        store.insert(&key("k2", "h2")).await.unwrap();
        assert!(matches!(
            store.insert(&key("k3", "h1")).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(mine(store.list().await.unwrap()), 2);
        assert_eq!(store.by_hash("h2").await.unwrap().unwrap().id, "k2");
        assert_eq!(
            store.get("k1").await.unwrap().unwrap().policy["allow"][0],
            "mock/*"
        );
        assert_eq!(store.count_live(2_000).await.unwrap() - others, 2);
        assert!(store.rotate("k1", "h1b", "sk-sy-New…").await.unwrap());
        assert!(store.by_hash("h1").await.unwrap().is_none());
        assert!(store.revoke("k1", 5_000).await.unwrap());
        assert!(!store.revoke("k1", 6_000).await.unwrap(), "already revoked");
        assert!(!store.rotate("k1", "h1c", "x").await.unwrap());
        assert_eq!(
            store.get("k1").await.unwrap().unwrap().revoked_at,
            Some(5_000)
        );
        assert_eq!(store.count_live(2_000).await.unwrap() - others, 1);
        assert!(store.get("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sqlite_key_lifecycle_survives_reopening() {
        let path = crate::db::test_sqlite("keys");
        lifecycle(Db::open_sqlite(&path).await.unwrap()).await;
        let again = KeyStore::new(Db::open_sqlite(&path).await.unwrap());
        assert_eq!(again.list().await.unwrap().len(), 2);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn postgres_key_lifecycle() {
        let Some(url) = crate::db::test_postgres("postgres_key_lifecycle") else {
            return;
        };
        let db = Db::connect(&url).await.unwrap();
        // A fresh table for this run: other runs may share the database.
        sqlx::query("DELETE FROM virtual_keys WHERE id IN ('k1', 'k2', 'k3')")
            .execute(db.pool())
            .await
            .unwrap();
        lifecycle(db).await;
    }
}
