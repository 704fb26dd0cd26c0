//! The request path of inference calls, as plain async functions that read top to bottom.
//!
//! Stages, in order, and what each adds to the call:
//! 1. surface decode (`surface::openai`, `surface::anthropic`): the caller's JSON → canonical
//!    request (Anthropic's Messages are translated by `switchyard_protocol::anthropic`), and the
//!    `x-switchyard-*` call options ([`CallOptions`]); 400 on bad input, naming the field.
//! 2. [`validate`]: checks the canonical request needs before it leaves (non-empty messages…).
//! 3. plan ([`Routes::plan`](crate::routing::Routes::plan)): route, alias or `provider/model` →
//!    the targets to try in order, the retry policy and the hedge delay (404 if unknown).
//!    Then the caller's key: its allow-list ([`authorize`]); the firewall's screen of the
//!    request under the call's policy ([`firewall::screen_request`]: 403 on a block, typed
//!    placeholders on a redaction); budgets and rate limits ([`limit`]).
//!    Then the cache ([`crate::cache`]): a fresh stored answer is served as it is (a stream is
//!    replayed) and the plan is not run; an identical call under way is joined; otherwise the
//!    call leads, and its answer is recorded as it passes (a tap on the stream).
//! 4. run the plan ([`routing::run`]): per attempt, the request is readdressed to the target's
//!    upstream model with the target's overrides ([`prepare`]) and handed to the provider
//!    adapter (canonical → upstream wire → HTTP → canonical answer or chunks). A stream counts
//!    as answered at its first chunk; until then a failure is retried like any other. For
//!    streams the caller's `stream_options.include_usage` is remembered first, since adapters
//!    always ask the upstream for usage (so that every stream can be accounted for).
//! 5. screen the answer ([`firewall::screen_answer`], or [`firewall::screen_stream`] as a tap
//!    that holds back only a possible finding in progress; cached answers are screened too),
//!    then shape the stream for the caller ([`StreamShape`]): drop the usage the caller did not
//!    ask for.
//! 6. surface encode: JSON or SSE in the caller's protocol, with `x-switchyard-*` headers saying
//!    which target answered after how many attempts.
//!
//! HTTP concerns (request id, body limit, panics) are layers around the router (`app`).
//! Authentication and the request log are the surfaces' (before stage 2, after stage 6).
//! `shared/DESIGN.md` draws the firewall before limits and the cache; it runs after planning
//! because a route can name its policy.

use std::sync::Arc;

use futures_util::{StreamExt, stream};
use switchyard_protocol::anthropic::upstream::{REASONING_SIGNATURE, REDACTED_REASONING};
use switchyard_protocol::chat::{ChatChunk, ChatRequest, ChatResponse, Content};
use switchyard_protocol::embeddings::{EmbeddingRequest, EmbeddingResponse};
use switchyard_providers::{ChatStream, ChunkDetail, ProviderError};

use crate::app::AppState;
use crate::budgets::Spend;
use crate::cache::semantic::{self, Semantic};
use crate::cache::{CacheOutcome, CacheStatus, Entry, Followed, Leader, Lookup};
use crate::error::GatewayError;
use crate::firewall;
use crate::keys::VirtualKey;
use crate::limits::{Limiter, Reservation};
use crate::routing::strategy::DEFAULT_OUTPUT_TOKENS;
use crate::routing::{self, Attempts, CallOptions, Needs, Plan, RouteTarget};
use switchyard_providers::catalog::{Features, ModelInfo};

/// A failure, with what was attempted (for the response headers).
pub type Failure = (Attempts, GatewayError);

fn early(e: GatewayError) -> Failure {
    (Attempts::default(), e)
}

/// Stage 2: what the gateway itself requires of a chat request.
pub fn validate(req: &ChatRequest) -> Result<(), GatewayError> {
    if req.messages.is_empty() {
        return Err(GatewayError::bad_request(
            "`messages` is empty; send at least one message",
            Some("messages"),
        ));
    }
    if req.n == Some(0) {
        return Err(GatewayError::bad_request(
            "`n` must be at least 1",
            Some("n"),
        ));
    }
    Ok(())
}

/// What routing strategies weigh of a chat request.
fn needs(req: &ChatRequest) -> Needs {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(Content::Text(t)) => t.len(),
            Some(Content::Parts(parts)) => {
                parts.iter().filter_map(|p| p.text()).map(str::len).sum()
            }
            None => 0,
        })
        .sum();
    Needs {
        features: Features::of(req),
        // About four characters per token in English text.
        input_tokens: (chars as u64).div_ceil(4),
        output_tokens: req
            .max_output_tokens()
            .map_or(DEFAULT_OUTPUT_TOKENS, u64::from),
    }
}

