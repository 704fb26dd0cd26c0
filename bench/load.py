#!/usr/bin/env python3
"""Load benchmark: the gateway's added latency over calling the mock provider directly.

Starts `switchyard mock` and `switchyard serve` (release build) on loopback, then for each offered
load and mode runs `oha` at a fixed request rate against the mock directly and against the gateway
(in front of that same mock), back to back in one run, and prints the differences. Everything
stops by itself: each measurement is bounded by --duration.

    python3 bench/load.py                 # 500 and 2000 req/s, plain and streaming, 3 rounds of 5 s
    python3 bench/load.py --rates 1000 --rounds 5 --duration 4
    python3 bench/load.py --reference-nginx   # also measure nginx as a plain reverse proxy
    python3 bench/load.py --reference-relay --reference-floor   # and the two reference examples
    python3 bench/load.py --binary new/switchyard --against old/switchyard   # two builds, same rounds

Each load is measured in interleaved rounds (direct, gateway, then the others, the order
rotating each round) and figures are medians over the rounds: on a shared machine the noise
drifts over seconds, and a difference taken within one round cancels most of it.

Needs `oha` (cargo install oha) on PATH or in bench/.tools/bin (installed there if missing).
With --reference-nginx, also `nginx` (Debian: apt-get install nginx-light): the same requests
through nginx proxying to the same mock (keep-alive upstream, no buffering) give the cost of a
bare loopback proxy hop on this machine.
--reference-relay measures crates/gateway/examples/relay.rs, which copies bytes between each
caller's connection and one of its own to the mock with no parsing at all: the least any proxy
adds here (two more loopback transits and two more wake-ups per call). --reference-floor measures
crates/gateway/examples/floor.rs, a bare proxy on the gateway's own HTTP stack (axum's server,
hyper-util's client) with none of its stages. Both are built by this script when asked for.
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
    port = free_port()
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


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_examples(names):
    """The reference proxies in crates/gateway/examples, built (release); their paths by name."""
    log(f"building the reference example(s) {', '.join(names)} (release)...")
    args = ["cargo", "build", "--release", "--locked", "-p", "switchyard-gateway"]
    for n in names:
        args += ["--example", n]
    subprocess.run(args, cwd=ROOT, check=True)
    return {n: str(target_dir() / "release/examples" / n) for n in names}


def start_example(binary, args):
    """A reference example listening on a free loopback port (its last argument)."""
    port = free_port()
    proc = subprocess.Popen([binary, *args, f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit(f"{binary} did not start")
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


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def start_gateway(binary, work, mock_url, name, extra_env=None):
    """Another gateway in front of the same mock (for --against), in its own work dir."""
    cfg = work / f"{name}.toml"
    cfg.write_text(up_provider(mock_url))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "SWITCHYARD_LOG": "warn", **(extra_env or {})}
    return start([binary, "serve", "--listen", "127.0.0.1:0", "--config", str(cfg), "--data-dir", str(work / name)], env)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement, per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds per load (the order rotates each round); figures are medians over rounds")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--binary", help="switchyard binary (default: build release)")
    ap.add_argument("--against", help="a second switchyard binary (another build) measured in the same rounds, in front of the same mock")
    ap.add_argument("--reference-nginx", action="store_true", help="also measure nginx as a reverse proxy")
    ap.add_argument("--reference-relay", action="store_true",
                    help="also measure the relay example: a byte relay with no parsing, the least any proxy adds here")
    ap.add_argument("--reference-floor", action="store_true",
                    help="also measure the floor example: a bare proxy on the gateway's HTTP stack (axum, hyper-util's "
                         "client) with none of its stages; it reads whole answers, so it is measured in plain mode only")
    ap.add_argument("--modes", default="plain,stream", help="which of plain,stream to measure")
    ap.add_argument("--gateway-threads", type=int, help="the gateway's serving threads (serve --threads; default one per core)")
    a = ap.parse_args()
    if a.rounds < 1 or a.duration < 1:
        raise SystemExit("--rounds and --duration must be at least 1")

    oha = oha_path()
    binary = a.binary or build()
    wanted = [n for n, on in (("relay", a.reference_relay), ("floor", a.reference_floor)) if on]
    examples = build_examples(wanted) if wanted else {}
    extra_env = {"SWITCHYARD_THREADS": str(a.gateway_threads)} if a.gateway_threads else {}
    mock, mock_url, gw, gw_url, work = start_pair(binary, up_provider, extra_env)
    procs = [gw, mock]
    # What is measured each round: the mock directly, then everything in front of it.
    targets = [("direct", mock_url, mock.pid, ""), ("switchyard", gw_url, gw.pid, "up/")]
    try:
        if a.against:
            other, other_url = start_gateway(a.against, work, mock_url, "against", extra_env)
            procs.append(other)
            targets.append(("against", other_url, other.pid, "up/"))
        if a.reference_nginx:
            nginx, nginx_url = start_nginx(work, mock_url)
            procs.append(nginx)
            targets.append(("nginx", nginx_url, nginx.pid, ""))
        if a.reference_relay:
            relay, relay_url = start_example(examples["relay"], [mock_url.removeprefix("http://")])
            procs.append(relay)
            targets.append(("relay", relay_url, relay.pid, ""))
        if a.reference_floor:
            floor, floor_url = start_example(examples["floor"], ["hyper", f"{mock_url}/v1/chat/completions"])
            procs.append(floor)
            targets.append(("floor", floor_url, floor.pid, ""))
        time.sleep(0.5)
        idle_rss = rss_kib(gw.pid, "VmRSS")
        rows = []
        for mode, model in (("plain", "echo"), ("stream", "stream-5")):
            if mode not in a.modes.split(","):
                continue
            body = lambda m: json.dumps({"model": m, "stream": mode == "stream",
                                          "messages": [{"role": "user", "content": "benchmark the gateway overhead please"}]})
            # The floor reads whole answers: it is no streaming proxy.
            measuring = [t for t in targets if not (mode == "stream" and t[0] == "floor")]
            for rate in [int(x) for x in a.rates.split(",")]:
                url = lambda t: f"{t[1]}/v1/chat/completions"
                # Warm every path (connection pools, page cache) before measuring.
                for t in measuring:
                    run_oha(oha, url(t), body(t[3] + model), rate, 2, a.connections)
                rounds = []
                for i in range(a.rounds):
                    # Rotate the order so that no target always runs first or last.
                    order = measuring[i % len(measuring):] + measuring[:i % len(measuring)]
                    got = {}
                    for t in order:
                        log(f"{mode} @ {rate} req/s, round {i + 1}/{a.rounds}: {t[0]}...")
                        got[t[0]] = measured(t[2], lambda: run_oha(oha, url(t), body(t[3] + model), rate, a.duration, a.connections))
                    rounds.append(got)
                rows.append((mode, rate, rounds))
        peak_rss = rss_kib(gw.pid, "VmHWM")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    names = [t[0] for t in targets[1:]]

    def added(rounds, name, q):
        """The median over rounds of (name's latency − direct's latency in the same round)."""
        return median([r[name][q] - r["direct"][q] for r in rounds])

    def med(rounds, name, q):
        return median([r[name][q] for r in rounds])

    def total(rounds, name, key):
        return sum(r[name][key] for r in rounds)

    def cpu(rounds, name):
        """CPU per request over all rounds' windows, in µs."""
        return sum(r[name]["cpu_us"] * r[name]["total"] for r in rounds) / max(total(rounds, name, "total"), 1)

    print(f"machine: {os.cpu_count()} cores; the mock, oha and every proxy measured ({', '.join(names)}) share them; "
          f"{a.rounds} interleaved round(s) of {a.duration} s per measurement, {a.connections} connections; "
          "latencies are medians over the rounds, an added latency is the median of the per-round differences")
    print("| mode | offered req/s | direct p50 / p99 / p99.9 (µs) | gateway p50 / p99 / p99.9 (µs) | added p50 / p99 / p99.9 (µs) | added p50 per round (µs) | throughput ratio | errors (direct / gateway) |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, rate, rr in rows:
        per_round = ", ".join(f"{r['switchyard']['p50'] - r['direct']['p50']:.0f}" for r in rr)
        print(f"| {mode} | {rate} | {med(rr, 'direct', 'p50'):.0f} / {med(rr, 'direct', 'p99'):.0f} / {med(rr, 'direct', 'p999'):.0f} "
              f"| {med(rr, 'switchyard', 'p50'):.0f} / {med(rr, 'switchyard', 'p99'):.0f} / {med(rr, 'switchyard', 'p999'):.0f} "
              f"| {added(rr, 'switchyard', 'p50'):.0f} / {added(rr, 'switchyard', 'p99'):.0f} / {added(rr, 'switchyard', 'p999'):.0f} "
              f"| {per_round} "
              f"| {total(rr, 'switchyard', 'rps') / total(rr, 'direct', 'rps'):.3f} "
              f"| {total(rr, 'direct', 'errors')} / {total(rr, 'switchyard', 'errors')} of {total(rr, 'switchyard', 'total')} |")
    others = [n for n in names if n != "switchyard"]
    if others:
        label = {"against": f"--against ({a.against})", "nginx": "nginx", "floor": "floor (bare proxy, the gateway's HTTP stack)",
                 "relay": "relay (byte copy, no parsing)"}
        print()
        print("| mode | offered req/s | compared with | its added p50 / p99 / p99.9 (µs) | switchyard added p50 / p99 / p99.9 (µs) | switchyard ÷ it, added p50 / p99 | switchyard ÷ it, CPU per request | its errors |")
        print("|---|---|---|---|---|---|---|---|")
        ratio = lambda x, y: f"{x / y:.2f}" if y > 0 else "n/a"
        for mode, rate, rr in rows:
            for n in others:
                if n not in rr[0]:
                    continue
                print(f"| {mode} | {rate} | {label[n]} "
                      f"| {added(rr, n, 'p50'):.0f} / {added(rr, n, 'p99'):.0f} / {added(rr, n, 'p999'):.0f} "
                      f"| {added(rr, 'switchyard', 'p50'):.0f} / {added(rr, 'switchyard', 'p99'):.0f} / {added(rr, 'switchyard', 'p999'):.0f} "
                      f"| {ratio(added(rr, 'switchyard', 'p50'), added(rr, n, 'p50'))} / {ratio(added(rr, 'switchyard', 'p99'), added(rr, n, 'p99'))} "
                      f"| {ratio(cpu(rr, 'switchyard'), cpu(rr, n))} "
                      f"| {total(rr, n, 'errors')} of {total(rr, n, 'total')} |")
    print()
    print("CPU per request (user + system, from /proc, over all rounds' measured windows; the mock's is its own, measured direct):")
    print("| mode | offered req/s | mock (µs) | " + " | ".join(f"{n} (µs)" for n in names) + " | " + " | ".join(f"{n} ÷ mock" for n in names) + " |")
    print("|---|---|---|" + "---|" * (2 * len(names)))
    for mode, rate, rr in rows:
        c = {n: cpu(rr, n) for n in ["direct"] + names if n in rr[0]}
        print(f"| {mode} | {rate} | {c['direct']:.0f} | " + " | ".join(f"{c[n]:.0f}" if n in c else "—" for n in names) + " | "
              + " | ".join(f"{c[n] / max(c['direct'], 1e-9):.2f}" if n in c else "—" for n in names) + " |")
    print(f"gateway RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
