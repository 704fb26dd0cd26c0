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
//! | `POST /admin/reload` | read the configuration file again and apply it (as SIGHUP does): 200 with `restart_needed` (keys whose change waits for a restart), or 400 with the reason, the running configuration unchanged |
//! | `DELETE /admin/credentials/{provider}` | forget it; the configuration's or environment's key applies again |
//! | `GET /admin/logs` | request logs, newest first: `from`, `to` (Unix seconds), `key`, `model`, `provider`, `status`, `errors=true`, `metadata=tag:value[,tag:value]`, `q` (text), `limit` (≤ 500), `cursor` |
//! | `GET /admin/logs/{id}` | one call's whole record |
//! | `GET /admin/analytics` | `group_by=model\|provider\|key\|route\|status\|cache\|metadata.<tag>`, `bucket=1h`, `from`, `to`: requests, errors, tokens, cost, cache hits and savings, p50/p95 latency per group and bucket |

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use switchyard_store::logs::{LogFilter, LogRow};

use crate::analytics::{GroupBy, aggregate, bucket_ms};
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
        .route("/admin/logs", get(logs))
        .route("/admin/logs/{id}", get(log))
        .route("/admin/analytics", get(analytics))
        .route("/admin/credentials", get(credentials))
        .route(
            "/admin/credentials/{provider}",
            axum::routing::put(store_credential).delete(forget_credential),
        )
        .route("/admin/reload", post(reload))
}

