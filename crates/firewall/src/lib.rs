//! The AI firewall's detectors and screens.
//!
//! - [`detector`]: what is looked for (injection, secrets, personal data, custom terms).
//! - [`patterns`] and [`injection`]: the built-in rules and the checks behind them.
//! - [`scanner`]: the rules compiled once per configuration.
//! - [`classifier`]: the injection classifier, a linear model over sentence embeddings.
//! - [`policy`]: an action per detector (`off`, `flag`, `redact`, `block`), for requests and
//!   answers.
//! - [`screen`]: whole texts and streams screened under a policy, with typed placeholders
//!   (`[EMAIL_1]`) that can be restored in the answer, and verdicts for the log.
//!
//! Pure: no IO. The gateway applies it to canonical requests and answers.

pub mod classifier;
pub mod detector;
pub mod injection;
pub mod patterns;
pub mod policy;
pub mod scanner;
pub mod screen;

pub use classifier::{Classifier, Training};
pub use detector::{Detector, Finding};
pub use policy::{Action, Actions, Policy, Stage};
pub use scanner::{Custom, Scanner, ScannerError};
pub use screen::{Blocked, Placeholders, StreamScreen, Verdict, Verdicts, screen_text};

#[cfg(test)]
mod tests;
