//! The response cache (pipeline stage "cache lookup" and the "cache record" tap).
//!
//! An answer is stored under a [`key`] of the request and served again, in the caller's API
//! shape, to an identical request while it is fresh: as JSON or as a stream, whichever the
//! caller asked for, whatever form it was recorded in ([`Answer`]). Identical requests that
//! arrive while the first is still under way join it ([`flight`]) instead of calling the
//! provider again.
//!
//! Whether a call is cached, and for how long, is decided per call ([`Cache::lookup`]): the
//! caller's `x-switchyard-cache-ttl`, else its route's `cache` setting, else `[cache.models]`,
//! else `[cache] enabled`; a caller-chosen `x-switchyard-cache-key` turns caching on with the
//! configured time. `x-switchyard-skip-cache` bypasses it. Entries live in a size-bounded
//! in-process store (`[cache] max_mb`, counted in the bytes of their JSON), evicted by
//! recency and frequency (CLOCK-Pro); an expired entry is dropped when it is next looked up.

pub mod flight;
pub mod key;
pub mod semantic;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_protocol::chat::{ChatChunk, ChatRequest, ChatResponse, assemble, chunks_of};

use crate::registry::Target;
use crate::routing::options::Skip;
use crate::routing::{Attempts, CallOptions};
use crate::routing::{Route, Routes};
pub use flight::{Flight, Followed, Leader};
pub use key::Key;
pub use store::Store;

/// Unix milliseconds now.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the cache did for a call (the `x-switchyard-cache` header and the log's `cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (or from an identical call under way), without a provider call.
    Hit,
    /// Not in the cache: the provider answered, and the answer was stored.
    Miss,
    /// Served from the cache because a similar request was answered.
    SemanticHit,
    /// The caller asked to skip the cache.
    Bypass,
}

impl CacheStatus {
    /// The header value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::SemanticHit => "SEMANTIC-HIT",
            Self::Bypass => "BYPASS",
        }
    }

    /// The request log's and the metrics' value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::SemanticHit => "semantic_hit",
            Self::Bypass => "bypass",
        }
    }

    /// Whether the answer came without a provider call.
    pub fn is_hit(self) -> bool {
        matches!(self, Self::Hit | Self::SemanticHit)
    }
}

/// What the cache did, and how old a served answer was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheOutcome {
    pub status: CacheStatus,
    pub age: Option<Duration>,
    /// For a semantic hit: the cosine similarity of the two requests' last turns.
    pub similarity: Option<f32>,
}

/// An answer as it was recorded.
#[derive(Debug)]
pub enum Answer {
    Whole(Box<ChatResponse>),
    Stream(Vec<ChatChunk>),
}

impl Answer {
    pub fn whole(&self) -> ChatResponse {
        match self {
            Self::Whole(r) => (**r).clone(),
            Self::Stream(chunks) => assemble(chunks),
        }
    }

    pub fn chunks(&self) -> Vec<ChatChunk> {
        match self {
            Self::Whole(r) => chunks_of(r),
            Self::Stream(chunks) => chunks.clone(),
        }
    }

    /// The size it is counted at: its JSON's.
    fn bytes(&self) -> usize {
        let len = match self {
            Self::Whole(r) => serde_json::to_vec(r).map_or(0, |v| v.len()),
            Self::Stream(chunks) => chunks
                .iter()
                .map(|c| serde_json::to_vec(c).map_or(0, |v| v.len()))
                .sum(),
        };
        // The key, the entry and the allocations around the answer.
        len + 256
    }
}

/// A stored answer.
#[derive(Debug)]
pub struct Entry {
    pub answer: Answer,
    /// Who answered it.
    pub target: Option<Target>,
    pub route: Option<Arc<str>>,
    /// Unix milliseconds.
    stored_ms: i64,
    expires_ms: i64,
    /// What it counts against the in-process bound.
    bytes: u64,
}

