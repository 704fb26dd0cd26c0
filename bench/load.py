#!/usr/bin/env python3
"""Load benchmark: the gateway's added latency over calling the mock provider directly.

Starts `switchyard mock` and `switchyard serve` (release build) on loopback, then for each offered
load and mode runs `oha` at a fixed request rate against the mock directly and against the gateway
(in front of that same mock), back to back in one run, and prints the differences. Everything
stops by itself: each measurement is bounded by --duration.

    python3 bench/load.py                 # 500 and 2000 req/s, plain and streaming, 10 s each
    python3 bench/load.py --rates 1000 --duration 5
    python3 bench/load.py --reference-nginx   # also measure nginx as a plain reverse proxy

Needs `oha` (cargo install oha) on PATH or in bench/.tools/bin (installed there if missing).
With --reference-nginx, also `nginx` (Debian: apt-get install nginx-light): the same requests
through nginx proxying to the same mock (keep-alive upstream, no buffering) give the cost of a
bare loopback proxy hop on this machine, the floor any gateway stands on.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def oha_path():
    found = shutil.which("oha") or (ROOT / "bench/.tools/bin/oha")
    if Path(found).exists():
        return str(found)
    log("installing oha into bench/.tools (one time, a few minutes)...")
    subprocess.run(["cargo", "install", "oha", "--locked", "--root", str(ROOT / "bench/.tools")], check=True)
    return str(ROOT / "bench/.tools/bin/oha")


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build():
    log("building switchyard (release)...")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "switchyard"], cwd=ROOT, check=True)
    return str(target_dir() / "release/switchyard")


def start(args, env=None):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            return proc, "http://" + m.group(1).removesuffix("/v1")
    proc.kill()
    raise SystemExit(f"{args[:2]} did not start")


def start_nginx(work, mock_url):
    """nginx as a bare reverse proxy to the mock: the reference cost of one loopback proxy hop."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  upstream mock {{ server {mock_url.removeprefix("http://")}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}"


def up_provider(mock_url):
    """The gateway configuration: provider `up` is the mock."""
    return f'[providers.up]\nkind = "openai"\nbase_url = "{mock_url}/v1"\n'


def start_pair(binary, config, extra_env=None):
    """Starts the mock, then the gateway with `config(mock_url)`; returns both and a work dir."""
    mock, mock_url = start([binary, "mock", "--listen", "127.0.0.1:0"])
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    cfg = work / "switchyard.toml"
    cfg.write_text(config(mock_url))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "SWITCHYARD_LOG": "warn", **(extra_env or {})}
    gw, gw_url = start([binary, "serve", "--listen", "127.0.0.1:0", "--config", str(cfg), "--data-dir", str(work / "data")], env)
    return mock, mock_url, gw, gw_url, work


def stop_pair(mock, gw, work):
    """Stops what start_pair started and removes its work dir."""
    gw.terminate()
    mock.terminate()
    gw.wait(10)
    mock.wait(10)
    shutil.rmtree(work, ignore_errors=True)


