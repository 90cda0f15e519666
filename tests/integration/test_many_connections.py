"""Many connections to one backend (issue 12, item 4): 100,000 proxied sessions held open at once
to a pool of one backend address:port, more than one source address's 64,512 ports allow, so the
port's source_addresses must carry them. Then one transaction on each: none may fail. The figures
reported: the dataplane's memory per idle session (two TCP connections and the session), measured
as the growth of its resident memory between 50,000 and 100,000 held sessions, and the mbufs the
idle sessions hold (none).

The machines allow 20,000 open files a process, so the clients are 8 processes (each from its own
address, 12,500 connections) and the backend 8 processes on one SO_REUSEPORT port."""

import json
import subprocess
import time

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    HOST_IFACE,
    LISTENER_ADDRESS,
    PREFIX_LENGTH,
    DataplaneProcess,
    _read_line,
    poll_until,
    testbed_factory,
)

BACKEND_PORT = 8000
VIP_PORT = 80
PROCESSES = 8
PER_CLIENT = 12_500
SESSIONS = PROCESSES * PER_CLIENT
SOURCE_ADDRESSES = ["10.77.0.201", "10.77.0.202"]
CLIENT_ADDRESSES = [f"10.77.0.{151 + i}" for i in range(PROCESSES)]
MESSAGE = 32

# An echo server sharing its port (SO_REUSEPORT) with the others; it writes how many connections
# it accepted from each peer address to ARGS["status"] (whole, by rename) whenever that changed.
BACKEND = r"""
import json, os, selectors, socket, time
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
listener.bind((ARGS["address"], ARGS["port"]))
listener.listen(4096)
listener.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ, None)
peers, changed, last_write = {}, False, 0.0
print("ready", flush=True)
while True:
    for key, _ in sel.select(0.2):
        if key.data is None:
            while True:
                try:
                    conn, (peer, _port) = listener.accept()
                except BlockingIOError:
                    break
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, peer)
                peers[peer] = peers.get(peer, 0) + 1
                changed = True
            continue
        try:
            data = key.fileobj.recv(4096)
        except ConnectionError:
            data = b""
        if data:
            key.fileobj.send(data)  # a few bytes: the socket buffer takes them
        else:
            sel.unregister(key.fileobj)
            key.fileobj.close()
    if changed and time.monotonic() - last_write > 0.5:
        open(ARGS["status"] + ".tmp", "w").write(json.dumps(peers))
        os.rename(ARGS["status"] + ".tmp", ARGS["status"])
        changed, last_write = False, time.monotonic()
"""

# ARGS["count"] connections from ARGS["source"], opened in two halves (the second once
# ARGS["half"] exists), 100 handshakes at a time; after each half a report. Once ARGS["go"]
# exists, one transaction on each (MESSAGE bytes naming the connection, echoed back and compared),
# 500 at a time; then the final report and every connection closed.
CLIENT = r"""
import errno, json, os, select, socket, time
count, source = ARGS["count"], ARGS["source"]
held, failures = [], []
def report(name, extra):
    path = ARGS["report"] + "." + name
    open(path + ".tmp", "w").write(json.dumps(dict(connected=len(held), failures=failures[:10],
                                                   failed=len(failures), **extra)))
    os.rename(path + ".tmp", path)
def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.05)
def open_connections(n):
    for first in range(0, n, 100):
        pending = {}
        for _ in range(min(100, n - first)):
            s = socket.socket()
            s.bind((source, 0))
            s.setblocking(False)
            s.connect_ex((ARGS["address"], ARGS["port"]))
            pending[s.fileno()] = s
        def connected(s):
            error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error == 0:
                held.append(s)
            else:
                failures.append("connect: " + errno.errorcode.get(error, str(error)))
                s.close()
            return True
        pending = poll_each(pending, select.POLLOUT, 30, connected)
        for s in pending.values():
            failures.append("connect timed out")
            s.close()
open_connections(count // 2)
report("half", {})
wait_for(ARGS["half"])
open_connections(count - count // 2)
report("all", {})
wait_for(ARGS["go"])
done, expected = 0, {}
for first in range(0, len(held), 500):
    batch = {}
    for i in range(first, min(first + 500, len(held))):
        message = ("%s %d" % (source, i)).encode().ljust(ARGS["message"], b".")
        held[i].send(message)
        batch[held[i].fileno()] = held[i]
        expected[held[i]] = (message, bytearray())
    def answered(s):
        global done
        message, got = expected[s]
        try:
            piece = s.recv(len(message) - len(got))
        except ConnectionError as error:
            failures.append(repr(error))
            return True
        if not piece:
            failures.append("EOF after %d bytes" % len(got))
            return True
        got += piece
        if len(got) < len(message):
            return False
        if bytes(got) == message:
            done += 1
        else:
            failures.append("came back different")
        return True
    failures.extend(["no answer"] * len(poll_each(batch, select.POLLIN, 60, answered)))
report("done", {"transactions": done})
for s in held:
    s.close()
"""


@pytest.fixture
def bed(testbed_factory):
    return testbed_factory()


def read_reports(bed, name: str) -> list[dict]:
    paths = [bed.workdir / f"many.client{i}.{name}" for i in range(PROCESSES)]
    poll_until(lambda: all(p.exists() for p in paths), 600.0, interval_s=0.5,
               what=f"every client's report '{name}'")
    return [json.loads(p.read_text()) for p in paths]


