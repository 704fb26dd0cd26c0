#!/usr/bin/env python3
"""Firewall benchmark: what screening a streamed answer costs in time to first token.

Starts `switchyard mock` and `switchyard serve` (release build) with three routes to the same
mock model (`stream-N+itl-D`: N words, D between chunks):

  plain     no firewall;
  screened  the answer screened as it streams (secrets block, personal data redacted, a custom
            term): Switchyard holds back only a possible finding in progress;
  buffered  what a gateway that buffers the whole answer before screening would show as TTFT:
            the plain stream's time to its last chunk.

For each, --requests sequential streamed calls; prints TTFT and whole-stream percentiles and
the ratios, measured in one run. Bounded by --requests.

    python3 bench/firewall.py                      # 200 requests of 100 words at 2 ms apart
    python3 bench/firewall.py --words 400 --itl 1ms --requests 100
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, start_pair, stop_pair, up_provider  # noqa: E402

FIREWALL = """
[firewall]
policy = "off"
[firewall.policies.answers]
output = { secrets = "block", pii = "redact", custom = "redact" }
[firewall.custom]
terms = ["project nightingale"]
[routes.plain]
targets = ["up/{model}"]
[routes.screened]
targets = ["up/{model}"]
firewall = "answers"
"""


def stream_once(url, model):
    """(ttft, total) in seconds for one streamed call; TTFT is the first content delta."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "tell me a long story"}]})
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    ttft = None
    buf = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.removeprefix(b"data: ")
            if ttft is None and data != b"[DONE]":
                delta = json.loads(data)["choices"][0]["delta"].get("content")
                if delta:
                    ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    return ttft, total


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--words", type=int, default=100)
    ap.add_argument("--itl", default="2ms", help="time between the mock's chunks")
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    a = ap.parse_args()

    binary = a.binary or build()
    model = f"stream-{a.words}+itl-{a.itl}"
    mock, _mock_url, gw, gw_url, work = start_pair(
        binary, lambda m: up_provider(m) + FIREWALL.replace("{model}", model))
    got = {}
    try:
        for route in ("plain", "screened"):
            stream_once(gw_url, route)  # warm up
        # Interleaved, so that both see the same machine.
        for route in ("plain", "screened"):
            got[route] = []
        log(f"{a.requests} streamed calls per route ({model})...")
        for _ in range(a.requests):
            for route in ("plain", "screened"):
                got[route].append(stream_once(gw_url, route))
    finally:
        stop_pair(mock, gw, work)

    rows = {
        "plain": [t for t, _ in got["plain"]],
        "screened": [t for t, _ in got["screened"]],
        "buffered (plain's last chunk)": [total for _, total in got["plain"]],
    }
    print(f"machine: {os.cpu_count()} cores shared by mock, gateway and client; {a.requests} calls per route, "
          f"{a.words} words {a.itl} apart")
    print("| TTFT | p50 (ms) | p99 (ms) | p50 ÷ plain |")
    print("|---|---|---|---|")
    base = statistics.median(rows["plain"])
    for name, xs in rows.items():
        print(f"| {name} | {pct(xs, 50) * 1e3:.2f} | {pct(xs, 99) * 1e3:.2f} | {statistics.median(xs) / base:.2f} |")
    totals = {r: [t for _, t in got[r]] for r in ("plain", "screened")}
    print(f"whole stream p50: plain {pct(totals['plain'], 50) * 1e3:.1f} ms, "
          f"screened {pct(totals['screened'], 50) * 1e3:.1f} ms "
          f"({statistics.median(totals['screened']) / statistics.median(totals['plain']):.3f}x)")


if __name__ == "__main__":
    main()
