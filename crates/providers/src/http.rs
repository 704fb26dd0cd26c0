//! Sending upstream requests and reading answers and errors (OpenAI's and Anthropic's error
//! bodies share the `error.message` / `error.type` fields that are read here).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::de::DeserializeOwned;
use switchyard_protocol::error::ErrorBody;

use crate::client::{Body, HttpClient, chain};
use crate::{AuthStyle, ProviderError, ProviderSettings, UpstreamStatus};

const USER_AGENT_VALUE: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// The most of an answer's body the gateway reads (a whole answer, or an error's body).
const BODY_LIMIT: usize = 256 * 1024 * 1024;

/// An upstream endpoint, `{base}/{path}`, parsed and checked once when the provider is built.
pub(crate) fn endpoint(provider: &str, base: &str, path: &str) -> Result<Uri, ProviderError> {
    let url =
        reqwest::Url::parse(&format!("{base}/{path}")).map_err(|e| ProviderError::Internal {
            detail: format!("provider `{provider}`: base URL `{base}` is not a valid URL: {e}"),
        })?;
    uri(provider, &url)
}

/// The request target for a parsed URL (IDNA and percent-encoding done by `url`).
pub(crate) fn uri(provider: &str, url: &reqwest::Url) -> Result<Uri, ProviderError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ProviderError::Internal {
            detail: format!(
                "provider `{provider}`: the base URL carries a user name or password; put the \
                 credential in `api_key`, or in `headers` (`authorization = \"env:NAME\"`)"
            ),
        });
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ProviderError::Internal {
            detail: format!(
                "provider `{provider}`: the base URL's scheme is `{}`; use http or https",
                url.scheme()
            ),
        });
    }
    url.as_str().parse().map_err(|e| ProviderError::Internal {
        detail: format!("provider `{provider}`: the base URL is not a valid request target: {e}"),
    })
}

