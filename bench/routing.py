#!/usr/bin/env python3
"""Routing benchmark: does choosing among 10 targets add latency?

Starts `switchyard mock` and `switchyard serve` (release build) on loopback. The gateway has one
route per strategy, each over 10 targets on that mock (`up/echo` and `up/itl-1ms` … `up/itl-9ms`,
which answer plain calls exactly like `echo`), and the lowest-cost route has a price for each.
At a fixed request rate, `oha` calls the plain slug `up/echo` (no routing decision) and each route
in turn, twice in A/B order, and the script prints each route's latency over the plain slug's
from the neighbouring measurement in the same run. Bounded by --duration per measurement.

    python3 bench/routing.py                  # 1000 req/s, 10 s per measurement
    python3 bench/routing.py --rate 2000 --duration 5
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, oha_path, run_oha, start_pair, stop_pair, summarize, up_provider  # noqa: E402

STRATEGIES = ["fallback", "weighted", "least-latency", "lowest-cost"]


def config(mock_url):
    models = ["echo"] + [f"itl-{i}ms" for i in range(1, 10)]
    targets = ", ".join(f'"up/{m}"' for m in models)
    lines = [up_provider(mock_url)]
    for s in STRATEGIES:
        lines.append(f'[routes.ten-{s}]\nstrategy = "{s}"\ntargets = [{targets}]\n')
    for i, m in enumerate(models):
        lines.append(f'[catalog."up/{m}"]\ninput_per_mtok = {1 + i}.0\noutput_per_mtok = {2 + i}.0\n')
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    a = ap.parse_args()

    oha = oha_path()
    binary = a.binary or build()
    mock, _, gw, gw_url, work = start_pair(binary, config)
    url = f"{gw_url}/v1/chat/completions"

    def body(model):
        return json.dumps({"model": model, "messages": [{"role": "user", "content": "benchmark the routing decision please"}]})

    def measure(model, seconds):
        return summarize(run_oha(oha, url, body(model), a.rate, seconds, a.connections))

    rows = []
    try:
        measure("up/echo", 2)
        for s in STRATEGIES:
            measure(f"ten-{s}", 2)
        for rnd in (1, 2):
            for s in STRATEGIES:
                route = f"ten-{s}"
                pair = [("up/echo", None), (route, None)] if rnd == 1 else [(route, None), ("up/echo", None)]
                got = {}
                for model, _ in pair:
                    log(f"round {rnd}: {model} @ {a.rate} req/s...")
                    got[model] = measure(model, a.duration)
                rows.append((rnd, s, got["up/echo"], got[route]))
    finally:
        stop_pair(mock, gw, work)

    print(f"machine: {os.cpu_count()} cores shared by mock, gateway and oha; {a.rate} req/s, {a.duration} s per measurement, {a.connections} connections")
    print("| round | strategy (10 targets) | slug p50 / p99 (µs) | route p50 / p99 (µs) | route ÷ slug p50 / p99 | errors (slug / route) |")
    print("|---|---|---|---|---|---|")
    for rnd, s, d, r in rows:
        print(f"| {rnd} | {s} | {d['p50']:.0f} / {d['p99']:.0f} | {r['p50']:.0f} / {r['p99']:.0f} "
              f"| {r['p50'] / d['p50']:.3f} / {r['p99'] / d['p99']:.3f} | {d['errors']} / {r['errors']} of {r['total']} |")


if __name__ == "__main__":
    main()
