//! What the firewall looks for: the detectors, and a finding (which detector, what kind, where).

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A family of things the firewall finds. Each has its own action in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Prompt injection and jailbreak attempts (requests only).
    Injection,
    /// API keys, cloud credentials, tokens, private keys, high-entropy values assigned to names
    /// such as `password`.
    Secrets,
    Email,
    Phone,
    /// Payment card numbers (Luhn-checked, known issuer prefixes).
    Card,
    /// International bank account numbers (ISO 13616 check digits).
    Iban,
    /// National identity numbers: US SSN, UK National Insurance number.
    NationalId,
    IpAddress,
    /// Terms and regular expressions from the configuration.
    Custom,
}

impl Detector {
    pub const ALL: [Detector; 9] = [
        Self::Injection,
        Self::Secrets,
        Self::Email,
        Self::Phone,
        Self::Card,
        Self::Iban,
        Self::NationalId,
        Self::IpAddress,
        Self::Custom,
    ];

    /// The detectors `pii` stands for in a policy.
    pub const PII: [Detector; 6] = [
        Self::Email,
        Self::Phone,
        Self::Card,
        Self::Iban,
        Self::NationalId,
        Self::IpAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Injection => "injection",
            Self::Secrets => "secrets",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Card => "card",
            Self::Iban => "iban",
            Self::NationalId => "national_id",
            Self::IpAddress => "ip_address",
            Self::Custom => "custom",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The tag of the placeholders that replace what it finds: `[EMAIL_1]`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Injection => "INJECTION",
            Self::Secrets => "SECRET",
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::Card => "CARD",
            Self::Iban => "IBAN",
            Self::NationalId => "NATIONAL_ID",
            Self::IpAddress => "IP_ADDRESS",
            Self::Custom => "CUSTOM",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a detector found: what, and where in the text (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    /// Finer than the detector: `openai_key`, `aws_access_key`, `instruction_override`, `visa`…
    pub kind: &'static str,
    pub range: Range<usize>,
}
