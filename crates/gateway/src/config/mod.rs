//! Configuration: the TOML file ([`raw`]) validated into the runtime [`Config`].
//!
//! Precedence, highest first: command-line flags and `SWITCHYARD_*` variables (applied by the
//! binary), the file, the provider's own environment variables (`OPENAI_API_KEY`,
//! `OPENAI_BASE_URL`, …), built-in defaults. Every error names the key, the value and the fix.

pub mod cache;
mod env;
pub mod firewall;
pub mod raw;
pub mod routing;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_providers::{AuthStyle, PRESETS, Preset, ProviderSettings, Secret, WireKind};

pub use cache::{CachePolicy, Namespace, SemanticPolicy};
pub use env::Env;
use raw::{RawConfig, RawProvider};
pub use routing::{BreakerPolicy, Hedge, RetryPolicy, RouteSpec, Strategy};
pub use state::{StatePolicy, StreamsPolicy};

use switchyard_providers::catalog::Catalog;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The name of the built-in mock provider.
pub const MOCK: &str = "mock";
/// The built-in mock, reached through the Anthropic adapter.
pub const MOCK_ANTHROPIC: &str = "mock-anthropic";
/// The built-in mock, reached through the Gemini adapter.
pub const MOCK_GEMINI: &str = "mock-gemini";

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    pub default_provider: Option<String>,
    pub aliases: BTreeMap<String, String>,
    pub providers: Vec<ProviderConfig>,
    /// Presets left disabled because no key was found: `(name, variable to set)`, for messages.
    pub disabled_presets: Vec<(String, String)>,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub routes: Vec<RouteSpec>,
    /// Prices and capabilities: the built-in catalog with the file's `[catalog]` entries.
    pub catalog: Catalog,
    /// `auth.open`: calls without a virtual key are let through even on a public address.
    pub auth_open: bool,
    /// The `/admin` API's token (`admin.token`, or `SWITCHYARD_ADMIN_TOKEN`); without one the
    /// admin API is off.
    pub admin_token: Option<Secret>,
    /// `store.url`; `None` for SQLite in the data directory.
    pub store_url: Option<Secret>,
    /// `logs.queue`: request-log records waiting to be written, at most.
    pub log_queue: usize,
    /// `logs.retention_days`.
    pub log_retention: Option<Duration>,
    /// `logs.bodies`: what the request log keeps, unless a route or key says otherwise.
    pub log_bodies: BodyMode,
    /// `logs.enabled`.
    pub log_enabled: bool,
    pub cache: CachePolicy,
    /// Where traces go, when they are exported.
    pub telemetry: Option<crate::telemetry::TelemetryConfig>,
    /// `[firewall]`, when the file has one.
    pub firewall: Option<firewall::FirewallConfig>,
    /// `[state]`: what replicas share through Redis.
    pub state: StatePolicy,
    /// `[streams]`: buffered, resumable streams.
    pub streams: StreamsPolicy,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The wire format the provider speaks.
    pub kind: WireKind,
    pub settings: ProviderSettings,
    /// Models the config lists for `GET /v1/models`.
    pub models: Vec<String>,
    /// The mock provider with no base URL runs in process.
    pub embedded_mock: bool,
    /// The vault credential its `api_key = "vault:NAME"` names, when none is stored yet: the
    /// provider is configured (routes may name it) but refuses calls until it is.
    pub waiting_for: Option<String>,
}

/// A configuration error: which key, what was wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(crate) fn err(key: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("configuration key `{key}`: {problem}"))
}

/// How much of a call the request log keeps: `none` (counts, tokens and cost only), `metadata`
/// (also the caller's metadata; the default), `full` (also the request and response bodies,
/// with secrets redacted).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BodyMode {
    None,
    #[default]
    Metadata,
    Full,
}

impl BodyMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "metadata" => Some(Self::Metadata),
            "full" => Some(Self::Full),
            _ => None,
        }
    }
}

