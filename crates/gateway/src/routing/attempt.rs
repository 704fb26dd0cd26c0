//! Running a call over its plan: attempts, backoff, deadline and hedging.
//!
//! The plan's order is walked round-robin: the next attempt after a retryable failure goes to
//! the next target, at once; an attempt on a target already tried waits first (exponential
//! backoff with full jitter, and at least the `retry-after` the target sent). A target whose
//! circuit is open is skipped, and so, for the rest of the call, is a target that refused the
//! request before sending it (it cannot express it, or the call's cost ceiling forbids it at
//! its prices). The call stops at the first answer, at a failure that another attempt cannot
//! fix (a 400), when `max_attempts` were made, when every target refused, or at the deadline.
//!
//! With hedging, when the first attempt has not answered (first byte) within the hedge delay, a
//! second one starts on the next target; the first to answer wins and the other is dropped,
//! which closes its connection and so cancels it upstream.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use switchyard_providers::ProviderError;

use super::health::{Permit, Refused};
use super::{Plan, RouteTarget};
use crate::error::{GatewayError, upstream_message};
use crate::limits::RateState;
use crate::metrics::Metrics;
use crate::registry::Target;

/// What happened, for the `x-switchyard-*` response headers and the logs.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    pub route: Option<Arc<str>>,
    /// The target that answered, or the last one tried.
    pub target: Option<Target>,
    /// Attempts started (hedges included).
    pub count: u32,
    pub hedged: bool,
    /// The caller's rate-limit counters after this call, for the `x-ratelimit-*` headers.
    pub rate: RateState,
    /// Every attempt that ended, in order, for the request log.
    pub tried: Vec<Tried>,
    /// What the cache did, when it was on for the call.
    pub cache: Option<crate::cache::CacheOutcome>,
    /// The firewall's screening of the call, when it had a policy.
    pub firewall: Option<Arc<crate::firewall::Screening>>,
}

/// One attempt, as the request log shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tried {
    /// `provider/model`.
    pub target: String,
    /// `ok`, `cancelled` (a hedge that lost) or the error class (`timeout`, `upstream_server`…).
    pub outcome: &'static str,
    /// The upstream's HTTP status, when it answered with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
}

