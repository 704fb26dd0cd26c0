//! The semantic cache: a stored answer is served to a request that is not identical but means
//! the same.
//!
//! Only the conversation's last user turn may differ: everything else (namespace, model, system
//! prompt, earlier turns, tools, parameters) must match exactly, as a hash ([`key::context`]).
//! The last turn is embedded by the configured embedding model and compared, by cosine
//! similarity, with the last turns of the stored answers that share the hash; the most similar
//! one at or above the threshold is served. The index keeps, per context hash, each answer's
//! exact key and unit vector, and is searched exhaustively: context hashes split it into small
//! groups in practice, and a scan of one group is one 8-bit multiply-add per dimension and
//! entry ([`Quantized`]; `cargo bench -p switchyard-gateway --bench semantic` measures up to 100k
//! entries in one group). An entry whose answer has left the exact store (evicted or expired) is
//! skipped and dropped when found.
//!
//! Guards against false hits: calls with tool results or images, or a temperature above the
//! bound, are not served semantically unless configured; a caller-chosen cache key turns it
//! off for the call; an embedding failure is a miss, never a failed call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use switchyard_protocol::chat::{ChatRequest, Content, Part, Role};

use super::Entry;
use super::key::{self, Key};
use crate::app::AppState;
use crate::config::SemanticPolicy;
use crate::routing::{CallOptions, Route};

/// What a call's answer is indexed under, once stored.
#[derive(Debug, Clone)]
pub struct Probe {
    pub context: Key,
    pub vector: Vec<f32>,
}

/// The semantic look-up of a call.
pub enum Semantic {
    /// Not served semantically (off for the route, or a guard applies).
    Off,
    /// A similar request's stored answer, and the similarity.
    Hit(Arc<Entry>, f32),
    /// Nothing similar enough; index the answer under this.
    Miss(Probe),
}

/// Exact keys and unit vectors, grouped by context hash, within a bound on their number.
#[derive(Debug)]
pub struct Index {
    inner: RwLock<Inner>,
    max_entries: usize,
}

/// An answer's exact key and the unit vector of its last user turn, quantized.
type Item = (Key, Quantized);

/// A unit vector in 8-bit integers with its scale: a quarter of the memory of `f32`s, and a
/// search that reads a quarter of the bytes (a search over many entries is bound by memory
/// bandwidth). The similarity it gives is within about 0.002 of the exact one.
#[derive(Debug, Clone)]
pub struct Quantized {
    scale: f32,
    values: Box<[i8]>,
}

impl Quantized {
    pub fn new(v: &[f32]) -> Self {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { 127.0 / max } else { 1.0 };
        Self {
            scale,
            values: v.iter().map(|x| (x * scale).round() as i8).collect(),
        }
    }

    /// The dot product of the two vectors this approximates.
    pub fn dot(&self, other: &Self) -> f32 {
        dot_i8(&self.values, &other.values) as f32 / (self.scale * other.scale)
    }
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<Key, Vec<Item>>,
    /// Insertion order, oldest first, to forget the oldest beyond the bound.
    order: VecDeque<(Key, Key)>,
}

impl Index {
    pub fn new(max_entries: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            max_entries: max_entries.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers that the answer stored under `key` answered a last turn embedded as `vector`.
    pub fn insert(&self, context: Key, key: Key, vector: Vec<f32>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let group = inner.groups.entry(context).or_default();
        let vector = Quantized::new(&vector);
        if let Some(at) = group.iter().position(|(k, _)| *k == key) {
            group[at].1 = vector;
            return;
        }
        group.push((key, vector));
        inner.order.push_back((context, key));
        while inner.order.len() > self.max_entries {
            if let Some((c, k)) = inner.order.pop_front() {
                inner.forget(&c, &k);
            }
        }
    }

    /// The most similar entry of the group, if any: its key and cosine similarity.
    pub fn nearest(&self, context: &Key, query: &[f32]) -> Option<(Key, f32)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let group = inner.groups.get(context)?;
        let query = Quantized::new(query);
        group
            .iter()
            .filter(|(_, v)| v.values.len() == query.values.len())
            .map(|(k, v)| (*k, v.dot(&query)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Drops an entry whose answer is gone.
    pub fn remove(&self, context: &Key, key: &Key) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.forget(context, key);
        inner.order.retain(|(c, k)| !(c == context && k == key));
    }
}

impl Inner {
    fn forget(&mut self, context: &Key, key: &Key) {
        if let Some(group) = self.groups.get_mut(context) {
            group.retain(|(k, _)| k != key);
            if group.is_empty() {
                self.groups.remove(context);
            }
        }
    }
}

/// The dot product of 8-bit vectors, in sixteen independent 32-bit lanes so that the compiler
/// vectorizes it (127² · 16 per lane and chunk cannot overflow for any length a model has).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The last user turn's text, if the call may be served semantically.
pub fn question(policy: &SemanticPolicy, req: &ChatRequest) -> Option<String> {
    if req.temperature.is_some_and(|t| t > policy.max_temperature) {
        return None;
    }
    let tools_used = req
        .messages
        .iter()
        .any(|m| m.role == Role::Tool || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()));
    if tools_used && !policy.tool_results {
        return None;
    }
    let last = req.messages.last().filter(|m| m.role == Role::User)?;
    let text = match &last.content {
        Some(Content::Text(t)) => t.clone(),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for p in parts {
                match p {
                    Part::Text { text: t } => text.push_str(t),
                    Part::ImageUrl { .. } if policy.images => {}
                    _ => return None,
                }
            }
            text
        }
        None => return None,
    };
    let images_before = req.messages.iter().any(|m| {
        matches!(&m.content, Some(Content::Parts(p)) if p.iter().any(|p| matches!(p, Part::ImageUrl { .. })))
    });
    if images_before && !policy.images {
        return None;
    }
    (!text.trim().is_empty()).then_some(text)
}

