//! Routing: which targets a call may use, in which order, and how it is tried.
//!
//! A call names a route (`"model": "smart"`), an alias or a `provider/model` slug. Either way it
//! becomes a [`Plan`]: a [`Route`] (configured, or a one-target route for a slug), the order
//! its [`strategy`] chose for this call, the retry policy with the caller's header overrides
//! ([`options`]), and the hedge delay. [`attempt::run`] then carries the call out. Each target
//! has a [`health::Health`] (circuit breaker and latency), shared by every route that uses the
//! same `provider/model`.

pub mod attempt;
pub mod health;
pub mod options;
pub mod shared;
pub mod strategy;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{BodyMode, BreakerPolicy, CachePolicy, Config, Hedge, RetryPolicy, Strategy};
use crate::error::GatewayError;
use crate::registry::{Registry, Target};
use switchyard_providers::catalog::{Catalog, ModelInfo};

pub use attempt::{Attempts, run};
pub use health::{Health, HealthTable, MAX_REMEMBERED};
pub use options::CallOptions;
pub use strategy::Needs;

/// One target of a route.
#[derive(Debug)]
pub struct RouteTarget {
    pub target: Target,
    /// `provider/model`, after aliases.
    pub slug: Arc<str>,
    pub weight: u32,
    /// Request fields set for this target.
    pub overrides: Map<String, Value>,
    pub health: Arc<Health>,
    pub info: Option<ModelInfo>,
}

impl RouteTarget {
    #[cfg(test)]
    pub fn for_test(slug: &str, weight: u32, info: Option<ModelInfo>) -> Self {
        Self {
            target: Target::for_test(slug),
            slug: slug.into(),
            weight,
            overrides: Map::new(),
            health: Arc::new(Health::new(slug, BreakerPolicy::default())),
            info,
        }
    }
}

#[derive(Debug)]
pub struct Route {
    /// `None` for a plain slug or alias.
    pub name: Option<Arc<str>>,
    pub strategy: Strategy,
    pub targets: Vec<RouteTarget>,
    pub retry: RetryPolicy,
    pub hedge: Option<Hedge>,
    pub explore: f64,
    rules: Vec<Rule>,
    /// What the request log keeps of this route's calls, when the route says.
    pub log_bodies: Option<BodyMode>,
    /// How long answers are cached (`None`: not cached unless the caller asks).
    pub cache_ttl: Option<Duration>,
    /// Whether similar requests are served from the cache.
    pub semantic_cache: bool,
    /// The route's firewall policy (or `off`), when it names one.
    pub firewall: Option<String>,
    /// Where its calls go, as the cache keys their answers (see [`destination`]).
    pub destination: Arc<str>,
}

/// Where a route's calls go: its name, if it has one, and its targets. The cache keys answers
/// by this, not by the name the caller gave: an alias and the slug it names share answers, and
/// a metadata rule that sends a call to another route keeps that route's answers apart.
fn destination(name: Option<&str>, targets: &[RouteTarget]) -> Arc<str> {
    let mut d = String::from(name.unwrap_or(""));
    for t in targets {
        d.push(' ');
        d.push_str(&t.slug);
    }
    d.into()
}

#[derive(Debug)]
struct Rule {
    metadata: Vec<(String, String)>,
    route: String,
}

/// How one call will be tried.
#[derive(Debug)]
pub struct Plan {
    pub route: Arc<Route>,
    /// Indices into `route.targets`, in the order to try them.
    pub order: Vec<usize>,
    pub retry: RetryPolicy,
    pub hedge_after: Option<Duration>,
}

/// The configured routes, the providers behind them, and the health of every target seen.
#[derive(Debug)]
pub struct Routes {
    registry: Registry,
    /// foldhash, not SipHash, for the look-up every call makes (callgrind: `docs/benchmarks.md`,
    /// 2026-12-04); keys come from the configuration, or are bounded (`MAX_REMEMBERED`).
    routes: foldhash::HashMap<String, Arc<Route>>,
    /// One-target routes for slugs and aliases, built on first use.
    direct: Mutex<foldhash::HashMap<String, Arc<Route>>>,
    health: HealthTable,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    catalog: Catalog,
    log_bodies: BodyMode,
    cache: CachePolicy,
}

