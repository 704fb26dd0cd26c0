//! The `[firewall]` section: named policies (an action per detector, for requests and
//! answers), the policy every call gets, custom terms and patterns.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use switchyard_firewall::{Action, Actions, Classifier, Custom, Detector, Policy, Scanner};

use super::raw::{RawFirewall, RawFirewallPolicy};
use super::{ConfigError, err};

/// Bytes a stream screen may hold back, at most, unless configured.
const DEFAULT_HOLD_MAX: usize = 4096;

/// The name that turns the firewall off for a key or route.
pub const OFF: &str = "off";

#[derive(Clone)]
pub struct FirewallConfig {
    /// The policy of calls whose key and route name none; `None`: not screened.
    pub default: Option<String>,
    pub policies: BTreeMap<String, Arc<Policy>>,
    pub hold_max: usize,
    /// The detectors, compiled with the custom terms and patterns.
    pub scanner: Arc<Scanner>,
    /// `classifier = true`: the injection classifier, with its threshold.
    pub classifier: Option<Arc<Classifier>>,
}

impl fmt::Debug for FirewallConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirewallConfig")
            .field("default", &self.default)
            .field("policies", &self.policies)
            .field("hold_max", &self.hold_max)
            .field("classifier", &self.classifier.as_ref().map(|c| c.threshold))
            .finish_non_exhaustive()
    }
}

impl FirewallConfig {
    /// Whether `name` is a policy (or `off`).
    pub fn knows(&self, name: &str) -> bool {
        name == OFF || self.policies.contains_key(name)
    }
}

/// `None` when the file has no `[firewall]` section.
pub fn firewall(raw: Option<RawFirewall>) -> Result<Option<FirewallConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let custom = Custom {
        terms: raw.custom.terms,
        patterns: raw.custom.patterns,
    };
    let scanner = Scanner::new(&custom).map_err(|e| ConfigError(e.to_string()))?;
    let mut policies = BTreeMap::new();
    for (name, p) in raw.policies {
        if name == OFF {
            return Err(err(
                "firewall.policies.off",
                "`off` is reserved (it turns the firewall off for a key or route); choose another name",
            ));
        }
        let policy = policy(&name, p)?;
        policies.insert(name, Arc::new(policy));
    }
    let default = match raw.policy {
        Some(name) if name == OFF => None,
        Some(name) if !policies.contains_key(&name) => {
            return Err(err(
                "firewall.policy",
                format!(
                    "`{name}` is not defined; add [firewall.policies.{name}] or use one of: {}",
                    names(&policies)
                ),
            ));
        }
        Some(name) => Some(name),
        None if policies.contains_key("default") => Some("default".to_owned()),
        None => None,
    };
    let hold_max = raw.hold_max.unwrap_or(DEFAULT_HOLD_MAX);
    if hold_max < 64 {
        return Err(err(
            "firewall.hold_max",
            "must be at least 64 bytes, or patterns split across chunks could be missed",
        ));
    }
    let classifier = match (raw.classifier, raw.classifier_threshold) {
        (Some(true), threshold) => {
            let mut c = Classifier::builtin().map_err(ConfigError)?;
            if let Some(t) = threshold {
                if !(t > 0.0 && t < 1.0) {
                    return Err(err(
                        "firewall.classifier_threshold",
                        format!("{t}: give a score above 0 and below 1, e.g. 0.7"),
                    ));
                }
                c.threshold = t;
            }
            Some(Arc::new(c))
        }
        (_, Some(_)) => {
            return Err(err(
                "firewall.classifier_threshold",
                "is set but the classifier is off; add `classifier = true`",
            ));
        }
        _ => None,
    };
    Ok(Some(FirewallConfig {
        default,
        policies,
        hold_max,
        scanner: Arc::new(scanner),
        classifier,
    }))
}

fn names(policies: &BTreeMap<String, Arc<Policy>>) -> String {
    let mut v: Vec<&str> = policies.keys().map(String::as_str).collect();
    v.push(OFF);
    v.join(", ")
}

fn policy(name: &str, raw: RawFirewallPolicy) -> Result<Policy, ConfigError> {
    let key = format!("firewall.policies.{name}");
    let input = actions(&format!("{key}.input"), &raw.input, true)?;
    let output = actions(&format!("{key}.output"), &raw.output, false)?;
    Ok(Policy {
        name: name.to_owned(),
        input,
        output,
        restore: raw.restore.unwrap_or(false),
    })
}

