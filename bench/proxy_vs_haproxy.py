#!/usr/bin/env python3
"""Weir's proxy beside HAProxy (mode tcp, one thread) and nginx stream (one worker), and beside a
direct connection, in one run on the namespace test bed (tests/integration/netbed.py).

  client (client ns) -> Weir (dp ns, af_packet, tcp listener 10.77.0.100:80; framed on :81)
                     -> HAProxy (ctl ns, 10.77.0.5:80) / nginx (ctl ns, 10.77.0.5:81)
                     -> weir-frame-echo on b1, b2, b3 (:8000)
  direct:  client -> weir-frame-echo on b1 (10.77.0.11:8000)

Measured for each path: transactions per second (connect, send 4 KiB, receive 4 KiB, close; 64
concurrent clients: bench/transactions.cc), the load balancer's CPU time per 1,000 transactions
(/proc/PID/stat of its process alone), bulk throughput with 1 and 16 connections (64 KiB frames,
weir-frame-load closed loop, depth 4), and latency p50/p99 of 64-byte frames at 2,000 frames/s.
On 2 cores the client, the backends and the load balancer compete for the CPU, so figures are
quoted as fractions of the direct path and of HAProxy's. Root; after a build:
    WEIR_BUILD_ROOT=$PWD/build /usr/bin/python3 bench/proxy_vs_haproxy.py [--offloads-off]
Needs the Debian packages haproxy, nginx and libnginx-mod-stream (installed if missing)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "tests" / "integration"))
from netbed import (  # noqa: E402
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    FrameEchoes,
    Testbed,
    poll_until,
)

BACKENDS = ("b1", "b2", "b3")
BACKEND_PORT = 8000
SECONDS = float(os.environ.get("WEIR_BENCH_SECONDS", "5"))


def ensure_packages() -> None:
    if shutil.which("haproxy") and shutil.which("nginx") and Path(
        "/usr/lib/nginx/modules/ngx_stream_module.so"
    ).exists():
        return
    subprocess.run(["apt-get", "install", "-y", "-q", "haproxy", "nginx", "libnginx-mod-stream"],
                   check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def haproxy_config() -> str:
    servers = "\n".join(f"    server {r} {ADDRESSES[r]}:{BACKEND_PORT}" for r in BACKENDS)
    return f"""global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen lb
    bind {ADDRESSES['ctl']}:80
    balance roundrobin
{servers}
"""


def nginx_config(workdir: Path) -> str:
    servers = "\n".join(f"        server {ADDRESSES[r]}:{BACKEND_PORT};" for r in BACKENDS)
    return f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx.err warn;
events {{ worker_connections 8000; }}
stream {{
    upstream backends {{
{servers}
    }}
    server {{
        listen {ADDRESSES['ctl']}:81;
        proxy_pass backends;
    }}
}}
"""