/// Stage 3 for a chat request.
fn plan(
    state: &AppState,
    options: &CallOptions,
    req: &ChatRequest,
    needs: &Needs,
) -> Result<Plan, GatewayError> {
    let plan = state.routes.load().plan(&req.model, options, needs)?;
    authorize(options, &req.model, &plan)?;
    Ok(plan)
}

/// Stage 3b: whether the caller's key may use what it asked for. A route (or alias) is allowed
/// when the key's allow-list matches its name, or every target it may use.
fn authorize(options: &CallOptions, requested: &str, plan: &Plan) -> Result<(), GatewayError> {
    let Some(key) = &options.key else {
        return Ok(());
    };
    let name = options.route.as_deref().unwrap_or(requested);
    let by_name = key.allows(name, None)
        || plan
            .route
            .name
            .as_deref()
            .is_some_and(|n| key.allows(n, None));
    if by_name || plan.route.targets.iter().all(|t| key.allows(&t.slug, None)) {
        return Ok(());
    }
    Err(GatewayError::Forbidden {
        message: format!(
            "the key `{}` may not use model `{name}`; it may use: {}",
            key.name,
            key.policy.allow.join(", ")
        ),
    })
}

/// Stage 4, per attempt: the request as this target gets it: its model, its overrides, and
/// the output cap that keeps the call within the caller's cost ceiling, if it set one.
fn prepare(
    req: &ChatRequest,
    target: &RouteTarget,
    max_cost_usd: Option<f64>,
) -> Result<ChatRequest, ProviderError> {
    target.target.refuse_if_waiting()?;
    let builtin = switchyard_protocol::responses::builtin_tools(req);
    if let Some(tool) = builtin.first()
        && !target.target.provider.speaks_responses()
    {
        return Err(ProviderError::Request {
            provider: target.target.provider_name().to_owned(),
            param: "tools".to_owned(),
            message: format!(
                "built-in tool `{tool}` runs only on OpenAI's Responses API, and {} does not speak it; send this call to a provider of kind \"openai-responses\", or use function tools",
                target.slug
            ),
        });
    }
    let mut req = req.clone();
    req.model.clone_from(&target.target.model);
    if !target.overrides.is_empty() {
        req = with_overrides(req, target)?;
    }
    if let Some(ceiling) = max_cost_usd {
        cap_cost(&mut req, target, ceiling)?;
    }
    Ok(req)
}

/// The runaway guard (`x-switchyard-max-cost-usd`): at this target's list prices, the prompt
/// (estimated) plus the most output the call may produce must cost no more than `ceiling`. The
/// output limit is lowered to fit; a prompt that alone costs more, or a model without a price,
/// is refused before anything is spent.
fn cap_cost(
    req: &mut ChatRequest,
    target: &RouteTarget,
    ceiling: f64,
) -> Result<(), ProviderError> {
    let refuse = |message: String| ProviderError::Request {
        provider: target.target.provider_name().to_owned(),
        param: "x-switchyard-max-cost-usd".to_owned(),
        message,
    };
    let prices = target
        .info
        .and_then(|i| Some((i.input_per_mtok?, i.output_per_mtok?)));
    let Some((input_price, output_price)) = prices else {
        return Err(refuse(format!(
            "no price is known for {}, so a cost ceiling cannot be enforced; add [catalog.\"{}\"] to the configuration or drop x-switchyard-max-cost-usd",
            target.slug, target.slug
        )));
    };
    let input_cost = needs(req).input_tokens as f64 * input_price / 1e6;
    let left = ceiling - input_cost;
    // Each of `n` answers may use the whole output limit.
    let answers = f64::from(req.n.unwrap_or(1).max(1));
    let affordable = if output_price > 0.0 {
        // The epsilon keeps float error from costing a token at exact fits.
        (left * 1e6 / (output_price * answers) + 1e-6).floor()
    } else {
        f64::from(u32::MAX)
    };
    if left <= 0.0 || affordable < 1.0 {
        return Err(refuse(format!(
            "the prompt alone would cost about ${input_cost:.6} at {}'s prices, over the ceiling of ${ceiling}",
            target.slug
        )));
    }
    let cap = affordable.min(f64::from(u32::MAX)) as u32;
    if req.max_output_tokens().is_none_or(|m| m > cap) {
        if req.max_completion_tokens.is_some() {
            req.max_completion_tokens = Some(cap);
        } else {
            req.max_tokens = Some(cap);
        }
    }
    Ok(())
}