/// `POST /admin/reload`: the configuration file read again and applied (as SIGHUP does).
async fn reload(_: Admin, State(state): State<Arc<AppState>>) -> Answer {
    let done = state.reload().await.inspect_err(|e| {
        tracing::warn!(error = %e, "configuration reload refused (POST /admin/reload)");
    })?;
    tracing::info!(restart_needed = ?done.restart_needed, "configuration reloaded (POST /admin/reload)");
    Ok(Json(json!({
        "reloaded": true,
        "reloads": state.reloads.load(std::sync::atomic::Ordering::Relaxed),
        "restart_needed": done.restart_needed,
    }))
    .into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    from: Option<i64>,
    to: Option<i64>,
    key: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    status: Option<i64>,
    errors: Option<bool>,
    metadata: Option<String>,
    q: Option<String>,
    /// `block`, `redact`, `flag` or `any`: calls the firewall acted on.
    firewall: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    group_by: Option<String>,
    bucket: Option<String>,
}

impl LogQuery {
    fn filter(&self) -> Result<LogFilter, GatewayError> {
        let metadata = match &self.metadata {
            None => Vec::new(),
            Some(m) => m
                .split(',')
                .map(|pair| {
                    pair.split_once(':')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| {
                            GatewayError::bad_request(
                                format!("metadata `{pair}`: write tag:value, e.g. team:search"),
                                Some("metadata"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(LogFilter {
            from: self.from.map(|s| s.saturating_mul(1000)),
            to: self.to.map(|s| s.saturating_mul(1000)),
            key: self.key.clone(),
            model: self.model.clone(),
            provider: self.provider.clone(),
            status: self.status,
            errors: self.errors.unwrap_or(false),
            metadata,
            search: self.q.clone().filter(|q| !q.is_empty()),
            firewall: match self.firewall.as_deref() {
                None | Some("") => None,
                Some(a @ ("block" | "redact" | "flag" | "any")) => Some(a.to_owned()),
                Some(other) => {
                    return Err(GatewayError::bad_request(
                        format!("firewall `{other}`: use block, redact, flag or any"),
                        Some("firewall"),
                    ));
                }
            },
        })
    }
}

fn query(q: Result<Query<LogQuery>, QueryRejection>) -> Result<LogQuery, GatewayError> {
    q.map(|Query(q)| q)
        .map_err(|e| GatewayError::bad_request(e.body_text(), None))
}

fn store_error(e: switchyard_store::StoreError) -> GatewayError {
    GatewayError::Internal {
        message: e.to_string(),
    }
}

/// The stored record of a row, as JSON.
fn record(row: &LogRow) -> serde_json::Value {
    serde_json::from_str(&row.record).unwrap_or(serde_json::Value::Null)
}

async fn logs(
    _: Viewer,
    State(state): State<Arc<AppState>>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(
            c.split_once('_')
                .and_then(|(ts, id)| Some((ts.parse().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    GatewayError::bad_request(
                        "cursor is not one this API gave out; pass next_cursor back as it came",
                        Some("cursor"),
                    )
                })?,
        ),
    };
    let rows = state
        .logs
        .query(&q.filter()?, before, limit)
        .await
        .map_err(store_error)?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}_{}", r.ts, r.id)))
        .flatten();
    let data: Vec<serde_json::Value> = rows.iter().map(record).collect();
    Ok(Json(json!({ "object": "list", "data": data, "next_cursor": next })).into_response())
}

async fn log(_: Viewer, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    match state.logs.get(&id).await.map_err(store_error)? {
        Some(row) => Ok(Json(record(&row)).into_response()),
        None => Err(GatewayError::NotFound {
            message: format!("no logged call with id `{id}`"),
        }),
    }
}

/// Rows read for one analytics answer, at most.
const ANALYTICS_ROWS: i64 = 500_000;

async fn analytics(
    _: Viewer,
    State(state): State<Arc<AppState>>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let by = GroupBy::parse(q.group_by.as_deref().unwrap_or("model"))
        .map_err(|m| GatewayError::bad_request(m, Some("group_by")))?;
    let bucket = bucket_ms(q.bucket.as_deref().unwrap_or("1h"))
        .map_err(|m| GatewayError::bad_request(m, Some("bucket")))?;
    let rows = state
        .logs
        .query(&q.filter()?, None, ANALYTICS_ROWS)
        .await
        .map_err(store_error)?;
    let truncated = rows.len() as i64 == ANALYTICS_ROWS;
    let cells = aggregate(&rows, &by, bucket);
    Ok(Json(json!({ "object": "analytics", "bucket_ms": bucket, "data": cells, "truncated": truncated })).into_response())
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
    state.reload().await?;
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
    state.reload().await?;
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
            return Err(GatewayError::AdminDisabled {
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

/// Leave to read the dashboard's data (logs, analytics, the key list): the admin token, or
/// (on a gateway listening on loopback) a caller on this machine that presents no token.
struct Viewer;

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let local = state.loopback
            && parts
                .extensions
                .get::<crate::app::RequestId>()
                .and_then(|r| r.1)
                .is_some_and(|a| a.ip().is_loopback());
        if local && crate::auth::presented(&parts.headers).is_none() {
            // A web page that reached the loopback address by another name (DNS rebinding)
            // or from another site is refused.
            crate::auth::from_this_machine(&parts.headers)?;
            return Ok(Self);
        }
        Admin::from_request_parts(parts, state).await.map(|_| Self)
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
    if let Some(p) = &new.policy.firewall
        && !state.firewall.load().as_ref().is_some_and(|f| f.knows(p))
    {
        return Err(GatewayError::bad_request(
            format!(
                "firewall `{p}` is not a policy of this gateway; define [firewall.policies.{p}] in its configuration, or use `off`"
            ),
            Some("firewall"),
        ));
    }
    let (key, record) = state.keys.create(new).await.map_err(key_error)?;
    tracing::info!(key_id = %record.id, name = %record.name, "virtual key created");
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(_: Viewer, State(state): State<Arc<AppState>>) -> Answer {
    let keys = state.keys.list().await.map_err(key_error)?;
    let data: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let mut v = serde_json::to_value(k).unwrap_or_default();
            if !k.policy.budgets.is_empty() {
                v["spend"] = state.spend.current(&k.id);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
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
