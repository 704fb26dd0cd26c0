//! The credential vault: provider keys stored through the admin API, encrypted at rest with
//! AES-256-GCM. Each record is `base64(nonce ‖ ciphertext ‖ tag)` with a fresh random 96-bit
//! nonce, and the provider's name as associated data, so a sealed key cannot be moved to
//! another provider's row.
//!
//! The master key is `SWITCHYARD_MASTER_KEY` (64 hex digits), or else `master.key` in the data
//! directory, generated on first use with permissions 0600. Losing it loses the stored
//! credentials (they can be stored again); it never leaves the process.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::Serialize;
use switchyard_providers::Secret;
use switchyard_store::StoreError;
use switchyard_store::credentials::CredentialStore;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    MasterKey(String),
    #[error(
        "the stored credential of `{0}` cannot be decrypted: the master key differs from the one it was stored with"
    )]
    Undecryptable(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Vault {
    key: LessSafeKey,
    store: CredentialStore,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

/// What the admin API shows of a stored credential: never the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCredential {
    pub provider: String,
    /// Unix seconds.
    pub updated_at: i64,
}

const MASTER_ENV: &str = "SWITCHYARD_MASTER_KEY";

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The master key: from `env_value` (`SWITCHYARD_MASTER_KEY`), or the key file in `data_dir`,
/// created if missing.
pub fn master_key(env_value: Option<&str>, data_dir: &Path) -> Result<[u8; 32], VaultError> {
    if let Some(v) = env_value {
        return parse_hex(v).ok_or_else(|| {
            VaultError::MasterKey(format!(
                "{MASTER_ENV} must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`"
            ))
        });
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_hex(&text).ok_or_else(|| {
            VaultError::MasterKey(format!(
                "{} is not 64 hex digits; restore it from a backup, or move it away to start a new vault (stored credentials are then lost)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| VaultError::MasterKey(format!("no randomness for a master key: {e}")))?;
            write_private(&path, &hex(&key)).map_err(|e| {
                VaultError::MasterKey(format!("cannot write {}: {e}", path.display()))
            })?;
            tracing::info!(path = %path.display(), "created the vault's master key (mode 0600); back it up");
            Ok(key)
        }
        Err(e) => Err(VaultError::MasterKey(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Creates a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Vault {
    pub fn new(master: &[u8; 32], store: CredentialStore) -> Result<Self, VaultError> {
        let key = UnboundKey::new(&AES_256_GCM, master).map_err(|_| {
            VaultError::MasterKey("the master key is not a valid AES-256 key".into())
        })?;
        Ok(Self {
            key: LessSafeKey::new(key),
            store,
        })
    }

    fn seal(&self, provider: &str, plaintext: &str) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| VaultError::Invalid(format!("no randomness for a nonce: {e}")))?;
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(provider.as_bytes()),
                &mut buf,
            )
            .map_err(|_| VaultError::Invalid("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    fn open(&self, provider: &str, sealed: &str) -> Result<Secret, VaultError> {
        let undecryptable = || VaultError::Undecryptable(provider.to_owned());
        let bytes = STANDARD.decode(sealed).map_err(|_| undecryptable())?;
        if bytes.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(provider.as_bytes()), &mut buf)
            .map_err(|_| undecryptable())?;
        let text = std::str::from_utf8(plain).map_err(|_| undecryptable())?;
        Ok(Secret::new(text))
    }

    /// Stores a provider's credential, replacing any before it.
    pub async fn put(&self, provider: &str, credential: &str) -> Result<(), VaultError> {
        if provider.is_empty() || provider.contains('/') {
            return Err(VaultError::Invalid(format!(
                "`{provider}` is not a provider name"
            )));
        }
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(VaultError::Invalid(
                "the credential is empty; send {\"api_key\": \"…\"}".into(),
            ));
        }
        let sealed = self.seal(provider, credential)?;
        self.store.put(provider, &sealed, now_millis()).await?;
        Ok(())
    }

    pub async fn delete(&self, provider: &str) -> Result<bool, VaultError> {
        Ok(self.store.delete(provider).await?)
    }

    pub async fn list(&self) -> Result<Vec<StoredCredential>, VaultError> {
        Ok(self
            .store
            .all()
            .await?
            .into_iter()
            .map(|(provider, _, at)| StoredCredential {
                provider,
                updated_at: at / 1000,
            })
            .collect())
    }

    /// Every stored credential, decrypted. One that cannot be decrypted is skipped with a
    /// warning (it was stored under another master key).
    pub async fn unsealed(&self) -> Result<HashMap<String, Secret>, VaultError> {
        let mut out = HashMap::new();
        for (provider, sealed, _) in self.store.all().await? {
            match self.open(&provider, &sealed) {
                Ok(secret) => {
                    out.insert(provider, secret);
                }
                Err(e) => tracing::warn!(provider, "{e}"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn vault(master: [u8; 32], name: &str) -> Vault {
        let dir = std::env::temp_dir().join(format!("switchyard-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = switchyard_store::Db::open_sqlite(&dir.join(format!("{name}.db")))
            .await
            .unwrap();
        Vault::new(&master, CredentialStore::new(db)).unwrap()
    }

    #[tokio::test]
    async fn sealed_credentials_round_trip_and_bind_to_their_provider() {
        let v = vault([7; 32], &crate::request_id::new_v7().to_string()).await;
        let sealed = v.seal("openai", "sk-planted-secret").unwrap();
        assert!(!sealed.contains("planted"));
        assert_eq!(
            v.open("openai", &sealed).unwrap().expose(),
            "sk-planted-secret"
        );
        // Moved to another provider's row, or opened with another key: refused.
        assert!(matches!(
            v.open("groq", &sealed),
            Err(VaultError::Undecryptable(_))
        ));
        let other = Vault::new(&[8; 32], v.store.clone()).unwrap();
        assert!(other.open("openai", &sealed).is_err());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(sealed, v.seal("openai", "sk-planted-secret").unwrap());

        v.put("openai", "sk-planted-secret").await.unwrap();
        let all = v.unsealed().await.unwrap();
        assert_eq!(all["openai"].expose(), "sk-planted-secret");
        assert_eq!(v.list().await.unwrap()[0].provider, "openai");
        assert!(v.put("bad/name", "x").await.is_err());
        assert!(v.put("openai", " ").await.is_err());
        assert!(v.delete("openai").await.unwrap());
        assert!(v.unsealed().await.unwrap().is_empty());
    }

    #[test]
    fn the_master_key_comes_from_the_environment_or_a_private_file() {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-master-{}-{}",
            std::process::id(),
            crate::request_id::new_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let first = master_key(None, &dir).unwrap();
        assert_eq!(master_key(None, &dir).unwrap(), first, "the file is reused");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let from_env = master_key(Some(&"ab".repeat(32)), &dir).unwrap();
        assert_eq!(from_env, [0xab; 32]);
        assert!(master_key(Some("short"), &dir).is_err());
    }
}
