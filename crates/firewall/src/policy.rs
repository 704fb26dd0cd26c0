//! What to do about what is found: an action per detector, for requests and for answers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::detector::Detector;

/// In order of severity.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not looked for.
    #[default]
    Off,
    /// Logged; the text passes unchanged.
    Flag,
    /// Replaced by a typed placeholder (`[EMAIL_1]`).
    Redact,
    /// The call is refused (403), or a stream ends with an error event.
    Block,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "flag" => Some(Self::Flag),
            "redact" => Some(Self::Redact),
            "block" => Some(Self::Block),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Flag => "flag",
            Self::Redact => "redact",
            Self::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action for each detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions([Action; Detector::ALL.len()]);

impl Actions {
    pub fn get(&self, d: Detector) -> Action {
        self.0[d.index()]
    }

    pub fn set(&mut self, d: Detector, a: Action) {
        self.0[d.index()] = a;
    }

    /// Whether any detector is on.
    pub fn any(&self) -> bool {
        self.0.iter().any(|a| *a != Action::Off)
    }

    /// Whether any detector other than injection is on (injection is read in whole requests
    /// only).
    pub fn any_pattern(&self) -> bool {
        Detector::ALL
            .iter()
            .any(|d| *d != Detector::Injection && self.get(*d) != Action::Off)
    }
}

/// Where in the call a finding was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The request, before it goes to a provider.
    Input,
    /// The answer, before it reaches the caller.
    Output,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// A named set of actions for requests and answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub name: String,
    pub input: Actions,
    pub output: Actions,
    /// Put the originals of redacted request values back into the answer, so the caller sees
    /// them and the provider never does.
    pub restore: bool,
}

impl Policy {
    pub fn actions(&self, stage: Stage) -> &Actions {
        match stage {
            Stage::Input => &self.input,
            Stage::Output => &self.output,
        }
    }
}