impl Routes {
    pub fn new(
        registry: Registry,
        config: &Config,
        health: HealthTable,
    ) -> Result<Self, GatewayError> {
        let mut routes = Self {
            registry,
            routes: foldhash::HashMap::default(),
            direct: Mutex::new(foldhash::HashMap::default()),
            health,
            retry: config.retry,
            breaker: config.breaker,
            catalog: config.catalog.clone(),
            log_bodies: config.log_bodies,
            cache: config.cache.clone(),
        };
        for spec in &config.routes {
            let mut targets = Vec::with_capacity(spec.targets.len());
            for t in &spec.targets {
                let mut rt = routes.target(&t.model)?;
                rt.weight = t.weight;
                rt.overrides = t.overrides.clone();
                targets.push(rt);
            }
            // Serving similar requests from the cache turns caching on.
            let semantic = config.cache.semantic_for(spec.semantic_cache, &spec.name);
            let route = Route {
                name: Some(spec.name.as_str().into()),
                strategy: spec.strategy,
                destination: destination(Some(&spec.name), &targets),
                targets,
                retry: spec.retry,
                hedge: spec.hedge,
                explore: spec.explore,
                log_bodies: spec.log_bodies,
                cache_ttl: config
                    .cache
                    .ttl_for(spec.cache, &spec.name)
                    .or(semantic.then_some(config.cache.ttl)),
                semantic_cache: semantic,
                firewall: spec.firewall.clone(),
                rules: spec
                    .rules
                    .iter()
                    .map(|r| Rule {
                        metadata: r.metadata.clone(),
                        route: r.route.clone(),
                    })
                    .collect(),
            };
            routes.routes.insert(spec.name.clone(), Arc::new(route));
        }
        Ok(routes)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What the request log keeps of a call to this route (or a slug): the route's setting, or
    /// `logs.bodies`.
    /// The most that any route's calls leave in the log: what a call may be kept with before
    /// routing says which route it takes.
    pub fn most_log_bodies(&self) -> BodyMode {
        self.routes
            .values()
            .filter_map(|r| r.log_bodies)
            .fold(self.log_bodies, BodyMode::max)
    }

    pub fn log_bodies(&self, route: Option<&str>) -> BodyMode {
        route
            .and_then(|r| self.routes.get(r))
            .and_then(|r| r.log_bodies)
            .unwrap_or(self.log_bodies)
    }

    /// The `[cache]` section.
    pub fn cache_policy(&self) -> &CachePolicy {
        &self.cache
    }

    /// Prices and capabilities by `provider/model`.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A target for a slug or alias, with the shared health of its `provider/model`.
    fn target(&self, model: &str) -> Result<RouteTarget, GatewayError> {
        let target = self.registry.resolve(model)?;
        let slug: Arc<str> = format!("{}/{}", target.provider_name(), target.model).into();
        let health = self.health.get_or_insert(&slug, self.breaker);
        Ok(RouteTarget {
            info: self.catalog.get(&slug).copied(),
            target,
            slug,
            weight: 1,
            overrides: Map::new(),
            health,
        })
    }

    /// The route a name stands for: a configured route, or a one-target route for a slug.
    fn route(&self, name: &str) -> Result<Arc<Route>, GatewayError> {
        if let Some(r) = self.routes.get(name) {
            return Ok(r.clone());
        }
        if let Some(r) = self
            .direct
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(r.clone());
        }
        let semantic = self.cache.semantic_for(None, name);
        let targets = vec![self.target(name)?];
        let route = Arc::new(Route {
            name: None,
            strategy: Strategy::Fallback,
            destination: destination(None, &targets),
            targets,
            retry: self.retry,
            hedge: None,
            explore: 0.0,
            log_bodies: None,
            cache_ttl: self
                .cache
                .ttl_for(None, name)
                .or(semantic.then_some(self.cache.ttl)),
            semantic_cache: semantic,
            firewall: None,
            rules: Vec::new(),
        });
        let mut direct = self.direct.lock().unwrap_or_else(|e| e.into_inner());
        if direct.len() < MAX_REMEMBERED {
            direct.insert(name.to_owned(), route.clone());
        }
        Ok(route)
    }