def backend_peers(bed) -> dict:
    total: dict = {}
    for i in range(PROCESSES):
        path = bed.workdir / f"many.backend{i}.json"
        if path.exists():
            for peer, count in json.loads(path.read_text()).items():
                total[peer] = total.get(peer, 0) + count
    return total


def web_listener(stats: dict) -> dict:
    return stats["listeners"]["web"]


def settled_memory(dp, sessions: int) -> tuple[int, int]:
    """The dataplane's resident bytes and free mbufs once `sessions` are open and idle."""
    poll_until(lambda: web_listener(dp.stats())["active"] == sessions, 120.0, interval_s=0.5,
               what=f"{sessions} sessions open on the listener")
    stats = dp.stats()
    return stats["process"]["resident_memory_bytes"], stats["mbufs"]["available"]


def test_100k_sessions_to_one_backend_each_complete_a_transaction(bed):
    started = time.monotonic()
    for address in CLIENT_ADDRESSES:
        bed.exec("client", ["ip", "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", HOST_IFACE])
    backends = []
    for i in range(PROCESSES):
        status = bed.workdir / f"many.backend{i}.json"
        status.unlink(missing_ok=True)
        proc = bed.python_popen("b1", BACKEND, {"address": ADDRESSES["b1"], "port": BACKEND_PORT,
                                                "status": str(status)},
                                stdout=subprocess.PIPE)
        assert _read_line(proc, 10.0) == "ready"
        backends.append(proc)
    config = bed.dataplane_config()
    config["dataplane"]["ports"][0]["source_addresses"] = SOURCE_ADDRESSES
    config["listeners"] = [{"name": "web", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                            "protocol": "tcp", "pool": "app"}]
    config["pools"] = [{"name": "app", "backends": [
        {"name": "b1", "address": ADDRESSES["b1"], "port": BACKEND_PORT}]}]
    files = {name: bed.workdir / f"many.{name}" for name in ("half", "go")}
    for path in files.values():
        path.unlink(missing_ok=True)
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        before = dp.stats()
        clients = []
        for i, address in enumerate(CLIENT_ADDRESSES):
            report = bed.workdir / f"many.client{i}"
            for suffix in ("half", "all", "done"):
                (bed.workdir / f"many.client{i}.{suffix}").unlink(missing_ok=True)
            clients.append(bed.python_popen("client", CLIENT, {
                "address": LISTENER_ADDRESS, "port": VIP_PORT, "source": address,
                "count": PER_CLIENT, "message": MESSAGE, "report": str(report),
                "half": str(files["half"]), "go": str(files["go"])}))

        half = read_reports(bed, "half")
        assert all(r["failed"] == 0 for r in half), half
        rss_half, free_half = settled_memory(dp, SESSIONS // 2)
        files["half"].touch()
        full = read_reports(bed, "all")
        assert all(r["failed"] == 0 for r in full), full
        assert sum(r["connected"] for r in full) == SESSIONS
        rss_full, free_full = settled_memory(dp, SESSIONS)
        opened = time.monotonic()

        # Every session reached the one backend, from the port's address and both source
        # addresses in turn: one address alone has 64,512 ports.
        peers = poll_until(lambda: (lambda p: p if sum(p.values()) == SESSIONS else None)(
            backend_peers(bed)), 60.0, interval_s=0.5, what="the backends to count every session")
        assert set(peers) == {ADDRESSES["dp"], *SOURCE_ADDRESSES}, peers
        assert all(count >= SESSIONS // 3 - 1 for count in peers.values()), peers

        per_session = (rss_full - rss_half) / (SESSIONS - SESSIONS // 2)
        mbufs_held = before["mbufs"]["available"] - free_full
        print(f"\n{SESSIONS} idle sessions: {per_session:.0f} bytes of resident memory each "
              f"(between {SESSIONS // 2} and {SESSIONS}: {rss_half} -> {rss_full}); mbufs "
              f"available {before['mbufs']['available']} before, {free_half} at "
              f"{SESSIONS // 2}, {free_full} at {SESSIONS}; peers {peers}; opened in "
              f"{opened - started:.0f} s")
        # Two TCP connections (a 336-byte record each, CUBIC's state inside it, from malloc) and
        # the session's 248 bytes, each static_assert-ed: measured 968 with malloc's headers. The
        # issue's goal, 1 KiB, is the bound (1,353 before the records were packed).
        assert per_session <= 1024, per_session
        # An idle session holds no mbuf: what is out of the pool is the device's and the caches'.
        assert abs(free_full - free_half) < 512, (free_half, free_full)
        assert mbufs_held < 2048, mbufs_held

        files["go"].touch()
        done = read_reports(bed, "done")
        failures = [f for r in done for f in r["failures"]]
        assert sum(r["failed"] for r in done) == 0, failures
        assert sum(r["transactions"] for r in done) == SESSIONS
        for proc in clients:
            proc.wait(120)
        listener = web_listener(dp.stats())
        assert listener["no_backend"] == 0 and listener["backend_connect_failures"] == 0, listener
        reply = dp.control({"op": "pools"})
        backend = reply["pools"][0]["backends"][0]
        assert backend["source_ports_exhausted"] == 0, backend
        print(f"transactions done {time.monotonic() - opened:.0f} s after; in all "
              f"{time.monotonic() - started:.0f} s; backend counters {backend}")
        assert dp.stop() == 0, dp.output()
    for proc in backends:
        proc.kill()
        proc.wait(10)
