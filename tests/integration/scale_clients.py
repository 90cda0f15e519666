"""Clients of the cluster scale tests (tests/integration/test_router_scale.py), run in the client
namespace of the router bed (routerbed.py) by Testbed.python / python_popen. The backends run
backend_server.py's whois_echo: every connection first says which backend it reached and from
which address the proxy connected (the box that holds the session), then echoes."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

from netbed import poll_until
from routerbed import VIP, VIP_PORT

# Shared by the sources below: opens one connection to the VIP and reads the backend's
# greeting; returns the socket, the backend's name and the owner's address.
_GREETED = r"""
import os, selectors, socket, time
def greeted(port, bind_port=None, timeout=20):
    s = socket.socket()
    s.settimeout(timeout)
    if bind_port is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ARGS["client"], bind_port))
    global PHASE
    try:
        PHASE = "connect"
        s.connect((ARGS["vip"], port))
        PHASE = f"greeting from {s.getsockname()[0]}:{s.getsockname()[1]}"
        line = b""
        while not line.endswith(b"\n"):
            piece = s.recv(100)
            if not piece:
                raise EOFError(f"closed after {line!r}")
            line += piece
    except BaseException:
        s.close()
        raise
    name, owner = line.decode().split()
    return s, name, owner
"""

# Opens ARGS["count"] connections (one handshake after another; with ARGS["greeted"], each
# reading the backend's greeting: the owner and backend of each are known) and then, round
# after round, echoes ARGS["size"] bytes on every open connection at once, a round at most every
# ARGS["period"] seconds, until the file ARGS["stop"] exists or ARGS["seconds"] pass. A
# connection whose echo fails, comes back different or late (20 s after the round's start) is
# marked with the error and left alone. When the file ARGS["close"] appears (a JSON list of
# addresses), the healthy connections held by those boxes are closed at the next round (FIN, and
# the backend's FIN must come back) and the rest go on. After each round ARGS["progress"] holds
# {"rounds", "owners" (open connections per holding box), "closed"}. At the end every healthy
# connection is closed and its close checked. Emits, per connection, the error (None: healthy to
# the end), the owner and the backend.
LONG_LIVED = _GREETED + r"""
count, size = ARGS["count"], ARGS["size"]
conns, owners, backends = [], [], []
for i in range(count):
    if ARGS["greeted"]:
        s, name, owner = greeted(ARGS["port"])
    else:
        s = socket.create_connection((ARGS["vip"], ARGS["port"]), timeout=20)
        name = owner = None
    conns.append(s)
    owners.append(owner)
    backends.append(name)
errors, closed = [None] * count, [False] * count
def close_checked(i):
    try:
        conns[i].settimeout(10)
        conns[i].shutdown(socket.SHUT_WR)
        if conns[i].recv(1) != b"":
            errors[i] = "data after the close"
    except OSError as error:
        errors[i] = "close: " + repr(error)
    conns[i].close()
    closed[i] = True
def report(rounds):
    held = {}
    for i in range(count):
        if errors[i] is None and not closed[i]:
            held[owners[i]] = held.get(owners[i], 0) + 1
    with open(ARGS["progress"] + ".tmp", "w") as f:
        json.dump({"rounds": rounds, "owners": held, "closed": sum(closed)}, f)
    os.replace(ARGS["progress"] + ".tmp", ARGS["progress"])