/// A target's request overrides.
fn with_overrides(req: ChatRequest, target: &RouteTarget) -> Result<ChatRequest, ProviderError> {
    // Overrides may set typed fields (temperature) or pass-through ones; merging the JSON
    // forms sets either without listing them.
    let bad = |e: serde_json::Error| ProviderError::Internal {
        detail: format!("applying the overrides of target {}: {e}", target.slug),
    };
    let mut value = serde_json::to_value(&req).map_err(bad)?;
    if let Some(obj) = value.as_object_mut() {
        for (k, v) in &target.overrides {
            obj.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).map_err(bad)
}

/// Stage 3c: the caller's budgets and rate limits. Refuses a key whose budget is spent, takes a
/// request and an estimate of `tokens` from its rate-limit counters (or refuses the call, 429),
/// and returns the meter that settles the call's usage and cost afterwards. `input_tokens`, the
/// prompt's estimate, is what the meter charges if no usage ever arrives.
async fn limit(
    state: &AppState,
    options: &CallOptions,
    tokens: u64,
    input_tokens: u64,
) -> Result<Option<Meter>, GatewayError> {
    let Some(key) = &options.key else {
        return Ok(None);
    };
    let (limits, budgets) = (&key.policy.limits, &key.policy.budgets);
    if limits.is_empty() && budgets.is_empty() {
        return Ok(None);
    }
    if !budgets.is_empty() {
        state.spend.check(key).await?;
    }
    let reservation = if limits.is_empty() {
        None
    } else {
        let r = state
            .limiter
            .acquire(
                &key.id,
                &key.name,
                limits,
                |tag| options.metadata_text(tag),
                tokens,
            )
            .await
            .map_err(|r| GatewayError::RateLimited(Box::new(r)))?;
        Some((state.limiter.clone(), r))
    };
    Ok(Some(Meter {
        reservation,
        spend: (!budgets.is_empty()).then(|| (state.spend.clone(), key.clone())),
        price: None,
        usage: None,
        cached: 0,
        unreported: (input_tokens, 0),
        sent: Arc::default(),
    }))
}

/// What a call owes its key once its usage is known: the rate-limit reservation to settle and
/// the spend to record at the answering model's price. Settles when dropped (for a stream, when
/// the stream ends or the caller goes away), with the usage seen by then.
struct Meter {
    reservation: Option<(Arc<Limiter>, Reservation)>,
    spend: Option<(Arc<Spend>, Arc<VirtualKey>)>,
    price: Option<ModelInfo>,
    /// (input, output) tokens.
    usage: Option<(u64, u64)>,
    /// Of the input tokens, those read from the provider's cache (priced as the catalog says
    /// for cached input, as the request log prices them).
    cached: u64,
    /// What is charged when no usage arrives (a stream whose caller left before its usage
    /// chunk, an upstream that reports none): the prompt's estimate, and for a stream one
    /// token per chunk received (upstreams send about one token a chunk). Without it such
    /// calls would cost the key's budget nothing.
    unreported: (u64, u64),
    /// Whether a request went upstream: a caller that leaves before any did (while it waits
    /// for an identical call's answer, say) is charged nothing.
    sent: Arc<std::sync::atomic::AtomicBool>,
}

impl Meter {
    /// The flag an attempt raises when it sends a request, if the call is metered.
    fn sent(meter: &Option<Meter>) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        meter.as_ref().map(|m| m.sent.clone())
    }

    /// Raises the flag for an attempt whose request goes out (not one refused before).
    fn mark_sent<T, E>(sent: &Option<Arc<std::sync::atomic::AtomicBool>>, req: &Result<T, E>) {
        if req.is_ok()
            && let Some(s) = sent
        {
            s.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Notes who answered (for the price) and puts the counters' state on the answer.
    fn answered_by(&mut self, state: &AppState, attempts: &mut Attempts) {
        if let Some(t) = &attempts.target {
            let slug = format!("{}/{}", t.provider_name(), t.model);
            self.price = state.routes.load().catalog().get(&slug).copied();
        }
        if let Some((_, r)) = &self.reservation {
            attempts.rate = r.state;
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let sent = self.sent.load(std::sync::atomic::Ordering::Relaxed);
        let Some((input, output)) = self.usage.or(sent.then_some(self.unreported)) else {
            return;
        };
        if let Some((limiter, r)) = &self.reservation {
            limiter.settle(r, input + output);
        }
        if let (Some((spend, key)), Some(price)) = (&self.spend, &self.price)
            && let Some(usd) = price.cost_cached(input, self.cached, output)
        {
            spend.record(key, usd);
        }
    }
}

/// Settles the meter on the call's outcome: its usage, or nothing used if it failed. `usage`
/// reads the answer's (input, output, cached input) tokens.
fn metered<T>(
    state: &AppState,
    meter: Option<Meter>,
    result: &mut Result<(Attempts, T), Failure>,
    usage: impl Fn(&T) -> Option<(u64, u64, u64)>,
) {
    let Some(mut meter) = meter else {
        return;
    };
    match result {
        Ok((attempts, value)) => {
            meter.answered_by(state, attempts);
            meter.usage = if served_from_cache(attempts) {
                Some((0, 0))
            } else {
                usage(value).map(|(input, output, cached)| {
                    meter.cached = cached;
                    (input, output)
                })
            };
        }
        Err((attempts, _)) => {
            meter.answered_by(state, attempts);
            meter.usage = Some((0, 0));
        }
    }
}

/// A whole answer.
pub async fn chat(
    state: &AppState,
    options: &CallOptions,
    mut req: ChatRequest,
) -> Result<(Attempts, ChatResponse), Failure> {
    validate(&req).map_err(early)?;
    let needs = needs(&req);
    let plan = plan(state, options, &req, &needs).map_err(early)?;
    let screening = firewall::screen_request(state, options, &plan, &mut req).await?;
    let meter = limit(state, options, needs.tokens(), needs.input_tokens)
        .await
        .map_err(early)?;
    let sent = Meter::sent(&meter);
    let call = || {
        routing::run(&plan, &state.metrics, |target| {
            let req = prepare(&req, target, options.max_cost_usd);
            Meter::mark_sent(&sent, &req);
            async move { target.target.provider.chat(req?).await }
        })
    };
    let deadline = deadline_of(&plan);
    let mut result = loop {
        break match lookup(state, options, &req, &plan).await {
            Lookup::Off => call().await,
            Lookup::Bypass => with_cache(call().await, CacheStatus::Bypass),
            Lookup::Hit(entry) => Ok((entry.served(None), entry.answer.whole())),
            Lookup::Lead(leader) => match similar(state, options, &req, &plan, leader).await {
                Ok((entry, similarity)) => {
                    Ok((entry.served(Some(similarity)), entry.answer.whole()))
                }
                Err(leader) => {
                    let result = call().await;
                    leader.whole(&result);
                    with_cache(result, CacheStatus::Miss)
                }
            },
            Lookup::Follow(flight) => match followed(&plan, deadline, flight.whole()).await {
                Followed::Answer(entry) => Ok((entry.served(None), entry.answer.whole())),
                Followed::Failed(f) => with_cache(Err(*f), CacheStatus::Miss),
                Followed::Abandoned => continue,
            },
        };
    };
    metered(state, meter, &mut result, |r| {
        r.usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.cached_tokens()))
    });
    firewall::screen_answer(screening, result)
}

/// A streamed answer: returns once a target's first chunk arrived, so that a failure before
/// the caller has received anything is retried, or is an ordinary error response.
///
/// `reader` is what the caller's surface reads of each chunk. With [`ChunkDetail::Wire`]
/// (OpenAI's surface passing events on as they came, its log keeping no answer), the stages
/// that read more ask for every chunk decoded all the same: the firewall's screen of the answer
/// and the cache's recording of it. The meter and the stream shape read only usage, which
/// adapters always decode.
pub async fn chat_stream(
    state: &AppState,
    options: &CallOptions,
    mut req: ChatRequest,
    reader: ChunkDetail,
) -> Result<(Attempts, ChatStream, StreamShape), Failure> {
    validate(&req).map_err(early)?;
    let needs = needs(&req);
    let plan = plan(state, options, &req, &needs).map_err(early)?;
    let screening = firewall::screen_request(state, options, &plan, &mut req).await?;
    let detail = if screening.is_some() {
        ChunkDetail::Decoded
    } else {
        reader
    };
    let result = chat_stream_planned(state, options, &req, &needs, &plan, detail).await;
    firewall::screen_stream(screening, result)
}

/// A streamed answer, once the call is planned and its request screened.
async fn chat_stream_planned(
    state: &AppState,
    options: &CallOptions,
    req: &ChatRequest,
    needs: &Needs,
    plan: &Plan,
    detail: ChunkDetail,
) -> Result<(Attempts, ChatStream, StreamShape), Failure> {
    let shape = StreamShape {
        include_usage: req.wants_stream_usage(),
    };
    let meter = limit(state, options, needs.tokens(), needs.input_tokens)
        .await
        .map_err(early)?;
    let sent = Meter::sent(&meter);
    let sent = &sent;
    let call = |detail| {
        routing::run(plan, &state.metrics, move |target| {
            let req = prepare(req, target, options.max_cost_usd);
            Meter::mark_sent(sent, &req);
            async move {
                let provider = &target.target.provider;
                let upstream = provider.chat_stream_with(req?, detail).await?;
                first_chunk(upstream, target.target.provider_name()).await
            }
        })
    };
    let deadline = deadline_of(plan);
    let result = loop {
        break match lookup(state, options, req, plan).await {
            Lookup::Off => call(detail).await,
            Lookup::Bypass => with_cache(call(detail).await, CacheStatus::Bypass),
            Lookup::Hit(entry) => Ok((entry.served(None), replay(entry.answer.chunks()))),
            Lookup::Lead(leader) => match similar(state, options, req, plan, leader).await {
                Ok((entry, similarity)) => Ok((
                    entry.served(Some(similarity)),
                    replay(entry.answer.chunks()),
                )),
                Err(leader) => {
                    // The recording reads every chunk.
                    let result = match call(ChunkDetail::Decoded).await {
                        Ok((attempts, stream)) => {
                            let stream = leader.record(stream, &attempts);
                            Ok((attempts, stream))
                        }
                        Err(f) => {
                            leader.failed(&f);
                            Err(f)
                        }
                    };
                    with_cache(result, CacheStatus::Miss)
                }
            },
            Lookup::Follow(flight) => match followed(plan, deadline, flight.stream()).await {
                Followed::Answer((target, route, stream)) => {
                    let attempts = Attempts {
                        target,
                        route,
                        cache: Some(CacheOutcome {
                            status: CacheStatus::Hit,
                            age: Some(std::time::Duration::ZERO),
                            similarity: None,
                        }),
                        ..Attempts::default()
                    };
                    Ok((attempts, stream))
                }
                Followed::Failed(f) => with_cache(Err(*f), CacheStatus::Miss),
                Followed::Abandoned => continue,
            },
        };
    };
    let Some(mut meter) = meter else {
        let (attempts, stream) = result?;
        return Ok((attempts, stream, shape));
    };
    match result {
        Ok((mut attempts, stream)) if served_from_cache(&attempts) => {
            meter.answered_by(state, &mut attempts);
            meter.usage = Some((0, 0));
            Ok((attempts, stream, shape))
        }
        Ok((mut attempts, stream)) => {
            meter.answered_by(state, &mut attempts);
            // The stream's usage chunk settles the reservation when the stream ends.
            let stream = stream.inspect(move |item| {
                // The whole meter moves into the closure (not just the field), so that it is
                // dropped, and settles, with the stream.
                let meter = &mut meter;
                if let Ok(chunk) = item {
                    meter.unreported.1 += 1;
                    if let Some(u) = &chunk.usage {
                        meter.usage = Some((u.prompt_tokens, u.completion_tokens));
                        meter.cached = u.cached_tokens();
                    }
                }
            });
            Ok((attempts, Box::pin(stream), shape))
        }
        Err((mut attempts, e)) => {
            meter.answered_by(state, &mut attempts);
            meter.usage = Some((0, 0));
            Err((attempts, e))
        }
    }
}

/// When a call must be over, if it has a deadline: fixed once, so that looking the cache up
/// again (after an abandoned flight) does not start the clock anew.
fn deadline_of(plan: &Plan) -> Option<tokio::time::Instant> {
    plan.retry.deadline.map(|d| tokio::time::Instant::now() + d)
}

/// A follower's wait for the identical call it joined (see [`crate::cache::flight`]), within
/// its own deadline: the leader's may be longer.
async fn followed<T>(
    plan: &Plan,
    deadline: Option<tokio::time::Instant>,
    wait: impl Future<Output = Followed<T>>,
) -> Followed<T> {
    let (Some(at), Some(after)) = (deadline, plan.retry.deadline) else {
        return wait.await;
    };
    tokio::time::timeout_at(at, wait).await.unwrap_or_else(|_| {
        let provider = plan
            .order
            .first()
            .map(|&i| plan.route.targets[i].target.provider_name().to_owned())
            .unwrap_or_default();
        Followed::Failed(Box::new((
            Attempts::default(),
            GatewayError::Upstream(ProviderError::Timeout { provider, after }),
        )))
    })
}

/// Stage 3d: what the cache does for this call (see [`crate::cache`]).
async fn lookup(state: &AppState, options: &CallOptions, req: &ChatRequest, plan: &Plan) -> Lookup {
    let routes = state.routes.load_full();
    state.cache.lookup(&routes, options, req, &plan.route).await
}

/// Stage 3d for a call that leads (its exact look-up missed): a similar request's stored
/// answer, if the semantic cache has one (and the call's followers get it too); otherwise the
/// leader back, to index its own answer for similar requests.
async fn similar(
    state: &AppState,
    options: &CallOptions,
    req: &ChatRequest,
    plan: &Plan,
    mut leader: Leader,
) -> Result<(Arc<Entry>, f32), Leader> {
    match semantic::lookup(state, options, req, &plan.route).await {
        Semantic::Hit(entry, similarity) => {
            leader.serve(entry.clone());
            Ok((entry, similarity))
        }
        Semantic::Miss(probe) => {
            leader.index(probe);
            Err(leader)
        }
        Semantic::Off => Err(leader),
    }
}

/// Notes what the cache did on the call's outcome. (The outcome's size is the pipeline's
/// `Result`s'; it is moved once.)
#[allow(clippy::result_large_err)]
fn with_cache<T>(
    mut result: Result<(Attempts, T), Failure>,
    status: CacheStatus,
) -> Result<(Attempts, T), Failure> {
    let (Ok((attempts, _)) | Err((attempts, _))) = &mut result;
    attempts.cache = Some(CacheOutcome {
        status,
        age: None,
        similarity: None,
    });
    result
}

/// Whether the answer came from the cache, so that no provider tokens were used.
fn served_from_cache(attempts: &Attempts) -> bool {
    attempts.cache.is_some_and(|c| c.status.is_hit())
}

/// A recorded stream, played back.
fn replay(chunks: Vec<ChatChunk>) -> ChatStream {
    Box::pin(stream::iter(chunks.into_iter().map(Ok)))
}

/// A tap on the event stream: `see` is shown each item as it passes, then `None` when the
/// stream ends. (Whatever `see` owns is dropped with the stream, so a tap that must act when the
/// caller goes away first does so in its `Drop`.)
pub fn tap<F>(inner: ChatStream, see: F) -> ChatStream
where
    F: FnMut(Option<&Result<ChatChunk, ProviderError>>) + Send + Unpin + 'static,
{
    struct Tap<F> {
        inner: ChatStream,
        see: F,
    }
    impl<F> futures_util::Stream for Tap<F>
    where
        F: FnMut(Option<&Result<ChatChunk, ProviderError>>) + Unpin,
    {
        type Item = Result<ChatChunk, ProviderError>;

        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
            (self.see)(item.as_ref());
            std::task::Poll::Ready(item)
        }
    }
    Box::pin(Tap { inner, see })
}

