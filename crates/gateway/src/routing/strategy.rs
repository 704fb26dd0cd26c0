//! The order in which a call tries a route's targets, per strategy. The first is where the call
//! goes; the rest are its fallbacks, in order. Open circuits are dealt with when the attempt is
//! made, not here, so that an ordering never depends on a lock held across targets.

use std::time::Duration;

use crate::config::Strategy;
use switchyard_providers::catalog::Features;

use super::RouteTarget;

/// The request facts strategies weigh.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub features: Features,
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Output tokens the estimate assumes (`max_tokens`, or [`DEFAULT_OUTPUT_TOKENS`]).
    pub output_tokens: u64,
}

impl Needs {
    /// Input and output tokens together: what a token rate limit reserves.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Output tokens a cost estimate assumes when the request sets no limit.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 256;

/// Why no target can take the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoneFits(pub String);

/// Indices into `targets`, best first. `rand(n)` is uniform in `0..n`.
pub fn order(
    strategy: Strategy,
    targets: &[RouteTarget],
    needs: &Needs,
    explore: f64,
    rand: &mut impl FnMut(u64) -> u64,
) -> Result<Vec<usize>, NoneFits> {
    let all: Vec<usize> = (0..targets.len()).collect();
    Ok(match strategy {
        Strategy::Fallback => all,
        Strategy::Weighted => weighted(targets, all, rand),
        Strategy::LeastLatency => least_latency(targets, all, explore, rand),
        Strategy::LowestCost => lowest_cost(targets, needs)?,
    })
}

/// Weighted sampling without replacement: the first by weight among all, the next by weight
/// among the rest, and so on. Zero-weight targets come last, in configured order (fallbacks
/// that take no traffic of their own).
fn weighted(
    targets: &[RouteTarget],
    mut left: Vec<usize>,
    rand: &mut impl FnMut(u64) -> u64,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(left.len());
    loop {
        let total: u64 = left.iter().map(|&i| u64::from(targets[i].weight)).sum();
        if total == 0 {
            break;
        }
        let mut r = rand(total);
        let pos = left
            .iter()
            .position(|&i| {
                let w = u64::from(targets[i].weight);
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .unwrap_or(0);
        out.push(left.remove(pos));
    }
    out.extend(left);
    out
}

/// Power of two choices on the moving average of time to first byte: two targets at random,
/// the faster first. Targets never measured go first (so each gets measured), and with
/// probability `explore` a random target does (so a recovered target is noticed). The rest
/// follow, fastest first.
fn least_latency(
    targets: &[RouteTarget],
    all: Vec<usize>,
    explore: f64,
    rand: &mut impl FnMut(u64) -> u64,
) -> Vec<usize> {
    let latency: Vec<Option<Duration>> = targets.iter().map(|t| t.health.ewma()).collect();
    let n = all.len() as u64;
    let unmeasured: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| latency[i].is_none())
        .collect();
    let first = if !unmeasured.is_empty() {
        unmeasured[rand(unmeasured.len() as u64) as usize]
    } else if n == 1 {
        0
    } else if (rand(1_000_000) as f64) < explore * 1_000_000.0 {
        rand(n) as usize
    } else {
        let a = rand(n) as usize;
        let mut b = rand(n - 1) as usize;
        if b >= a {
            b += 1;
        }
        if latency[b] < latency[a] { b } else { a }
    };
    let mut rest: Vec<usize> = all.into_iter().filter(|&i| i != first).collect();
    // Unmeasured (None) sorts first, then fastest.
    rest.sort_by_key(|&i| latency[i]);
    let mut out = vec![first];
    out.extend(rest);
    out
}

/// The cheapest target whose model supports what the request uses, by the catalog's list
/// prices for this request's estimated tokens. Targets without a price follow the priced ones,
/// in configured order; targets known to lack a feature are left out.
fn lowest_cost(targets: &[RouteTarget], needs: &Needs) -> Result<Vec<usize>, NoneFits> {
    let mut priced = Vec::new();
    let mut unpriced = Vec::new();
    let mut missing = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match &t.info {
            Some(info) if !info.features.covers(needs.features) => {
                let what = info.features.missing(needs.features).unwrap_or("a feature");
                missing.push(format!("{} lacks {what}", t.slug));
            }
            Some(info) => match info.cost(needs.input_tokens, needs.output_tokens) {
                Some(cost) => priced.push((cost, i)),
                None => unpriced.push(i),
            },
            None => unpriced.push(i),
        }
    }
    // Stable: equal prices keep the configured order.
    priced.sort_by(|a, b| a.0.total_cmp(&b.0));
    let out: Vec<usize> = priced.into_iter().map(|(_, i)| i).chain(unpriced).collect();
    if out.is_empty() {
        return Err(NoneFits(format!(
            "no target supports this request: {}",
            missing.join("; ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use switchyard_providers::catalog::ModelInfo;

    fn target(slug: &str, weight: u32, price: Option<(f64, f64)>, vision: bool) -> RouteTarget {
        RouteTarget::for_test(
            slug,
            weight,
            price.map(|(i, o)| ModelInfo {
                input_per_mtok: Some(i),
                output_per_mtok: Some(o),
                cached_input_per_mtok: None,
                features: Features {
                    tools: true,
                    vision,
                    json_schema: true,
                },
            }),
        )
    }

    /// The order for a request with no particular needs.
    fn plain(
        strategy: Strategy,
        ts: &[RouteTarget],
        explore: f64,
        rand: &mut impl FnMut(u64) -> u64,
    ) -> Vec<usize> {
        order(strategy, ts, &Needs::default(), explore, rand).unwrap()
    }

    fn rng() -> impl FnMut(u64) -> u64 {
        fastrand::seed(7);
        |n| fastrand::u64(0..n)
    }

    #[test]
    fn fallback_keeps_the_configured_order() {
        let ts = [target("a/1", 1, None, true), target("b/1", 1, None, true)];
        let o = order(Strategy::Fallback, &ts, &Needs::default(), 0.0, &mut rng()).unwrap();
        assert_eq!(o, [0, 1]);
    }

    #[test]
    fn weighted_follows_the_weights_and_lists_everyone() {
        let ts = [
            target("a/1", 1, None, true),
            target("b/1", 3, None, true),
            target("c/1", 0, None, true),
        ];
        let mut firsts = [0u32; 3];
        let mut rand = rng();
        for _ in 0..20_000 {
            let o = plain(Strategy::Weighted, &ts, 0.0, &mut rand);
            assert_eq!(o.len(), 3);
            assert_eq!(o[2], 2, "the zero-weight target is the last fallback");
            firsts[o[0]] += 1;
        }
        // Expect 25% / 75% / 0%: within two points.
        let share = f64::from(firsts[1]) / 20_000.0;
        assert!((0.73..0.77).contains(&share), "{firsts:?}");
        assert_eq!(firsts[2], 0);
    }

    fn measured(t: &RouteTarget, ms: u64) {
        for _ in 0..5 {
            t.health
                .admit(Instant::now())
                .unwrap()
                .success(Duration::from_millis(ms));
        }
    }

    #[test]
    fn least_latency_measures_newcomers_then_prefers_the_fastest() {
        let ts = [
            target("slow/1", 1, None, true),
            target("fast/1", 1, None, true),
            target("mid/1", 1, None, true),
        ];
        measured(&ts[0], 300);
        measured(&ts[2], 100);
        let mut rand = rng();
        // fast/1 has never been measured: it goes first.
        let o = plain(Strategy::LeastLatency, &ts, 0.0, &mut rand);
        assert_eq!(o[0], 1);
        measured(&ts[1], 10);
        let mut firsts = [0u32; 3];
        for _ in 0..3_000 {
            let o = plain(Strategy::LeastLatency, &ts, 0.0, &mut rand);
            firsts[o[0]] += 1;
            assert_eq!(o.len(), 3);
        }
        // Two of three choices: the slowest never wins a pair; the fastest wins every pair it is
        // in (2/3 of draws).
        assert_eq!(firsts[0], 0, "{firsts:?}");
        let fast = f64::from(firsts[1]) / 3_000.0;
        assert!((0.62..0.72).contains(&fast), "{firsts:?}");
        // Exploring sends some calls to the slowest too.
        let mut slow = 0;
        for _ in 0..3_000 {
            let o = plain(Strategy::LeastLatency, &ts, 0.3, &mut rand);
            slow += u32::from(o[0] == 0);
        }
        assert!(slow > 150, "{slow}");
    }

    #[test]
    fn lowest_cost_orders_by_price_and_skips_what_cannot_serve() {
        let ts = [
            target("dear/1", 1, Some((2.5, 10.0)), true),
            target("unknown/1", 1, None, true),
            target("cheap/1", 1, Some((0.05, 0.08)), false),
            target("mid/1", 1, Some((0.15, 0.6)), true),
        ];
        let needs = Needs {
            features: Features::default(),
            input_tokens: 1000,
            output_tokens: 256,
        };
        let o = order(Strategy::LowestCost, &ts, &needs, 0.0, &mut rng()).unwrap();
        assert_eq!(o, [2, 3, 0, 1]);
        let vision = Needs {
            features: Features {
                vision: true,
                ..Features::default()
            },
            ..needs
        };
        let o = order(Strategy::LowestCost, &ts, &vision, 0.0, &mut rng()).unwrap();
        assert_eq!(o, [3, 0, 1]);
        let only_cheap = [target("cheap/1", 1, Some((0.05, 0.08)), false)];
        let e = order(Strategy::LowestCost, &only_cheap, &vision, 0.0, &mut rng()).unwrap_err();
        assert!(e.0.contains("cheap/1 lacks image inputs"), "{e:?}");
    }
}
