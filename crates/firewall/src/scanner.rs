//! The compiled detectors: the built-in patterns plus the configuration's custom terms and
//! expressions, the injection rules, and a lazy DFA over the same patterns that tells a stream
//! screen whether text at the end of what it holds may still become a finding.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};

use crate::detector::{Detector, Finding};
use crate::injection::Injection;
use crate::patterns::{BUILT_IN, Check};

/// `[firewall.custom]`: what the configuration adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Custom {
    /// Terms matched as whole words, case-insensitively.
    pub terms: Vec<String>,
    /// Regular expressions (Rust `regex` syntax).
    pub patterns: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("firewall.custom.patterns[{index}] is not a valid regular expression: {detail}")]
    Pattern { index: usize, detail: String },
    #[error("firewall.custom.terms[{index}] is empty")]
    EmptyTerm { index: usize },
    #[error("building the firewall's detectors: {0}")]
    Build(String),
}

struct Spec {
    detector: Detector,
    kind: &'static str,
    check: Check,
    regex: Regex,
}

pub struct Scanner {
    /// Every pattern at once, to learn which ones occur.
    all: Regex,
    specs: Vec<Spec>,
    /// The same patterns, anchored, stepped byte by byte by stream screens.
    dfa: DFA,
    injection: Injection,
}

/// A term as a pattern: escaped, case-insensitive, whole words where it starts or ends with one.
fn term_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 16);
    for c in term.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let lead = if word(term.chars().next()) {
        r"(?-u:\b)"
    } else {
        ""
    };
    let tail = if word(term.chars().last()) {
        r"(?-u:\b)"
    } else {
        ""
    };
    format!("(?i:{lead}{escaped}{tail})")
}

impl Scanner {
    pub fn new(custom: &Custom) -> Result<Self, ScannerError> {
        let mut specs = Vec::new();
        let mut sources = Vec::new();
        let build = |e: regex_automata::meta::BuildError| ScannerError::Build(e.to_string());
        for p in BUILT_IN {
            specs.push(Spec {
                detector: p.detector,
                kind: p.kind,
                check: p.check,
                regex: Regex::new(p.regex).map_err(build)?,
            });
            sources.push(p.regex.to_owned());
        }
        for (index, term) in custom.terms.iter().enumerate() {
            if term.trim().is_empty() {
                return Err(ScannerError::EmptyTerm { index });
            }
            let source = term_pattern(term.trim());
            specs.push(Spec {
                detector: Detector::Custom,
                kind: "term",
                check: Check::None,
                regex: Regex::new(&source).map_err(build)?,
            });
            sources.push(source);
        }
        for (index, pattern) in custom.patterns.iter().enumerate() {
            let regex = Regex::new(pattern).map_err(|e| ScannerError::Pattern {
                index,
                detail: e.to_string(),
            })?;
            specs.push(Spec {
                detector: Detector::Custom,
                kind: "pattern",
                check: Check::None,
                regex,
            });
            sources.push(pattern.clone());
        }
        let all = Regex::builder()
            .configure(Regex::config().match_kind(MatchKind::All))
            .build_many(&sources)
            .map_err(build)?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .unicode_word_boundary(true)
                    .cache_capacity(4 << 20),
            )
            .build_many(&sources)
            .map_err(|e| ScannerError::Build(e.to_string()))?;
        let injection = Injection::new().map_err(|e| ScannerError::Build(e.to_string()))?;
        Ok(Self {
            all,
            specs,
            dfa,
            injection,
        })
    }

    /// What the pattern detectors find in `text`, in order, not overlapping (where two
    /// overlap, the more specific pattern wins). Injection is separate: [`Self::injection`].
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut present = PatternSet::new(self.all.pattern_len());
        self.all
            .which_overlapping_matches(&Input::new(text), &mut present);
        let mut candidates: Vec<(usize, Finding)> = Vec::new();
        for pid in present.iter() {
            let priority = pid.as_usize();
            let spec = &self.specs[priority];
            for caps in spec.regex.captures_iter(text) {
                let span = caps
                    .get_group(1)
                    .or_else(|| caps.get_match().map(|m| m.span()));
                let Some(span) = span else { continue };
                if let Some(range) = checked(spec.check, text, span.range()) {
                    candidates.push((
                        priority,
                        Finding {
                            detector: spec.detector,
                            kind: spec.kind,
                            range,
                        },
                    ));
                }
            }
        }
        candidates.sort_by_key(|(priority, f)| (*priority, f.range.start));
        let mut taken: Vec<Finding> = Vec::new();
        for (_, f) in candidates {
            let overlaps = taken
                .iter()
                .any(|t| t.range.start < f.range.end && f.range.start < t.range.end);
            if !overlaps {
                taken.push(f);
            }
        }
        taken.sort_by_key(|f| f.range.start);
        taken
    }

    /// Injection signs in `text` (user turns and tool results).
    pub fn injection(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.injection.find(text, &mut out);
        out
    }

    /// A cache for [`Self::may_continue`], one per stream screen.
    pub fn stream_cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// Whether some pattern, started at byte `at` of `hay`, is still matching at its end: more
    /// text could complete or extend a finding there, so a stream screen must not let it go.
    pub fn may_continue(&self, cache: &mut Cache, hay: &str, at: usize) -> bool {
        let input = Input::new(hay).range(at..).anchored(Anchored::Yes);
        let Ok(mut state) = self.dfa.start_state_forward(cache, &input) else {
            return true;
        };
        for &b in &hay.as_bytes()[at..] {
            state = match self.dfa.next_state(cache, state, b) {
                Ok(s) => s,
                Err(_) => return true,
            };
            if state.is_dead() {
                return false;
            }
            if state.is_quit() {
                return true;
            }
        }
        true
    }
}

