//! The web dashboard: one page (`web/dashboard.html`, embedded in the binary, no external
//! assets, so it works offline) served at `/`. It reads `/admin/analytics`, `/admin/logs` and
//! `/admin/keys`, which need the admin token except for local callers of a gateway on loopback.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../../../web/dashboard.html");

pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // Everything is inline; nothing may be fetched from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ),
        ],
        PAGE,
    )
        .into_response()
}