def weir_config(tb: Testbed) -> dict:
    config = tb.dataplane_config()
    pool = {"name": "echoes", "backends": [
        {"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in BACKENDS]}
    config["pools"] = [pool]
    config["listeners"] = [
        {"name": "tcp", "address": LISTENER_ADDRESS, "port": 80, "protocol": "tcp",
         "pool": "echoes"},
        {"name": "framed", "address": LISTENER_ADDRESS, "port": 81, "protocol": "framed",
         "pool": "echoes"},
    ]
    return config


def measure(tb: Testbed, build: Path, target: str, pid) -> dict:
    def client(argv, timeout):
        r = tb.exec("client", argv, check=False, timeout=timeout)
        if not r.stdout.strip():
            raise SystemExit(f"{argv[0]} printed nothing: {r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    load = str(build / "tools" / "weir-frame-load")
    result = {}
    cpu_before = cpu_seconds(pid) if pid else 0.0
    tx = client([str(build / "bench" / "transactions"), "--connect", target, "--clients", "64",
                 "--seconds", str(SECONDS)], SECONDS + 60)
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    result["tps"] = tx["per_second"]
    result["tx_failures"] = tx["failures"]
    result["cpu_ms_per_1000_tx"] = 1e6 * cpu / max(1, tx["transactions"]) if pid else None
    for connections in (1, 16):
        bulk = client([load, "--connect", target, "--connections", str(connections), "--depth",
                       "4", "--sizes", "65536", "--duration", str(SECONDS), "--json"],
                      SECONDS + 60)
        result[f"bulk_{connections}_MBps"] = bulk["throughput_bytes_per_s"] / 1e6
    lat = client([load, "--connect", target, "--connections", "4", "--rate", "2000", "--sizes",
                  "64", "--duration", str(SECONDS), "--json"], SECONDS + 60)
    result["p50_us"] = lat["latency_us"]["p50"]
    result["p99_us"] = lat["latency_us"]["p99"]
    return result


def main() -> int:
    ensure_packages()
    # --offloads-off: every veth of the test bed without TSO, GSO and GRO, so the kernel peers move
    # MTU-sized frames as Weir does (with offloads on, Linux-to-Linux veth traffic travels in 64 KiB
    # GSO segments that no wire carries, and per-packet costs favour the kernel paths tenfold).
    offloads_off = "--offloads-off" in sys.argv[1:]
    build = Path(os.environ.setdefault("WEIR_BUILD_ROOT", str(root / "build")))
    with Testbed() as tb:
        if offloads_off:
            for role in ("client", "ctl", *BACKENDS):
                tb.set_offloads(role, "eth0", enabled=False)
                tb.set_offloads("br", Testbed.bridge_port(role), enabled=False)
        FrameEchoes(tb, BACKENDS, BACKEND_PORT)
        work = tb.workdir
        (work / "haproxy.cfg").write_text(haproxy_config())
        (work / "nginx.conf").write_text(nginx_config(work))
        logs = {name: open(work / f"{name}.log", "wb") for name in ("haproxy", "nginx")}
        haproxy = tb.popen("ctl", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")],
                           stdout=logs["haproxy"], stderr=subprocess.STDOUT)
        nginx = tb.popen("ctl", ["nginx", "-c", str(work / "nginx.conf")],
                         stdout=logs["nginx"], stderr=subprocess.STDOUT)
        for port in (80, 81):
            poll_until(
                lambda: tb.exec("client", [sys.executable, "-c",
                                           f"import socket; socket.create_connection("
                                           f"('{ADDRESSES['ctl']}', {port}), 1)"],
                                check=False).returncode == 0,
                10.0, what=f"the proxy on port {port} to accept",
                describe=lambda: "".join((work / f"{n}.log").read_text(errors="replace")
                                         for n in ("haproxy", "nginx")))
        results = {}
        with DataplaneProcess(tb, weir_config(tb)) as dp:
            dp.wait_ready(timeout_s=30.0)
            paths = {
                "direct": (f"{ADDRESSES['b1']}:{BACKEND_PORT}", None),
                "weir tcp": (f"{LISTENER_ADDRESS}:80", dp.proc.pid),
                "weir framed": (f"{LISTENER_ADDRESS}:81", dp.proc.pid),
                "haproxy": (f"{ADDRESSES['ctl']}:80", haproxy.pid),
                "nginx": (f"{ADDRESSES['ctl']}:81", nginx.pid),
            }
            for name, (target, pid) in paths.items():
                print(f"measuring {name} ({target})...", flush=True)
                results[name] = measure(tb, build, target, pid)
            dp.stop()
        # The same Weir with idle.mode busy-poll: no sleep between polls, a core at 100 %.
        busy = weir_config(tb)
        busy["dataplane"]["idle"] = {"mode": "busy-poll"}
        with DataplaneProcess(tb, busy, name="dataplane-busy") as dp:
            dp.wait_ready(timeout_s=30.0)
            print("measuring weir tcp, busy-poll...", flush=True)
            results["weir tcp busy-poll"] = measure(tb, build, f"{LISTENER_ADDRESS}:80",
                                                    dp.proc.pid)
            dp.stop()
    print(json.dumps(results, indent=1))
    print(f"offloads {'off' if offloads_off else 'on'} on the kernel peers' veths")
    direct, weir, ha = results["direct"], results["weir tcp"], results["haproxy"]
    print(f"transactions/s as a fraction of direct: weir {weir['tps'] / direct['tps']:.2f}, "
          f"haproxy {ha['tps'] / direct['tps']:.2f}, "
          f"nginx {results['nginx']['tps'] / direct['tps']:.2f}")
    print(f"CPU per 1,000 transactions: weir {weir['cpu_ms_per_1000_tx']:.1f} ms, haproxy "
          f"{ha['cpu_ms_per_1000_tx']:.1f} ms (ratio {weir['cpu_ms_per_1000_tx'] / ha['cpu_ms_per_1000_tx']:.2f})")
    for n in (1, 16):
        print(f"bulk {n} conn: weir/haproxy {weir[f'bulk_{n}_MBps'] / ha[f'bulk_{n}_MBps']:.2f}, "
              f"weir/direct {weir[f'bulk_{n}_MBps'] / direct[f'bulk_{n}_MBps']:.2f}")
    busy = results["weir tcp busy-poll"]
    for q in ("p50", "p99"):
        print(f"added {q} latency over direct: weir {weir[q + '_us'] - direct[q + '_us']:.0f} us "
              f"(busy-poll {busy[q + '_us'] - direct[q + '_us']:.0f} us), haproxy "
              f"{ha[q + '_us'] - direct[q + '_us']:.0f} us, nginx "
              f"{results['nginx'][q + '_us'] - direct[q + '_us']:.0f} us")
    fr = results["weir framed"]
    print(f"framed over tcp: tps {fr['tps'] / weir['tps']:.2f}, "
          f"bulk16 {fr['bulk_16_MBps'] / weir['bulk_16_MBps']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
