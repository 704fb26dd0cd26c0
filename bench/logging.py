#!/usr/bin/env python3
"""Logging benchmark: what request logging costs at a fixed request rate.

Starts `switchyard mock` and two gateways (release build) in front of it: one with request
logging on (the default: every call recorded to SQLite by the background writer), one with
`[logs] enabled = false`. oha calls each at a fixed rate, in A/B order then B/A, and the script
prints the latency percentiles of both and their ratio, from the same run. Bounded by
--duration per measurement.

    python3 bench/logging.py                  # 2000 req/s, 10 s per measurement
    python3 bench/logging.py --rate 1000 --duration 5
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, oha_path, run_oha, start, summarize, up_provider  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    a = ap.parse_args()

    oha = oha_path()
    binary = a.binary or build()
    mock, mock_url = start([binary, "mock", "--listen", "127.0.0.1:0"])
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    gateways = {}
    procs = [mock]
    try:
        for name, extra in (("on", ""), ("off", "[logs]\nenabled = false\n")):
            cfg = work / f"{name}.toml"
            cfg.write_text(up_provider(mock_url) + extra)
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "SWITCHYARD_LOG": "warn"}
            gw, url = start([binary, "serve", "--listen", "127.0.0.1:0", "--config", str(cfg),
                             "--data-dir", str(work / f"data-{name}")], env)
            procs.append(gw)
            gateways[name] = url
        body = json.dumps({"model": "up/echo", "messages": [{"role": "user", "content": "benchmark the request log please"}]})

        def measure(name, seconds):
            return summarize(run_oha(oha, f"{gateways[name]}/v1/chat/completions", body, a.rate, seconds, a.connections))

        for name in gateways:
            measure(name, 2)
        rows = []
        for rnd, order in ((1, ("on", "off")), (2, ("off", "on"))):
            got = {}
            for name in order:
                log(f"round {rnd}: logging {name} @ {a.rate} req/s...")
                got[name] = measure(name, a.duration)
            rows.append((rnd, got["on"], got["off"]))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores shared by mock, gateways and oha; {a.rate} req/s, {a.duration} s per measurement, {a.connections} connections")
    print("| round | logging off p50 / p99 / p99.9 (µs) | logging on p50 / p99 / p99.9 (µs) | on − off p99 (µs) | on ÷ off p99 | errors (off / on) |")
    print("|---|---|---|---|---|---|")
    for rnd, on, off in rows:
        print(f"| {rnd} | {off['p50']:.0f} / {off['p99']:.0f} / {off['p999']:.0f} | {on['p50']:.0f} / {on['p99']:.0f} / {on['p999']:.0f} "
              f"| {on['p99'] - off['p99']:+.0f} | {on['p99'] / off['p99']:.3f} | {off['errors']} / {on['errors']} of {on['total']} |")


if __name__ == "__main__":
    main()
