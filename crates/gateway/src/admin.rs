//! The admin API, under `/admin`, guarded by the admin token (`Authorization: Bearer <token>`).
//! Without a configured token it is off: every route answers 403 and says how to turn it on.
//!
//! | route | |
//! |---|---|
//! | `POST /admin/keys` | create a key: `{"name", "expires_at"?, "allow"?, "metadata"?}` → 201 with the key, shown once |
//! | `GET /admin/keys` | every key (revoked ones too), without secrets |
//! | `GET /admin/keys/{id}` | one key |
//! | `DELETE /admin/keys/{id}` | revoke it |
//! | `POST /admin/keys/{id}/rotate` | a new secret for it → the key, shown once; the old one stops working |
//! | `PUT /admin/credentials/{provider}` | store a provider's key, `{"api_key": "…"}`, encrypted (the vault); it is used at once |
//! | `GET /admin/credentials` | the providers with a stored key (never the key) |
//! | `DELETE /admin/credentials/{provider}` | forget it; the configuration's or environment's key applies again |

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::error::GatewayError;
use crate::keys::{KeyError, NewKey};
use crate::surface::RawBody;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/keys", post(create).get(list))
        .route("/admin/keys/{id}", get(show).delete(revoke))
        .route("/admin/keys/{id}/rotate", post(rotate))
        .route("/admin/credentials", get(credentials))
        .route(
            "/admin/credentials/{provider}",
            axum::routing::put(store_credential).delete(forget_credential),
        )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    api_key: String,
}

fn vault_error(e: crate::vault::VaultError) -> GatewayError {
    match e {
        crate::vault::VaultError::Invalid(message) => GatewayError::bad_request(message, None),
        other => GatewayError::Internal {
            message: other.to_string(),
        },
    }
}

async fn credentials(_: Admin, State(state): State<Arc<AppState>>) -> Answer {
    let list = state.vault.list().await.map_err(vault_error)?;
    Ok(Json(json!({ "object": "list", "data": list })).into_response())
}

async fn store_credential(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(provider): Path<String>,
    body: RawBody,
) -> Answer {
    let CredentialBody { api_key } = crate::surface::decode(&body.0)?;
    state
        .vault
        .put(&provider, &api_key)
        .await
        .map_err(vault_error)?;
    state.reload_credentials().await?;
    tracing::info!(provider, "provider credential stored in the vault");
    let enabled = state
        .routes
        .load()
        .registry()
        .provider_names()
        .contains(&provider.as_str());
    Ok(Json(json!({ "provider": provider, "stored": true, "enabled": enabled })).into_response())
}

async fn forget_credential(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(provider): Path<String>,
) -> Answer {
    if !state.vault.delete(&provider).await.map_err(vault_error)? {
        return Err(GatewayError::NotFound {
            message: format!("the vault holds no credential for `{provider}`"),
        });
    }
    state.reload_credentials().await?;
    tracing::info!(provider, "provider credential removed from the vault");
    Ok(Json(json!({ "provider": provider, "deleted": true })).into_response())
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Proof that the request carries the admin token: an extractor, so that every admin handler
/// states it in its signature.
struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = &state.admin_token else {
            return Err(GatewayError::Forbidden {
                message: "the admin API is off: set SWITCHYARD_ADMIN_TOKEN (or admin.token in the configuration) to a long random token and restart".into(),
            });
        };
        match crate::auth::presented(&parts.headers) {
            Some(given) if same(given.as_bytes(), token.expose().as_bytes()) => Ok(Self),
            _ => Err(GatewayError::Unauthorized {
                message: "the admin API needs the admin token as `Authorization: Bearer <token>`"
                    .into(),
            }),
        }
    }
}

type Answer = Result<Response, GatewayError>;

fn key_error(e: KeyError) -> GatewayError {
    match e {
        KeyError::Invalid(message) => GatewayError::bad_request(message, None),
        KeyError::NotFound(id) => GatewayError::NotFound {
            message: format!("no key with id `{id}`"),
        },
        KeyError::Store(e) => GatewayError::Internal {
            message: e.to_string(),
        },
    }
}

async fn create(_: Admin, State(state): State<Arc<AppState>>, body: RawBody) -> Answer {
    let new: NewKey = crate::surface::decode(&body.0)?;
    let (key, record) = state.keys.create(new).await.map_err(key_error)?;
    tracing::info!(key_id = %record.id, name = %record.name, "virtual key created");
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Answer {
    let keys = state.keys.list().await.map_err(key_error)?;
    Ok(Json(json!({ "object": "list", "data": keys })).into_response())
}

async fn show(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let key = state.keys.get(&id).await.map_err(key_error)?;
    Ok(Json(key).into_response())
}

async fn revoke(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let key = state.keys.revoke(&id).await.map_err(key_error)?;
    tracing::info!(key_id = %key.id, "virtual key revoked");
    Ok(Json(key).into_response())
}

async fn rotate(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let (key, record) = state.keys.rotate(&id).await.map_err(key_error)?;
    tracing::info!(key_id = %record.id, "virtual key rotated");
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    body["key"] = json!(key);
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