/// The candidate's range if it passes its check. Card numbers and IBANs are matched greedily,
/// so a number followed by more digits is retried without its trailing groups.
fn checked(
    check: Check,
    text: &str,
    range: std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    let candidate = text.get(range.clone())?;
    // A random-looking run inside a longer base64 blob (an image, a hash list) is not a token
    // of its own: the run must stand alone.
    if check == Check::HighEntropy {
        let base64ish =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-');
        let before = range.start.checked_sub(1).map(|i| text.as_bytes()[i]);
        let after = text.as_bytes().get(range.end).copied();
        let data_url = text[..range.start].ends_with("base64,");
        if before.is_some_and(base64ish) || after.is_some_and(base64ish) || data_url {
            return None;
        }
    }
    if check.passes(candidate) {
        return Some(range);
    }
    if !matches!(check, Check::Card | Check::Iban) {
        return None;
    }
    // Shorter ends at group boundaries (before a separator).
    let bytes = candidate.as_bytes();
    (1..bytes.len())
        .rev()
        .filter(|&end| matches!(bytes[end], b' ' | b'-') && bytes[end - 1].is_ascii_alphanumeric())
        .find(|&end| check.passes(&candidate[..end]))
        .map(|end| range.start..range.start + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Vec<(&'static str, String)> {
        Scanner::new(&Custom::default())
            .unwrap()
            .find(text)
            .into_iter()
            .map(|f| (f.kind, text[f.range].to_owned()))
            .collect()
    }

    #[test]
    fn finds_each_kind_of_secret_and_personal_data() {
        let key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
        assert_eq!(
            scan(&format!("use {key} please")),
            [("openai_key", key.to_owned())]
        );
        assert_eq!(
            scan("AKIAIOSFODNN7EXAMPLE is the id"),
            [("aws_access_key", "AKIAIOSFODNN7EXAMPLE".to_owned())]
        );
        assert_eq!(
            scan("password = \"Tr0ub4dor&3xK9\""),
            [("assigned_secret", "Tr0ub4dor&3xK9".to_owned())]
        );
        assert_eq!(
            scan("mail jane.doe+x@example.co.uk today"),
            [("email", "jane.doe+x@example.co.uk".to_owned())]
        );
        assert_eq!(
            scan("card 4111 1111 1111 1111 exp 12/29"),
            [("card", "4111 1111 1111 1111".to_owned())]
        );
        assert_eq!(
            scan("card 4111 1111 1111 1111 2024"),
            [("card", "4111 1111 1111 1111".to_owned())]
        );
        assert_eq!(
            scan("IBAN DE89 3704 0044 0532 0130 00."),
            [("iban", "DE89 3704 0044 0532 0130 00".to_owned())]
        );
        assert_eq!(
            scan("SSN 123-45-6789"),
            [("us_ssn", "123-45-6789".to_owned())]
        );
        assert_eq!(
            scan("call +44 20 7946 0958 or (415) 555-0132"),
            [
                ("phone", "+44 20 7946 0958".to_owned()),
                ("phone", "(415) 555-0132".to_owned())
            ]
        );
        assert_eq!(
            scan("from 192.168.10.4 and 2001:db8::8a2e:370:7334"),
            [
                ("ipv4", "192.168.10.4".to_owned()),
                ("ipv6", "2001:db8::8a2e:370:7334".to_owned())
            ]
        );
    }

    #[test]
    fn leaves_near_misses_alone() {
        for text in [
            "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "order number 1234 5678 9012 3456",
            "the meeting is at 10:30:00",
            "version 1.2.3 of the library",
            "password = ********",
            "a_very_long_snake_case_identifier_for_tests = 1",
        ] {
            assert_eq!(scan(text), [], "{text}");
        }
    }

    #[test]
    fn custom_terms_and_patterns() {
        let s = Scanner::new(&Custom {
            terms: vec!["Project Nightingale".into()],
            patterns: vec![r"ACME-\d{6}".into()],
        })
        .unwrap();
        let text = "about project nightingale, ticket ACME-123456";
        let kinds: Vec<_> = s.find(text).into_iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ["term", "pattern"]);
        assert!(matches!(
            Scanner::new(&Custom {
                terms: vec![],
                patterns: vec!["(".into()]
            }),
            Err(ScannerError::Pattern { index: 0, .. })
        ));
    }

    #[test]
    fn a_pattern_in_progress_may_continue() {
        let s = Scanner::new(&Custom::default()).unwrap();
        let mut cache = s.stream_cache();
        let hay = "my key is sk-pro";
        assert!(s.may_continue(&mut cache, hay, hay.find("sk").unwrap()));
        // A word may still become an e-mail address, but a finished sentence may not.
        assert!(s.may_continue(&mut cache, "hello", 0));
        assert!(!s.may_continue(&mut cache, "hello world. ", 0));
    }
}
