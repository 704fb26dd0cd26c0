//! What a mock request should do, parsed from the model name and the `x-mock-scenario` header.
//!
//! Grammar: directives joined by `+`, e.g. `echo`, `stream-40`, `slow-250ms+fail-503`.
//!
//! | directive          | effect                                                             |
//! |--------------------|--------------------------------------------------------------------|
//! | `echo`             | answer with the last user message (the default)                    |
//! | `embed`            | no effect on chat; a name for embedding models                     |
//! | `stream-N`         | answer with N words (`tok1 tok2 …`), one stream chunk each         |
//! | `slow-D`           | wait D before answering (before the first byte of a stream)        |
//! | `ttft-D`           | same as `slow-D`, named for streams: time to first token           |
//! | `itl-D`            | wait D between stream chunks (inter-token latency)                 |
//! | `fail-S`           | answer with HTTP status S and an OpenAI-shaped error body          |
//! | `ratelimit-D`      | answer 429 with `retry-after` of D (whole seconds, rounded up)      |
//! | `truncate-N`       | cut the connection after N chunks (streams) or mid-body (JSON)     |
//! | `malformed`        | answer 200 with a body (or stream event) that is not valid JSON    |
//! | `flaky-N`          | only the first N requests naming this exact scenario fail: with    |
//! |                    | the scenario's `fail-S`/`ratelimit-D`, or 503; later ones succeed  |
//! | `chaos-P`          | P% of requests fail at random: a 503, a reset connection (before   |
//! |                    | any byte of the answer), or a hang of 10 s (a timeout)             |
//!
//! `flaky` and `chaos` are decided per request ([`Scenario::roll`]): `flaky` counts requests by
//! the whole scenario text (model name and header), so `flaky-3+echo` and `flaky-3+x` count
//! apart, which lets two route targets fail independently.
//!
//! Durations are `250ms`, `2s` or `1.5s`.

use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    pub delay: Duration,
    pub inter_token: Duration,
    pub fail: Option<u16>,
    pub retry_after: Option<u64>,
    pub words: Option<usize>,
    pub truncate_after: Option<usize>,
    pub malformed: bool,
    pub flaky: Option<u64>,
    /// Percentage of requests that fail at random.
    pub chaos: Option<u8>,
}

/// How long a `chaos` hang lasts: longer than any sensible per-attempt timeout.
pub const CHAOS_HANG: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::error::Error for ScenarioError {}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cap on any scripted delay, so a typo cannot hang a test run.
const MAX_DELAY: Duration = Duration::from_secs(120);
/// Cap on scripted stream length.
const MAX_WORDS: usize = 1_000_000;

impl Scenario {
    /// Parses directives from a model name and an optional header value.
    pub fn parse(model: &str, header: Option<&str>) -> Result<Self, ScenarioError> {
        let mut s = Scenario::default();
        let all = model
            .split('+')
            .chain(header.into_iter().flat_map(|h| h.split('+')));
        for directive in all.map(str::trim).filter(|d| !d.is_empty()) {
            s.apply(directive)?;
        }
        Ok(s)
    }

    fn apply(&mut self, d: &str) -> Result<(), ScenarioError> {
        let (name, arg) = match d.split_once('-') {
            Some((n, a)) => (n, Some(a)),
            None => (d, None),
        };
        let need = |what: &str| {
            arg.ok_or_else(|| {
                ScenarioError(format!(
                    "mock directive `{name}` needs {what}, e.g. `{name}-{}`",
                    example(name)
                ))
            })
        };
        match name {
            "echo" | "embed" | "mock" => {}
            "malformed" => self.malformed = true,
            "stream" => self.words = Some(count(need("a count")?, d)?.min(MAX_WORDS)),
            "truncate" => self.truncate_after = Some(count(need("a count")?, d)?),
            "flaky" => self.flaky = Some(count(need("a count")?, d)? as u64),
            "chaos" => {
                let p = count(need("a percentage")?, d)?;
                if p > 100 {
                    return Err(ScenarioError(format!("`{d}`: a percentage is 0-100")));
                }
                self.chaos = Some(p as u8);
            }
            "slow" | "ttft" | "latency" => self.delay = duration(need("a duration")?, d)?,
            "itl" => self.inter_token = duration(need("a duration")?, d)?,
            "fail" => {
                let code = count(need("a status")?, d)?;
                if !(400..=599).contains(&code) {
                    return Err(ScenarioError(format!("`{d}`: status must be 400-599")));
                }
                self.fail = Some(code as u16);
            }
            "ratelimit" => {
                let after = arg
                    .map(|a| duration(a, d))
                    .transpose()?
                    .unwrap_or(Duration::from_secs(1));
                self.fail = Some(429);
                self.retry_after = Some(after.as_millis().div_ceil(1000) as u64);
            }
            _ => {
                return Err(ScenarioError(format!(
                    "unknown mock directive `{d}`; use echo, stream-N, slow-D, ttft-D, itl-D, fail-S, ratelimit-D, truncate-N, malformed, flaky-N or chaos-P, joined by +"
                )));
            }
        }
        Ok(())
    }
}