/// Waits for the stream's first chunk and gives back the whole stream, or the failure that came
/// before any chunk.
async fn first_chunk(
    mut upstream: ChatStream,
    provider: &str,
) -> Result<ChatStream, ProviderError> {
    match upstream.next().await {
        Some(Ok(chunk)) => Ok(Box::pin(stream::once(async { Ok(chunk) }).chain(upstream))),
        Some(Err(e)) => Err(e),
        None => Err(ProviderError::Interrupted {
            provider: provider.to_owned(),
            detail: "the stream ended before its first chunk".to_owned(),
        }),
    }
}

/// The input tokens of a request, counted by the target's upstream. The request leaves the
/// gateway like a chat request does: screened by the firewall (a blocked request is refused, a
/// redacted one is counted as redacted) and counted against the key's request rate limits
/// (with no tokens: counting spends none).
pub async fn count_tokens(
    state: &AppState,
    options: &CallOptions,
    mut req: ChatRequest,
) -> Result<(Attempts, u64), Failure> {
    let plan = plan(state, options, &req, &needs(&req)).map_err(early)?;
    firewall::screen_request(state, options, &plan, &mut req).await?;
    let meter = limit(state, options, 0, 0).await.map_err(early)?;
    let mut result = routing::run(&plan, &state.metrics, |target| {
        let req = prepare(&req, target, options.max_cost_usd);
        async move { target.target.provider.count_tokens(req?).await }
    })
    .await;
    metered(state, meter, &mut result, |_| Some((0, 0, 0)));
    result
}

