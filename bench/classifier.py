#!/usr/bin/env python3
"""Firewall benchmark: what the injection classifier adds to a screened call.

Starts `switchyard mock` and two gateways (release build) in front of it, both screening
requests for injection with the rules (`injection = "flag"`, so every call is answered), one of
them with `[firewall] classifier = true`, which also embeds the call's new user turn with the
local all-MiniLM-L6-v2 model. Sends --requests sequential plain calls to each, interleaved, with
a different user turn of about 20 words each time (the classifier embeds every new turn), and
prints latency percentiles and their ratio, measured in one run. Bounded by --requests.

Needs the local model: --model-dir (default ~/.cache/switchyard/models-home/models/all-minilm-l6-v2,
where .ci/run installs it), or `switchyard models pull all-minilm-l6-v2`.

    python3 bench/classifier.py --requests 200
"""

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, start, up_provider  # noqa: E402

POLICY = """
[firewall.policies.default]
input = { injection = "flag" }
"""


def call(url, text):
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    body = json.dumps({"model": "up/echo", "messages": [{"role": "user", "content": text}]})
    start_t = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    conn.close()
    return time.perf_counter() - start_t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def gateway(binary, mock_url, model_dir, classifier):
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    models = work / "data/models/all-minilm-l6-v2"
    models.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "model.safetensors"):
        (models / f).symlink_to(Path(model_dir) / f)
    cfg = work / "switchyard.toml"
    head = "[firewall]\nclassifier = true\n" if classifier else "[firewall]\n"
    cfg.write_text(up_provider(mock_url) + head + POLICY)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "SWITCHYARD_LOG": "warn"}
    proc, url = start([binary, "serve", "--listen", "127.0.0.1:0", "--config", str(cfg), "--data-dir", str(work / "data")], env)
    return proc, url, work


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    ap.add_argument("--model-dir", default=str(Path.home() / ".cache/switchyard/models-home/models/all-minilm-l6-v2"))
    a = ap.parse_args()
    if not (Path(a.model_dir) / "model.safetensors").exists():
        sys.exit(f"no model in {a.model_dir}: run `switchyard models pull all-minilm-l6-v2`")

    binary = a.binary or build()
    mock, mock_url = start([binary, "mock", "--listen", "127.0.0.1:0"])
    rules, rules_url, w1 = gateway(binary, mock_url, a.model_dir, False)
    both, both_url, w2 = gateway(binary, mock_url, a.model_dir, True)
    got = {"rules": [], "rules + classifier": []}
    try:
        for url in (rules_url, both_url):
            call(url, "warm up the model and the connections")
        log(f"{a.requests} calls per gateway...")
        for i in range(a.requests):
            text = f"Request {i}: please summarise the attached quarterly report in three short bullet points for the board meeting."
            got["rules"].append(call(rules_url, text))
            got["rules + classifier"].append(call(both_url, text))
    finally:
        for p in (rules, both, mock):
            p.terminate()
            p.wait(10)
        shutil.rmtree(w1, ignore_errors=True)
        shutil.rmtree(w2, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores shared by mock, gateways and client; {a.requests} sequential calls each")
    print("| screening | p50 (ms) | p99 (ms) | p50 ÷ rules |")
    print("|---|---|---|---|")
    base = pct(got["rules"], 50)
    for name, xs in got.items():
        print(f"| {name} | {pct(xs, 50) * 1e3:.2f} | {pct(xs, 99) * 1e3:.2f} | {pct(xs, 50) / base:.2f} |")


if __name__ == "__main__":
    main()
