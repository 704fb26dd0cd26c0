//! Screening: findings turned into actions on a whole text (a request's turn, a whole answer)
//! or on a stream of deltas, and what was done, as verdicts for the log.
//!
//! A stream is screened without holding the whole answer: the screen lets text go as soon as
//! no pattern that starts in it can still be matching (the scanner's DFA says which starts are
//! still alive), so it holds back only a possible finding in progress (usually the last word),
//! bounded by `hold_max` bytes. A finding split across deltas is therefore always seen whole.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use regex_automata::hybrid::dfa::Cache;
use serde::Serialize;

use crate::detector::{Detector, Finding};
use crate::policy::{Action, Actions, Stage};
use crate::scanner::Scanner;

/// What was done about one kind of finding, and how often, in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub stage: Stage,
    pub detector: Detector,
    pub kind: &'static str,
    pub action: Action,
    pub count: u32,
}

/// A call's verdicts, counted by (stage, detector, kind, action).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Verdicts(Vec<Verdict>);

impl Verdicts {
    pub fn add(&mut self, stage: Stage, f: &Finding, action: Action) {
        match self.0.iter_mut().find(|v| {
            v.stage == stage && v.detector == f.detector && v.kind == f.kind && v.action == action
        }) {
            Some(v) => v.count += 1,
            None => self.0.push(Verdict {
                stage,
                detector: f.detector,
                kind: f.kind,
                action,
                count: 1,
            }),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Verdict> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most severe action taken.
    pub fn strongest(&self) -> Option<Action> {
        self.0.iter().map(|v| v.action).max()
    }
}

/// Why a call was stopped. Names the detector and the kind; never the text found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Blocked {
    pub stage: Stage,
    pub detector: Detector,
    pub kind: &'static str,
    /// Where, e.g. `messages[2]`.
    pub location: Option<String>,
}

impl Blocked {
    pub fn message(&self) -> String {
        let what = match self.detector {
            Detector::Injection => format!("a prompt injection attempt ({})", self.kind),
            Detector::Secrets => format!("a secret ({})", self.kind),
            Detector::Custom => format!("a denied term or pattern ({})", self.kind),
            d => format!("personal data ({d})"),
        };
        let at = self
            .location
            .as_deref()
            .map(|l| format!(" in {l}"))
            .unwrap_or_default();
        match self.stage {
            Stage::Input => format!(
                "the request was blocked by the gateway's firewall: it contains {what}{at}; remove it, or ask the gateway's operator for a policy that redacts or allows it"
            ),
            Stage::Output => {
                format!("the answer was blocked by the gateway's firewall: it contains {what}")
            }
        }
    }
}

/// Placeholders for redacted values, numbered per type and reused for the same value within a
/// call. Request values can be restored in the answer; answer values never are.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    by_value: HashMap<(Detector, String), String>,
    /// placeholder → (original, restorable).
    originals: HashMap<String, (String, bool)>,
    next: [u32; Detector::ALL.len()],
}