impl Entry {
    /// What a caller served this entry is told: a hit, or a semantic hit at `similarity`.
    pub fn served(&self, similarity: Option<f32>) -> Attempts {
        Attempts {
            route: self.route.clone(),
            target: self.target.clone(),
            cache: Some(CacheOutcome {
                status: if similarity.is_some() {
                    CacheStatus::SemanticHit
                } else {
                    CacheStatus::Hit
                },
                age: Some(Duration::from_millis(
                    (now_millis() - self.stored_ms).max(0) as u64,
                )),
                similarity,
            }),
            ..Attempts::default()
        }
    }
}

/// What a call does about the cache.
pub enum Lookup {
    /// Caching is not on for this call.
    Off,
    /// The caller skipped the cache.
    Bypass,
    Hit(Arc<Entry>),
    /// A miss: this call asks the provider and fills the cache.
    Lead(Leader),
    /// An identical call is under way: wait for its answer.
    Follow(Arc<Flight>),
}

/// The store and the calls under way.
#[derive(Debug)]
pub struct Cache {
    store: Store,
    flights: Mutex<HashMap<Key, Arc<Flight>>>,
    /// The in-process store's bound (0: caching off).
    max_bytes: u64,
    /// Stored answers by the meaning of their last user turn.
    pub semantic: semantic::Index,
}

impl Cache {
    /// An in-process store that holds at most `max_bytes` of answers (0: caching off), and a
    /// semantic index of at most `semantic_entries`.
    pub fn new(max_bytes: u64, semantic_entries: usize) -> Arc<Self> {
        Self::with_store(Store::memory(max_bytes), max_bytes, semantic_entries)
    }

    /// The same with another store (Redis); `max_bytes` 0 still turns caching off.
    pub fn with_store(store: Store, max_bytes: u64, semantic_entries: usize) -> Arc<Self> {
        Arc::new(Self {
            store,
            flights: Mutex::new(HashMap::new()),
            max_bytes,
            semantic: semantic::Index::new(semantic_entries),
        })
    }

    /// The bytes the in-process answers are counted at; never more than the bound.
    pub fn weight(&self) -> u64 {
        self.store.weight()
    }

