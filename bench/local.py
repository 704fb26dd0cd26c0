#!/usr/bin/env python3
"""Local embeddings through the gateway: p50/p99 latency of a single-sentence embedding request
to `local/all-minilm-l6-v2` at a fixed rate (oha), the model already loaded.

    SWITCHYARD_TEST_MODEL_DIR=<data dir>/models/all-minilm-l6-v2 python3 bench/local.py
    python3 bench/local.py --rates 50,200 --duration 10

Starts `switchyard serve` (release build) with the model linked into a fresh data directory.
Each measurement is bounded by --duration.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build, log, oha_path, run_oha, start, summarize  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,200")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    a = ap.parse_args()
    model = os.environ.get("SWITCHYARD_TEST_MODEL_DIR")
    if not model:
        raise SystemExit("set SWITCHYARD_TEST_MODEL_DIR (`switchyard models pull all-minilm-l6-v2`)")

    oha = oha_path()
    binary = a.binary or build()
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-local-"))
    target = work / "data/models/all-minilm-l6-v2"
    target.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "model.safetensors"):
        (target / f).symlink_to(Path(model) / f)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "SWITCHYARD_LOG": "warn"}
    gw, url = start([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data")], env)
    rows = []
    try:
        body = json.dumps({"model": "local/all-minilm-l6-v2", "input": "A short sentence to embed for the benchmark."})
        req = urllib.request.Request(f"{url}/v1/embeddings", data=body.encode(), headers={"content-type": "application/json"})
        urllib.request.urlopen(req).read()  # loads the model
        for rate in [int(r) for r in a.rates.split(",")]:
            run_oha(oha, f"{url}/v1/embeddings", body, rate, 2, a.connections)
            log(f"{rate} req/s...")
            rows.append((rate, summarize(run_oha(oha, f"{url}/v1/embeddings", body, rate, a.duration, a.connections))))
    finally:
        gw.terminate()
        gw.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores shared by the gateway (and its model) and oha; {a.duration} s per rate")
    print("| offered req/s | achieved req/s | p50 (ms) | p99 (ms) | p99.9 (ms) | errors |")
    print("|---|---|---|---|---|---|")
    for rate, r in rows:
        print(f"| {rate} | {r['rps']:.0f} | {r['p50'] / 1000:.2f} | {r['p99'] / 1000:.2f} | {r['p999'] / 1000:.2f} | {r['errors']} of {r['total']} |")


if __name__ == "__main__":
    main()