/// How one provider reaches its upstream: the shared client, and the headers every request
/// carries (the credential as the wire family presents it, the family's own headers, the
/// configured ones), checked and parsed once. The caller's own credentials are never
/// forwarded: upstream requests are built from scratch.
pub(crate) struct Upstream {
    client: HttpClient,
    provider: String,
    timeout: Duration,
    get_headers: HeaderMap,
    post_headers: HeaderMap,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers hold the credential.
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// `family` are the wire family's own headers (`anthropic-version`); configured headers of
    /// the same name replace them, as they replace the credential's and the user agent.
    pub(crate) fn new(
        client: HttpClient,
        s: &ProviderSettings,
        family: &[(&'static str, &'static str)],
    ) -> Result<Self, ProviderError> {
        let bad = |what: String| ProviderError::Internal {
            detail: format!("provider `{}`: {what}", s.name),
        };
        let header_name = |name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("`{name}` is not a valid HTTP header name")))
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &s.headers {
            let name = header_name(name)?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                bad(format!(
                    "the value of header `{name}` cannot be sent in HTTP (a newline?)"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let mut default = |name: HeaderName, value: HeaderValue| {
            if !headers.contains_key(&name) {
                headers.insert(name, value);
            }
        };
        if let Some(key) = &s.api_key {
            let (name, value) = match &s.auth {
                AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
                AuthStyle::Header(name) => (header_name(name)?, key.expose().to_owned()),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                bad("the API key holds characters that cannot be sent in HTTP (a newline?)".into())
            })?;
            value.set_sensitive(true);
            default(name, value);
        }
        for (name, value) in family {
            default(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        default(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        default(ACCEPT, HeaderValue::from_static("*/*"));
        let get_headers = headers.clone();
        let mut post_headers = headers;
        post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            client,
            provider: s.name.clone(),
            timeout: s.request_timeout,
            get_headers,
            post_headers,
        })
    }

    /// A JSON `POST` to `uri`.
    pub(crate) fn post(&self, uri: &Uri, body: Vec<u8>) -> http::Request<Bytes> {
        let mut req = http::Request::new(Bytes::from(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = self.post_headers.clone();
        req
    }

    /// A JSON `POST` of a value.
    pub(crate) fn post_value(
        &self,
        uri: &Uri,
        body: &impl serde::Serialize,
    ) -> Result<http::Request<Bytes>, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Internal {
            detail: format!("encoding the request: {e}"),
        })?;
        Ok(self.post(uri, bytes))
    }

    pub(crate) fn get(&self, uri: &Uri) -> http::Request<Bytes> {
        let mut req = http::Request::new(Bytes::new());
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = self.get_headers.clone();
        req
    }

    /// Sends the request and returns the answer once its status is known to be a success,
    /// within the provider's request timeout.
    pub(crate) async fn start(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, ProviderError> {
        let resp =
            match tokio::time::timeout(self.timeout, self.client.send(&self.provider, req)).await {
                Ok(r) => r?,
                Err(_) => return Err(self.timed_out()),
            };
        self.success(resp).await
    }

    async fn success(
        &self,
        resp: http::Response<Body>,
    ) -> Result<http::Response<Body>, ProviderError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let limit = self.timeout.min(Duration::from_secs(30));
        Err(status_error(&self.provider, resp, limit).await)
    }

    /// Sends the request and decodes a JSON answer, all within the request timeout.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<T, ProviderError> {
        Ok(self.json_and_body(req).await?.0)
    }

    /// Like [`Self::json`], and returns the body the answer was decoded from as well.
    pub(crate) async fn json_and_body<T: DeserializeOwned>(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<(T, Bytes), ProviderError> {
        let provider = self.provider.as_str();
        let work = async {
            let resp = self.client.send(provider, req).await?;
            let resp = self.success(resp).await?;
            let bytes = resp.into_body().bytes(BODY_LIMIT).await.map_err(|e| {
                ProviderError::Interrupted {
                    provider: provider.to_owned(),
                    detail: chain(&*e),
                }
            })?;
            // UTF-8 checked once, whole (`from_slice` checks string by string); a body that is
            // not UTF-8 is decoded as bytes for the error that says where.
            let value = match std::str::from_utf8(&bytes) {
                Ok(text) => serde_json::from_str(text),
                Err(_) => serde_json::from_slice(&bytes),
            };
            let value = value.map_err(|e| ProviderError::Decode {
                provider: provider.to_owned(),
                detail: format!("{e} (body starts with {:?})", preview(&bytes)),
            })?;
            Ok((value, bytes))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> ProviderError {
        ProviderError::Timeout {
            provider: self.provider.clone(),
            after: self.timeout,
        }
    }
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    s.into_owned()
}

/// Turns a non-2xx answer into an error, keeping the upstream's message and `retry-after`.
/// The body is awaited for at most `limit` (the status alone is the error then).
async fn status_error(
    provider: &str,
    resp: http::Response<Body>,
    limit: Duration,
) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    // An error's body is read only so far: its message is all that is kept.
    let body = match tokio::time::timeout(limit, resp.into_body().bytes(1024 * 1024)).await {
        Ok(Ok(b)) => b,
        _ => Bytes::new(),
    };
    let (message, kind, code, param) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.error.message, e.error.kind, e.error.code, e.error.param),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)])
                .trim()
                .to_owned();
            let message = if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            };
            (message, None, None, None)
        }
    };
    ProviderError::Status(Box::new(UpstreamStatus {
        provider: provider.to_owned(),
        status,
        message,
        kind,
        code,
        param,
        retry_after,
    }))
}

/// The longest wait an upstream's `retry-after` is believed for: a day.
const MAX_RETRY_AFTER_SECS: f64 = 86_400.0;

