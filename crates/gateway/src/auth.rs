//! The auth stage: who is calling. A caller presents a virtual key as `Authorization: Bearer …`
//! (OpenAI SDKs) or `x-api-key` (Anthropic SDKs).
//!
//! When a key is required:
//! - `auth.open = true` in the configuration: never (a valid key is still used for its policy);
//! - otherwise on a non-loopback listen address: always;
//! - otherwise (loopback): as soon as one live key exists. With none, calls pass without a key:
//!   the first-run experience. Creating the first key closes the gateway.
//!
//! A presented `sk-sy-…` key must be live whatever the mode; anything else presented in open
//! mode is ignored (SDKs insist on sending some key).

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::error::GatewayError;
use crate::keys::{self, Keys, PREFIX, VirtualKey};

/// Whether calls need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Keys are optional (`auth.open = true`).
    Open,
    /// Keys are required (a non-loopback address).
    Required,
    /// Required once a live key exists (loopback, the default).
    OnceKeysExist,
}

impl AuthMode {
    pub fn new(open: bool, loopback: bool) -> Self {
        match (open, loopback) {
            (true, _) => Self::Open,
            (false, false) => Self::Required,
            (false, true) => Self::OnceKeysExist,
        }
    }
}

/// The key a call presented: the `x-api-key` header, or the `Authorization` bearer token.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Stage: the caller's key, or why the call is refused.
pub fn authenticate(
    mode: AuthMode,
    keys: &Keys,
    headers: &HeaderMap,
) -> Result<Option<Arc<VirtualKey>>, GatewayError> {
    let given = presented(headers).filter(|k| !k.is_empty());
    if let Some(k) = given
        && k.starts_with(PREFIX)
    {
        return match keys.authenticate(k) {
            Some(key) => Ok(Some(key)),
            None => Err(GatewayError::Unauthorized {
                message: format!(
                    "Incorrect API key provided: {}. The key is unknown, revoked or expired; ask for a new one or check `switchyard keys list`.",
                    keys::hint(k)
                ),
            }),
        };
    }
    let required = match mode {
        AuthMode::Open => false,
        AuthMode::Required => true,
        AuthMode::OnceKeysExist => keys.any_live(),
    };
    if !required {
        return Ok(None);
    }
    Err(GatewayError::Unauthorized {
        message: match given {
            None => "This gateway needs a virtual key: send it as `Authorization: Bearer sk-sy-…` (OpenAI SDKs: api_key) or `x-api-key` (Anthropic SDKs). Create one with `switchyard keys create`.".to_owned(),
            Some(_) => "The API key is not a Switchyard virtual key (they start with sk-sy-); provider keys stay in the gateway's configuration. Create a virtual key with `switchyard keys create`.".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_key_comes_from_x_api_key_or_a_bearer_token() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer  sk-sy-abc "),
        );
        assert_eq!(presented(&h), Some("sk-sy-abc"));
        h.insert("x-api-key", HeaderValue::from_static("sk-sy-xyz"));
        assert_eq!(presented(&h), Some("sk-sy-xyz"));
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(presented(&basic), None);
    }

    async fn keys() -> Keys {
        let dir = std::env::temp_dir().join(format!("switchyard-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        let db = switchyard_store::Db::open_sqlite(&path).await.unwrap();
        Keys::load(switchyard_store::keys::KeyStore::new(db))
            .await
            .unwrap()
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn each_mode_decides_who_gets_in() {
        let keys = keys().await;
        let none = HeaderMap::new();
        // No keys yet: loopback is open, a public address is not, `auth.open` always is.
        assert!(
            authenticate(AuthMode::OnceKeysExist, &keys, &none)
                .unwrap()
                .is_none()
        );
        assert!(authenticate(AuthMode::Required, &keys, &none).is_err());
        assert!(authenticate(AuthMode::Open, &keys, &bearer("sk-provider")).is_ok());

        let (key, record) = keys
            .create(crate::keys::NewKey {
                name: "app".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for mode in [AuthMode::OnceKeysExist, AuthMode::Required, AuthMode::Open] {
            let got = authenticate(mode, &keys, &bearer(&key)).unwrap().unwrap();
            assert_eq!(got.id, record.id);
            // A presented virtual key must be live, whatever the mode.
            assert!(authenticate(mode, &keys, &bearer("sk-sy-unknown")).is_err());
        }
        assert!(authenticate(AuthMode::OnceKeysExist, &keys, &none).is_err());
        assert!(
            authenticate(AuthMode::Open, &keys, &none)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn modes() {
        assert_eq!(AuthMode::new(true, false), AuthMode::Open);
        assert_eq!(AuthMode::new(false, false), AuthMode::Required);
        assert_eq!(AuthMode::new(false, true), AuthMode::OnceKeysExist);
    }
}
