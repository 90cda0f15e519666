#!/usr/bin/env python3
"""What an idle worker costs and how fast it wakes, on the namespace test bed
(tests/integration/netbed.py). These are figures, not pass/fail checks: the functional tests
(tests/integration/test_dataplane.py) check that the worker sleeps, wakes and stops; how much CPU
and how many milliseconds that takes depends on the machine and is measured here.

  idle cpu    CPU time of an idle dataplane over 10 s, idle.mode backoff (default max_sleep_us)
              and busy-poll, as a share of one core
  wake        ping RTTs to the port address, 300 ms apart (the worker is at its longest sleep
              before each), with max_sleep_us 5000 and with the default
  stop        SIGTERM to exit

Run as root after a build:
    WEIR_BUILD_ROOT=$PWD/build python3 bench/idle_and_wake.py
Results and the figures quoted: docs/benchmarks.md."""

import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from netbed import ADDRESSES, DataplaneProcess, Testbed, poll_until  # noqa: E402

IDLE_SECONDS = 10.0
PINGS, PING_INTERVAL_S = 20, 0.3


def idle_cpu(tb: Testbed, idle: dict) -> dict:
    config = tb.dataplane_config()
    config["dataplane"]["idle"] = idle
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        cpu_start, wall_start = dp.cpu_seconds(), time.monotonic()
        sleeps_start = DataplaneProcess.total(dp.stats(), "loop", "sleeps")
        poll_until(lambda: time.monotonic() - wall_start >= IDLE_SECONDS, IDLE_SECONDS + 5,
                   interval_s=0.5, what=f"{IDLE_SECONDS} s of idleness")
        cpu, wall = dp.cpu_seconds() - cpu_start, time.monotonic() - wall_start
        sleeps = DataplaneProcess.total(dp.stats(), "loop", "sleeps") - sleeps_start
        assert dp.stop() == 0, dp.output()
    return {"idle": idle, "core_share": round(cpu / wall, 4), "sleeps_per_s": round(sleeps / wall)}


def wake_rtts(tb: Testbed, max_sleep_us: int | None) -> dict:
    config = tb.dataplane_config()
    config["dataplane"]["idle"] = {"mode": "backoff"}
    if max_sleep_us is not None:
        config["dataplane"]["idle"]["max_sleep_us"] = max_sleep_us
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        tb.wait_reachable("client", ADDRESSES["dp"], timeout_s=10.0)
        result = tb.exec("client", ["ping", "-n", "-c", str(PINGS), "-i", str(PING_INTERVAL_S),
                                    "-W", "1", ADDRESSES["dp"]], check=False, timeout=60)
        rtts = [float(m) for m in re.findall(r"time=([\d.]+) ms", result.stdout)]
        started = time.monotonic()
        assert dp.stop() == 0, dp.output()
        stop_s = time.monotonic() - started
    return {"max_sleep_us": max_sleep_us or "default", "answered": f"{len(rtts)}/{PINGS}",
            "rtt_ms_median": statistics.median(rtts) if rtts else None,
            "rtt_ms_max": max(rtts) if rtts else None, "sigterm_to_exit_s": round(stop_s, 3)}


def main() -> int:
    with Testbed() as tb:
        rows = [idle_cpu(tb, {"mode": "backoff"}), idle_cpu(tb, {"mode": "busy-poll"}),
                wake_rtts(tb, 5000), wake_rtts(tb, None)]
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
