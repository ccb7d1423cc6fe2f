//! Console sign-in sessions, shared by every instance of the admin
//! function: item `session#<sha-256 of the cookie>` / `session` with the
//! session as JSON in `doc` and `expires_at` (epoch seconds, rounded up)
//! for the table's TTL. TTL deletes lazily, so [`SessionStore`] callers
//! check the expiry themselves.

use async_trait::async_trait;

use super::codec::{decode, encode, key, n, s, EXPIRES_AT};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{SessionStore, StoreResult, StoredSession};

fn session_key(hash: &str) -> super::codec::Item {
    key(format!("session#{hash}"), "session")
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn put_session(&self, hash: &str, session: &StoredSession) -> StoreResult<()> {
        let mut item = session_key(hash);
        item.insert("doc".into(), s(encode(session)?));
        let ms = session.expires_at.timestamp_millis();
        item.insert(EXPIRES_AT.into(), n((ms + 999).div_euclid(1000)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| backend("put console session", e))?;
        Ok(())
    }

    async fn session(&self, hash: &str) -> StoreResult<Option<StoredSession>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(session_key(hash)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get console session", e))?;
        match out.item {
            Some(item) => Ok(Some(decode(&item, "doc")?)),
            None => Ok(None),
        }
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(session_key(hash)))
            .send()
            .await
            .map_err(|e| backend("delete console session", e))?;
        Ok(())
    }
}
