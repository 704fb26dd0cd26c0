//! Responses kept for OpenAI's Responses API: `previous_response_id` continues a conversation
//! from them, `GET /v1/responses/{id}` returns one. A row holds the response object and the
//! turn's conversation (the new input and the output, as the gateway's JSON) with the id of the
//! turn before, so the gateway rebuilds a conversation by walking back. Rows belong to the virtual key
//! that made them (none when the gateway runs without keys).

use sqlx::Row;

use crate::{Db, Millis, StoreError};

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub created_at: Millis,
    pub key_id: Option<String>,
    pub previous_id: Option<String>,
    /// JSON the gateway defines.
    pub record: String,
}

#[derive(Debug, Clone)]
pub struct ResponseStore {
    db: Db,
}

impl ResponseStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO responses (id, created_at, key_id, previous_id, record) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record",
        )
        .bind(&r.id)
        .bind(r.created_at)
        .bind(&r.key_id)
        .bind(&r.previous_id)
        .bind(&r.record)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The response `id`, if it exists and belongs to `key_id`.
    pub async fn get(
        &self,
        id: &str,
        key_id: Option<&str>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT id, created_at, key_id, previous_id, record FROM responses WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let stored = StoredResponse {
            id: r.try_get("id")?,
            created_at: r.try_get("created_at")?,
            key_id: r.try_get("key_id")?,
            previous_id: r.try_get("previous_id")?,
            record: r.try_get("record")?,
        };
        Ok((stored.key_id.as_deref() == key_id).then_some(stored))
    }

    /// Deletes the response `id` of `key_id`; `false` if there was none.
    pub async fn delete(&self, id: &str, key_id: Option<&str>) -> Result<bool, StoreError> {
        if self.get(id, key_id).await?.is_none() {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM responses WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn by_key(db: Db, tag: &str) {
        let s = ResponseStore::new(db);
        let row = |id: &str, prev: Option<&str>, key: Option<&str>| StoredResponse {
            id: format!("{tag}-{id}"),
            created_at: 1,
            key_id: key.map(str::to_owned),
            previous_id: prev.map(|p| format!("{tag}-{p}")),
            record: format!("{{\"turn\":\"{id}\"}}"),
        };
        s.put(&row("a", None, Some("k1"))).await.unwrap();
        s.put(&row("b", Some("a"), Some("k1"))).await.unwrap();
        let b = s
            .get(&format!("{tag}-b"), Some("k1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b, row("b", Some("a"), Some("k1")));
        // Another key, or none, sees nothing of it.
        assert!(
            s.get(&format!("{tag}-b"), Some("k2"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.get(&format!("{tag}-b"), None).await.unwrap().is_none());
        assert!(!s.delete(&format!("{tag}-b"), Some("k2")).await.unwrap());
        assert!(s.delete(&format!("{tag}-b"), Some("k1")).await.unwrap());
        assert!(
            s.get(&format!("{tag}-b"), Some("k1"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(!s.delete(&format!("{tag}-b"), Some("k1")).await.unwrap());
    }

    #[tokio::test]
    async fn sqlite_responses_belong_to_their_key() {
        let path = crate::db::test_sqlite("responses");
        by_key(Db::open_sqlite(&path).await.unwrap(), "t").await;
    }

    #[tokio::test]
    async fn postgres_responses_belong_to_their_key() {
        let Some(url) = crate::db::test_postgres("postgres_responses_belong_to_their_key") else {
            return;
        };
        let tag = format!(
            "pg{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        by_key(Db::connect(&url).await.unwrap(), &tag).await;
    }
}
