#!/usr/bin/env python3
"""Weir's TCP beside Linux's, in one run on the namespace test bed (tests/integration/netbed.py):

  throughput  a Linux client sends to Weir's discard service (10.77.0.100:9) and, side by side,
              to a discard server on Linux in the b1 namespace (10.77.0.11:9, same segment),
              with 1 and with 16 connections
  rate        connect, send 4 KiB, receive 4 KiB, close, against Weir's echo service and a Linux
              echo server in b1

The Linux peers are small Python servers on kernel sockets (recv_into 1 MiB buffers; a selectors
loop for echo), so the kernel does the TCP work on that side. Run as root after a build:
    WEIR_BUILD_ROOT=$PWD/build python3 bench/tcp_vs_linux.py
Results and the figures quoted: docs/benchmarks.md."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from netbed import ADDRESSES, LISTENER_ADDRESS, DataplaneProcess, Testbed, poll_until  # noqa: E402

LINUX_SERVERS = r"""
import os, selectors, socket, sys, threading
def discard():
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 9)); srv.listen(128)
    def sink(c):
        buf = bytearray(1 << 20)
        while c.recv_into(buf): pass
        c.close()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=sink, args=(c,), daemon=True).start()
def echo():
    sel = selectors.DefaultSelector()
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 7)); srv.listen(1024); srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is srv:
                c, _ = srv.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    c.sendall(data)
                else:
                    sel.unregister(c); c.close()
threading.Thread(target=discard, daemon=True).start()
print("ready", flush=True)
echo()
"""

THROUGHPUT = r"""
import socket, threading, time
block = b"\x5a" * (1 << 20)
per = ARGS["bytes"] // ARGS["connections"]
def one():
    s = socket.create_connection((ARGS["address"], 9), timeout=60)
    left = per
    while left > 0:
        s.sendall(block[: min(left, len(block))]); left -= len(block)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
threads = [threading.Thread(target=one) for _ in range(ARGS["connections"])]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
emit({"seconds": time.monotonic() - start, "bytes": per * ARGS["connections"]})
"""

RATE = r"""
import socket, time
payload = b"r" * 4096
start = time.monotonic()
for _ in range(ARGS["count"]):
    s = socket.create_connection((ARGS["address"], 7), timeout=10)
    s.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = s.recv(65536)
        if not chunk: raise SystemExit("short echo")
        got += len(chunk)
    s.close()
emit({"seconds": time.monotonic() - start})
"""


def main() -> int:
    results = []
    with Testbed() as tb:
        config = tb.dataplane_config()
        config["listeners"].append(
            {"name": "discard", "address": LISTENER_ADDRESS, "port": 9, "protocol": "discard"}
        )
        linux = tb.popen("b1", [sys.executable, "-c", LINUX_SERVERS], stdout=subprocess.PIPE, text=True)
        assert linux.stdout.readline().strip() == "ready"
        with DataplaneProcess(tb, config) as dp:
            dp.wait_ready(timeout_s=30.0)
            for connections in (1, 16):
                row = {"test": f"throughput, {connections} connection(s)"}
                for name, address in (("weir", LISTENER_ADDRESS), ("linux", ADDRESSES["b1"])):
                    r = tb.python("client", THROUGHPUT,
                                  {"address": address, "connections": connections, "bytes": 1 << 30},
                                  timeout=600)
                    row[name] = r["bytes"] / r["seconds"] / 1e6
                row["unit"] = "MB/s"
                results.append(row)
            row = {"test": "connect, 4 KiB each way, close", "unit": "connections/s"}
            for name, address in (("weir", LISTENER_ADDRESS), ("linux", ADDRESSES["b1"])):
                r = tb.python("client", RATE, {"address": address, "count": 2000}, timeout=600)
                row[name] = 2000 / r["seconds"]
            results.append(row)
            dp.stop()
        linux.terminate()
    for row in results:
        row["ratio"] = row["weir"] / row["linux"]
        print(f"{row['test']:<36} weir {row['weir']:10.1f}  linux {row['linux']:10.1f} {row['unit']:<14}"
              f" ratio {row['ratio']:.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
