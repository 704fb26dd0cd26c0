//! The routing part of the configuration: retry defaults, the circuit breaker, routes.
//!
//! ```toml
//! [retry]
//! max_attempts = 3          # attempts per call, over all targets
//! backoff_ms = 200          # base of the exponential backoff (full jitter)
//! attempt_timeout_ms = 30000
//!
//! [routes.smart]
//! strategy = "fallback"     # weighted | least-latency | lowest-cost
//! targets = ["openai/gpt-4o-mini", { model = "groq/llama-3.1-8b-instant", weight = 3 }]
//! hedge = 400               # or "p95"
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::raw::{RawBreaker, RawHedge, RawRetry, RawRoute, RawTarget};
use super::{ConfigError, err, positive_ms};

/// How many times a call is tried, how long it waits in between, how long it may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, over all targets (1 = no retry).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts on the same target.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Time allowed for one attempt: a whole answer, or a stream's first byte. `None` leaves it
    /// to the provider's `request_timeout_ms`.
    pub attempt_timeout: Option<Duration>,
    /// Time allowed for the whole call.
    pub deadline: Option<Duration>,
    /// A `retry-after` longer than this is not waited for.
    pub max_retry_after: Duration,
}

/// The most attempts a configuration or a request header may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            attempt_timeout: None,
            deadline: None,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// When a target's circuit opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            error_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In the configured order.
    Fallback,
    /// At random by weight, then the rest by weight.
    Weighted,
    /// The lowest recent time to first byte (power of two choices), exploring now and then.
    LeastLatency,
    /// The cheapest target that supports the request's features, by the price catalog.
    LowestCost,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fallback => "fallback",
            Self::Weighted => "weighted",
            Self::LeastLatency => "least-latency",
            Self::LowestCost => "lowest-cost",
        }
    }
}

/// When to start a second, parallel attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hedge {
    After(Duration),
    /// The first target's recent latency percentile (0.95 for `"p95"`).
    Percentile(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<TargetSpec>,
    pub retry: RetryPolicy,
    pub hedge: Option<Hedge>,
    pub explore: f64,
    pub rules: Vec<RuleSpec>,
    pub log_bodies: Option<super::BodyMode>,
    /// Whether answers are cached and for how long (`Some(None)`: not cached), when the route
    /// says.
    pub cache: Option<Option<Duration>>,
    /// Whether similar requests are served from the cache, when the route says.
    pub semantic_cache: Option<bool>,
    /// The route's firewall policy (or `off`), when it names one.
    pub firewall: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// As written: a `provider/model` slug or an alias.
    pub model: String,
    pub weight: u32,
    /// Request fields set for this target.
    pub overrides: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub metadata: Vec<(String, String)>,
    /// A route, alias or slug.
    pub route: String,
}

pub(super) fn retry(raw: &RawRetry) -> Result<RetryPolicy, ConfigError> {
    let d = RetryPolicy::default();
    let policy = RetryPolicy {
        max_attempts: attempts("retry.max_attempts", raw.max_attempts)?.unwrap_or(d.max_attempts),
        backoff: positive_ms("retry.backoff_ms", raw.backoff_ms)?.unwrap_or(d.backoff),
        max_backoff: positive_ms("retry.max_backoff_ms", raw.max_backoff_ms)?
            .unwrap_or(d.max_backoff),
        attempt_timeout: positive_ms("retry.attempt_timeout_ms", raw.attempt_timeout_ms)?,
        deadline: positive_ms("retry.deadline_ms", raw.deadline_ms)?,
        max_retry_after: positive_ms("retry.max_retry_after_ms", raw.max_retry_after_ms)?
            .unwrap_or(d.max_retry_after),
    };
    if policy.max_backoff < policy.backoff {
        return Err(err(
            "retry.max_backoff_ms",
            "is smaller than retry.backoff_ms; raise it or lower the base",
        ));
    }
    Ok(policy)
}

fn attempts(key: &str, v: Option<u32>) -> Result<Option<u32>, ConfigError> {
    match v {
        Some(n) if n == 0 || n > MAX_ATTEMPTS => Err(err(
            key,
            format!("{n} is out of range; use 1 (no retry) to {MAX_ATTEMPTS}"),
        )),
        other => Ok(other),
    }
}