/// Runs `call` against the plan's targets until one answers.
pub async fn run<'p, T, F, Fut>(
    plan: &'p Plan,
    metrics: &Metrics,
    call: F,
) -> Result<(Attempts, T), (Attempts, GatewayError)>
where
    F: Fn(&'p RouteTarget) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut run = Run::new(plan);
    // Attempts are boxed: a provider call's future is several kilobytes, and FuturesUnordered
    // moves (and, for its stub task, initialises) its element type by value. The call's future
    // is made inside the box, when the attempt is first polled, not built beside it and moved
    // in (callgrind: 185 instructions a plain call less).
    let mut in_flight = FuturesUnordered::new();
    let call = &call;
    let start = |idx: usize, permit: Permit, run: &mut Run<'_>| {
        let target = &plan.route.targets[idx];
        run.attempts.count += 1;
        run.live.push((idx, Instant::now()));
        run.attempts.target = Some(target.target.clone());
        let limit = run.attempt_limit();
        Box::pin(async move {
            let began = Instant::now();
            let result = match limit {
                Some(limit) => match tokio::time::timeout(limit, call(target)).await {
                    Ok(r) => r,
                    Err(_) => Err(ProviderError::Timeout {
                        provider: target.target.provider_name().to_owned(),
                        after: limit,
                    }),
                },
                None => call(target).await,
            };
            (idx, permit, began.elapsed(), result)
        })
    };

    let mut hedge_at: Option<Instant> = None;
    let deadline_at = run.deadline;
    loop {
        if in_flight.is_empty() {
            let Some((idx, permit, wait)) = run.next() else {
                break;
            };
            if !wait.is_zero() {
                if run.past_deadline(Instant::now() + wait) {
                    run.notes.push(format!(
                        "{}: not retried, the deadline comes before the {} ms wait",
                        plan.route.targets[idx].slug,
                        wait.as_millis()
                    ));
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            in_flight.push(start(idx, permit, &mut run));
            if !run.attempts.hedged {
                hedge_at = plan.hedge_after.map(|d| Instant::now() + d);
            }
        }
        let hedge = async {
            match hedge_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match deadline_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some((idx, permit, elapsed, result)) = in_flight.next() => {
                let target = &plan.route.targets[idx];
                if let Some(pos) = run.live.iter().position(|&(i, _)| i == idx) {
                    run.live.swap_remove(pos);
                }
                match result {
                    Ok(value) => {
                        permit.success(elapsed);
                        metrics.attempt(&target.health.slug, "ok");
                        run.attempts.tried.push(Tried {
                            target: target.slug.to_string(),
                            outcome: "ok",
                            status: None,
                            latency_ms: elapsed.as_millis() as u64,
                        });
                        run.attempts.target = Some(target.target.clone());
                        if run.attempts.hedged {
                            metrics.hedge_outcome(run.route_label(), idx != run.first_idx);
                        }
                        // The other attempt of a hedge lost: dropping it cancels it upstream.
                        for &(loser, began) in &run.live {
                            let slug = &plan.route.targets[loser].health.slug;
                            metrics.attempt(slug, "cancelled");
                            run.attempts.tried.push(Tried {
                                target: plan.route.targets[loser].slug.to_string(),
                                outcome: "cancelled",
                                status: None,
                                latency_ms: began.elapsed().as_millis() as u64,
                            });
                            tracing::info!(
                                route = run.route_label(),
                                winner = %target.slug,
                                cancelled = %slug,
                                "hedging: answered first; the other attempt is cancelled"
                            );
                        }
                        return Ok((run.attempts, value));
                    }
                    Err(e) => {
                        permit.failed(&e, elapsed);
                        metrics.attempt(&target.health.slug, e.class().as_str());
                        run.attempts.tried.push(Tried {
                            target: target.slug.to_string(),
                            outcome: e.class().as_str(),
                            status: match &e {
                                ProviderError::Status(s) => Some(s.status),
                                _ => None,
                            },
                            latency_ms: elapsed.as_millis() as u64,
                        });
                        run.notes.push(format!("{}: {}", target.slug, upstream_message(&e)));
                        if e.is_refused_here() {
                            // Another target may take it; this one will not. Nothing was sent,
                            // so it is no attempt.
                            run.refused[idx] = true;
                            run.attempts.count -= 1;
                            run.last_refusal = Some(e);
                        } else {
                            let retryable = e.is_retryable();
                            run.last = Some(e);
                            if !retryable {
                                break;
                            }
                        }
                    }
                }
            }
            () = hedge, if hedge_at.is_some() && in_flight.len() == 1 => {
                hedge_at = None;
                if let Some((idx, permit, _)) = run.next() {
                    tracing::info!(
                        route = run.route_label(),
                        target_slug = %plan.route.targets[idx].slug,
                        "hedging: the first attempt is slow, starting a second"
                    );
                    run.attempts.hedged = true;
                    metrics.hedge_started(run.route_label());
                    in_flight.push(start(idx, permit, &mut run));
                }
            }
            () = deadline => {
                let after = plan.retry.deadline.unwrap_or_default();
                run.notes.push(format!("the call's deadline of {} ms passed", after.as_millis()));
                let provider = run
                    .attempts
                    .target
                    .as_ref()
                    .map(|t| t.provider_name().to_owned())
                    .unwrap_or_default();
                run.last = Some(ProviderError::Timeout { provider, after });
                break;
            }
        }
    }
    // Attempts still running (a hedge) are dropped here, which cancels them.
    drop(in_flight);
    Err(run.fail())
}

/// The state of one call's attempts.
struct Run<'p> {
    plan: &'p Plan,
    /// Position in `plan.order`, round-robin.
    cursor: usize,
    tries: Vec<u32>,
    retries: u32,
    deadline: Option<Instant>,
    attempts: Attempts,
    notes: Vec<String>,
    /// The last failure of a request that was sent (or the deadline): what the caller is told.
    last: Option<ProviderError>,
    /// The last refusal before sending: what the caller is told when every target refused.
    last_refusal: Option<ProviderError>,
    first_idx: usize,
    /// Targets that refused the request before sending it: not tried again.
    refused: Vec<bool>,
    /// Targets passed over because they asked (in an earlier call) to be left alone for a
    /// while: tried after the others.
    deferred: Vec<bool>,
    /// Targets of the attempts under way.
    live: Vec<(usize, Instant)>,
}

impl<'p> Run<'p> {
    fn new(plan: &'p Plan) -> Self {
        Self {
            plan,
            cursor: 0,
            tries: vec![0; plan.route.targets.len()],
            retries: 0,
            deadline: plan.retry.deadline.map(|d| Instant::now() + d),
            attempts: Attempts {
                route: plan.route.name.clone(),
                ..Attempts::default()
            },
            notes: Vec::new(),
            last: None,
            last_refusal: None,
            first_idx: plan.order.first().copied().unwrap_or(0),
            refused: vec![false; plan.route.targets.len()],
            deferred: vec![false; plan.route.targets.len()],
            live: Vec::with_capacity(2),
        }
    }

