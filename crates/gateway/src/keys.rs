//! Virtual keys: the gateway keys callers present instead of provider keys.
//!
//! A key is `sk-sy-` and 40 random letters and digits (about 238 bits). Only its SHA-256 is
//! stored (a fast hash is right for a secret this long: nothing to brute-force), with a hint
//! (`sk-sy-AbCd…wXyZ`) for people. The full key is returned once, at creation or rotation.
//!
//! [`Keys`] keeps the live keys in memory, by hash, so authenticating a call is a map lookup;
//! changes made through it take effect at once, changes made by another process on the same
//! database (the `switchyard keys` command) within [`REFRESH`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchyard_store::keys::{KeyRow, KeyStore};
use switchyard_store::{Millis, StoreError};

use crate::budgets::Budgets;
use crate::limits::Limits;

/// Every virtual key starts with this.
pub const PREFIX: &str = "sk-sy-";
const SECRET_LEN: usize = 40;
/// How often the live keys are reloaded from the database.
pub const REFRESH: Duration = Duration::from_secs(5);

/// What a key may do. Stored as JSON with the key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// Glob patterns (`*` any run of characters, `?` one) over the model the caller names (route,
    /// alias or `provider/model`) and the `provider/model` it resolves to. Empty: everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Tags attached to every call made with the key (`team`, `user`, `project`…). They win
    /// over the caller's own metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Requests and tokens per minute and per day, for the key and per metadata value.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// Spend limits in US dollars per day, month and in total.
    #[serde(default, skip_serializing_if = "Budgets::is_empty")]
    pub budgets: Budgets,
    /// What the request log keeps of this key's calls; wins over the route and `logs.bodies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bodies: Option<crate::config::BodyMode>,
    /// Whose cached answers this key's calls may be served: `key` (its own), `shared` (every
    /// caller's) or a group name (the keys naming the same group). Default: `cache.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_namespace: Option<String>,
    /// The firewall policy of this key's calls (`[firewall.policies.NAME]`), or `off`; wins
    /// over the route's and the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<String>,
}

/// The latest expiry a key may have: the end of the year 9999, in Unix seconds.
const MAX_EXPIRES_AT: i64 = 253_402_300_799;

/// A new key's expiry `t` (Unix seconds) must be in the future of `now_ms` and no later than
/// [`MAX_EXPIRES_AT`] (so that it converts to milliseconds without overflowing).
fn check_expiry(t: i64, now_ms: i64) -> Result<(), KeyError> {
    if t > MAX_EXPIRES_AT {
        return Err(KeyError::Invalid(format!(
            "expires_at {t} is beyond the year 9999; give a time in Unix seconds"
        )));
    }
    if t.saturating_mul(1000) <= now_ms {
        return Err(KeyError::Invalid(format!(
            "expires_at {t} is in the past; give a future time in Unix seconds"
        )));
    }
    Ok(())
}

/// A key as the gateway and its admin API see it: everything but the secret and its hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualKey {
    pub id: String,
    pub name: String,
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    #[serde(flatten)]
    pub policy: KeyPolicy,
}

impl VirtualKey {
    fn from_row(row: KeyRow) -> Result<(String, Self), StoreError> {
        let policy: KeyPolicy = serde_json::from_value(row.policy)
            .map_err(|e| StoreError::Corrupt(format!("policy of key {}: {e}", row.id)))?;
        Ok((
            row.hash,
            Self {
                id: row.id,
                name: row.name,
                hint: row.hint,
                created_at: row.created_at / 1000,
                expires_at: row.expires_at.map(|t| t / 1000),
                revoked_at: row.revoked_at.map(|t| t / 1000),
                policy,
            },
        ))
    }

    pub fn is_live(&self, now_secs: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now_secs)
    }

    /// Whether the key may call `requested` (as the caller named it) resolving to `slug`.
    pub fn allows(&self, requested: &str, slug: Option<&str>) -> bool {
        self.policy.allow.is_empty()
            || self.policy.allow.iter().any(|p| {
                glob(p.as_bytes(), requested.as_bytes())
                    || slug.is_some_and(|s| glob(p.as_bytes(), s.as_bytes()))
            })
    }
}