/// `{ pii = "redact", card = "block" }`: groups (`pii`, `all`) first, then single detectors.
fn actions(key: &str, raw: &BTreeMap<String, String>, input: bool) -> Result<Actions, ConfigError> {
    let mut out = Actions::default();
    let parse = |name: &str, value: &str| {
        Action::parse(value).ok_or_else(|| {
            err(
                &format!("{key}.{name}"),
                format!("`{value}`: use block, redact, flag or off"),
            )
        })
    };
    for (name, value) in raw {
        let group: &[Detector] = match name.as_str() {
            "all" => &Detector::ALL,
            "pii" => &Detector::PII,
            _ => continue,
        };
        let action = parse(name, value)?;
        for d in group {
            match d {
                // Injection is read in requests only, and flagged where a group says redact.
                Detector::Injection if !input => {}
                Detector::Injection if action == Action::Redact => out.set(*d, Action::Flag),
                _ => out.set(*d, action),
            }
        }
    }
    for (name, value) in raw {
        if name == "all" || name == "pii" {
            continue;
        }
        let d = Detector::parse(name).ok_or_else(|| {
            err(
                &format!("{key}.{name}"),
                "unknown detector; use injection, secrets, email, phone, card, iban, national_id, ip_address, custom, or the groups pii and all".to_owned(),
            )
        })?;
        let action = parse(name, value)?;
        if d == Detector::Injection {
            if !input && action != Action::Off {
                return Err(err(
                    &format!("{key}.injection"),
                    "injection is screened in requests only; set it under input",
                ));
            }
            if action == Action::Redact {
                return Err(err(
                    &format!("{key}.injection"),
                    "an injection attempt cannot be cut out of a prompt; use block or flag",
                ));
            }
        }
        out.set(d, action);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};

    fn load(toml: &str) -> Result<Option<FirewallConfig>, String> {
        Config::from_toml(toml, &Env::default())
            .map(|c| c.firewall)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn groups_then_single_detectors() {
        let f = load(
            r#"
[firewall.policies.default]
input = { pii = "redact", card = "block", injection = "flag" }
output = { all = "flag", secrets = "block" }
restore = true
"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.default.as_deref(), Some("default"));
        let p = &f.policies["default"];
        assert_eq!(p.input.get(Detector::Email), Action::Redact);
        assert_eq!(p.input.get(Detector::Card), Action::Block);
        assert_eq!(p.input.get(Detector::Injection), Action::Flag);
        assert_eq!(p.input.get(Detector::Secrets), Action::Off);
        // `all` on answers leaves injection (requests only) off.
        assert_eq!(p.output.get(Detector::Injection), Action::Off);
        assert_eq!(p.output.get(Detector::Phone), Action::Flag);
        assert_eq!(p.output.get(Detector::Secrets), Action::Block);
        assert!(p.restore);
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        for (toml, key, hint) in [
            (
                "[firewall.policies.p]\ninput = { emails = \"block\" }",
                "firewall.policies.p.input.emails",
                "unknown detector",
            ),
            (
                "[firewall.policies.p]\ninput = { email = \"deny\" }",
                "firewall.policies.p.input.email",
                "block, redact, flag or off",
            ),
            (
                "[firewall.policies.p]\noutput = { injection = \"block\" }",
                "firewall.policies.p.output.injection",
                "requests only",
            ),
            (
                "[firewall.policies.p]\ninput = { injection = \"redact\" }",
                "firewall.policies.p.input.injection",
                "block or flag",
            ),
            (
                "[firewall]\npolicy = \"strict\"",
                "firewall.policy",
                "[firewall.policies.strict]",
            ),
            (
                "[firewall]\nclassifier_threshold = 0.8",
                "firewall.classifier_threshold",
                "add `classifier = true`",
            ),
            (
                "[firewall]\nclassifier = true\nclassifier_threshold = 1.5",
                "firewall.classifier_threshold",
                "above 0 and below 1",
            ),
            (
                "[firewall.custom]\npatterns = [\"(\"]",
                "firewall.custom.patterns[0]",
                "not a valid regular expression",
            ),
            (
                "[firewall]\n[routes.r]\ntargets = [\"mock/echo\"]\nfirewall = \"nope\"",
                "routes.r.firewall",
                "not a policy",
            ),
        ] {
            let e = load(toml).unwrap_err();
            assert!(e.contains(key) && e.contains(hint), "{toml}: {e}");
        }
    }

    #[test]
    fn no_section_no_firewall_and_off_turns_the_default_off() {
        assert!(load("").unwrap().is_none());
        let f = load(
            "[firewall]\npolicy = \"off\"\n[firewall.policies.default]\ninput = { all = \"flag\" }",
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.default, None);
        assert!(f.knows("off") && f.knows("default") && !f.knows("other"));
    }
}