/// `retry-after` in seconds (or `retry-after-ms`, which OpenAI also sends), at most a day.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(
            (ms / 1000.0).min(MAX_RETRY_AFTER_SECS),
        ));
    }
    let secs = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_SECS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn settings(auth: AuthStyle, headers: &[(&str, &str)]) -> ProviderSettings {
        ProviderSettings {
            name: "up".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: Some(Secret::new("sk-secret-1")),
            auth,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), Secret::new(*v)))
                .collect(),
            request_timeout: Duration::from_secs(1),
            stream_usage: true,
        }
    }

    fn client() -> HttpClient {
        HttpClient::new(Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn requests_carry_the_key_family_and_configured_headers() {
        let s = settings(AuthStyle::Bearer, &[("x-extra", "1"), ("x-extra", "2")]);
        let up = Upstream::new(client(), &s, &[("anthropic-version", "2023-06-01")]).unwrap();
        let uri = endpoint("up", &s.base_url, "chat/completions").unwrap();
        let req = up.post(&uri, b"{}".to_vec());
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        let h = req.headers();
        assert_eq!(h[AUTHORIZATION], "Bearer sk-secret-1");
        assert!(h[AUTHORIZATION].is_sensitive());
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert_eq!(h[USER_AGENT], USER_AGENT_VALUE);
        let extra: Vec<_> = h.get_all("x-extra").iter().collect();
        assert_eq!(extra, ["1", "2"]);
        let get = up.get(&uri);
        assert_eq!(get.method(), Method::GET);
        assert!(get.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(get.headers()[AUTHORIZATION], "Bearer sk-secret-1");
        // Nothing that prints the upstream shows the key.
        assert!(!format!("{up:?}").contains("sk-secret-1"));
    }

    #[test]
    fn configured_headers_replace_the_defaults() {
        let s = settings(
            AuthStyle::Header("api-key".into()),
            &[
                ("anthropic-version", "2024-01-01"),
                ("User-Agent", "mine/1"),
            ],
        );
        let up = Upstream::new(client(), &s, &[("anthropic-version", "2023-06-01")]).unwrap();
        let req = up.get(&endpoint("up", &s.base_url, "models").unwrap());
        let h = req.headers();
        assert_eq!(h["api-key"], "sk-secret-1");
        assert!(h.get(AUTHORIZATION).is_none());
        let versions: Vec<_> = h.get_all("anthropic-version").iter().collect();
        assert_eq!(versions, ["2024-01-01"]);
        assert_eq!(h[USER_AGENT], "mine/1");
    }

    #[test]
    fn bad_headers_keys_and_urls_are_refused_without_printing_secrets() {
        let bad_name = settings(AuthStyle::Bearer, &[("bad header", "x")]);
        let err = Upstream::new(client(), &bad_name, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`bad header` is not a valid HTTP header name"),
            "{err}"
        );
        let bad_value = settings(AuthStyle::Bearer, &[("x-token", "tok\nen-secret")]);
        let err = Upstream::new(client(), &bad_value, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x-token") && !err.contains("en-secret"),
            "{err}"
        );
        let mut bad_key = settings(AuthStyle::Bearer, &[]);
        bad_key.api_key = Some(Secret::new("sk-\nsecret"));
        let err = Upstream::new(client(), &bad_key, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("API key") && !err.contains("secret"), "{err}");

        let err = endpoint("up", "http://user:hunter2@host/v1", "models")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user name or password") && !err.contains("hunter2"),
            "{err}"
        );
        let err = endpoint("up", "ftp://host/v1", "models")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use http or https"), "{err}");
        let uri = endpoint("up", "https://bücher.example/v1", "models").unwrap();
        assert_eq!(uri.host(), Some("xn--bcher-kva.example"));
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_milliseconds_and_capped_at_a_day() {
        let of = |name: &str, value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            retry_after(&h)
        };
        assert_eq!(of("retry-after", "3"), Some(Duration::from_secs(3)));
        assert_eq!(
            of("retry-after-ms", "250"),
            Some(Duration::from_millis(250))
        );
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(of("retry-after", "1e30"), day);
        assert_eq!(of("retry-after-ms", "1e30"), day);
        assert_eq!(of("retry-after-ms", "-1"), None);
        assert_eq!(of("retry-after", "soon"), None);
    }
}