/// Where the configuration comes from, kept so that it can be loaded again with the vault's
/// credentials (at start-up and whenever the admin API changes them).
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file, if any.
    pub path: Option<PathBuf>,
    pub env: Env,
    /// `--listen`/`SWITCHYARD_LISTEN`, which win over the file.
    pub listen: Option<SocketAddr>,
}

impl ConfigSource {
    /// Loads the configuration with these vault credentials (by provider name).
    pub fn load(&self, vault: &HashMap<String, Secret>) -> Result<Config, ConfigError> {
        let env = self.env.clone().with_vault(
            vault
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
        );
        self.load_with(&env)
    }

    /// Loads the configuration before the vault is open, to learn where the database (and so
    /// the vault) is and how to start: `vault:NAME` references are not resolved yet (see
    /// [`Env::before_vault`]). What serves calls is loaded again with [`ConfigSource::load`].
    pub fn load_before_vault(&self) -> Result<Config, ConfigError> {
        self.load_with(&self.env.clone().before_vault())
    }

    fn load_with(&self, env: &Env) -> Result<Config, ConfigError> {
        let mut config = match &self.path {
            Some(path) => Config::load(path, env),
            None => Config::defaults(env),
        }?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        Ok(config)
    }
}

impl Config {
    /// The keys read only at start-up whose values in `new` differ from these: a reload
    /// applies the rest and names these as waiting for a restart.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let checks: [(&'static str, bool); 14] = [
            ("circuit_breaker", self.breaker != new.breaker),
            ("server.listen", self.listen != new.listen),
            ("store", self.store_url != new.store_url),
            ("state", self.state != new.state),
            ("streams", self.streams != new.streams),
            (
                "cache.redis_url",
                self.cache.redis_url != new.cache.redis_url,
            ),
            ("cache.max_mb", self.cache.max_bytes != new.cache.max_bytes),
            (
                "server.max_body_bytes",
                self.max_body_bytes != new.max_body_bytes,
            ),
            ("admin.token", self.admin_token != new.admin_token),
            ("auth.open", self.auth_open != new.auth_open),
            ("logs.queue", self.log_queue != new.log_queue),
            ("logs.enabled", self.log_enabled != new.log_enabled),
            (
                "logs.retention_days",
                self.log_retention != new.log_retention,
            ),
            ("telemetry", self.telemetry != new.telemetry),
        ];
        checks
            .into_iter()
            .filter_map(|(key, changed)| changed.then_some(key))
            .collect()
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path, env: &Env) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read the configuration file {}: {e}; check the path given by --config or SWITCHYARD_CONFIG",
                path.display()
            ))
        })?;
        Self::from_toml(&text, env)
            .map_err(|e| ConfigError(format!("in {}: {}", path.display(), e.0)))
    }

    pub fn from_toml(text: &str, env: &Env) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Self::from_raw(raw, env)
    }

    /// The configuration with no file: presets enabled from the environment.
    pub fn defaults(env: &Env) -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::default(), env)
    }

    fn from_raw(raw: RawConfig, env: &Env) -> Result<Self, ConfigError> {
        let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = parse_listen(listen_text).map_err(|m| err("server.listen", m))?;
        let max_body_bytes = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if max_body_bytes < 1024 {
            return Err(err(
                "server.max_body_bytes",
                format!("{max_body_bytes} is too small; use at least 1024"),
            ));
        }
        let connect_timeout =
            positive_ms("server.connect_timeout_ms", raw.server.connect_timeout_ms)?
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let request_timeout =
            positive_ms("server.request_timeout_ms", raw.server.request_timeout_ms)?
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT);

        let mut providers = Vec::new();
        let mut disabled_presets = Vec::new();
        let mut raw_providers = raw.providers;
        for preset in PRESETS {
            let section = raw_providers.remove(preset.name);
            match preset_provider(preset, section, env, request_timeout)? {
                Some(p) => providers.push(p),
                None => disabled_presets.push((
                    preset.name.to_owned(),
                    preset.key_env.first().copied().unwrap_or("").to_owned(),
                )),
            }
        }
        let mock_section = raw_providers.remove(MOCK);
        if let Some(p) = mock_provider(mock_section, env, request_timeout)? {
            // The same mock, spoken to in Anthropic's wire format: `mock-anthropic/echo`.
            let mut anthropic = p.clone();
            anthropic.kind = WireKind::Anthropic;
            anthropic.settings.name = MOCK_ANTHROPIC.to_owned();
            anthropic.settings.auth = AuthStyle::Header("x-api-key".to_owned());
            let mut gemini = p.clone();
            gemini.kind = WireKind::Gemini;
            gemini.settings.name = MOCK_GEMINI.to_owned();
            gemini.settings.auth = AuthStyle::Header("x-goog-api-key".to_owned());
            providers.push(p);
            providers.push(anthropic);
            providers.push(gemini);
        }
        for (name, section) in raw_providers {
            if let Some(p) = custom_provider(&name, section, env, request_timeout)? {
                providers.push(p);
            }
        }

        let names: Vec<&str> = providers.iter().map(|p| p.settings.name.as_str()).collect();
        let known = |name: &str| names.contains(&name);
        if let Some(d) = &raw.default_provider
            && !known(d)
        {
            return Err(err(
                "default_provider",
                format!(
                    "`{d}` is not an enabled provider (enabled: {})",
                    names.join(", ")
                ),
            ));
        }
        // Whether a `provider/model` slug names an enabled provider; the message says why not.
        let slug_ok = |target: &str| -> Result<(), String> {
            let Some((provider, model)) = target.split_once('/') else {
                return Err(format!(
                    "`{target}` is not a `provider/model` slug or an alias"
                ));
            };
            if model.is_empty() {
                return Err(format!("`{target}` names no model after the `/`"));
            }
            if !known(provider) {
                let hint = disabled_presets
                    .iter()
                    .find(|(n, _)| n == provider)
                    .map(|(_, var)| format!("; set {var} to enable it"))
                    .unwrap_or_default();
                return Err(format!(
                    "provider `{provider}` in `{target}` is not enabled{hint}"
                ));
            }
            Ok(())
        };
        for (alias, target) in &raw.aliases {
            let key = format!("aliases.{alias}");
            if alias.contains('/') {
                return Err(err(
                    &key,
                    "an alias name cannot contain `/`; slugs are `provider/model`",
                ));
            }
            if !target.contains('/') && raw.aliases.contains_key(target) {
                continue;
            }
            slug_ok(target).map_err(|m| err(&key, m))?;
        }
        for alias in raw.aliases.keys() {
            let mut seen = vec![alias.as_str()];
            let mut cur = alias.as_str();
            while let Some(next) = raw.aliases.get(cur).filter(|t| !t.contains('/')) {
                if seen.contains(&next.as_str()) {
                    return Err(err(
                        &format!("aliases.{alias}"),
                        format!("aliases form a cycle: {} → {next}", seen.join(" → ")),
                    ));
                }
                seen.push(next);
                cur = next;
            }
        }

        let retry = routing::retry(&raw.retry)?;
        let breaker = routing::breaker(&raw.circuit_breaker)?;
        let state = state::state(raw.state, env)?;
        let streams = state::streams(raw.streams)?;
        let mut cache = cache::policy(raw.cache, env)?;
        // The shared state's Redis holds the cache too, unless the cache names its own.
        if cache.redis_url.is_none() {
            cache.redis_url = state.redis.clone();
        }
        let telemetry = telemetry(raw.telemetry, env)?;
        let firewall = firewall::firewall(raw.firewall)?;
        let routes = raw
            .routes
            .into_iter()
            .map(|(name, r)| routing::route(&name, r, &retry, cache.ttl))
            .collect::<Result<Vec<_>, _>>()?;
        routing::check_references(&routes, &raw.aliases, slug_ok)?;
        for r in &routes {
            if let Some(p) = &r.firewall
                && !firewall.as_ref().is_some_and(|f| f.knows(p))
            {
                return Err(err(
                    &format!("routes.{}.firewall", r.name),
                    format!("`{p}` is not a policy in [firewall.policies]"),
                ));
            }
        }
        let catalog = Catalog::builtin()
            .map_err(|e| ConfigError(format!("the built-in price catalog: {e}")))?
            .with(raw.catalog)
            .map_err(|(slug, e)| err(&format!("catalog.\"{slug}\""), e))?;

        let admin_token = match &raw.admin.token {
            Some(r) => Some(secret("admin.token", r, env)?),
            None => env.get("SWITCHYARD_ADMIN_TOKEN").map(Secret::new),
        };
        if let Some(t) = &admin_token
            && t.expose().len() < 16
        {
            return Err(err(
                "admin.token",
                "is shorter than 16 characters; use a long random token (e.g. `openssl rand -hex 32`)",
            ));
        }
        let store_url = match (&raw.store.url, &raw.store.postgres) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "store.postgres",
                    "is given with store.url; keep one of them",
                ));
            }
            (Some(u), None) => Some(("store.url", u)),
            (None, Some(u)) => Some(("store.postgres", u)),
            (None, None) => None,
        };
        let store_key = store_url.map_or("store.url", |(k, _)| k);
        let store_url = match store_url {
            Some((k, u)) if u.starts_with("env:") || u.starts_with("file:") => {
                Some(secret(k, u, env)?)
            }
            Some((_, u)) => Some(Secret::new(u.clone())),
            None => None,
        };
        if store_key == "store.postgres"
            && let Some(u) = &store_url
            && !(u.expose().starts_with("postgres:") || u.expose().starts_with("postgresql:"))
        {
            return Err(err(
                "store.postgres",
                "is not a postgres:// URL, e.g. postgres://user@127.0.0.1:5432/switchyard",
            ));
        }
        if let Some(u) = &store_url {
            let u = u.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres:")
                || u.starts_with("postgresql:"))
            {
                return Err(err(store_key, "is not a sqlite:// or postgres:// URL"));
            }
        }

        Ok(Self {
            listen,
            data_dir: raw.server.data_dir,
            max_body_bytes,
            connect_timeout,
            default_provider: raw.default_provider,
            aliases: raw.aliases,
            providers,
            disabled_presets,
            retry,
            breaker,
            routes,
            catalog,
            auth_open: raw.auth.open.unwrap_or(false),
            log_queue: match raw.logs.queue {
                Some(0) => {
                    return Err(err(
                        "logs.queue",
                        "0 would drop every record; use at least 1, e.g. 10000",
                    ));
                }
                Some(n) => n,
                None => 10_000,
            },
            log_enabled: raw.logs.enabled.unwrap_or(true),
            log_bodies: match raw.logs.bodies.as_deref() {
                None => BodyMode::default(),
                Some(b) => BodyMode::parse(b).ok_or_else(|| {
                    err("logs.bodies", format!("`{b}`: use none, metadata or full"))
                })?,
            },
            log_retention: match raw.logs.retention_days {
                Some(0) => {
                    return Err(err(
                        "logs.retention_days",
                        "0 would delete every record at once; use at least 1",
                    ));
                }
                Some(d) => Some(Duration::from_secs(d * 86_400)),
                None => None,
            },
            admin_token,
            store_url,
            cache,
            telemetry,
            firewall,
            state,
            streams,
        })
    }
}

