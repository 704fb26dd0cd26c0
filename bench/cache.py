#!/usr/bin/env python3
"""Cache benchmark: the latency of an answer served from the exact cache.

Starts `switchyard mock` and `switchyard serve` (release build) with `up/echo` and
`up/stream-5` cached, warms the cache with one call each, then for plain and streamed calls runs
oha at a fixed rate, back to back in one run, against:

  direct   the mock itself (no gateway): the reference a ratio is taken against;
  bypass   the gateway with `x-switchyard-skip-cache: true` (the whole pipeline and a provider call);
  hit      the gateway answering from the cache (no provider call).

and prints the latency percentiles and the ratios. Each measurement is bounded by --duration.

    python3 bench/cache.py                  # 1000 req/s, 10 s per measurement
    python3 bench/cache.py --rate 2000 --duration 5
"""

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, oha_path, run_oha, start_pair, stop_pair, summarize, up_provider  # noqa: E402

CACHED = '[cache.models]\n"up/echo" = "1h"\n"up/stream-5" = "1h"\n'


def call(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        r.read()
        return r.headers.get("x-switchyard-cache")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    a = ap.parse_args()

    oha = oha_path()
    binary = a.binary or build()
    mock, mock_url, gw, gw_url, work = start_pair(binary, lambda m: up_provider(m) + CACHED)
    rows = []
    try:
        for mode, model in (("plain", "echo"), ("stream", "stream-5")):
            def body(m):
                return json.dumps({"model": m, "stream": mode == "stream",
                                   "messages": [{"role": "user", "content": "benchmark the cache please"}]})
            gw_chat = f"{gw_url}/v1/chat/completions"
            first, second = call(gw_chat, body("up/" + model)), call(gw_chat, body("up/" + model))
            assert (first, second) == ("MISS", "HIT"), (first, second)
            skip = ("x-switchyard-skip-cache: true",)
            runs = {
                "direct": (f"{mock_url}/v1/chat/completions", body(model), ()),
                "bypass": (gw_chat, body("up/" + model), skip),
                "hit": (gw_chat, body("up/" + model), ()),
            }
            got = {}
            for name, (url, b, h) in runs.items():
                run_oha(oha, url, b, a.rate, 2, a.connections, h)  # warm up
                log(f"{mode} @ {a.rate} req/s: {name}...")
                got[name] = summarize(run_oha(oha, url, b, a.rate, a.duration, a.connections, h))
            rows.append((mode, got))
    finally:
        stop_pair(mock, gw, work)

    print(f"machine: {os.cpu_count()} cores shared by mock, gateway and oha; {a.rate} req/s, {a.duration} s per measurement, {a.connections} connections")
    print("| mode | direct p50 / p99 (µs) | gateway, cache bypassed p50 / p99 (µs) | gateway, cache hit p50 / p99 / p99.9 (µs) | hit ÷ direct p99 | hit ÷ bypass p99 | errors (direct / bypass / hit) |")
    print("|---|---|---|---|---|---|---|")
    for mode, g in rows:
        d, b, h = g["direct"], g["bypass"], g["hit"]
        print(f"| {mode} | {d['p50']:.0f} / {d['p99']:.0f} | {b['p50']:.0f} / {b['p99']:.0f} | {h['p50']:.0f} / {h['p99']:.0f} / {h['p999']:.0f} "
              f"| {h['p99'] / d['p99']:.2f} | {h['p99'] / b['p99']:.2f} | {d['errors']} / {b['errors']} / {h['errors']} of {h['total']} |")


if __name__ == "__main__":
    main()
