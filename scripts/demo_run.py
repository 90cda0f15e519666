#!/usr/bin/env python3
"""The demo behind scripts/demo (root): Weir in a network-namespace topology catching corruption
that TCP cannot see.

Topology (tests/integration/netbed.py): a client, three backends running weir-frame-echo, and
weir-dataplane on an af_packet vdev without hugepages, all on one bridge. Between the client and
the bridge sits a "bad switch": an eBPF tc program that flips a bit in the first payload byte of
every Nth TCP segment to the listener's port and patches the TCP checksum, so TCP accepts it.

The same weir-frame-load traffic goes first through a `tcp` listener (no verification) and then
through a `framed` listener (every CRC-32C trailer verified, on_corrupt: reset), and a table
compares what happened."""

import argparse
import json
import os
import signal
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
    bad_switch_config,
    bpf_object,
    poll_until,
)

BACKENDS = ("b1", "b2", "b3")
BACKEND_PORT = 8000
TCP_PORT, FRAMED_PORT = 80, 81
EVERY_NTH = 150  # the switch corrupts one segment in this many


METRICS = "127.0.0.1:9464"  # inside the ctl namespace, where weir-control runs


def config(tb: Testbed) -> dict:
    c = tb.dataplane_config()
    c["control"] = {"socket": str(tb.workdir / "control.sock"), "metrics": {"listen": METRICS},
                    "state_file": str(tb.workdir / "control-state.json")}
    c["pools"] = [{
        "name": "frames",
        "backends": [{"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in BACKENDS],
        "health": {"type": "framed-ping", "interval_ms": 1000, "timeout_ms": 500},
    }]
    c["listeners"] = [
        {"name": "plain", "address": LISTENER_ADDRESS, "port": TCP_PORT, "protocol": "tcp",
         "pool": "frames"},
        {"name": "verified", "address": LISTENER_ADDRESS, "port": FRAMED_PORT,
         "protocol": "framed", "pool": "frames", "framed": {"on_corrupt": "reset"}},
    ]
    return c


def phase(tb, dp, echoes, switch, build, port, listener, seconds, rate):
    switch.map_update("bad_switch_cfg", b"\0\0\0\0", bad_switch_config(port, EVERY_NTH))
    flipped_before = switch.read_u64_array("bad_switch_cnt")[1]
    echo_before = echoes.counters()
    stats_before = dp.stats()["listeners"][listener]
    result = tb.exec("client", [str(build / "tools" / "weir-frame-load"), "--connect",
                                f"{LISTENER_ADDRESS}:{port}", "--connections", "8", "--rate",
                                str(rate), "--duration", str(seconds), "--sizes",
                                "256:0.5,4096:0.4,32768:0.1", "--reconnect", "--json"],
                     check=False, timeout=seconds + 60)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    flipped = switch.read_u64_array("bad_switch_cnt")[1] - flipped_before
    echo_after = echoes.counters()
    stats = dp.stats()["listeners"][listener]

    def delta(role, key):
        return echo_after[role][key] - echo_before[role][key]

    good = {r: delta(r, "frames_good") for r in BACKENDS}
    return {
        "frames sent": summary["frames_sent"],
        "frames the switch corrupted": flipped,
        "corrupt frames Weir caught": (stats["frames_corrupt_to_backend"]
                                       - stats_before["frames_corrupt_to_backend"]
                                       + stats["frames_malformed_to_backend"]
                                       - stats_before["frames_malformed_to_backend"]),
        "corrupt frames that reached a backend": sum(delta(r, "frames_corrupt")
                                                     + delta(r, "frames_malformed")
                                                     for r in BACKENDS),
        "connections reset": summary.get("connection_resets", 0),
        "throughput (MB/s)": f"{summary['throughput_bytes_per_s'] / 1e6:.1f}",
        "latency p50/p99/p99.9 (us)": "{p50:.0f}/{p99:.0f}/{p999:.0f}".format(
            **summary["latency_us"]),
        "backend shares b1/b2/b3": "/".join(
            f"{100 * good[r] / max(1, sum(good.values())):.0f}%" for r in BACKENDS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="leave the topology running until Ctrl-C")
    parser.add_argument("--seconds", type=int, default=10, help="per phase (default 10)")
    parser.add_argument("--rate", type=int, default=3000, help="frames per second (default 3000)")
    args = parser.parse_args()
    build = Path(os.environ.setdefault("WEIR_BUILD_ROOT", str(root / "build")))
    with Testbed() as tb:
        print(f"topology: client {ADDRESSES['client']} -> bad switch -> Weir {LISTENER_ADDRESS} "
              f"(af_packet, no hugepages) -> weir-frame-echo on {', '.join(BACKENDS)}")
        echoes = FrameEchoes(tb, BACKENDS, BACKEND_PORT, "demo")
        tb.set_offloads("client", "eth0", enabled=False)
        tb.set_offloads("br", Testbed.bridge_port("client"), enabled=False)
        switch = tb.attach_tc_bpf("br", Testbed.bridge_port("client"), bpf_object("bad_switch"),
                                  direction="ingress")
        with DataplaneProcess(tb, config(tb)) as dp:
            dp.wait_ready(timeout_s=30.0)
            import yaml
            control_config = tb.workdir / "weir.yaml"
            control_config.write_text(yaml.safe_dump(dp.config, sort_keys=False))
            log = tb.workdir / "weir-control.log"
            with open(log, "wb") as out:
                tb.popen("ctl", [str(build / "control" / "weir-control"), "--config",
                                 str(control_config)], stdout=subprocess.DEVNULL, stderr=out)
            # Its log says when it serves (each line: time, level, "weir-control: ...").
            ready = poll_until(lambda: [line for line in log.read_text().splitlines()
                                        if "weir-control: metrics on" in line], 20.0,
                               what="weir-control to serve")[0]
            print("weir-control (ctl namespace): " + ready.split("weir-control: ", 1)[1])
            rows = {}
            print(f"sending {args.seconds} s through the `tcp` listener (port {TCP_PORT})...")
            rows["tcp (no verification)"] = phase(tb, dp, echoes, switch, build, TCP_PORT,
                                                  "plain", args.seconds, args.rate)
            print(f"sending {args.seconds} s through the `framed` listener "
                  f"(port {FRAMED_PORT})...")
            rows["framed (Weir verifies)"] = phase(tb, dp, echoes, switch, build, FRAMED_PORT,
                                                   "verified", args.seconds, args.rate)
            print()
            names = list(rows)
            keys = list(rows[names[0]])
            width = max(len(k) for k in keys)
            print(f"{'':{width}}  " + "  ".join(f"{n:>24}" for n in names))
            for key in keys:
                print(f"{key:{width}}  " + "  ".join(f"{str(rows[n][key]):>24}" for n in names))
            verified = rows["framed (Weir verifies)"]
            ok = (verified["corrupt frames that reached a backend"] == 0
                  and verified["corrupt frames Weir caught"] > 0)
            print()
            print("framed: every corrupted frame was stopped at Weir" if ok else
                  "framed: UNEXPECTED: see the table")
            scrape = tb.python("ctl", "import urllib.request\nemit(urllib.request.urlopen("
                               f"'http://{METRICS}/metrics', timeout=10).read().decode())")
            wanted = ("weir_frames_corrupt_total", "weir_frames_verified_total",
                      "weir_listener_connections_total", "weir_backend_up", "weir_health_up")
            print(f"\nlive values from weir-control's http://{METRICS}/metrics:")
            for line in scrape.splitlines():
                if line.startswith(wanted) and not line.endswith(" 0"):
                    print("  " + line)
            if args.keep:
                print(f"running; namespaces {', '.join(tb.namespaces)}. Ctrl-C tears down.")
                try:
                    signal.pause()
                except KeyboardInterrupt:
                    pass
            dp.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