rounds, closing_done = 0, False
report(0)
deadline = time.monotonic() + ARGS["seconds"]
while time.monotonic() < deadline and not os.path.exists(ARGS["stop"]):
    started = time.monotonic()
    if not closing_done and os.path.exists(ARGS["close"]):
        with open(ARGS["close"]) as f:
            leaving = set(json.load(f))
        for i in range(count):
            if errors[i] is None and not closed[i] and owners[i] in leaving:
                close_checked(i)
        closing_done = True
    expected, received = {}, {}
    selector = selectors.DefaultSelector()
    for i, s in enumerate(conns):
        if errors[i] is not None or closed[i]:
            continue
        data = bytes((i * 31 + rounds * 7 + k) % 251 for k in range(size))
        try:
            s.settimeout(10)
            s.sendall(data)
        except OSError as error:
            errors[i] = repr(error)
            continue
        s.setblocking(False)
        expected[i], received[i] = data, b""
        selector.register(s, selectors.EVENT_READ, i)
    round_end = started + 20
    while expected and time.monotonic() < round_end:
        for key, _ in selector.select(max(0.0, round_end - time.monotonic())):
            i = key.data
            try:
                piece = conns[i].recv(65536)
            except OSError as error:
                piece, errors[i] = b"", repr(error)
            if not piece and errors[i] is None:
                errors[i] = "closed by the peer"
            received[i] += piece
            if errors[i] is not None or len(received[i]) >= size:
                if errors[i] is None and received[i] != expected[i]:
                    errors[i] = "different bytes came back"
                selector.unregister(conns[i])
                del expected[i]
    for i in expected:
        errors[i] = "no echo within 20 s"
    selector.close()
    rounds += 1
    report(rounds)
    while time.monotonic() < started + ARGS["period"] and not os.path.exists(ARGS["stop"]):
        time.sleep(0.02)  # pacing: a round at most every period, not a synchronisation
for i in range(count):
    if errors[i] is None and not closed[i]:
        close_checked(i)
emit({"rounds": rounds, "errors": errors, "owners": owners, "backends": backends,
      "closed": closed})
"""

# ARGS["count"] new connections one after another, each echoing 100 bytes and closed; per
# connection [error, owner, backend] (error None when it worked).
NEW_CONNECTIONS = _GREETED + r"""
results, slowest = [], 0.0
for i in range(ARGS["count"]):
    started = time.monotonic()
    try:
        s, name, owner = greeted(ARGS["port"], timeout=ARGS["timeout"])
    except (OSError, EOFError) as error:
        results.append([f"{PHASE}: {error!r}", None, None])
        continue
    with s:
        try:
            data = bytes((i + k) % 251 for k in range(100))
            s.sendall(data)
            results.append([None if recv_exactly(s, 100) == data else "different bytes",
                            owner, name])
        except (OSError, EOFError) as error:
            results.append([f"echo from {s.getsockname()[1]}: {error!r}", owner, name])
    slowest = max(slowest, time.monotonic() - started)
emit({"results": results, "slowest": slowest})
"""

# For each of ARGS["ports"]: a connection from that client port (the same 4-tuple each time),
# the greeting read, 20 bytes echoed, then closed with RST (no TIME_WAIT: the tuple can be used
# again at once); per port [error, owner, backend].
SAME_TUPLES = _GREETED + r"""
import struct
results = []
for port in ARGS["ports"]:
    try:
        s, name, owner = greeted(ARGS["port"], bind_port=port, timeout=ARGS["timeout"])
    except (OSError, EOFError) as error:
        results.append([repr(error), None, None])
        continue
    try:
        s.sendall(b"same tuple, same backn")
        ok = recv_exactly(s, 22) == b"same tuple, same backn"
        results.append([None if ok else "different bytes", owner, name])
    except (OSError, EOFError) as error:
        results.append([repr(error), owner, name])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