impl Scenario {
    /// Decides this request's fate for the per-request directives. `seen` is how many requests
    /// with the same scenario text came before this one (counting it).
    pub fn roll(&mut self, seen: impl FnOnce() -> u64) {
        if let Some(n) = self.flaky {
            if seen() <= n {
                self.fail = self.fail.or(Some(503));
            } else {
                self.fail = None;
                self.retry_after = None;
            }
        }
        if let Some(p) = self.chaos
            && fastrand::u8(0..100) < p
        {
            match fastrand::u8(0..3) {
                0 => self.fail = Some(503),
                1 => self.truncate_after = Some(0),
                _ => self.delay = CHAOS_HANG,
            }
        }
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "slow" | "ttft" | "latency" | "itl" | "ratelimit" => "250ms",
        "fail" => "503",
        "chaos" => "30",
        _ => "10",
    }
}

fn count(s: &str, d: &str) -> Result<usize, ScenarioError> {
    s.parse()
        .map_err(|_| ScenarioError(format!("`{d}`: `{s}` is not a whole number")))
}

fn duration(s: &str, d: &str) -> Result<Duration, ScenarioError> {
    let bad = || ScenarioError(format!("`{d}`: `{s}` is not a duration like 250ms or 2s"));
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(
        (v * unit).min(MAX_DELAY.as_secs_f64()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let s = Scenario::parse("slow-250ms+stream-40", Some("itl-1.5s")).unwrap();
        assert_eq!(s.delay, Duration::from_millis(250));
        assert_eq!(s.words, Some(40));
        assert_eq!(s.inter_token, Duration::from_millis(1500));
        let s = Scenario::parse("ratelimit-2s", None).unwrap();
        assert_eq!((s.fail, s.retry_after), (Some(429), Some(2)));
        assert_eq!(Scenario::parse("echo", None).unwrap(), Scenario::default());
        assert!(Scenario::parse("fail-200", None).is_err());
        assert!(
            Scenario::parse("nonsense", None)
                .unwrap_err()
                .0
                .contains("unknown mock directive")
        );
        assert!(Scenario::parse("slow-fast", None).is_err());
        assert!(Scenario::parse("chaos-101", None).is_err());
        let s = Scenario::parse("flaky-2+chaos-30", None).unwrap();
        assert_eq!((s.flaky, s.chaos), (Some(2), Some(30)));
        assert!(
            Scenario::parse("stream", None)
                .unwrap_err()
                .0
                .contains("stream-10")
        );
    }
}

#[cfg(test)]
mod roll_tests {
    use super::*;

    #[test]
    fn flaky_fails_the_first_n_only() {
        let outcomes: Vec<Option<u16>> = (1..=4)
            .map(|i| {
                let mut s = Scenario::parse("flaky-2", None).unwrap();
                s.roll(|| i);
                s.fail
            })
            .collect();
        assert_eq!(outcomes, [Some(503), Some(503), None, None]);
        let mut s = Scenario::parse("flaky-1+ratelimit-2s", None).unwrap();
        s.roll(|| 1);
        assert_eq!((s.fail, s.retry_after), (Some(429), Some(2)));
        let mut s = Scenario::parse("flaky-1+ratelimit-2s", None).unwrap();
        s.roll(|| 2);
        assert_eq!((s.fail, s.retry_after), (None, None));
    }

    #[test]
    fn chaos_fails_about_the_given_share_in_all_three_ways() {
        let (mut fail, mut reset, mut hang) = (0, 0, 0);
        for _ in 0..10_000 {
            let mut s = Scenario::parse("chaos-30", None).unwrap();
            s.roll(|| 1);
            fail += usize::from(s.fail.is_some());
            reset += usize::from(s.truncate_after == Some(0));
            hang += usize::from(s.delay == CHAOS_HANG);
        }
        let total = fail + reset + hang;
        assert!((2_600..3_400).contains(&total), "{total}");
        for n in [fail, reset, hang] {
            assert!(n > 600, "{fail} {reset} {hang}");
        }
    }
}