    fn route_label(&self) -> &str {
        self.plan.route.name.as_deref().unwrap_or("")
    }

    fn past_deadline(&self, at: Instant) -> bool {
        self.deadline.is_some_and(|d| at >= d)
    }

    /// The time one attempt may take: the configured per-attempt timeout, within the deadline.
    fn attempt_limit(&self) -> Option<Duration> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        match (self.plan.retry.attempt_timeout, left) {
            (Some(a), Some(l)) => Some(a.min(l)),
            (a, l) => a.or(l),
        }
    }

    /// The next target to try, its permit and how long to wait first; `None` when attempts are
    /// used up or every target is unavailable.
    fn next(&mut self) -> Option<(usize, Permit, Duration)> {
        // Targets resting under a retry-after go after the others; if none of the others can
        // be tried (their circuits are open, say), they are tried all the same.
        self.pick(false).or_else(|| {
            self.deferred
                .iter()
                .any(|d| *d)
                .then(|| self.pick(true))
                .flatten()
        })
    }

    /// One pass over the plan's order for the next target; `resting`: whether targets passed
    /// over for their retry-after may be taken.
    fn pick(&mut self, resting: bool) -> Option<(usize, Permit, Duration)> {
        let plan = self.plan;
        let n = plan.order.len();
        for _ in 0..n {
            // Refusals sent nothing: they do not use up attempts.
            if self.attempts.count >= plan.retry.max_attempts {
                return None;
            }
            let idx = plan.order[self.cursor % n];
            self.cursor += 1;
            if self.refused[idx] {
                continue;
            }
            let target = &plan.route.targets[idx];
            let now = Instant::now();
            if self.tries[idx] == 0
                && let Some(after) = target.health.retry_after(now)
            {
                // A target that answered another call "retry after" is still resting: the
                // others go first, and it only after them (a lone target is asked at once, as
                // before: its answer may have changed).
                let others = plan.order.iter().any(|&i| {
                    i != idx && self.tries[i] == 0 && !self.refused[i] && !self.deferred[i]
                });
                if others && !resting {
                    if !self.deferred[idx] {
                        self.deferred[idx] = true;
                        self.notes.push(format!(
                            "{}: tried after the others, it asked to wait {} s",
                            target.slug,
                            after.as_secs_f64().ceil()
                        ));
                    }
                    continue;
                }
            }
            let mut wait = Duration::ZERO;
            if self.tries[idx] > 0 {
                wait = backoff(
                    plan.retry.backoff,
                    plan.retry.max_backoff,
                    self.retries,
                    fastrand::f64(),
                );
                if let Some(after) = target.health.retry_after(now) {
                    if after > plan.retry.max_retry_after {
                        self.notes.push(format!(
                            "{}: not retried, it asked to wait {} s (more than retry.max_retry_after_ms)",
                            target.slug,
                            after.as_secs_f64().ceil()
                        ));
                        continue;
                    }
                    wait = wait.max(after);
                }
            }
            match target.health.admit(now + wait) {
                Ok(permit) => {
                    if self.tries[idx] > 0 {
                        self.retries += 1;
                    }
                    self.tries[idx] += 1;
                    return Some((idx, permit, wait));
                }
                Err(Refused::Open { until }) => {
                    self.notes.push(format!(
                        "{}: skipped, its circuit is open for another {} s after repeated failures",
                        target.slug,
                        until.saturating_duration_since(now).as_secs_f64().ceil()
                    ));
                }
                Err(Refused::Probing) => {
                    self.notes.push(format!(
                        "{}: skipped, its circuit is half-open and a probe call is under way",
                        target.slug
                    ));
                }
            }
        }
        None
    }

    /// The error for a call no attempt answered: the last failure, with every attempt and skip
    /// listed in its message.
    fn fail(mut self) -> (Attempts, GatewayError) {
        let what = match &self.plan.route.name {
            Some(name) => format!("route `{name}`"),
            None => self
                .plan
                .route
                .targets
                .first()
                .map(|t| format!("`{}`", t.slug))
                .unwrap_or_default(),
        };
        // A failure of a request that was sent says more than a later target's refusal.
        let last = self.last.take().or_else(|| self.last_refusal.take());
        let err = match last {
            None => GatewayError::Unavailable {
                message: format!(
                    "no target of {what} is available: {}",
                    self.notes.join("; ")
                ),
            },
            Some(last) if self.notes.len() == 1 => GatewayError::Upstream(last),
            Some(last) => {
                let count = self.attempts.count;
                let listed: Vec<String> = self
                    .notes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("[{}] {n}", i + 1))
                    .collect();
                GatewayError::Attempts {
                    message: format!(
                        "{what}: {count} attempt{} failed: {}",
                        if count == 1 { "" } else { "s" },
                        listed.join("; ")
                    ),
                    last,
                }
            }
        };
        (self.attempts, err)
    }
}