pub(super) fn breaker(raw: &RawBreaker) -> Result<BreakerPolicy, ConfigError> {
    let d = BreakerPolicy::default();
    let rate = raw.error_rate.unwrap_or(d.error_rate);
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(err(
            "circuit_breaker.error_rate",
            format!("{rate} is not a share; use a number above 0 and at most 1, e.g. 0.5"),
        ));
    }
    let consecutive = raw.consecutive_failures.unwrap_or(d.consecutive_failures);
    if consecutive == 0 {
        return Err(err(
            "circuit_breaker.consecutive_failures",
            "0 would open every circuit at once; use at least 1, or enabled = false",
        ));
    }
    Ok(BreakerPolicy {
        enabled: raw.enabled.unwrap_or(d.enabled),
        consecutive_failures: consecutive,
        error_rate: rate,
        min_calls: raw.min_calls.unwrap_or(d.min_calls).max(1),
        window: positive_ms("circuit_breaker.window_ms", raw.window_ms)?.unwrap_or(d.window),
        cooldown: positive_ms("circuit_breaker.cooldown_ms", raw.cooldown_ms)?
            .unwrap_or(d.cooldown),
    })
}

/// Checks one route's shape. Whether its targets name enabled providers is checked by the
/// caller, which knows the providers and aliases.
pub(super) fn route(
    name: &str,
    raw: RawRoute,
    defaults: &RetryPolicy,
    cache_ttl: Duration,
) -> Result<RouteSpec, ConfigError> {
    let key = format!("routes.{name}");
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(err(
            &key,
            "a route name cannot be empty or contain `/` or spaces; slugs are `provider/model`",
        ));
    }
    let strategy = match raw.strategy.as_deref().unwrap_or("fallback") {
        "fallback" => Strategy::Fallback,
        "weighted" => Strategy::Weighted,
        "least-latency" | "least_latency" => Strategy::LeastLatency,
        "lowest-cost" | "lowest_cost" => Strategy::LowestCost,
        other => {
            return Err(err(
                &format!("{key}.strategy"),
                format!(
                    "`{other}` is not a strategy; use fallback, weighted, least-latency or lowest-cost"
                ),
            ));
        }
    };
    if raw.targets.is_empty() {
        return Err(err(
            &format!("{key}.targets"),
            "is empty; list at least one `provider/model`",
        ));
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (i, t) in raw.targets.into_iter().enumerate() {
        let tkey = format!("{key}.targets[{i}]");
        let spec = match t {
            RawTarget::Slug(model) => TargetSpec {
                model,
                weight: 1,
                overrides: Map::new(),
            },
            RawTarget::Full(t) => {
                let overrides = match t.overrides {
                    Some(table) => match serde_json::to_value(table) {
                        Ok(Value::Object(m)) => m,
                        _ => {
                            return Err(err(
                                &format!("{tkey}.overrides"),
                                "must be a table of request fields",
                            ));
                        }
                    },
                    None => Map::new(),
                };
                for k in ["model", "messages", "stream", "input"] {
                    if overrides.contains_key(k) {
                        return Err(err(
                            &format!("{tkey}.overrides.{k}"),
                            "cannot be overridden; the target and the caller decide it",
                        ));
                    }
                }
                TargetSpec {
                    model: t.model,
                    weight: t.weight.unwrap_or(1),
                    overrides,
                }
            }
        };
        if spec.model.trim().is_empty() {
            return Err(err(&tkey, "names no model; write `provider/model`"));
        }
        targets.push(spec);
    }
    if strategy == Strategy::Weighted && targets.iter().all(|t| t.weight == 0) {
        return Err(err(
            &format!("{key}.targets"),
            "every weight is 0; give at least one target a positive weight",
        ));
    }
    let hedge = match raw.hedge {
        None => None,
        Some(RawHedge::Millis(0)) => {
            return Err(err(
                &format!("{key}.hedge"),
                "0 would always call two targets; use a delay in milliseconds or \"p95\"",
            ));
        }
        Some(RawHedge::Millis(ms)) => Some(Hedge::After(Duration::from_millis(ms))),
        Some(RawHedge::Percentile(p)) => {
            let q = p
                .strip_prefix('p')
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (50..=99).contains(n));
            match q {
                Some(n) => Some(Hedge::Percentile(f64::from(n) / 100.0)),
                None => {
                    return Err(err(
                        &format!("{key}.hedge"),
                        format!(
                            "`{p}` is not a delay; use milliseconds (400) or a recent percentile such as \"p95\" (p50 to p99)"
                        ),
                    ));
                }
            }
        }
    };
    let explore = raw.explore.unwrap_or(0.05);
    if !(0.0..=1.0).contains(&explore) {
        return Err(err(
            &format!("{key}.explore"),
            format!("{explore} is not a share; use 0 to 1, e.g. 0.05"),
        ));
    }
    let retry = RetryPolicy {
        max_attempts: attempts(&format!("{key}.max_attempts"), raw.max_attempts)?
            .unwrap_or(defaults.max_attempts),
        backoff: positive_ms(&format!("{key}.backoff_ms"), raw.backoff_ms)?
            .unwrap_or(defaults.backoff),
        attempt_timeout: positive_ms(&format!("{key}.attempt_timeout_ms"), raw.attempt_timeout_ms)?
            .or(defaults.attempt_timeout),
        deadline: positive_ms(&format!("{key}.deadline_ms"), raw.deadline_ms)?
            .or(defaults.deadline),
        ..*defaults
    };
    let rules = raw
        .when
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.metadata.is_empty() {
                return Err(err(
                    &format!("{key}.when[{i}].metadata"),
                    "is empty; a rule needs at least one key to match",
                ));
            }
            Ok(RuleSpec {
                metadata: r.metadata.into_iter().collect(),
                route: r.route,
            })
        })
        .collect::<Result<_, _>>()?;
    let log_bodies = raw
        .log_bodies
        .as_deref()
        .map(|b| {
            super::BodyMode::parse(b).ok_or_else(|| {
                err(
                    &format!("{key}.log_bodies"),
                    format!("`{b}`: use none, metadata or full"),
                )
            })
        })
        .transpose()?;
    let cache = raw
        .cache
        .as_ref()
        .map(|c| super::cache::setting(&format!("{key}.cache"), c, cache_ttl))
        .transpose()?;
    Ok(RouteSpec {
        semantic_cache: raw.semantic_cache,
        firewall: raw.firewall,
        cache,
        log_bodies,
        name: name.to_owned(),
        strategy,
        targets,
        retry,
        hedge,
        explore,
        rules,
    })
}