/// `[telemetry]`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME`.
fn telemetry(
    raw: raw::RawTelemetry,
    env: &Env,
) -> Result<Option<crate::telemetry::TelemetryConfig>, ConfigError> {
    let Some(endpoint) = raw
        .otlp_endpoint
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned))
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(err(
            "telemetry.otlp_endpoint",
            format!("`{endpoint}` is not an http(s) URL, e.g. http://127.0.0.1:4318"),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let value = header_value(&format!("telemetry.headers.{name}"), &value, env)?;
        headers.push((name, value));
    }
    Ok(Some(crate::telemetry::TelemetryConfig {
        endpoint,
        service_name: raw
            .service_name
            .or_else(|| env.get("OTEL_SERVICE_NAME").map(str::to_owned))
            .unwrap_or_else(|| "switchyard".to_owned()),
        headers,
    }))
}

pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let candidate = text
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"));
    candidate.as_deref().unwrap_or(text).parse().map_err(|_| {
        format!("`{text}` is not an address with a port, like 127.0.0.1:8787 or [::1]:8787")
    })
}

/// A positive span written as a number and a unit, `45s`, `90m`, `12h` or `30d`, in
/// milliseconds.
pub fn parse_span_ms(text: &str) -> Option<i64> {
    let (at, _) = text.char_indices().last()?;
    let (num, unit) = text.split_at(at);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

pub(crate) fn positive_ms(key: &str, v: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match v {
        Some(0) => Err(err(key, "0 is not allowed; give milliseconds, e.g. 30000")),
        other => Ok(other.map(Duration::from_millis)),
    }
}

/// The credential provider `name`'s key names, `vault:CRED`, when none is stored under it (the
/// vault being open). Such a provider is configured (routes and aliases may name it) but
/// refuses calls, saying what to store, until the credential is stored through the admin API,
/// which reloads the configuration; so a gateway whose file names a credential not stored yet
/// still starts, and deleting a credential stops its provider without stopping the gateway.
fn not_stored_yet(name: &str, reference: &str, env: &Env) -> Option<String> {
    let cred = reference.strip_prefix("vault:")?;
    if env.vault_pending() || env.vault(cred).is_some() {
        return None;
    }
    tracing::warn!(
        provider = name,
        "providers.{name}.api_key is `vault:{cred}`, and the vault holds no credential named `{cred}`: the provider refuses calls until you store it with PUT /admin/credentials/{cred}"
    );
    Some(cred.to_owned())
}

/// Resolves `env:NAME` / `file:PATH` / `vault:PROVIDER`. Literal keys are refused so that no
/// secret sits in a file that gets shared, copied into tickets or printed.
fn secret(key: &str, reference: &str, env: &Env) -> Result<Secret, ConfigError> {
    if let Some(name) = reference.strip_prefix("vault:") {
        if env.vault_pending() && env.vault(name).is_none() {
            return Ok(Secret::new(""));
        }
        return env.vault(name).map(Secret::new).ok_or_else(|| {
            err(
                key,
                format!(
                    "the vault holds no credential named `{name}`; store it with PUT /admin/credentials/{name}"
                ),
            )
        });
    }
    if let Some(name) = reference.strip_prefix("env:") {
        return env.get(name).map(Secret::new).ok_or_else(|| {
            err(
                key,
                format!("environment variable {name} is not set; export it or remove the key"),
            )
        });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(key, format!("cannot read the key file {path}: {e}")))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(err(key, format!("the key file {path} is empty")));
        }
        return Ok(Secret::new(text));
    }
    Err(err(
        key,
        "write a reference, `env:NAME`, `file:/path/to/key` or `vault:NAME`, not the key itself",
    ))
}