    /// Plans a call to `model` (or to the route the caller forces by header).
    pub fn plan(
        &self,
        model: &str,
        options: &CallOptions,
        needs: &Needs,
    ) -> Result<Plan, GatewayError> {
        let name = options.route.as_deref().unwrap_or(model);
        let mut route = self.route(name)?;
        if let Some(rule) = route.rules.iter().find(|r| {
            r.metadata
                .iter()
                .all(|(k, v)| options.metadata_text(k).as_deref() == Some(v.as_str()))
        }) {
            route = self.route(&rule.route)?;
        }
        let order = strategy::order(
            route.strategy,
            &route.targets,
            needs,
            route.explore,
            &mut |n| fastrand::u64(0..n),
        )
        .map_err(|e| {
            GatewayError::bad_request(
                format!("route `{}`: {}", route.name.as_deref().unwrap_or(name), e.0),
                None,
            )
        })?;
        let mut retry = route.retry;
        if let Some(n) = options.max_attempts {
            retry.max_attempts = n;
        }
        if let Some(d) = options.deadline {
            retry.deadline = Some(d);
        }
        if let Some(b) = options.backoff {
            retry.backoff = b;
            retry.max_backoff = retry.max_backoff.max(b);
        }
        let hedge_after = match route.hedge {
            None => None,
            Some(Hedge::After(d)) => Some(d),
            Some(Hedge::Percentile(q)) => order
                .first()
                .and_then(|&i| route.targets[i].health.percentile(q)),
        };
        Ok(Plan {
            route,
            order,
            retry,
            hedge_after,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Env;

    pub(crate) fn routes(toml: &str) -> Routes {
        let config = Config::from_toml(toml, &Env::default()).unwrap();
        let registry = Registry::build(&config, Some("http://127.0.0.1:9/v1"), None).unwrap();
        Routes::new(registry, &config, HealthTable::default()).unwrap()
    }

    #[test]
    fn a_percentile_hedge_waits_for_samples_then_follows_the_first_target() {
        let r =
            routes("[routes.h]\ntargets = [\"mock/echo\", \"mock/stream-2\"]\nhedge = \"p90\"\n");
        let plan = r
            .plan("h", &CallOptions::default(), &Needs::default())
            .unwrap();
        assert_eq!(plan.hedge_after, None, "no samples yet: no hedge");
        let first = &plan.route.targets[0].health;
        for ms in 1..=10 {
            first
                .admit(Instant::now())
                .unwrap()
                .success(Duration::from_millis(ms * 10));
        }
        let plan = r
            .plan("h", &CallOptions::default(), &Needs::default())
            .unwrap();
        assert_eq!(plan.hedge_after, Some(Duration::from_millis(90)));
    }

    #[test]
    fn plans_apply_header_overrides_rules_and_shared_health() {
        let r = routes(
            r#"
[retry]
max_attempts = 2
[routes.a]
targets = ["mock/echo", "mock/stream-2"]
[[routes.a.when]]
metadata = { tier = "free" }
route = "b"
[routes.b]
targets = ["mock/echo"]
"#,
        );
        let options = CallOptions {
            max_attempts: Some(5),
            deadline: Some(Duration::from_secs(1)),
            ..CallOptions::default()
        };
        let plan = r.plan("a", &options, &Needs::default()).unwrap();
        assert_eq!(plan.retry.max_attempts, 5);
        assert_eq!(plan.retry.deadline, Some(Duration::from_secs(1)));
        assert_eq!(plan.order, [0, 1]);

        let mut free = CallOptions::default();
        free.metadata.insert("tier".into(), "free".into());
        let plan = r.plan("a", &free, &Needs::default()).unwrap();
        assert_eq!(plan.route.name.as_deref(), Some("b"));
        assert_eq!(plan.retry.max_attempts, 2);

        // One health per provider/model, whichever route or slug reaches it.
        let a = r
            .plan("a", &CallOptions::default(), &Needs::default())
            .unwrap();
        let direct = r
            .plan("mock/echo", &CallOptions::default(), &Needs::default())
            .unwrap();
        assert!(Arc::ptr_eq(
            &a.route.targets[0].health,
            &direct.route.targets[0].health
        ));
        assert!(direct.route.name.is_none());

        let e = r
            .plan("nosuch/model", &CallOptions::default(), &Needs::default())
            .unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
    }
}