/// Checks that every target and rule of every route names something callable: a slug on an
/// enabled provider or an alias (routes do not nest, so a target may not name a route).
pub(super) fn check_references(
    routes: &[RouteSpec],
    aliases: &BTreeMap<String, String>,
    slug_ok: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let is_route = |n: &str| routes.iter().any(|r| r.name == n);
    for r in routes {
        if aliases.contains_key(&r.name) {
            return Err(err(
                &format!("routes.{}", r.name),
                "an alias has the same name; rename one of them",
            ));
        }
        for (i, t) in r.targets.iter().enumerate() {
            let key = format!("routes.{}.targets[{i}]", r.name);
            if is_route(&t.model) {
                return Err(err(
                    &key,
                    format!(
                        "`{}` is a route; routes do not nest, list its targets here instead",
                        t.model
                    ),
                ));
            }
            if !aliases.contains_key(&t.model) {
                slug_ok(&t.model).map_err(|m| err(&key, m))?;
            }
        }
        for (i, rule) in r.rules.iter().enumerate() {
            let key = format!("routes.{}.when[{i}].route", r.name);
            if rule.route == r.name {
                return Err(err(&key, "a rule cannot send a route to itself"));
            }
            if !is_route(&rule.route) && !aliases.contains_key(&rule.route) {
                slug_ok(&rule.route).map_err(|m| err(&key, m))?;
            }
        }
    }
    Ok(())
}