/// Full jitter: a random wait between zero and `base · 2^retry`, capped at `max`. `unit` is a
/// uniform random number in `[0, 1)`.
pub fn backoff(base: Duration, max: Duration, retry: u32, unit: f64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << retry.min(16)).min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_the_cap_with_full_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(backoff(base, max, 0, 0.999_999).as_millis(), 99);
        assert_eq!(backoff(base, max, 3, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(base, max, 10, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(base, max, 40, 1.0), max);
        assert_eq!(backoff(base, max, 2, 0.0), Duration::ZERO);
    }

    fn status(code: u16, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Status(Box::new(switchyard_providers::UpstreamStatus {
            provider: "mock".into(),
            status: code,
            message: "no".into(),
            kind: None,
            code: None,
            param: None,
            retry_after,
        }))
    }

    /// The plan of a call to route `r`.
    fn route_r(routes: &super::super::Routes) -> Plan {
        routes
            .plan(
                "r",
                &super::super::CallOptions::default(),
                &super::super::Needs::default(),
            )
            .unwrap()
    }

    /// Runs a call over `plan` whose attempt at a target answers as `answer` says; the
    /// targets called, in order, and the outcome.
    async fn run_with(
        plan: &Plan,
        answer: impl Fn(&str) -> Result<(), ProviderError>,
    ) -> (
        Vec<String>,
        Result<(Attempts, ()), (Attempts, GatewayError)>,
    ) {
        let called = std::sync::Mutex::new(Vec::new());
        let metrics = crate::metrics::Metrics::new(super::super::HealthTable::default());
        let result = run(plan, &metrics, |t| {
            called.lock().unwrap().push(t.slug.to_string());
            let r = answer(&t.slug);
            async move { r }
        })
        .await;
        (called.into_inner().unwrap(), result)
    }

    #[tokio::test]
    async fn a_resting_target_is_still_tried_when_the_others_cannot_be() {
        let routes = super::super::tests::routes(
            "[circuit_breaker]\nconsecutive_failures = 2\n[routes.r]\ntargets = [\"mock/a\", \"mock/b\"]\n",
        );
        let plan = route_r(&routes);
        let (a, b) = (&plan.route.targets[0].health, &plan.route.targets[1].health);
        // `a` told an earlier call to come back in 30 s; `b`'s circuit is open.
        let now = Instant::now();
        a.admit(now)
            .unwrap()
            .failed(&status(429, Some(Duration::from_secs(30))), Duration::ZERO);
        for _ in 0..2 {
            b.admit(now)
                .unwrap()
                .failed(&status(503, None), Duration::ZERO);
        }
        let (called, result) = run_with(&plan, |_| Ok(())).await;
        assert_eq!(called, ["mock/a"]);
        assert!(result.is_ok());
    }

    #[tokio::test]
    async fn refusals_use_no_attempts_and_a_sent_failure_is_what_the_caller_hears() {
        let routes = super::super::tests::routes(
            "[retry]\nmax_attempts = 2\n[routes.r]\ntargets = [\"mock/a\", \"mock/b\", \"mock/c\", \"mock/d\"]\n",
        );
        let plan = route_r(&routes);
        let refuse = || ProviderError::Request {
            provider: "mock".into(),
            param: "x".into(),
            message: "cannot".into(),
        };
        // Three refusals, then an answer: within two attempts, since none was sent.
        let (called, result) = run_with(&plan, |slug| {
            if slug == "mock/d" {
                Ok(())
            } else {
                Err(refuse())
            }
        })
        .await;
        assert_eq!(called, ["mock/a", "mock/b", "mock/c", "mock/d"]);
        assert_eq!(result.unwrap().0.count, 1);
        // A 503, then refusals: the caller hears of the 503, not of a refusal.
        let (_, result) = run_with(&plan, |slug| {
            if slug == "mock/a" {
                Err(status(503, None))
            } else {
                Err(refuse())
            }
        })
        .await;
        let (_, e) = result.unwrap_err();
        assert_eq!(e.status().as_u16(), 502, "{e}");
    }
}