pub async fn embed(
    state: &AppState,
    options: &CallOptions,
    mut req: EmbeddingRequest,
) -> Result<(Attempts, EmbeddingResponse), Failure> {
    if req.input.is_empty() {
        return Err(early(GatewayError::bad_request(
            "`input` is empty; send at least one text",
            Some("input"),
        )));
    }
    if let Some(texts) = req.input.texts()
        && let Some(i) = texts.iter().position(|t| t.is_empty())
    {
        return Err(early(GatewayError::bad_request(
            format!("`input[{i}]` is an empty string"),
            Some("input"),
        )));
    }
    let plan = state
        .routes
        .load()
        .plan(&req.model, options, &Needs::default())
        .map_err(early)?;
    authorize(options, &req.model, &plan).map_err(early)?;
    let screening = firewall::screen_embeddings(state, options, &plan, &mut req)?;
    let tokens = req.input.estimated_tokens();
    let meter = limit(state, options, tokens, tokens).await.map_err(early)?;
    let mut result = routing::run(&plan, &state.metrics, |target| {
        let mut req = req.clone();
        req.model.clone_from(&target.target.model);
        let waiting = target.target.refuse_if_waiting();
        async move {
            waiting?;
            target.target.provider.embed(req).await
        }
    })
    .await;
    metered(state, meter, &mut result, |r| {
        r.usage.as_ref().map(|u| (u.prompt_tokens, 0, 0))
    });
    firewall::screened(screening, &mut result);
    result
}