/// What creating a key needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// Unix seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(flatten)]
    pub policy: KeyPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no key with id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live keys, by hash, over their store.
#[derive(Debug)]
pub struct Keys {
    store: KeyStore,
    live: RwLock<HashMap<String, Arc<VirtualKey>>>,
}

fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// SHA-256 of a key, hex.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `n` random letters and digits.
fn random_alnum(n: usize) -> Result<String, KeyError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)
            .map_err(|e| KeyError::Invalid(format!("the system's random source failed: {e}")))?;
        // Rejection sampling keeps every character equally likely (248 = 4 · 62).
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

/// A fresh key, its hash and its hint.
fn mint() -> Result<(String, String, String), KeyError> {
    let key = format!("{PREFIX}{}", random_alnum(SECRET_LEN)?);
    let hint = hint(&key);
    Ok((hash(&key), key, hint))
}

/// The start and end of a key, to recognise it without revealing it.
pub fn hint(key: &str) -> String {
    let start: String = key.chars().take(PREFIX.len() + 4).collect();
    let end: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{start}…{end}")
}

impl Keys {
    /// Loads the live keys.
    pub async fn load(store: KeyStore) -> Result<Self, StoreError> {
        let keys = Self {
            store,
            live: RwLock::new(HashMap::new()),
        };
        keys.refresh().await?;
        Ok(keys)
    }

    /// Reloads the live keys from the store.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let now = now_millis() / 1000;
        let mut live = HashMap::new();
        for row in self.store.list().await? {
            let (hash, key) = VirtualKey::from_row(row)?;
            if key.is_live(now) {
                live.insert(hash, Arc::new(key));
            }
        }
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
        Ok(())
    }

    /// Whether any key is live: then calls need one (on loopback too).
    pub fn any_live(&self) -> bool {
        let now = now_millis() / 1000;
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|k| k.is_live(now))
    }

    /// The live key a caller presented, if it is one.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<VirtualKey>> {
        let key = self
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash(presented))
            .cloned()?;
        key.is_live(now_millis() / 1000).then_some(key)
    }

    /// Creates a key; returns the key itself (shown once) and its record.
    pub async fn create(&self, new: NewKey) -> Result<(String, VirtualKey), KeyError> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(KeyError::Invalid(
                "a key needs a name (who or what uses it)".into(),
            ));
        }
        let now = now_millis();
        if let Some(t) = new.expires_at {
            check_expiry(t, now)?;
        }
        new.policy.budgets.validate().map_err(KeyError::Invalid)?;
        if let Some(n) = &new.policy.cache_namespace {
            crate::config::Namespace::parse(n)
                .map_err(|m| KeyError::Invalid(format!("cache_namespace {m}")))?;
        }
        for p in &new.policy.allow {
            if p.trim().is_empty() {
                return Err(KeyError::Invalid(
                    "an empty pattern in `allow`; use e.g. \"openai/*\"".into(),
                ));
            }
        }
        let (hash, key, hint) = mint()?;
        let row = KeyRow {
            id: format!("key_{}", random_alnum(16)?),
            name: name.to_owned(),
            hash,
            hint,
            created_at: now,
            expires_at: new.expires_at.map(|t| t * 1000),
            revoked_at: None,
            policy: serde_json::to_value(&new.policy)
                .map_err(|e| KeyError::Invalid(format!("policy: {e}")))?,
        };
        self.store.insert(&row).await?;
        let (hash, record) = VirtualKey::from_row(row)?;
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, Arc::new(record.clone()));
        Ok((key, record))
    }

    pub async fn list(&self) -> Result<Vec<VirtualKey>, KeyError> {
        let rows = self.store.list().await?;
        Ok(rows
            .into_iter()
            .map(|r| VirtualKey::from_row(r).map(|(_, k)| k))
            .collect::<Result<_, _>>()?)
    }

    pub async fn get(&self, id: &str) -> Result<VirtualKey, KeyError> {
        match self.store.get(id).await? {
            Some(row) => Ok(VirtualKey::from_row(row)?.1),
            None => Err(KeyError::NotFound(id.to_owned())),
        }
    }

    /// Revokes a key: it stops working at once in this process.
    pub async fn revoke(&self, id: &str) -> Result<VirtualKey, KeyError> {
        let existing = self.get(id).await?;
        if existing.revoked_at.is_none() {
            self.store.revoke(id, now_millis()).await?;
        }
        self.forget(id);
        self.get(id).await
    }

    /// Gives a key a new secret; the old one stops working at once in this process.
    pub async fn rotate(&self, id: &str) -> Result<(String, VirtualKey), KeyError> {
        let existing = self.get(id).await?;
        if existing.revoked_at.is_some() {
            return Err(KeyError::Invalid(format!(
                "key `{id}` is revoked; create a new one"
            )));
        }
        let (hash, key, hint) = mint()?;
        if !self.store.rotate(id, &hash, &hint).await? {
            return Err(KeyError::NotFound(id.to_owned()));
        }
        self.forget(id);
        let record = self.get(id).await?;
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, Arc::new(record.clone()));
        Ok((key, record))
    }

    fn forget(&self, id: &str) {
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, k| k.id != id);
    }
}