impl Placeholders {
    fn name(&mut self, d: Detector, original: &str, restorable: bool) -> String {
        if let Some(p) = self.by_value.get(&(d, original.to_owned())) {
            return p.clone();
        }
        let n = &mut self.next[d.index()];
        *n += 1;
        let p = format!("[{}_{n}]", d.tag());
        self.by_value.insert((d, original.to_owned()), p.clone());
        self.originals
            .insert(p.clone(), (original.to_owned(), restorable));
        p
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// The original behind a restorable placeholder.
    fn original(&self, placeholder: &str) -> Option<&str> {
        self.originals
            .get(placeholder)
            .filter(|(_, r)| *r)
            .map(|(o, _)| o.as_str())
    }

    /// Every restorable placeholder in `text` replaced by its original.
    pub fn restore<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = placeholder_spans(text);
        if spans.is_empty() || self.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for r in spans {
            if let Some(o) = self.original(&text[r.clone()]) {
                out.push_str(&text[last..r.start]);
                out.push_str(o);
                last = r.end;
            }
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
}

/// `[TAG_n]` spans.
fn placeholder_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find('[') {
        let start = i + off;
        let mut j = start + 1;
        while j < b.len() && (b[j].is_ascii_uppercase() || b[j] == b'_') {
            j += 1;
        }
        let digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j < b.len() && b[j] == b']' && digits > start + 2 && b[digits - 1] == b'_' && j > digits
        {
            out.push(start..j + 1);
            i = j + 1;
        } else {
            i = start + 1;
        }
    }
    out
}

/// Where a placeholder may be starting at the end of `text` (an unclosed `[TAG_…`).
fn open_placeholder(text: &str) -> Option<usize> {
    let from = text.len().saturating_sub(24);
    let i = text[..].rfind('[').filter(|i| *i >= from)?;
    text[i + 1..]
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        .then_some(i)
}

/// Screens one whole text. Returns the text as it should go on (`None`: unchanged), or why the
/// call must stop. `injection` says whether the injection rules apply to this text (user turns
/// and tool results).
pub fn screen_text(
    scanner: &Scanner,
    text: &str,
    actions: &Actions,
    stage: Stage,
    injection: bool,
    placeholders: &mut Placeholders,
    verdicts: &mut Verdicts,
) -> Result<Option<String>, Blocked> {
    let mut findings = if actions.any_pattern() {
        scanner.find(text)
    } else {
        Vec::new()
    };
    findings.retain(|f| actions.get(f.detector) != Action::Off);
    let mut signs = Vec::new();
    if injection && actions.get(Detector::Injection) != Action::Off {
        signs = scanner.injection(text);
    }
    decide(&findings, &signs, actions, stage, verdicts)?;
    if !findings
        .iter()
        .any(|f| actions.get(f.detector) == Action::Redact)
    {
        return Ok(None);
    }
    let restorable = stage == Stage::Input;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in &findings {
        if actions.get(f.detector) == Action::Redact {
            out.push_str(&text[last..f.range.start]);
            out.push_str(&placeholders.name(f.detector, &text[f.range.clone()], restorable));
            last = f.range.end;
        }
    }
    out.push_str(&text[last..]);
    Ok(Some(out))
}

/// Records the verdicts of `findings` (and injection `signs`), or the first block.
fn decide(
    findings: &[Finding],
    signs: &[Finding],
    actions: &Actions,
    stage: Stage,
    verdicts: &mut Verdicts,
) -> Result<(), Blocked> {
    for f in findings.iter().chain(signs) {
        let mut action = actions.get(f.detector);
        // Injection signs cannot be cut out meaningfully; a policy that says redact flags them.
        if f.detector == Detector::Injection && action == Action::Redact {
            action = Action::Flag;
        }
        verdicts.add(stage, f, action);
        if action == Action::Block {
            return Err(Blocked {
                stage,
                detector: f.detector,
                kind: f.kind,
                location: None,
            });
        }
    }
    Ok(())
}

/// Screens an answer as it streams, per choice.
pub struct StreamScreen {
    scanner: Arc<Scanner>,
    actions: Actions,
    placeholders: Placeholders,
    restore: bool,
    hold_max: usize,
    /// For the scanner's DFA walk; made on the first delta (a whole answer never needs it).
    cache: Option<Cache>,
    choices: Vec<(u32, Held)>,
}

#[derive(Default)]
struct Held {
    /// Text not yet let go.
    text: String,
    /// The end of what was let go, for the patterns' look-behind (`\b`).
    context: String,
}

/// Bytes of released text kept as look-behind context.
const CONTEXT: usize = 16;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl StreamScreen {
    /// `placeholders`: the request's, when its redactions are to be restored in the answer
    /// (`restore`), and so that the answer's own placeholders are numbered after them.
    pub fn new(
        scanner: Arc<Scanner>,
        actions: Actions,
        placeholders: Placeholders,
        restore: bool,
        hold_max: usize,
    ) -> Self {
        Self {
            scanner,
            actions,
            placeholders,
            restore,
            hold_max: hold_max.max(64),
            cache: None,
            choices: Vec::new(),
        }
    }

    /// Whether the screen changes or checks anything at all.
    pub fn is_active(&self) -> bool {
        self.actions.any_pattern() || (self.restore && !self.placeholders.is_empty())
    }

    fn held(&mut self, choice: u32) -> usize {
        match self.choices.iter().position(|(c, _)| *c == choice) {
            Some(i) => i,
            None => {
                self.choices.push((choice, Held::default()));
                self.choices.len() - 1
            }
        }
    }

    /// Takes a delta of choice `choice`; returns the text that may go to the caller now.
    pub fn push(
        &mut self,
        choice: u32,
        delta: &str,
        verdicts: &mut Verdicts,
    ) -> Result<String, Blocked> {
        let i = self.held(choice);
        self.choices[i].1.text.push_str(delta);
        self.release(i, false, verdicts)
    }

    /// A whole answer's text, screened as a stream would be (for answers that are not
    /// streamed): released at once, so nothing is held.
    pub fn whole(
        &mut self,
        choice: u32,
        text: &str,
        verdicts: &mut Verdicts,
    ) -> Result<String, Blocked> {
        let i = self.held(choice);
        self.choices[i].1.text.push_str(text);
        self.release(i, true, verdicts)
    }

    /// The end of choice `choice`: everything still held, screened.
    pub fn finish(&mut self, choice: u32, verdicts: &mut Verdicts) -> Result<String, Blocked> {
        let i = self.held(choice);
        self.release(i, true, verdicts)
    }

    /// Choices with text still held (for a stream that ended without finishing them).
    pub fn pending(&self) -> Vec<u32> {
        self.choices
            .iter()
            .filter(|(_, h)| !h.text.is_empty())
            .map(|(c, _)| *c)
            .collect()
    }

    fn release(&mut self, i: usize, all: bool, verdicts: &mut Verdicts) -> Result<String, Blocked> {
        let held = &self.choices[i].1;
        if held.text.is_empty() {
            return Ok(String::new());
        }
        let hay = format!("{}{}", held.context, held.text);
        let offset = held.context.len();
        let patterns = self.actions.any_pattern();
        let mut findings = if patterns {
            self.scanner.find(&hay)
        } else {
            Vec::new()
        };
        findings.retain(|f| f.range.start >= offset && self.actions.get(f.detector) != Action::Off);
        // How far the text may go: not into a pattern that may still be matching, nor into a
        // placeholder still arriving, nor through a finding.
        let mut safe = hay.len();
        if !all {
            if patterns {
                let cache = self
                    .cache
                    .get_or_insert_with(|| self.scanner.stream_cache());
                let mut at = offset;
                while at < hay.len() {
                    if self.scanner.may_continue(cache, &hay, at) {
                        safe = at;
                        break;
                    }
                    at += hay[at..].chars().next().map_or(1, char::len_utf8);
                }
            }
            if self.restore
                && let Some(p) = open_placeholder(&hay[offset..])
            {
                safe = safe.min(offset + p);
            }
            if hay.len() - safe > self.hold_max {
                safe = floor_boundary(&hay, hay.len() - self.hold_max).max(offset);
            }
            for f in &findings {
                if f.range.start < safe && safe < f.range.end {
                    safe = f.range.start;
                }
            }
        }
        findings.retain(|f| f.range.end <= safe);
        decide(&findings, &[], &self.actions, Stage::Output, verdicts)?;
        // Build what goes: findings acted on, request placeholders restored.
        let region = &hay[offset..safe];
        let mut out = String::with_capacity(region.len());
        let mut last = offset;
        let mut spans: Vec<(std::ops::Range<usize>, Option<Detector>)> = findings
            .iter()
            .filter(|f| self.actions.get(f.detector) == Action::Redact)
            .map(|f| (f.range.clone(), Some(f.detector)))
            .collect();
        if self.restore {
            for r in placeholder_spans(region) {
                let r = r.start + offset..r.end + offset;
                if !spans
                    .iter()
                    .any(|(s, _)| s.start < r.end && r.start < s.end)
                {
                    spans.push((r, None));
                }
            }
            spans.sort_by_key(|(r, _)| r.start);
        }
        for (r, d) in spans {
            out.push_str(&hay[last..r.start]);
            let text = &hay[r.clone()];
            match d {
                Some(d) => out.push_str(&self.placeholders.name(d, text, false)),
                None => out.push_str(self.placeholders.original(text).unwrap_or(text)),
            }
            last = r.end;
        }
        out.push_str(&hay[last..safe]);
        let context_from = floor_boundary(&hay, safe.saturating_sub(CONTEXT));
        let held = &mut self.choices[i].1;
        held.context = hay[context_from..safe].to_owned();
        held.text = hay[safe..].to_owned();
        Ok(out)
    }
}
