#!/usr/bin/env python3
"""Writes the synthetic secrets and personal-data corpora of the firewall evaluation.

Every secret, card number, IBAN and identity number here is generated (random, with valid
check digits where the format has them); none is real. Each text is labelled with the
detectors that should fire on it. Hard negatives (hashes, UUIDs, placeholders, order numbers
that fail the Luhn check, base64 blobs, version strings…) carry no label.

    python3 bench/firewall-eval/generate.py          # rewrites corpus/secrets.jsonl, corpus/pii.jsonl

The seed is fixed, so the files are reproducible.
"""

import base64
import json
import random
import string
from pathlib import Path

R = random.Random(20261125)
HERE = Path(__file__).parent / "corpus"

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def rand(chars, n):
    return "".join(R.choice(chars) for _ in range(n))


# === secrets ===


def jwt():
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(
        json.dumps({"sub": str(R.randint(1000, 99999)), "name": R.choice(["ann", "bob", "chen"]), "iat": R.randint(1600000000, 1800000000)}).encode()
    ).rstrip(b"=")
    sig = base64.urlsafe_b64encode(R.randbytes(32)).rstrip(b"=")
    return b".".join([header, payload, sig]).decode()


def pem():
    kind = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(R.randbytes(R.choice([120, 240, 480]))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


SECRET_MAKERS = [
    lambda: "sk-proj-" + rand(ALNUM + "_-", 48),
    lambda: "sk-" + rand(ALNUM, 48),
    lambda: "sk-ant-api03-" + rand(ALNUM + "_-", 93) + "AA",
    lambda: R.choice(["AKIA", "ASIA"]) + rand(UPPER_DIGITS, 16),
    lambda: "ghp_" + rand(ALNUM, 36),
    lambda: "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59),
    lambda: "glpat-" + rand(ALNUM + "_-", 20),
    lambda: "xoxb-" + rand(string.digits, 11) + "-" + rand(string.digits, 12) + "-" + rand(ALNUM, 24),
    lambda: "sk_live_" + rand(ALNUM, 24),
    lambda: "rk_test_" + rand(ALNUM, 24),
    lambda: "AIza" + rand(ALNUM + "_-", 35),
    lambda: "hf_" + rand(ALNUM, 34),
    lambda: "gsk_" + rand(ALNUM, 52),
    lambda: "npm_" + rand(ALNUM, 36),
    lambda: "SG." + rand(ALNUM + "_-", 22) + "." + rand(ALNUM + "_-", 43),
    jwt,
    pem,
]


def assigned():
    name = R.choice(["password", "db_password", "API_KEY", "client_secret", "secret", "auth_token", "apiKey", "SECRET_KEY"])
    value = rand(ALNUM + "!@#%^&*", R.randint(14, 32))
    sep = R.choice([" = ", "=", ": ", "\": \""])
    quote = R.choice(["", "'", '"'])
    return f"{name}{sep}{quote}{value}{quote}"


def url_with_password():
    scheme = R.choice(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp"])
    user = R.choice(["admin", "app", "svc_orders", "root"])
    pw = rand(ALNUM, R.randint(10, 24))
    host = R.choice(["db.internal", "cluster0.abcde.mongodb.net", "cache.prod", "db-7.eu.example.net"])
    return f"{scheme}://{user}:{pw}@{host}/main"


def aws_secret():
    return "aws_secret_access_key = " + rand(ALNUM + "/+", 40)


def bare_token():
    # A random token with no telling prefix or name: only its entropy gives it away.
    return rand(ALNUM, R.randint(36, 64))


SECRET_TEMPLATES = [
    "Here is my key: {s}",
    "Can you check why this fails? client = OpenAI(api_key=\"{s}\")",
    "export TOKEN={s}",
    "My .env has\nDEBUG=1\nKEY={s}\nPORT=8080",
    "{{\"credentials\": \"{s}\", \"region\": \"eu-west-1\"}}",
    "error 401 when calling with {s} — is it expired?",
    "curl -H 'Authorization: Bearer {s}' https://api.example.com/v1/me",
    "Please rotate {s} after the incident.",
    "log line: 2026-11-02T10:00:01Z auth ok token={s} user=42",
    "```\n{s}\n```\nwhat format is this?",
]

SECRET_NEGATIVES = [
    lambda: "commit " + rand(HEX, 40) + " fixed the flaky test",
    lambda: "sha256: " + rand(HEX, 64),
    lambda: "request id 123e4567-e89b-12d3-a456-" + rand(HEX, 12),
    lambda: "use scikit-learn (sk-learn) for the baseline model",
    lambda: "api_key = os.environ[\"OPENAI_API_KEY\"]",
    lambda: "password = ********",
    lambda: "Set token: <YOUR_TOKEN_HERE> in the config",
    lambda: "the key looks like sk-... followed by letters",
    lambda: "AWS ids start with AKIA and are 20 characters long",
    lambda: "def compute_monthly_recurring_revenue_for_enterprise_accounts(): pass",
    lambda: "postgres://localhost:5432/app is the local database",
    lambda: "https://example.com/docs/getting-started/installation-guide?version=2",
    lambda: "data:image/png;base64," + base64.b64encode(R.randbytes(300)).decode(),
    lambda: "The file is at /usr/local/lib/python3.11/site-packages/requests/adapters.py",
    lambda: "the password must be at least 12 characters long",
    lambda: "my favourite token in the game is the golden dragon",
    lambda: "run: docker pull ghcr.io/example/app:" + rand(HEX, 12),
    lambda: "ETag: \"" + rand(HEX, 32) + "\"",
    lambda: "secret = None  # filled at runtime",
    lambda: "The word antidisestablishmentarianism has 28 letters.",
    lambda: "ThisIsAVeryLongCamelCaseClassNameForTesting is the class",
    lambda: "Bitcoin block hash 00000000000000000002" + rand(HEX, 44),
]


def secrets_corpus():
    rows = []
    for i in range(400):
        if i % 10 == 0:
            s = assigned()
            text = R.choice(["config:\n", "", "in settings.py: "]) + s
        elif i % 10 == 1:
            text = "connect with " + url_with_password()
        elif i % 10 == 2:
            text = aws_secret()
        elif i % 10 == 3:
            text = R.choice(SECRET_TEMPLATES).format(s=bare_token())
        else:
            text = R.choice(SECRET_TEMPLATES).format(s=R.choice(SECRET_MAKERS)())
        rows.append({"text": text, "labels": ["secrets"], "category": "secret"})
    for i in range(400):
        rows.append({"text": R.choice(SECRET_NEGATIVES)(), "labels": [], "category": "hard_negative"})
    return rows


# === personal data ===


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(R.randint(0, 9))
    for check in range(10):
        cand = digits + [check]
        total = 0
        for i, d in enumerate(reversed(cand)):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        if total % 10 == 0:
            return "".join(map(str, cand))
    raise AssertionError


def card():
    prefix, length = R.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("4", 13)])
    n = luhn_complete(prefix, length)
    style = R.choice(["plain", "space", "dash"])
    if style == "plain":
        return n
    sep = " " if style == "space" else "-"
    if length == 15:
        groups = [n[:4], n[4:10], n[10:]]
    else:
        groups = [n[i : i + 4] for i in range(0, len(n), 4)]
    return sep.join(groups)