/// Glob matching: `*` matches any run of bytes (`/` included), `?` one byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs() {
        assert!(glob(b"openai/*", b"openai/gpt-4o-mini"));
        assert!(glob(b"*", b"anything/at/all"));
        assert!(glob(b"*/gpt-4o*", b"azure/gpt-4o-mini"));
        assert!(glob(b"mock/echo", b"mock/echo"));
        assert!(glob(b"gpt-?o", b"gpt-4o"));
        assert!(!glob(b"openai/*", b"groq/llama"));
        assert!(!glob(b"mock/echo", b"mock/echo2"));
        assert!(!glob(b"", b"x"));
    }

    proptest! {
        #[test]
        fn a_literal_pattern_matches_only_itself(a in "[a-z/.-]{0,12}", b in "[a-z/.-]{0,12}") {
            prop_assert_eq!(glob(a.as_bytes(), b.as_bytes()), a == b);
        }

        #[test]
        fn star_matches_every_extension(a in "[a-z/]{0,8}", b in "[a-z/*?]{0,8}") {
            let pattern = format!("{a}*");
            let text = format!("{a}{b}");
            prop_assert!(glob(pattern.as_bytes(), text.as_bytes()));
        }
    }

    #[test]
    fn minted_keys_are_long_random_and_hinted() {
        let (h1, k1, hint1) = mint().unwrap();
        let (_, k2, _) = mint().unwrap();
        assert_ne!(k1, k2);
        assert!(k1.starts_with(PREFIX));
        assert_eq!(k1.len(), PREFIX.len() + SECRET_LEN);
        assert!(
            k1[PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(h1, hash(&k1));
        assert_eq!(h1.len(), 64);
        assert!(hint1.starts_with(&k1[..10]) && hint1.ends_with(&k1[k1.len() - 4..]));
        assert!(!hint1.contains(&k1[10..k1.len() - 4]));
    }

    #[test]
    fn allow_lists_match_the_requested_name_or_the_resolved_slug() {
        let key = VirtualKey {
            id: "k".into(),
            name: "n".into(),
            hint: "h".into(),
            created_at: 0,
            expires_at: Some(100),
            revoked_at: None,
            policy: KeyPolicy {
                allow: vec!["mock/*".into(), "smart".into()],
                ..KeyPolicy::default()
            },
        };
        assert!(key.allows("smart", None));
        assert!(key.allows("fast", Some("mock/echo")));
        assert!(!key.allows("openai/gpt-4o", Some("openai/gpt-4o")));
        assert!(key.is_live(99) && !key.is_live(100));
    }

    #[test]
    fn an_expiry_must_be_in_the_future_and_within_reach() {
        let now_ms = 1_800_000_000_000;
        assert!(check_expiry(1_800_000_001, now_ms).is_ok());
        assert!(check_expiry(MAX_EXPIRES_AT, now_ms).is_ok());
        for t in [1_800_000_000, 0, -5, i64::MIN, MAX_EXPIRES_AT + 1, i64::MAX] {
            assert!(
                matches!(check_expiry(t, now_ms), Err(KeyError::Invalid(_))),
                "{t}"
            );
        }
    }
}
