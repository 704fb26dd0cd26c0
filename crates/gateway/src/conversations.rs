//! Stored responses of the Responses surface, by id, for `previous_response_id` and `GET`.
//!
//! A response is written to the database in the background, so that the caller has its answer
//! without waiting; until the write is done it is held here, so a client that continues the
//! conversation at once (the next request as soon as the stream's last event) finds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_store::StoreError;
use switchyard_store::responses::{ResponseStore, StoredResponse};

#[derive(Debug)]
pub struct Conversations {
    store: ResponseStore,
    /// Written, but not yet in the database.
    pending: Mutex<HashMap<String, StoredResponse>>,
}

impl Conversations {
    pub fn new(store: ResponseStore) -> Arc<Self> {
        Arc::new(Self {
            store,
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredResponse>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a response: visible at once, in the database shortly.
    pub fn put(self: &Arc<Self>, row: StoredResponse) {
        self.pending().insert(row.id.clone(), row.clone());
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.store.put(&row).await {
                tracing::error!(error = %e, id = %row.id, "storing a response failed");
            }
            // Deleted while it was being written: the write must not bring it back.
            if this.pending().remove(&row.id).is_none()
                && let Err(e) = this.store.delete(&row.id, row.key_id.as_deref()).await
            {
                tracing::error!(error = %e, id = %row.id, "deleting a response failed");
            }
        });
    }

    /// The response `id` of `key_id`.
    pub async fn get(
        &self,
        id: &str,
        key_id: Option<&str>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let held = self.pending().get(id).cloned();
        if let Some(r) = held {
            return Ok((r.key_id.as_deref() == key_id).then_some(r));
        }
        self.store.get(id, key_id).await
    }

    /// Deletes the response `id` of `key_id`; `false` if there was none.
    pub async fn delete(&self, id: &str, key_id: Option<&str>) -> Result<bool, StoreError> {
        let held = {
            let mut pending = self.pending();
            match pending.get(id) {
                Some(r) if r.key_id.as_deref() == key_id => pending.remove(id).is_some(),
                _ => false,
            }
        };
        // A held one may be on its way to the database too.
        Ok(self.store.delete(id, key_id).await? || held)
    }

    /// The conversation up to and including `id`, oldest first, at most `max_turns` back;
    /// `None` if `id` itself is not there. A deleted earlier turn ends the walk.
    pub async fn chain(
        &self,
        id: &str,
        key_id: Option<&str>,
        max_turns: usize,
    ) -> Result<Option<Vec<StoredResponse>>, StoreError> {
        let mut out = Vec::new();
        let mut next = Some(id.to_owned());
        while let Some(id) = next {
            if out.len() == max_turns {
                break;
            }
            let Some(r) = self.get(&id, key_id).await? else {
                if out.is_empty() {
                    return Ok(None);
                }
                break;
            };
            next = r.previous_id.clone();
            out.push(r);
        }
        out.reverse();
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_response_deleted_while_it_is_written_stays_deleted() {
        let dir = std::env::temp_dir().join(format!("switchyard-conv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("conv.db");
        let _ = std::fs::remove_file(&path);
        let store = ResponseStore::new(switchyard_store::Db::open_sqlite(&path).await.unwrap());
        let c = Conversations::new(store.clone());
        for i in 0..20 {
            let id = format!("resp_{i}");
            c.put(StoredResponse {
                id: id.clone(),
                created_at: 1,
                key_id: Some("k".into()),
                previous_id: None,
                record: "{}".into(),
            });
            // At once, as a client may: visible, then deleted.
            assert!(c.get(&id, Some("k")).await.unwrap().is_some());
            assert!(c.delete(&id, Some("k")).await.unwrap());
        }
        // Let every background write land.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        for i in 0..20 {
            let id = format!("resp_{i}");
            assert!(c.get(&id, Some("k")).await.unwrap().is_none(), "{id}");
            assert!(store.get(&id, Some("k")).await.unwrap().is_none(), "{id}");
        }
    }
}
