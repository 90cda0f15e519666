#!/usr/bin/env python3
"""Weir's port on the test bed's veth through net_af_packet beside net_af_xdp, several runs each,
interleaved (the machine is shared and noisy: the spread is part of the result).

  client (client ns) -> Weir tcp listener 10.77.0.100:80 (dp ns, one worker, idle backoff)
                     -> weir-frame-echo on b1, b2, b3 (:8000)

Per run and driver: transactions per second (connect, send 4 KiB, receive 4 KiB, close; 64
concurrent clients, bench/transactions.cc) and the machine's CPU per transaction (busy time of
every CPU from /proc/stat over the run, divided by the transactions); then one bulk connection
(weir-frame-load, 64 KiB frames, depth 4) in MB/s and machine CPU seconds per GB; beside each,
the dataplane process's own CPU (/proc/PID/stat), which other work on a shared machine does not
inflate. Root; after a build:
    WEIR_BUILD_ROOT=$PWD/build /usr/bin/python3 bench/port_drivers.py [--runs 3] [--seconds 5]
Prints one JSON object (every run) and a table of medians and ranges."""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "tests" / "integration"))
from netbed import (  # noqa: E402
    ADDRESSES,
    DATAPLANE_IFACE,
    LISTENER_ADDRESS,
    PORT_DRIVERS,
    DataplaneProcess,
    FrameEchoes,
    Testbed,
)

BACKENDS = ("b1", "b2", "b3")
BACKEND_PORT = 8000
# The drivers compared: name -> (device, --vdev arguments). af_xdp twice: the PMD's default
# busy-poll budget (64: SO_PREFER_BUSY_POLL, a recvfrom that busy-polls the queue whenever the
# ring is empty) and busy_budget=0 (plain wake-ups).
VARIANTS = {
    "af_packet": PORT_DRIVERS["af_packet"],
    "af_xdp": PORT_DRIVERS["af_xdp"],
    "af_xdp busy_budget=0": (PORT_DRIVERS["af_xdp"][0], PORT_DRIVERS["af_xdp"][1] +
                             ",busy_budget=0"),
}


def machine_busy_seconds() -> float:
    """Busy time of every CPU since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def weir_config(tb: Testbed, device: str, vdev: str) -> dict:
    config = tb.dataplane_config()
    config["dataplane"]["eal"] = [f"--vdev={device},{vdev}" if a.startswith("--vdev") else a
                                  for a in config["dataplane"]["eal"]]
    config["dataplane"]["ports"][0]["device"] = device
    config["pools"] = [{"name": "echoes", "backends": [
        {"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in BACKENDS]}]
    config["listeners"] = [{"name": "tcp", "address": LISTENER_ADDRESS, "port": 80,
                            "protocol": "tcp", "pool": "echoes"}]
    return config


def measure(tb: Testbed, dp: DataplaneProcess, build: Path, seconds: float) -> dict:
    def client(argv):
        r = tb.exec("client", argv, check=False, timeout=seconds + 60)
        if not r.stdout.strip():
            raise SystemExit(f"{argv[0]} printed nothing: {r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    target = f"{LISTENER_ADDRESS}:80"
    load = float(Path("/proc/loadavg").read_text().split()[0])
    busy, weir = machine_busy_seconds(), dp.cpu_seconds()
    tx = client([str(build / "bench" / "transactions"), "--connect", target, "--clients", "64",
                 "--seconds", str(seconds)])
    tx_cpu, tx_weir = machine_busy_seconds() - busy, dp.cpu_seconds() - weir
    busy, weir = machine_busy_seconds(), dp.cpu_seconds()
    bulk = client([str(build / "tools" / "weir-frame-load"), "--connect", target,
                   "--connections", "1", "--depth", "4", "--sizes", "65536", "--duration",
                   str(seconds), "--json"])
    bulk_cpu, bulk_weir = machine_busy_seconds() - busy, dp.cpu_seconds() - weir
    gigabytes = max(bulk["throughput_bytes_per_s"] * seconds / 1e9, 1e-9)
    transactions = max(1, tx["transactions"])
    return {
        "load_average_before": load,
        "tps": tx["per_second"],
        "tx_failures": tx["failures"],
        "machine_cpu_us_per_tx": 1e6 * tx_cpu / transactions,
        "weir_cpu_us_per_tx": 1e6 * tx_weir / transactions,
        "bulk_MBps": bulk["throughput_bytes_per_s"] / 1e6,
        "machine_cpu_s_per_GB": bulk_cpu / gigabytes,
        "weir_cpu_s_per_GB": bulk_weir / gigabytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    build = Path(os.environ.setdefault("WEIR_BUILD_ROOT", str(root / "build")))
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    # A fresh test bed for every measurement: the backends' and the client's TIME-WAIT entries
    # from an earlier dataplane's connections would meet the next one's SYNs (same addresses and
    # ports, an unrelated ISN), and the rate then depended on the order of the runs.
    for run in range(args.runs):
        for name, (device, vdev) in VARIANTS.items():
            print(f"run {run + 1}: {name}...", file=sys.stderr, flush=True)
            with Testbed() as tb:
                FrameEchoes(tb, BACKENDS, BACKEND_PORT)
                with DataplaneProcess(tb, weir_config(tb, device, vdev), name="dp") as dp:
                    dp.wait_ready(timeout_s=30.0)
                    if run == 0 and device.startswith("net_af_xdp"):
                        link = tb.exec("dp", ["ip", "-d", "link", "show", DATAPLANE_IFACE]).stdout
                        print(f"{name}: {' '.join(link.split())}", file=sys.stderr)
                    result = measure(tb, dp, build, args.seconds)
                    ports = dp.stats()["workers"][0]["ports"][DATAPLANE_IFACE]
                    result["tx_linearised"] = ports["tx_linearised"]
                    result["drops"] = {k: v for k, v in ports["drops"].items() if v}
                    results[name].append(result)
                    dp.stop()
    print(json.dumps(results, indent=1))
    print("| | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for key, label, fmt in (("tps", "transactions/s, 64 concurrent", "{:,.0f}"),
                            ("machine_cpu_us_per_tx", "machine CPU per transaction, µs",
                             "{:.0f}"),
                            ("weir_cpu_us_per_tx", "Weir's CPU per transaction, µs", "{:.0f}"),
                            ("bulk_MBps", "one bulk connection, MB/s", "{:.0f}"),
                            ("machine_cpu_s_per_GB", "machine CPU per GB, bulk, s", "{:.1f}"),
                            ("weir_cpu_s_per_GB", "Weir's CPU per GB, bulk, s", "{:.1f}")):
        cells = []
        for name in VARIANTS:
            values = [r[key] for r in results[name]]
            cells.append(f"{fmt.format(statistics.median(values))} "
                         f"({fmt.format(min(values))}–{fmt.format(max(values))})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