def rss_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU of a process and its children's processes (nginx's workers)."""
    pids = [pid] + [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == pid]
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def _ppid(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def measured(pid, fn):
    """Runs `fn` (an oha run) and adds the CPU `pid` used per answered request, in µs."""
    before = cpu_seconds(pid)
    r = summarize(fn())
    r["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(r["total"], 1)
    return r


def run_oha(oha, url, body, rate, duration, connections, headers=()):
    """oha at a fixed rate; `headers` are extra `name: value` request headers."""
    args = [oha, "--no-tui", "--output-format", "json", "--latency-correction", "-m", "POST",
            "-H", "content-type: application/json"]
    for h in headers:
        args += ["-H", h]
    args += ["-d", body, "-q", str(rate), "-z", f"{duration}s", "-c", str(connections), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def summarize(r):
    lp = r["latencyPercentiles"]
    codes = r.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    # Requests still in flight when the measurement window closes are cut by oha; not errors.
    errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
    total = sum(codes.values()) + sum(errors.values())
    return {
        "p50": lp["p50"] * 1e6,
        "p99": lp["p99"] * 1e6,
        "p999": lp["p99.9"] * 1e6,
        "rps": r["summary"]["requestsPerSec"],
        "errors": total - ok,
        "total": total,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    ap.add_argument("--reference-nginx", action="store_true", help="also measure nginx as a reverse proxy")
    ap.add_argument("--modes", default="plain,stream", help="which of plain,stream to measure")
    ap.add_argument("--gateway-threads", type=int, help="the gateway's serving threads (serve --threads; default one per core)")
    a = ap.parse_args()

    oha = oha_path()
    binary = a.binary or build()
    extra_env = {"SWITCHYARD_THREADS": str(a.gateway_threads)} if a.gateway_threads else {}
    mock, mock_url, gw, gw_url, work = start_pair(binary, up_provider, extra_env)
    nginx, nginx_url = (start_nginx(work, mock_url) if a.reference_nginx else (None, None))
    try:
        time.sleep(0.5)
        idle_rss = rss_kib(gw.pid, "VmRSS")
        rows = []
        for mode, model in (("plain", "echo"), ("stream", "stream-5")):
            if mode not in a.modes.split(","):
                continue
            for rate in [int(x) for x in a.rates.split(",")]:
                stream = "true" if mode == "stream" else "false"
                body = lambda m: json.dumps({"model": m, "stream": stream == "true",
                                              "messages": [{"role": "user", "content": "benchmark the gateway overhead please"}]})
                # Warm both paths (connection pools, page cache) before measuring.
                run_oha(oha, f"{mock_url}/v1/chat/completions", body(model), rate, 2, a.connections)
                run_oha(oha, f"{gw_url}/v1/chat/completions", body("up/" + model), rate, 2, a.connections)
                log(f"{mode} @ {rate} req/s: direct...")
                direct = measured(mock.pid, lambda: run_oha(oha, f"{mock_url}/v1/chat/completions", body(model), rate, a.duration, a.connections))
                log(f"{mode} @ {rate} req/s: through the gateway...")
                via = measured(gw.pid, lambda: run_oha(oha, f"{gw_url}/v1/chat/completions", body("up/" + model), rate, a.duration, a.connections))
                ref = None
                if nginx:
                    run_oha(oha, f"{nginx_url}/v1/chat/completions", body(model), rate, 2, a.connections)
                    log(f"{mode} @ {rate} req/s: through nginx...")
                    ref = measured(nginx.pid, lambda: run_oha(oha, f"{nginx_url}/v1/chat/completions", body(model), rate, a.duration, a.connections))
                rows.append((mode, rate, direct, via, ref))
        peak_rss = rss_kib(gw.pid, "VmHWM")
    finally:
        gw.terminate()
        mock.terminate()
        if nginx:
            nginx.terminate()
            nginx.wait(10)
        gw.wait(10)
        mock.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores; mock, gateway and oha share them; {a.duration} s per measurement, {a.connections} connections")
    print("| mode | offered req/s | direct p50 / p99 / p99.9 (µs) | gateway p50 / p99 / p99.9 (µs) | added p50 / p99 / p99.9 (µs) | gateway ÷ direct p50 / p99 | throughput ratio | errors (direct / gateway) |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, rate, d, g, _ in rows:
        print(f"| {mode} | {rate} | {d['p50']:.0f} / {d['p99']:.0f} / {d['p999']:.0f} | {g['p50']:.0f} / {g['p99']:.0f} / {g['p999']:.0f} "
              f"| {g['p50'] - d['p50']:.0f} / {g['p99'] - d['p99']:.0f} / {g['p999'] - d['p999']:.0f} "
              f"| {g['p50'] / d['p50']:.2f} / {g['p99'] / d['p99']:.2f} "
              f"| {g['rps'] / d['rps']:.3f} | {d['errors']} / {g['errors']} of {g['total']} |")
    if a.reference_nginx:
        print()
        print("| mode | offered req/s | nginx added p50 / p99 / p99.9 (µs) | switchyard added p50 / p99 / p99.9 (µs) | switchyard ÷ nginx added p50 / p99 | errors (nginx) |")
        print("|---|---|---|---|---|---|")
        ratio = lambda x, y: f"{x / y:.2f}" if y > 0 else "n/a"
        for mode, rate, d, g, n in rows:
            print(f"| {mode} | {rate} | {n['p50'] - d['p50']:.0f} / {n['p99'] - d['p99']:.0f} / {n['p999'] - d['p999']:.0f} "
                  f"| {g['p50'] - d['p50']:.0f} / {g['p99'] - d['p99']:.0f} / {g['p999'] - d['p999']:.0f} "
                  f"| {ratio(g['p50'] - d['p50'], n['p50'] - d['p50'])} / {ratio(g['p99'] - d['p99'], n['p99'] - d['p99'])} "
                  f"| {n['errors']} of {n['total']} |")
    print()
    print("CPU per request (user + system, from /proc, over the measured window):")
    print("| mode | offered req/s | mock, direct (µs) | gateway (µs) | gateway ÷ mock |" + (" nginx (µs) | gateway ÷ nginx |" if a.reference_nginx else ""))
    print("|---|---|---|---|---|" + ("---|---|" if a.reference_nginx else ""))
    for mode, rate, d, g, n in rows:
        line = f"| {mode} | {rate} | {d['cpu_us']:.0f} | {g['cpu_us']:.0f} | {g['cpu_us'] / max(d['cpu_us'], 1e-9):.2f} |"
        if n:
            line += f" {n['cpu_us']:.0f} | {g['cpu_us'] / max(n['cpu_us'], 1e-9):.2f} |"
        print(line)
    print(f"gateway RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