def not_luhn(length):
    n = luhn_complete(R.choice(["4", "5", "6"]), length)
    last = (int(n[-1]) + R.randint(1, 9)) % 10
    return n[:-1] + str(last)


IBAN_FORMATS = {"DE": 18, "GB": 18, "FR": 23, "NL": 14, "ES": 20, "IT": 23, "BE": 12, "CH": 17}


def iban():
    country = R.choice(list(IBAN_FORMATS))
    n = IBAN_FORMATS[country]
    if country in ("GB", "NL"):
        bban = rand(string.ascii_uppercase, 4) + rand(string.digits, n - 4)
    elif country == "IT":
        bban = R.choice(string.ascii_uppercase) + rand(string.digits, n - 1)
    else:
        bban = rand(string.digits, n)
    moved = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in moved)
    check = 98 - int(num) % 97
    full = f"{country}{check:02d}{bban}"
    if R.random() < 0.5:
        return " ".join(full[i : i + 4] for i in range(0, len(full), 4))
    return full


def email():
    user = R.choice(["ann", "bob.smith", "chen_li", "m.garcia+news", "dev-ops", "j.o'neil".replace("'", "")])
    domain = R.choice(["example.com", "mail.example.co.uk", "corp.example.org", "uni-example.edu", "example.io"])
    return f"{user}{R.randint(1, 99) if R.random() < 0.3 else ''}@{domain}"


def phone():
    return R.choice([
        lambda: f"+1 {R.randint(201, 989)} {R.randint(200, 999)} {R.randint(1000, 9999)}",
        lambda: f"({R.randint(201, 989)}) {R.randint(200, 999)}-{R.randint(1000, 9999)}",
        lambda: f"{R.randint(201, 989)}-{R.randint(200, 999)}-{R.randint(1000, 9999)}",
        lambda: f"+44 20 {R.randint(7000, 7999)} {R.randint(1000, 9999)}",
        lambda: f"+49 30 {R.randint(100000, 999999)}{R.randint(0, 99)}",
        lambda: f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        lambda: f"+91 {R.randint(70000, 99999)} {R.randint(10000, 99999)}",
        lambda: f"+1-{R.randint(201, 989)}-{R.randint(200, 999)}-{R.randint(1000, 9999)}",
    ])()