    /// Answers held in process.
    pub fn len(&self) -> usize {
        self.store.entries()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Decides what a chat call does about the cache, and looks it up. `route` is the route
    /// the call was planned on: its configured time, and where the call goes.
    pub async fn lookup(
        self: &Arc<Self>,
        routes: &Routes,
        options: &CallOptions,
        req: &ChatRequest,
        route: &Route,
    ) -> Lookup {
        let route_ttl = route.cache_ttl;
        if self.max_bytes == 0 {
            return Lookup::Off;
        }
        let policy = routes.cache_policy();
        let asked = &options.cache;
        if asked.skip == Skip::Bypass {
            return Lookup::Bypass;
        }
        let ttl = asked
            .ttl
            .or(route_ttl)
            .or(asked.key.is_some().then_some(policy.ttl));
        let Some(ttl) = ttl else {
            return Lookup::Off;
        };
        if ttl.is_zero() {
            return Lookup::Bypass;
        }
        let namespace = key::namespace(options, &policy.namespace);
        let key = key::chat(&namespace, &route.destination, options, req);
        let read = asked.skip != Skip::Refresh;
        if read && let Some(entry) = self.store.get(&key, routes.registry()).await {
            return Lookup::Hit(entry);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = flights.get(&key) {
                return Lookup::Follow(f.clone());
            }
            let flight = Arc::new(Flight::new());
            flights.insert(key, flight.clone());
            flight
        };
        let leader = Leader {
            cache: self.clone(),
            key,
            ttl,
            flight,
            settled: false,
            probe: None,
        };
        // A leader may have stored its answer and landed between the look-up and the flight.
        if read && let Some(entry) = self.store.get(&key, routes.registry()).await {
            leader.serve(entry.clone());
            return Lookup::Hit(entry);
        }
        Lookup::Lead(leader)
    }

    /// The stored answer a semantic look-up found, if it is still there (else it leaves the
    /// index).
    pub async fn similar(&self, routes: &Routes, context: &Key, key: &Key) -> Option<Arc<Entry>> {
        let entry = self.store.get(key, routes.registry()).await;
        if entry.is_none() {
            self.semantic.remove(context, key);
        }
        entry
    }

    fn put(&self, key: Key, answer: Answer, attempts: &Attempts, ttl: Duration) -> Arc<Entry> {
        let now = now_millis();
        let entry = Arc::new(Entry {
            bytes: answer.bytes() as u64,
            answer,
            target: attempts.target.clone(),
            route: attempts.route.clone(),
            stored_ms: now,
            expires_ms: now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
        });
        self.store.put(key, entry.clone());
        entry
    }

    /// A flight has ended: later look-ups find the stored answer (or start a new flight).
    fn land(&self, key: &Key, flight: &Arc<Flight>) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::options::CacheOptions;

    fn options(ttl: Duration) -> CallOptions {
        CallOptions {
            cache: CacheOptions {
                ttl: Some(ttl),
                ..CacheOptions::default()
            },
            ..CallOptions::default()
        }
    }

    fn request(text: &str) -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "mock/echo", "messages": [{"role": "user", "content": text}]
        }))
        .unwrap()
    }

    fn answer(text: &str) -> ChatResponse {
        serde_json::from_value(serde_json::json!({
            "id": "c", "model": "echo", "created": 1,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        }))
        .unwrap()
    }

    /// Routes built once per test run: building them loads the system's CA roots.
    fn routes() -> &'static Routes {
        static ROUTES: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
        ROUTES.get_or_init(|| {
            crate::routing::tests::routes(
                "[routes.cached]\ntargets = [\"mock/echo\"]\ncache = \"5s\"\n",
            )
        })
    }

    /// The route a call to `name` is planned on.
    fn route(name: &str) -> Arc<Route> {
        routes()
            .plan(
                name,
                &CallOptions::default(),
                &crate::routing::Needs::default(),
            )
            .unwrap()
            .route
    }

    fn lookup(cache: &Arc<Cache>, text: &str, ttl: Duration) -> Lookup {
        futures_util::FutureExt::now_or_never(cache.lookup(
            routes(),
            &options(ttl),
            &request(text),
            &route("mock/echo"),
        ))
        .expect("the in-process store answers at once")
    }

    #[test]
    fn the_store_never_holds_more_than_its_bound() {
        let max = 64 * 1024;
        let cache = Cache::new(max, 10);
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..3_000 {
            let text = format!("{i} {}", "y".repeat(rng.usize(10..3_000)));
            let Lookup::Lead(leader) = lookup(&cache, &text, Duration::from_secs(60)) else {
                panic!("a new request is a miss");
            };
            leader.whole(&Ok((Attempts::default(), answer(&text))));
            assert!(
                cache.weight() <= max,
                "{} > {max} after {i}",
                cache.weight()
            );
        }
        assert!(cache.weight() > max / 2, "{}", cache.weight());
        assert!(
            cache.flights.lock().unwrap().is_empty(),
            "every flight landed"
        );
    }

    #[test]
    fn hits_until_the_entry_expires() {
        let cache = Cache::new(1 << 20, 10);
        let Lookup::Lead(leader) = lookup(&cache, "q", Duration::from_millis(30)) else {
            panic!("miss expected");
        };
        leader.whole(&Ok((Attempts::default(), answer("a"))));
        let Lookup::Hit(entry) = lookup(&cache, "q", Duration::from_millis(30)) else {
            panic!("hit expected");
        };
        assert_eq!(entry.answer.whole(), answer("a"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            lookup(&cache, "q", Duration::from_millis(30)),
            Lookup::Lead(_)
        ));
        assert!(cache.is_empty(), "the expired entry was dropped");
    }

    #[tokio::test]
    async fn a_stream_that_breaks_after_its_first_chunk_lets_waiting_callers_try_again() {
        use futures_util::StreamExt;
        let cache = Cache::new(1 << 20, 10);
        let ttl = Duration::from_secs(60);
        let Lookup::Lead(leader) = lookup(&cache, "q", ttl) else {
            panic!("miss expected");
        };
        let Lookup::Follow(flight) = lookup(&cache, "q", ttl) else {
            panic!("an identical call under way is joined");
        };
        let waiting = tokio::spawn(async move { flight.whole().await });
        let chunk = chunks_of(&answer("a")).remove(0);
        let broken: switchyard_providers::ChatStream = Box::pin(futures_util::stream::iter([
            Ok(chunk),
            Err(switchyard_providers::ProviderError::Interrupted {
                provider: "mock".into(),
                detail: "reset".into(),
            }),
        ]));
        let mut recorded = leader.record(broken, &Attempts::default());
        assert!(recorded.next().await.unwrap().is_ok());
        assert!(recorded.next().await.unwrap().is_err());
        // The follower, which has nothing yet, is not handed the leader's broken stream's
        // error: it looks again, and leads a call of its own.
        assert!(matches!(waiting.await.unwrap(), Followed::Abandoned));
        assert!(matches!(lookup(&cache, "q", ttl), Lookup::Lead(_)));
    }

    #[tokio::test]
    async fn followers_of_an_abandoned_call_look_again_and_one_leads() {
        let cache = Cache::new(1 << 20, 10);
        let ttl = Duration::from_secs(60);
        let Lookup::Lead(first) = lookup(&cache, "q", ttl) else {
            panic!("miss expected");
        };
        let Lookup::Follow(flight) = lookup(&cache, "q", ttl) else {
            panic!("an identical call under way is joined");
        };
        let waiting = tokio::spawn(async move { flight.whole().await });
        tokio::task::yield_now().await;
        drop(first);
        assert!(matches!(waiting.await.unwrap(), Followed::Abandoned));
        let Lookup::Lead(second) = lookup(&cache, "q", ttl) else {
            panic!("the next look-up leads");
        };
        let Lookup::Follow(flight) = lookup(&cache, "q", ttl) else {
            panic!("joined");
        };
        second.whole(&Ok((Attempts::default(), answer("a"))));
        let Followed::Answer(entry) = flight.whole().await else {
            panic!("the answer is shared");
        };
        assert_eq!(entry.answer.whole(), answer("a"));
    }

    #[test]
    fn off_unless_something_turns_it_on_and_bypassed_on_request() {
        let cache = Cache::new(1 << 20, 10);
        let routes = routes();
        let now = |f: _| futures_util::FutureExt::now_or_never(f).unwrap();
        let req = request("q");
        let (echo, cached) = (route("mock/echo"), route("cached"));
        let zero = options(Duration::ZERO);
        let plain = CallOptions::default();
        assert!(matches!(
            now(cache.lookup(routes, &plain, &req, &echo)),
            Lookup::Off
        ));
        assert!(matches!(
            now(cache.lookup(routes, &plain, &req, &cached)),
            Lookup::Lead(_)
        ));
        let mut skip = options(Duration::from_secs(5));
        skip.cache.skip = Skip::Bypass;
        assert!(matches!(
            now(cache.lookup(routes, &skip, &req, &echo)),
            Lookup::Bypass
        ));
        assert!(matches!(
            now(cache.lookup(routes, &zero, &req, &echo)),
            Lookup::Bypass
        ));
        let mut keyed = CallOptions::default();
        keyed.cache.key = Some("k".into());
        assert!(matches!(
            now(cache.lookup(routes, &keyed, &req, &echo)),
            Lookup::Lead(_)
        ));
        let off = Cache::new(0, 10);
        assert!(matches!(
            now(off.lookup(routes, &options(Duration::from_secs(5)), &req, &echo)),
            Lookup::Off
        ));
    }
}
