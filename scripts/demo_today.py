#!/usr/bin/env python3
"""What scripts/demo shows until the proxy lands: weir-dataplane in a network-namespace topology
(tests/integration/netbed.py) answering ping on its listener address and echoing 10 MiB through
its own TCP stack to a Linux client, checked by SHA-256, with the dataplane's counters."""

import os
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "tests" / "integration"))
from netbed import LISTENER_ADDRESS, DataplaneProcess, Testbed  # noqa: E402

ECHO = r"""
import hashlib, os, socket, threading, time
data = os.urandom(10 << 20)
s = socket.create_connection((ARGS["address"], 7), timeout=30)
got = bytearray()
def reader():
    while True:
        chunk = s.recv(1 << 18)
        if not chunk: return
        got.extend(chunk)
t = threading.Thread(target=reader); t.start()
start = time.monotonic()
s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(60)
emit({"seconds": time.monotonic() - start, "sent": hashlib.sha256(data).hexdigest(),
      "got": hashlib.sha256(bytes(got)).hexdigest(), "bytes": len(got)})
"""


def main() -> int:
    os.environ.setdefault("WEIR_BUILD_ROOT", str(root / "build"))
    with Testbed() as tb:
        with DataplaneProcess(tb, tb.dataplane_config()) as dp:
            dp.wait_ready(timeout_s=30.0)
            sent, received = tb.ping("client", LISTENER_ADDRESS, count=3, interval_s=0.2)
            print(f"ping {LISTENER_ADDRESS} (a Weir listener address): {received}/{sent} answered")
            r = tb.python("client", ECHO, {"address": LISTENER_ADDRESS}, timeout=120)
            ok = r["sent"] == r["got"]
            print(f"echo service {LISTENER_ADDRESS}:7 through Weir's TCP: {r['bytes'] >> 20} MiB back"
                  f" in {r['seconds']:.2f} s, SHA-256 {'equal' if ok else 'DIFFERENT'}")
            tcp = dp.stats()["workers"][0]["tcp"]
            print("dataplane TCP counters:", {k: v for k, v in tcp.items() if v})
            dp.stop()
    return 0 if ok and received == sent else 1


if __name__ == "__main__":
    sys.exit(main())
