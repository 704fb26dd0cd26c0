//! The built-in patterns of the secrets and personal-data detectors, each with the check a
//! candidate must pass (Luhn for cards, ISO 13616 for IBANs, entropy for generic secrets…).
//!
//! Patterns use ASCII word boundaries (`(?-u:\b)`), so that the stream screen's lazy DFA can run
//! them over any text without giving up on non-ASCII bytes. When a pattern has a capture group,
//! the finding is the group (the value of `password = …`, not the name).

use crate::detector::Detector;

/// What a candidate must satisfy beyond its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    None,
    /// Card numbers: 13–19 digits, a known issuer prefix, the Luhn checksum.
    Card,
    /// IBAN: country length and the mod-97 check.
    Iban,
    /// US Social Security numbers: no 000/666/9xx area, no 00 group, no 0000 serial.
    Ssn,
    /// Phone numbers: 8 to 15 digits.
    Phone,
    /// An IPv6 address that parses.
    Ipv6,
    /// An e-mail address whose domain does not end in a file extension (`logo@2x.png`).
    Email,
    /// Looks random: mixed character classes and Shannon entropy ≥ 3.5 bits per character.
    Entropy,
    /// A standalone token: upper, lower and digits, entropy ≥ 4.2 bits per character.
    HighEntropy,
}

pub struct Pattern {
    pub detector: Detector,
    pub kind: &'static str,
    pub regex: &'static str,
    pub check: Check,
}

const fn p(detector: Detector, kind: &'static str, regex: &'static str, check: Check) -> Pattern {
    Pattern {
        detector,
        kind,
        regex,
        check,
    }
}

use Check as C;
use Detector::{Card, Email, Iban, IpAddress, NationalId, Phone, Secrets};

/// In priority order: where two patterns match at the same place, the first wins.
pub const BUILT_IN: &[Pattern] = &[
    // Secrets with a known shape.
    p(
        Secrets,
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s:,\-]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
        C::None,
    ),
    p(
        Secrets,
        "anthropic_key",
        r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "switchyard_key",
        r"(?-u:\b)sk-sy-[A-Za-z0-9]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "openai_key",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "stripe_key",
        r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}(?-u:\b)",
        C::None,
    ),
    p(
        Secrets,
        "aws_secret_key",
        r#"(?i:aws_?secret_?(?:access_?)?key)["']?\s*[:=]\s*["']{0,2}([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        C::None,
    ),
    p(
        Secrets,
        "google_api_key",
        r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}",
        C::None,
    ),
    p(
        Secrets,
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})",
        C::None,
    ),
    p(
        Secrets,
        "gitlab_token",
        r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "slack_token",
        r"(?-u:\b)xox[abposr]-[A-Za-z0-9\-]{10,}",
        C::None,
    ),
    p(
        Secrets,
        "slack_webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}",
        C::None,
    ),
    p(
        Secrets,
        "groq_key",
        r"(?-u:\b)gsk_[A-Za-z0-9]{40,}",
        C::None,
    ),
    p(Secrets, "xai_key", r"(?-u:\b)xai-[A-Za-z0-9]{40,}", C::None),
    p(
        Secrets,
        "huggingface_token",
        r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
        C::None,
    ),
    p(
        Secrets,
        "npm_token",
        r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)",
        C::None,
    ),
    p(
        Secrets,
        "pypi_token",
        r"(?-u:\b)pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{40,}",
        C::None,
    ),
    p(
        Secrets,
        "sendgrid_key",
        r"(?-u:\b)SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        C::None,
    ),
    p(
        Secrets,
        "azure_storage_key",
        r"AccountKey=([A-Za-z0-9+/]{80,}={0,2})",
        C::None,
    ),
    p(
        Secrets,
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        C::None,
    ),
    p(
        Secrets,
        "url_password",
        r"(?-u:\b)(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|https?|ftp)://[A-Za-z0-9._%\-]+:([^\s@/]{3,})@",
        C::None,
    ),
    p(
        Secrets,
        "assigned_secret",
        r#"(?i:api[_\-]?key|apikey|secret(?:[_\-]?key)?|access[_\-]?token|auth[_\-]?token|token|passw(?:or)?d|pwd|client[_\-]?secret|private[_\-]?key)["']?\s*(?:[:=]|=>)\s*["']{0,2}([A-Za-z0-9_\-+/=.!@#$%^&*]{12,})"#,
        C::Entropy,
    ),
    p(
        Secrets,
        "high_entropy",
        r"(?-u:\b)[A-Za-z0-9_\-+/]{32,128}={0,2}(?-u:\b)",
        C::HighEntropy,
    ),
    // Personal data.
    p(
        Email,
        "email",
        r"(?-u:\b)[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}(?-u:\b)",
        C::Email,
    ),
    p(
        Iban,
        "iban",
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?-u:\b)",
        C::Iban,
    ),
    p(
        Card,
        "card",
        r"(?-u:\b)[0-9](?:[ \-]?[0-9]){12,18}(?-u:\b)",
        C::Card,
    ),
    p(
        NationalId,
        "us_ssn",
        r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
        C::Ssn,
    ),
    p(
        NationalId,
        "uk_nino",
        r"(?-u:\b)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?-u:\b)",
        C::None,
    ),
    p(
        Phone,
        "phone",
        r"\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,4}\)?){2,5}(?-u:\b)",
        C::Phone,
    ),
    p(
        Phone,
        "phone",
        r"(?:\(|(?-u:\b))[2-9][0-9]{2}\)?[ .\-][2-9][0-9]{2}[ .\-][0-9]{4}(?-u:\b)",
        C::Phone,
    ),
    p(
        IpAddress,
        "ipv4",
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)",
        C::None,
    ),
    p(
        IpAddress,
        "ipv6",
        r"(?-u:\b)(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?-u:\b)|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?",
        C::Ipv6,
    ),
];