emit(results)
"""

RESULT_MARKER = "@@netbed-result@@"


def _result(proc: subprocess.Popen, timeout_s: float):
    out, err = proc.communicate(timeout=timeout_s)
    text = out.decode(errors="replace")
    assert RESULT_MARKER in text, f"a client emitted nothing (exit {proc.returncode}): " + \
        err.decode(errors="replace")[-3000:]
    return json.loads(text.rsplit(RESULT_MARKER, 1)[1])


class LongLived:
    """LONG_LIVED in `processes` client processes side by side, `count` connections in all."""

    def __init__(self, bed, count: int, processes: int = 4, size: int = 100,
                 period_s: float = 0.5, seconds: float = 400.0, greeted: bool = True):
        self.bed = bed
        self.stop_file = bed.workdir / "long-lived.stop"
        self.close_file = bed.workdir / "long-lived.close"
        self.progress_files: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        share, extra = divmod(count, processes)
        for index in range(processes):
            progress = bed.workdir / f"long-lived-{index}.progress"
            self.progress_files.append(progress)
            self.procs.append(bed.python_popen("client", LONG_LIVED, {
                "count": share + (index < extra), "size": size, "vip": VIP, "port": VIP_PORT,
                "client": None, "greeted": greeted, "seconds": seconds, "period": period_s,
                "stop": str(self.stop_file), "close": str(self.close_file),
                "progress": str(progress)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE))

    def progress(self) -> list[dict]:
        """Each process's last report; {"rounds": -1} while it is still connecting."""
        reports = []
        for proc, path in zip(self.procs, self.progress_files):
            if proc.poll() is not None:
                raise AssertionError(f"a client exited early: {proc.communicate()}")
            reports.append(json.loads(path.read_text()) if path.exists() else {"rounds": -1})
        return reports

    def rounds(self) -> int:
        """The rounds every process has done (the slowest one's)."""
        return min(report["rounds"] for report in self.progress())

    def wait_rounds(self, more: int, timeout_s: float = 120.0) -> int:
        target = max(self.rounds(), 0) + more
        return poll_until(lambda: self.rounds() >= target and self.rounds(), timeout_s,
                          interval_s=0.1, what=f"every client process to reach round {target}")

    def owners(self) -> Counter:
        """Open, healthy connections per holding box's address, by the backends' greetings."""
        held: Counter = Counter()
        for report in self.progress():
            held.update(report.get("owners", {}))
        return held

    def close_those_of(self, addresses: list[str]) -> None:
        """The clients close (cleanly) the connections the boxes at `addresses` hold, at their
        next round; the others go on."""
        tmp = self.close_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(addresses))
        tmp.replace(self.close_file)

    def finish(self, timeout_s: float = 120.0) -> dict:
        """Stops the rounds, closes every connection; the outcomes of all processes joined."""
        self.stop_file.touch()
        deadline = time.monotonic() + timeout_s
        joined: dict = {"rounds": [], "errors": [], "owners": [], "backends": [], "closed": []}
        for proc in self.procs:
            result = _result(proc, max(1.0, deadline - time.monotonic()))
            joined["rounds"].append(result["rounds"])
            for key in ("errors", "owners", "backends", "closed"):
                joined[key] += result[key]
        return joined

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def new_connections(bed, count: int, processes: int = 1, timeout: float = 20.0) -> list:
    """NEW_CONNECTIONS, `count` in all over `processes` client processes side by side; each
    step of a connection (handshake, greeting, echo) waits at most `timeout` s, as long as
    LONG_LIVED waits for an echo before it calls the connection broken. The slowest connection's
    time is printed: a slow one is seen in the log, a stalled one fails."""
    share, extra = divmod(count, processes)
    procs = [bed.python_popen("client", NEW_CONNECTIONS, {
        "count": share + (index < extra), "vip": VIP, "port": VIP_PORT, "client": None,
        "timeout": timeout}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for index in range(processes)]
    results: list = []
    try:
        slowest = 0.0
        for proc in procs:
            outcome = _result(proc, count * timeout + 60)
            results += outcome["results"]
            slowest = max(slowest, outcome["slowest"])
        print(f"{count} new connections: the slowest took {slowest:.2f} s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return results


def same_tuples(bed, client: str, ports: list[int], timeout: float = 10.0) -> list:
    return bed.python("client", SAME_TUPLES, {"ports": ports, "vip": VIP, "port": VIP_PORT,
                                              "client": client, "timeout": timeout},
                      timeout=len(ports) * timeout + 30)