/// Looks for the answer to a similar request (the call's exact look-up missed).
pub async fn lookup(
    state: &AppState,
    options: &CallOptions,
    req: &ChatRequest,
    route: &Route,
) -> Semantic {
    let routes = state.routes.load_full();
    let policy = routes.cache_policy();
    let Some(semantic) = policy.semantic.as_ref() else {
        return Semantic::Off;
    };
    if !route.semantic_cache || options.cache.key.is_some() {
        return Semantic::Off;
    }
    let Some(text) = question(semantic, req) else {
        return Semantic::Off;
    };
    let vector = match embed(state, semantic, text).await {
        Ok(v) => normalize(v),
        Err(e) => {
            tracing::warn!(model = %semantic.embedding_model, error = %e, "embedding for the semantic cache failed; treated as a miss");
            return Semantic::Off;
        }
    };
    let namespace = key::namespace(options, &policy.namespace);
    let context = key::context(&namespace, &route.destination, options, req);
    if let Some((key, similarity)) = state.cache.semantic.nearest(&context, &vector)
        && similarity >= semantic.threshold
        && let Some(entry) = state.cache.similar(&routes, &context, &key).await
    {
        return Semantic::Hit(entry, similarity);
    }
    Semantic::Miss(Probe { context, vector })
}

/// The embedding of `text` by the configured model.
async fn embed(
    state: &AppState,
    policy: &SemanticPolicy,
    text: String,
) -> Result<Vec<f32>, String> {
    crate::embedding::embed(
        state,
        &policy.embedding_model,
        policy.dimensions,
        vec![text],
    )
    .await?
    .pop()
    .ok_or_else(|| "the embedding model answered no vector".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        normalize((0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect())
    }

    #[test]
    fn the_nearest_entry_of_the_group_is_found() {
        let index = Index::new(1_000);
        let (ctx, other) = ([1u8; 32], [2u8; 32]);
        for i in 0..100u8 {
            index.insert(ctx, [i; 32], unit(u64::from(i), 64));
        }
        let target = unit(42, 64);
        let (key, sim) = index.nearest(&ctx, &target).unwrap();
        assert_eq!(key, [42u8; 32]);
        assert!((sim - 1.0).abs() < 0.01, "{sim}");
        assert!(index.nearest(&other, &target).is_none(), "groups are apart");
        index.remove(&ctx, &[42u8; 32]);
        let (key, sim) = index.nearest(&ctx, &target).unwrap();
        assert_ne!(key, [42u8; 32]);
        assert!(sim < 0.9, "{sim}");
    }

    #[test]
    fn the_index_forgets_the_oldest_beyond_its_bound() {
        let index = Index::new(10);
        for i in 0..25u8 {
            index.insert([0; 32], [i; 32], unit(u64::from(i), 8));
            assert!(index.len() <= 10);
        }
        assert!(index.nearest(&[0; 32], &unit(3, 8)).unwrap().1 < 0.98);
        assert!((index.nearest(&[0; 32], &unit(24, 8)).unwrap().1 - 1.0).abs() < 0.01);
    }

    #[test]
    fn quantized_similarity_is_close_to_the_exact_one() {
        for dims in [8, 17, 384, 1024] {
            for seed in 0..50 {
                let (a, b) = (unit(seed, dims), unit(seed + 1000, dims));
                // A pair with a high similarity too: b nudged towards a.
                let near = normalize(a.iter().zip(&b).map(|(x, y)| x + 0.1 * y).collect());
                for other in [&b, &near] {
                    let exact: f32 = a.iter().zip(other).map(|(x, y)| x * y).sum();
                    let q = Quantized::new(&a).dot(&Quantized::new(other));
                    assert!((q - exact).abs() < 0.01, "{dims} dims: {q} vs {exact}");
                    if dims >= 384 {
                        assert!((q - exact).abs() < 0.003, "{dims} dims: {q} vs {exact}");
                    }
                }
            }
        }
    }

    fn policy() -> SemanticPolicy {
        SemanticPolicy {
            embedding_model: "mock/embed".into(),
            dimensions: None,
            threshold: 0.95,
            max_entries: 10,
            max_temperature: 1.0,
            tool_results: false,
            images: false,
            models: Vec::new(),
        }
    }

    fn req(v: serde_json::Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn guards_keep_risky_calls_exact() {
        let p = policy();
        let user = |text: &str| serde_json::json!({"role": "user", "content": text});
        let plain =
            req(serde_json::json!({"model": "m", "messages": [user("capital of France?")]}));
        assert_eq!(question(&p, &plain).as_deref(), Some("capital of France?"));
        let hot =
            req(serde_json::json!({"model": "m", "temperature": 1.5, "messages": [user("x")]}));
        assert_eq!(question(&p, &hot), None);
        let tools = req(serde_json::json!({"model": "m", "messages": [
            user("weather?"),
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            user("and tomorrow?")
        ]}));
        assert_eq!(question(&p, &tools), None);
        assert!(
            question(
                &SemanticPolicy {
                    tool_results: true,
                    ..policy()
                },
                &tools
            )
            .is_some()
        );
        let image = req(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}]}),
        );
        assert_eq!(question(&p, &image), None);
        let assistant_last = req(
            serde_json::json!({"model": "m", "messages": [user("a"), {"role": "assistant", "content": "b"}]}),
        );
        assert_eq!(question(&p, &assistant_last), None);
    }
}