impl Check {
    /// Whether `candidate` (the finding's text) passes.
    pub fn passes(self, candidate: &str) -> bool {
        match self {
            Self::None => true,
            Self::Card => card(candidate),
            Self::Iban => iban(candidate),
            Self::Ssn => ssn(candidate),
            Self::Phone => {
                let n = candidate.bytes().filter(u8::is_ascii_digit).count();
                (8..=15).contains(&n) || (n == 10 && !candidate.starts_with('+'))
            }
            Self::Email => {
                let tld = candidate.rsplit('.').next().unwrap_or_default();
                !FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str())
            }
            Self::Ipv6 => {
                candidate.parse::<std::net::Ipv6Addr>().is_ok()
                    && candidate.matches(':').count() >= 2
            }
            Self::Entropy => {
                classes(candidate) >= 2 && entropy(candidate) >= 3.0 && !is_placeholder(candidate)
            }
            Self::HighEntropy => {
                let c = candidate.trim_end_matches('=');
                has_upper_lower_digit(c) && entropy(c) >= 4.2
            }
        }
    }
}

/// Endings of file names that look like e-mail domains in `icon@2x.png`.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf", "txt", "js",
    "css", "html", "json", "map",
];

/// `[EMAIL_1]`-like or `${VAR}`-like values are references, not secrets.
fn is_placeholder(s: &str) -> bool {
    s.starts_with('$') || s.starts_with('<') || s.chars().all(|c| c == '*' || c == 'x' || c == 'X')
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn card(s: &str) -> bool {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if !(13..=19).contains(&digits.len()) || !luhn(&digits) {
        return false;
    }
    // Separators, when present, must be consistent (all spaces or all dashes).
    if s.contains(' ') && s.contains('-') {
        return false;
    }
    let prefix = |n: usize| {
        digits[..n]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    let len = digits.len();
    match p1 {
        // Visa.
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard (51–55, 2221–2720).
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        // Amex (34, 37), Diners (300–305, 36, 38, 39), JCB (3528–3589).
        3 => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&len))
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        }
        // Discover (6011, 644–649, 65, 622126–622925), UnionPay (62), Maestro (6304, 67…).
        6 => {
            (p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || (622_126..=622_925).contains(&p6)
                || p2 == 62
                || p4 == 6304
                || p2 == 67)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// Lengths of IBANs by country (ISO 13616 registry, the common ones).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VG", 24),
    ("XK", 20),
];

fn iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = s.get(..2) else {
        return false;
    };
    let Some((_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != *len {
        return false;
    }
    // Move the first four characters to the end, letters to 10..35, then mod 97 == 1.
    let mut rem = 0u32;
    for b in compact[4..].iter().chain(&compact[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, group, serial] = parts[..] else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn classes(s: &str) -> usize {
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let other = s.bytes().any(|b| !b.is_ascii_alphanumeric());
    [lower, upper, digit, other]
        .into_iter()
        .filter(|x| *x)
        .count()
}

fn has_upper_lower_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_lowercase())
        && s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_digit())
}

/// Shannon entropy of the bytes, in bits per byte.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_typos() {
        for good in [
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "340000000000009",
            "6011000990139424",
            "2223003122003222",
        ] {
            assert!(card(good), "{good}");
        }
        for bad in [
            "4111 1111 1111 1112",
            "1234 5678 9012 3456",
            "4111-1111 1111-1111",
            "0000000000000000",
        ] {
            assert!(!card(bad), "{bad}");
        }
    }

    #[test]
    fn iban_check_digits() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("DE89 3704 0044 0532 0130 01"));
        assert!(!iban("XX89 3704 0044 0532 0130 00"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn("123-45-6789"));
        for bad in ["000-45-6789", "666-45-6789", "923-45-6789", "123-45-0000"] {
            assert!(!ssn(bad), "{bad}");
        }
        assert!(!ssn("123-00-6789"));
    }

    #[test]
    fn entropy_separates_random_tokens_from_words() {
        assert!(Check::HighEntropy.passes("Zx8pQ2vR7mK1nL5tY9wB3cF6hJ0dG4sA"));
        assert!(!Check::HighEntropy.passes("this_is_a_very_long_identifier_name_in_code"));
        assert!(!Check::HighEntropy.passes("0123456789abcdef0123456789abcdef"));
    }
}