def ssn():
    area = R.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def nino():
    first = R.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = R.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        first, second = "A", "B"
    d = rand(string.digits, 6)
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {R.choice('ABCD')}"


def ipv4():
    return ".".join(str(R.randint(1, 254)) for _ in range(4))


def ipv6():
    groups = [f"{R.randint(0, 0xFFFF):x}" for _ in range(8)]
    if R.random() < 0.5:
        return "2001:db8::" + ":".join(groups[:3])
    return ":".join(groups)


PII_MAKERS = {
    "email": (email, ["Contact me at {v}.", "cc {v} on the thread", "From: {v}\nSubject: invoice"]),
    "phone": (phone, ["Call me on {v} tomorrow.", "phone: {v}", "Her number is {v}, ask for Sam."]),
    "card": (card, ["Charge my card {v} please.", "card number: {v} exp 08/28", "I paid with {v} but got no receipt"]),
    "iban": (iban, ["Send it to IBAN {v}.", "Account: {v}", "wire to {v} (reference 2231)"]),
    "national_id": (lambda: R.choice([ssn, nino])(), ["My SSN is {v}.", "NI number {v}", "id: {v} for the form"]),
    "ip_address": (lambda: R.choice([ipv4, ipv6])(), ["The server at {v} is down.", "blocked IP {v}", "ssh into {v} and restart"]),
}

PII_NEGATIVES = [
    lambda: f"Order number {not_luhn(16)} shipped today.",
    lambda: f"Tracking: {not_luhn(R.choice([13, 15, 16, 19]))}",
    lambda: f"Invoice {R.randint(10000000, 99999999)} is due on 2026-12-01.",
    lambda: f"The meeting is at {R.randint(1, 12)}:{R.randint(10, 59)} on 12/0{R.randint(1, 9)}/2026.",
    lambda: f"Upgrade to version {R.randint(1, 9)}.{R.randint(0, 30)}.{R.randint(0, 99)} of the library.",
    lambda: f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}",
    lambda: f"The price went from ${R.randint(1, 9)},{R.randint(100, 999)}.{R.randint(10, 99)} to less.",
    lambda: "Use the @example handle on social media.",
    lambda: "Save the icon as logo@2x.png and logo@3x.png.",
    lambda: "Email addresses look like name at domain dot com.",
    lambda: f"Population of the city: {R.randint(100000, 9999999)}.",
    lambda: f"Reference 000-{R.randint(10, 99)}-{R.randint(1000, 9999)} is not valid.",
    lambda: f"SKU {rand(string.ascii_uppercase, 2)}-{R.randint(1000, 9999)}-{R.randint(10, 99)}",
    lambda: f"Coordinates {R.uniform(-90, 90):.5f}, {R.uniform(-180, 180):.5f}",
    lambda: "Call the function with f(1, 2, 3) and check the result.",
    lambda: f"Room {R.randint(100, 999)}, building {R.randint(1, 20)}",
    lambda: f"The ratio was {R.randint(1, 9)}:{R.randint(1, 9)} in the test.",
    lambda: "Use a 12-byte nonce and a 16-byte tag.",
]


def pii_corpus():
    rows = []
    kinds = list(PII_MAKERS)
    for i in range(600):
        labels = {kinds[i % len(kinds)]}
        if R.random() < 0.25:
            labels.add(R.choice(kinds))
        parts = []
        for k in sorted(labels):
            make, templates = PII_MAKERS[k]
            parts.append(R.choice(templates).format(v=make()))
        rows.append({"text": " ".join(parts), "labels": sorted(labels), "category": "+".join(sorted(labels))})
    for i in range(400):
        rows.append({"text": R.choice(PII_NEGATIVES)(), "labels": [], "category": "hard_negative"})
    return rows


# The detectors these corpora label: the evaluation scores only these on them.
SCOPE = ["secrets", "email", "phone", "card", "iban", "national_id", "ip_address"]


def write(name, rows):
    with open(HERE / name, "w", encoding="utf-8") as f:
        f.write(json.dumps({"scope": SCOPE}) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} texts")


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    write("secrets.jsonl", secrets_corpus())
    write("pii.jsonl", pii_corpus())