/// What the caller asked of the stream's shape.
#[derive(Debug, Clone, Copy)]
pub struct StreamShape {
    pub include_usage: bool,
}

impl StreamShape {
    /// Stage 5: the chunk as the caller should see it, or `None` to drop it.
    pub fn apply(&self, mut chunk: ChatChunk) -> Option<ChatChunk> {
        // Signatures of reasoning blocks mean nothing to OpenAI-shaped callers.
        let mut changed = false;
        for c in &mut chunk.choices {
            if !c.delta.extra.is_empty() {
                changed |= c.delta.extra.remove(REASONING_SIGNATURE).is_some();
                changed |= c.delta.extra.remove(REDACTED_REASONING).is_some();
                // The gateway's own keys (an upstream's first counts, say).
                let before = c.delta.extra.len();
                switchyard_protocol::drop_private(&mut c.delta.extra);
                changed |= c.delta.extra.len() != before;
            }
        }
        if !self.include_usage && chunk.usage.is_some() {
            if chunk.choices.is_empty() {
                return None;
            }
            chunk.usage = None;
            changed = true;
        }
        if changed {
            chunk.changed();
        }
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_typed_and_pass_through_fields() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "smart", "temperature": 1.0,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let mut target = RouteTarget::for_test("p/upstream-model", 1, None);
        target.overrides = serde_json::json!({"temperature": 0.2, "max_tokens": 64, "top_k": 5})
            .as_object()
            .unwrap()
            .clone();
        let out = prepare(&req, &target, None).unwrap();
        assert_eq!(out.model, "upstream-model");
        assert_eq!(out.temperature, Some(0.2));
        assert_eq!(out.max_tokens, Some(64));
        assert_eq!(out.extra["top_k"], 5);
        let json = serde_json::to_string(&out).unwrap();
        assert_eq!(json.matches("temperature").count(), 1, "{json}");
    }

