//! Provider credentials stored through the admin API, sealed by the gateway before they get
//! here: this table only ever holds ciphertext.

use sqlx::Row;

use crate::{Db, Millis, StoreError};

#[derive(Debug, Clone)]
pub struct CredentialStore {
    db: Db,
}

impl CredentialStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Stores (or replaces) the sealed credential of a provider.
    pub async fn put(&self, provider: &str, sealed: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO credentials (provider, sealed, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (provider) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(provider)
        .bind(sealed)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// `false` if there was none.
    pub async fn delete(&self, provider: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM credentials WHERE provider = $1")
            .bind(provider)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every stored credential: (provider, sealed, updated_at), by provider.
    pub async fn all(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        let rows =
            sqlx::query("SELECT provider, sealed, updated_at FROM credentials ORDER BY provider")
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("provider")?,
                    r.try_get("sealed")?,
                    r.try_get("updated_at")?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_replace_list_delete() {
        let path = crate::db::test_sqlite("cred");
        let s = CredentialStore::new(Db::open_sqlite(&path).await.unwrap());
        s.put("openai", "sealed-1", 1).await.unwrap();
        s.put("openai", "sealed-2", 2).await.unwrap();
        s.put("groq", "sealed-3", 3).await.unwrap();
        let all = s.all().await.unwrap();
        assert_eq!(
            all,
            [
                ("groq".to_owned(), "sealed-3".to_owned(), 3),
                ("openai".to_owned(), "sealed-2".to_owned(), 2)
            ]
        );
        assert!(s.delete("groq").await.unwrap());
        assert!(!s.delete("groq").await.unwrap());
        assert_eq!(s.all().await.unwrap().len(), 1);
    }
}
