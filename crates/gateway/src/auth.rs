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
//!
//! A call let in without a key on a gateway that listens on loopback must also come from this
//! machine by name ([`from_this_machine`]): a `Host` that is a loopback name, and no `Origin`
//! of another site. Otherwise any web page the user opens could use the gateway: by a
//! cross-site request, or by DNS rebinding (its own host name made to resolve to 127.0.0.1,
//! which also lets it read the answers).

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

/// Stage: the caller's key, or why the call is refused. `loopback`: the gateway listens on a
/// loopback address, so a call without a key must come [`from_this_machine`].
pub fn authenticate(
    mode: AuthMode,
    loopback: bool,
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
        if loopback {
            from_this_machine(headers)?;
        }
        return Ok(None);
    }
    Err(GatewayError::Unauthorized {
        message: match given {
            None => "This gateway needs a virtual key: send it as `Authorization: Bearer sk-sy-…` (OpenAI SDKs: api_key) or `x-api-key` (Anthropic SDKs). Create one with `switchyard keys create`.".to_owned(),
            Some(_) => "The API key is not a Switchyard virtual key (they start with sk-sy-); provider keys stay in the gateway's configuration. Create a virtual key with `switchyard keys create`.".to_owned(),
        },
    })
}

/// Whether a call that is let in without a credential names the gateway the way a program on
/// this machine does: its `Host` (if any: HTTP/2 callers send none) is a loopback name
/// (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`), and its `Origin` (sent by browsers) is
/// absent or also one. A 403 saying what to do otherwise.
pub fn from_this_machine(headers: &HeaderMap) -> Result<(), GatewayError> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(host) = text(axum::http::header::HOST)
        && !is_loopback_name(host)
    {
        return Err(GatewayError::Forbidden {
            message: format!(
                "this gateway answers calls without a key only when it is named by a loopback address (localhost, 127.0.0.1, [::1]), not `{host}`: call it at http://127.0.0.1:<port>, or send a virtual key (`switchyard keys create`)"
            ),
        });
    }
    if let Some(origin) = text(axum::http::header::ORIGIN) {
        let host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if !is_loopback_name(host) {
            return Err(GatewayError::Forbidden {
                message: format!(
                    "a web page from `{origin}` may not use this gateway without a key; pages served from this machine (localhost) may, and other callers send a virtual key (`switchyard keys create`)"
                ),
            });
        }
    }
    Ok(())
}

/// `host[:port]` names this machine: `localhost`, a name under `.localhost`, or a loopback IP.
fn is_loopback_name(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
            authenticate(AuthMode::OnceKeysExist, false, &keys, &none)
                .unwrap()
                .is_none()
        );
        assert!(authenticate(AuthMode::Required, false, &keys, &none).is_err());
        assert!(authenticate(AuthMode::Open, false, &keys, &bearer("sk-provider")).is_ok());

        let (key, record) = keys
            .create(crate::keys::NewKey {
                name: "app".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for mode in [AuthMode::OnceKeysExist, AuthMode::Required, AuthMode::Open] {
            let got = authenticate(mode, false, &keys, &bearer(&key))
                .unwrap()
                .unwrap();
            assert_eq!(got.id, record.id);
            // A presented virtual key must be live, whatever the mode.
            assert!(authenticate(mode, false, &keys, &bearer("sk-sy-unknown")).is_err());
        }
        assert!(authenticate(AuthMode::OnceKeysExist, false, &keys, &none).is_err());
        assert!(
            authenticate(AuthMode::Open, false, &keys, &none)
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

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn calls_without_a_key_must_name_the_gateway_by_a_loopback_address() {
        for ok in [
            &[][..],
            &[("host", "127.0.0.1:8787")],
            &[("host", "localhost:8787")],
            &[("host", "LOCALHOST")],
            &[("host", "app.localhost:8787")],
            &[("host", "[::1]:8787")],
            &[("host", "127.0.0.2")],
            &[
                ("host", "127.0.0.1:8787"),
                ("origin", "http://localhost:3000"),
            ],
            &[
                ("host", "127.0.0.1:8787"),
                ("origin", "http://127.0.0.1:8787"),
            ],
        ] {
            assert!(from_this_machine(&with(ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            &[("host", "evil.example:8787")][..],
            &[("host", "localhost.evil.example")],
            &[("host", "127.0.0.1.nip.io")],
            &[("host", "[::2]:8787")],
            &[("host", "127.0.0.1:87x")],
            &[("host", "10.0.0.5:8787")],
            &[
                ("host", "127.0.0.1:8787"),
                ("origin", "https://evil.example"),
            ],
            &[("host", "127.0.0.1:8787"), ("origin", "null")],
        ] {
            assert!(
                matches!(
                    from_this_machine(&with(bad)),
                    Err(GatewayError::Forbidden { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn on_loopback_a_call_without_a_key_from_a_foreign_page_is_refused() {
        let keys = keys().await;
        let page = with(&[
            ("host", "evil.example:8787"),
            ("origin", "http://evil.example:8787"),
        ]);
        for mode in [AuthMode::OnceKeysExist, AuthMode::Open] {
            assert!(authenticate(mode, true, &keys, &page).is_err());
            // A gateway on a public address is reached by other names by design.
            assert!(authenticate(mode, false, &keys, &page).is_ok());
        }
        let local = with(&[("host", "127.0.0.1:8787")]);
        assert!(authenticate(AuthMode::OnceKeysExist, true, &keys, &local).is_ok());
    }
}