    #[test]
    fn a_cost_ceiling_caps_the_output_or_refuses_the_call() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "1234567812345678"}]
        }))
        .unwrap();
        // $1 per million input tokens, $2 per million output tokens.
        let info = switchyard_providers::catalog::ModelInfo {
            input_per_mtok: Some(1.0),
            output_per_mtok: Some(2.0),
            cached_input_per_mtok: None,
            features: Features::default(),
        };
        let target = RouteTarget::for_test("p/m", 1, Some(info));
        // 4 input tokens cost $0.000004; $0.001 leaves room for 498 output tokens.
        let out = prepare(&req, &target, Some(0.001)).unwrap();
        assert_eq!(out.max_tokens, Some(498));
        // Two answers share that room.
        let mut two = req.clone();
        two.n = Some(2);
        assert_eq!(
            prepare(&two, &target, Some(0.001)).unwrap().max_tokens,
            Some(249)
        );
        // A smaller limit the caller set stays.
        let mut small = req.clone();
        small.max_completion_tokens = Some(100);
        let out = prepare(&small, &target, Some(0.001)).unwrap();
        assert_eq!(
            (out.max_completion_tokens, out.max_tokens),
            (Some(100), None)
        );
        // The prompt alone over the ceiling, or no price: refused, naming the header.
        let e = prepare(&req, &target, Some(0.000_001)).unwrap_err();
        assert!(
            matches!(e, ProviderError::Request { ref param, .. } if param == "x-switchyard-max-cost-usd")
        );
        let unpriced = RouteTarget::for_test("p/m", 1, None);
        let e = prepare(&req, &unpriced, Some(1.0)).unwrap_err();
        assert!(e.to_string().contains("no price is known"), "{e}");
    }

    #[test]
    fn the_stream_shape_drops_the_upstream_json_of_a_chunk_it_changes() {
        let wired = |delta: serde_json::Value, usage: bool| {
            let mut v = serde_json::json!({"id": "c", "model": "m", "created": 1,
                "choices": [{"index": 0, "delta": delta}]});
            if usage {
                v["usage"] = serde_json::json!({"prompt_tokens": 1, "completion_tokens": 1});
            }
            let mut c: ChatChunk = serde_json::from_value(v.clone()).unwrap();
            c.wire = switchyard_protocol::chat::WireJson::line(v.to_string().into());
            c
        };
        let shape = StreamShape {
            include_usage: false,
        };
        let kept = shape.apply(wired(serde_json::json!({"content": "x"}), false));
        assert!(kept.unwrap().wire.get().is_some());
        for private in [
            serde_json::json!({"content": "x", "reasoning_signature": "sig"}),
            serde_json::json!({"role": "assistant", "x_switchyard_prompt_usage": {"input_tokens": 25}}),
        ] {
            let out = shape.apply(wired(private, false)).unwrap();
            assert!(out.wire.get().is_none() && out.choices[0].delta.extra.is_empty());
        }
        let out = shape
            .apply(wired(serde_json::json!({"content": "x"}), true))
            .unwrap();
        assert!(out.wire.get().is_none() && out.usage.is_none());
        let shape = StreamShape {
            include_usage: true,
        };
        let out = shape
            .apply(wired(serde_json::json!({"content": "x"}), true))
            .unwrap();
        assert!(out.wire.get().is_some() && out.usage.is_some());
    }

    #[test]
    fn needs_estimate_tokens_and_features() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "12345678"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}
        }))
        .unwrap();
        let n = needs(&req);
        assert_eq!((n.input_tokens, n.output_tokens), (2, 100));
        assert!(n.features.json_schema && !n.features.tools);
    }

    impl Meter {
        /// A meter charging `key` at `price`, with nothing used, nothing sent.
        fn for_test(spend: &Arc<Spend>, key: &Arc<VirtualKey>, price: ModelInfo) -> Self {
            Meter {
                reservation: None,
                spend: Some((spend.clone(), key.clone())),
                price: Some(price),
                usage: None,
                cached: 0,
                unreported: (0, 0),
                sent: Arc::default(),
            }
        }
    }

    /// A spend tracker on a new database, and a key with a total budget of $0.50.
    async fn spend_and_key() -> (Arc<Spend>, Arc<VirtualKey>) {
        let dir = std::env::temp_dir().join(format!("switchyard-meter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", crate::request_id::new_v7()));
        let db = switchyard_store::Db::open_sqlite(&path).await.unwrap();
        let spend = Arc::new(
            Spend::load(
                switchyard_store::spend::SpendStore::new(db),
                crate::limits::system_clock(),
            )
            .await
            .unwrap(),
        );
        let key = Arc::new(VirtualKey {
            id: "key_1".into(),
            name: "app".into(),
            hint: "h".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            policy: crate::keys::KeyPolicy {
                budgets: crate::budgets::Budgets {
                    total_usd: Some(0.5),
                    ..Default::default()
                },
                ..Default::default()
            },
        });
        (spend, key)
    }

    #[tokio::test]
    async fn a_budget_is_charged_cached_input_at_the_cached_price() {
        let (spend, key) = spend_and_key().await;
        // $10 per million input tokens, $1 per million read from the cache.
        let price = ModelInfo {
            input_per_mtok: Some(10.0),
            output_per_mtok: Some(0.0),
            cached_input_per_mtok: Some(1.0),
            features: Features::default(),
        };
        let meter = |cached: u64| {
            let mut m = Meter::for_test(&spend, &key, price);
            m.usage = Some((100_000, 0));
            m.cached = cached;
            m
        };
        drop(meter(100_000));
        // $0.10 at the cached price, within the $0.50 budget ($1.00 at the full price is not).
        assert!(spend.check(&key).await.is_ok());
        drop(meter(0));
        assert!(spend.check(&key).await.is_err());
    }

    #[tokio::test]
    async fn a_call_without_usage_is_charged_its_estimate_only_if_it_was_sent() {
        let (spend, key) = spend_and_key().await;
        let price = ModelInfo {
            input_per_mtok: Some(10.0),
            output_per_mtok: Some(0.0),
            cached_input_per_mtok: None,
            features: Features::default(),
        };
        let meter = |sent: bool| {
            let mut m = Meter::for_test(&spend, &key, price);
            // A prompt of about 100,000 tokens: $1.
            m.unreported = (100_000, 0);
            m.sent.store(sent, std::sync::atomic::Ordering::Relaxed);
            m
        };
        // The caller left while it waited (for an identical call's answer, say): nothing sent.
        drop(meter(false));
        assert!(spend.check(&key).await.is_ok());
        // It left after its request went out: the provider bills the prompt, and so does this.
        drop(meter(true));
        assert!(spend.check(&key).await.is_err());
    }
}