fn base_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        // The URL is not repeated: it holds a password.
        return Err(err(
            key,
            "holds a user name or password; put the credential in `api_key`, or send it in a \
             header from the environment: `headers = { authorization = \"env:NAME\" }`",
        ));
    }
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) || trimmed.len() < 10 {
        return Err(err(
            key,
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A provider's extra headers. A value may be a reference, `env:NAME` or `file:/path`, for a
/// header that carries a credential; values are kept as secrets either way.
fn headers(
    name: &str,
    raw: &BTreeMap<String, String>,
    env: &Env,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    raw.iter()
        .map(|(k, v)| {
            let key = format!("providers.{name}.headers.{k}");
            http::HeaderName::try_from(k.as_str())
                .map_err(|_| err(&key, "not a valid header name"))?;
            let value = header_value(&key, v, env)?;
            http::HeaderValue::try_from(value.expose())
                .map_err(|_| err(&key, "not a valid header value"))?;
            Ok((k.clone(), value))
        })
        .collect()
}

/// A header value as written, or what its `env:NAME` / `file:/path` reference holds.
fn header_value(key: &str, value: &str, env: &Env) -> Result<Secret, ConfigError> {
    if value.starts_with("env:") || value.starts_with("file:") {
        secret(key, value, env)
    } else {
        Ok(Secret::new(value))
    }
}

fn preset_provider(
    preset: &Preset,
    section: Option<RawProvider>,
    env: &Env,
    default_timeout: Duration,
) -> Result<Option<ProviderConfig>, ConfigError> {
    let name = preset.name;
    let s = section.unwrap_or_default();
    if s.enabled == Some(false) {
        return Ok(None);
    }
    if let Some(kind) = &s.kind
        && WireKind::parse(kind) != Some(preset.kind)
    {
        return Err(err(
            &format!("providers.{name}.kind"),
            format!(
                "`{kind}`: the {name} preset speaks `{}`; remove the key",
                kind_name(preset.kind)
            ),
        ));
    }
    // The file's reference, else a credential stored in the vault, else the usual variable.
    let waiting_for = s
        .api_key
        .as_deref()
        .and_then(|r| not_stored_yet(name, r, env));
    let api_key = match &s.api_key {
        Some(_) if waiting_for.is_some() => None,
        Some(r) => Some(secret(&format!("providers.{name}.api_key"), r, env)?),
        None => env
            .vault(name)
            .or_else(|| preset.key_env.iter().find_map(|v| env.get(v)))
            .map(Secret::new),
    };
    if api_key.is_none() && waiting_for.is_none() && !preset.keyless && s.enabled != Some(true) {
        return Ok(None);
    }
    let url_key = format!("providers.{name}.base_url");
    let url = match (&s.base_url, env.get(preset.base_url_env), preset.base_url) {
        (Some(u), _, _) => base_url(&url_key, u)?,
        (None, Some(u), _) => base_url(preset.base_url_env, u)?,
        (None, None, Some(u)) => u.to_owned(),
        (None, None, None) => match (name, env.get("AZURE_OPENAI_ENDPOINT")) {
            ("azure", Some(endpoint)) => {
                format!("{}/openai/v1", base_url("AZURE_OPENAI_ENDPOINT", endpoint)?)
            }
            _ => {
                return Err(err(
                    &url_key,
                    format!(
                        "{name} needs a base URL; set it here or in {} (for Azure: AZURE_OPENAI_ENDPOINT)",
                        preset.base_url_env
                    ),
                ));
            }
        },
    };
    let auth = match s.auth_header.as_deref().or(preset.key_header) {
        Some(h) => AuthStyle::Header(h.to_owned()),
        None => AuthStyle::Bearer,
    };
    Ok(Some(ProviderConfig {
        settings: ProviderSettings {
            name: name.to_owned(),
            base_url: url,
            api_key,
            auth,
            headers: headers(name, &s.headers, env)?,
            request_timeout: positive_ms(
                &format!("providers.{name}.request_timeout_ms"),
                s.request_timeout_ms,
            )?
            .unwrap_or(default_timeout),
            stream_usage: s.stream_usage.unwrap_or(preset.stream_usage),
        },
        models: s.models,
        kind: preset.kind,
        embedded_mock: false,
        waiting_for,
    }))
}

fn mock_provider(
    section: Option<RawProvider>,
    env: &Env,
    default_timeout: Duration,
) -> Result<Option<ProviderConfig>, ConfigError> {
    let s = section.unwrap_or_default();
    if s.enabled == Some(false) {
        return Ok(None);
    }
    let url = match (&s.base_url, env.get("MOCK_BASE_URL")) {
        (Some(u), _) => Some(base_url("providers.mock.base_url", u)?),
        (None, Some(u)) => Some(base_url("MOCK_BASE_URL", u)?),
        (None, None) => None,
    };
    let models = if s.models.is_empty() {
        switchyard_mock::MODELS
            .iter()
            .map(|m| (*m).to_owned())
            .collect()
    } else {
        s.models
    };
    Ok(Some(ProviderConfig {
        kind: WireKind::OpenAi,
        embedded_mock: url.is_none(),
        waiting_for: None,
        settings: ProviderSettings {
            name: MOCK.to_owned(),
            // Filled in with the embedded mock's address at start-up.
            base_url: url.unwrap_or_default(),
            api_key: s
                .api_key
                .as_deref()
                .map(|r| secret("providers.mock.api_key", r, env))
                .transpose()?,
            auth: AuthStyle::Bearer,
            headers: headers(MOCK, &s.headers, env)?,
            request_timeout: positive_ms(
                "providers.mock.request_timeout_ms",
                s.request_timeout_ms,
            )?
            .unwrap_or(default_timeout),
            stream_usage: true,
        },
        models,
    }))
}

fn custom_provider(
    name: &str,
    s: RawProvider,
    env: &Env,
    default_timeout: Duration,
) -> Result<Option<ProviderConfig>, ConfigError> {
    if s.enabled == Some(false) {
        return Ok(None);
    }
    let prefix = format!("providers.{name}");
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(err(
            &prefix,
            "a provider name cannot be empty or contain `/` or spaces",
        ));
    }
    let kind = match s.kind.as_deref() {
        Some(k) => WireKind::parse(k).ok_or_else(|| {
            err(
                &format!("{prefix}.kind"),
                format!("`{k}` is not a known kind; use \"openai\", \"openai-responses\", \"anthropic\" or \"gemini\""),
            )
        })?,
        None => {
            let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            return Err(err(
                &format!("{prefix}.kind"),
                format!(
                    "`{name}` is not a preset ({}), so say which wire format it speaks: kind = \"openai\", \"openai-responses\", \"anthropic\" or \"gemini\"",
                    known.join(", ")
                ),
            ));
        }
    };
    let url = base_url(
        &format!("{prefix}.base_url"),
        s.base_url.as_deref().ok_or_else(|| {
            err(
                &format!("{prefix}.base_url"),
                "required for a custom provider",
            )
        })?,
    )?;
    let waiting_for = s
        .api_key
        .as_deref()
        .and_then(|r| not_stored_yet(name, r, env));
    let api_key = match s.api_key.as_deref() {
        Some(_) if waiting_for.is_some() => None,
        Some(r) => Some(secret(&format!("{prefix}.api_key"), r, env)?),
        None => env.vault(name).map(Secret::new),
    };
    Ok(Some(ProviderConfig {
        settings: ProviderSettings {
            name: name.to_owned(),
            base_url: url,
            api_key,
            auth: match (s.auth_header, kind) {
                (Some(h), _) => AuthStyle::Header(h),
                (None, WireKind::Anthropic) => AuthStyle::Header("x-api-key".to_owned()),
                (None, WireKind::Gemini) => AuthStyle::Header("x-goog-api-key".to_owned()),
                (None, WireKind::OpenAi | WireKind::Responses) => AuthStyle::Bearer,
            },
            headers: headers(name, &s.headers, env)?,
            request_timeout: positive_ms(
                &format!("{prefix}.request_timeout_ms"),
                s.request_timeout_ms,
            )?
            .unwrap_or(default_timeout),
            stream_usage: s.stream_usage.unwrap_or(true),
        },
        models: s.models,
        kind,
        embedded_mock: false,
        waiting_for,
    }))
}

fn kind_name(k: WireKind) -> &'static str {
    match k {
        WireKind::OpenAi => "openai",
        WireKind::Anthropic => "anthropic",
        WireKind::Gemini => "gemini",
        WireKind::Responses => "openai-responses",
    }
}

#[cfg(test)]
mod tests;
