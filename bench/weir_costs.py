#!/usr/bin/python3
"""bench/weir_costs.py: what one proxied transaction costs Weir, in figures that do not depend on
how busy the machine is (issue 13).

    sudo WEIR_BUILD_ROOT=$PWD/build /usr/bin/python3 bench/weir_costs.py [--runs 3] [--seconds 5]

On bench/compare's test bed (af_packet, framecnt=4096, idle backoff, three echo backends), Weir
`tcp` with --workers workers, and the seed's transaction (weir-bench-load transactions, --clients
concurrent) for --seconds, three passes a run:

    counters  packets in and out, polls, polls that found work and sleeps, per transaction
              (the dataplane's own counters, read before and after), and its CPU (/proc)
    strace    system calls per transaction by name (strace -c -f on the dataplane; strace slows
              it, the counts per transaction are what matters)
    perf      where the dataplane's CPU goes, by symbol (perf record -e cpu-clock)

Prints one JSON object per run and the medians. Wall-clock rates are printed but mean little on a
shared machine; the counts per transaction are the repeatable part."""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, choices=(1, 2))
    p.add_argument("--passes", default="counters,strace,perf")
    args = p.parse_args()
    # What compare_lib.Bench reads.
    args.kernel_offloads, args.idle_connections, args.latency_rate = "off", 0, 0
    return args


def loop_and_ports(stats: dict) -> dict:
    out = {"polls": 0, "busy_polls": 0, "sleeps": 0, "rx_packets": 0, "tx_packets": 0}
    for worker in stats["workers"]:
        for name in ("polls", "busy_polls", "sleeps"):
            out[name] += worker["loop"][name]
        for port in worker["ports"].values():
            out["rx_packets"] += port["rx_packets"]
            out["tx_packets"] += port["tx_packets"]
    return out


def transactions(bench, pid: int, args) -> dict:
    from compare_lib import TARGETS

    return bench.accounted(pid, ["transactions", "--connect", TARGETS["weir tcp"], "--clients",
                                 str(args.clients), "--seconds", str(args.seconds)],
                           args.seconds + 60)


def counters_pass(bench, pid: int, args) -> dict:
    before = loop_and_ports(bench.dataplane.stats())
    tx = transactions(bench, pid, args)
    after = loop_and_ports(bench.dataplane.stats())
    done = max(1, tx["transactions"])
    out = {f"{k}_per_transaction": (after[k] - before[k]) / done for k in before}
    out.update(transactions=tx["transactions"], per_second=tx["per_second"],
               lb_cpu_us_per_transaction=1e6 * (tx["lb_user_s"] + tx["lb_system_s"]) / done,
               lb_system_share=tx["lb_system_s"] / max(1e-9, tx["lb_user_s"] + tx["lb_system_s"]))
    return out


def strace_pass(bench, pid: int, args) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out.name, "-p", str(pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # strace attaches within this (no event to wait for)
        tx = transactions(bench, pid, args)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        calls: dict[str, int] = {}
        for line in Path(out.name).read_text().splitlines():
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    done = max(1, tx["transactions"])
    return {"transactions": tx["transactions"],
            "syscalls_per_transaction": {k: round(v / done, 3) for k, v in
                                         sorted(calls.items(), key=lambda kv: -kv[1])}}


def perf_pass(bench, pid: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        recorder = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                                     "-p", str(pid), "-o", str(data)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        tx = transactions(bench, pid, args)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort",
                                 "dso,symbol", "--percent-limit", "1"],
                                capture_output=True, text=True).stdout
    symbols = []
    for line in report.splitlines():
        fields = line.split()
        if line.strip().startswith("#") or len(fields) < 4 or not fields[0].endswith("%"):
            continue
        symbols.append({"percent": float(fields[0][:-1]), "dso": fields[1],
                        "symbol": " ".join(fields[3:])})
    return {"transactions": tx["transactions"], "top_symbols": symbols[:25]}


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/weir_costs.py needs root (network namespaces)")
    if not os.environ.get("WEIR_BUILD_ROOT"):
        raise SystemExit("set WEIR_BUILD_ROOT to the build directory")
    from compare_lib import Bench  # noqa: E402  (imports netbed)

    passes = {"counters": counters_pass, "strace": strace_pass, "perf": perf_pass}
    chosen = [p.strip() for p in args.passes.split(",")]
    runs = []
    with Bench(Path(os.environ["WEIR_BUILD_ROOT"]), args) as bench:
        for run in range(args.runs):
            figures = {"run": run, "load_average": os.getloadavg()[0]}
            for name in chosen:
                # A fresh dataplane per pass: one pass's strace or perf does not touch the next.
                with bench.load_balancer("weir tcp", args.workers) as pid:
                    figures[name] = passes[name](bench, pid, args)
            print(json.dumps(figures), flush=True)
            runs.append(figures)
    if "counters" in chosen:
        keys = [k for k in runs[0]["counters"] if isinstance(runs[0]["counters"][k], float)]
        print(json.dumps({"median": {k: statistics.median(r["counters"][k] for r in runs)
                                     for k in keys}}))
    if "strace" in chosen:
        names = set().union(*(r["strace"]["syscalls_per_transaction"] for r in runs))
        print(json.dumps({"median_syscalls_per_transaction": {
            n: statistics.median(r["strace"]["syscalls_per_transaction"].get(n, 0) for r in runs)
            for n in sorted(names)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
