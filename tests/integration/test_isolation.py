"""One client never hurts another (issue 12, items 2 and 3): slowloris on a `framed` listener
(10,000 connections each holding one partial frame: bounded, counted, a fresh client served, and
reset at framed.frame_timeout_ms), each side's own inactivity timeout (client_timeout_ms,
server_timeout_ms), and fairness while one client floods a `tcp` listener: sessions made before
the flood keep completing their transactions; new connections are refused while the flood holds
the pool under memory pressure (not yet fair; docs/operations.md, "Limits and defences").

The machines allow 20,000 open files a process: the slowloris clients are several processes, and
every loop here is bounded in count and in time."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    FrameEchoes,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_memory import tcp_totals
from test_tools import frame

BUILD = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
LOAD = BUILD / "tools" / "weir-frame-load"
BACKEND_PORT = 8000
VIP_PORT = 80
HEADER_SIZE = 16
# A frame's header announcing 1,000 bytes of payload: what a slowloris client sends, and no more.
PARTIAL_FRAME = frame(stream=7, payload=b"s" * 1000)[:HEADER_SIZE]
SLOWLORIS_PROCESSES = 4
SLOWLORIS_PER_PROCESS = 2_500
SLOWLORIS = SLOWLORIS_PROCESSES * SLOWLORIS_PER_PROCESS


@pytest.fixture
def bed(testbed_factory):
    return testbed_factory()


def listener_stats(dp: DataplaneProcess, name: str) -> dict:
    return dp.stats()["listeners"][name]


def wait_no_sessions(dp: DataplaneProcess, name: str, timeout_s: float) -> dict:
    """The listener's counters once it has no session left."""
    return poll_until(lambda: (lambda l: l if l["active"] == 0 else None)(
        listener_stats(dp, name)), timeout_s, interval_s=0.5, what=f"{name}'s sessions to end")


def framed_config(bed, framed: dict) -> dict:
    config = bed.dataplane_config()
    config["pools"] = [{"name": "frames", "backends": [
        {"name": "b1", "address": ADDRESSES["b1"], "port": BACKEND_PORT}]}]
    config["listeners"] = [{"name": "framed", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                            "protocol": "framed", "pool": "frames", "framed": framed}]
    return config


def run_load(bed, *args: str) -> dict:
    """weir-frame-load from the client through the framed listener: its JSON summary."""
    result = bed.exec("client", [str(LOAD), "--connect", f"{LISTENER_ADDRESS}:{VIP_PORT}",
                                 "--json", *args], check=False, timeout=120)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# ARGS["count"] connections, 100 handshakes at a time, each sending ARGS["header"] (hex: a frame's
# header) and never the rest of the frame. Reports "open" (connected, failures), then waits for
# ARGS["release"] (at most ARGS["hold_s"]); then, for ARGS["watch_s"] at most, how each connection
# ends: reset by the peer, closed by it (EOF), data (the frame was never whole: nothing may come),
# or still open. Reports "end" and closes every connection.
SLOWLORIS_CLIENT = r"""
import json, os, select, socket, time
held, failures = [], []
header = bytes.fromhex(ARGS["header"])
def report(name, extra):
    path = ARGS["report"] + "." + name
    open(path + ".tmp", "w").write(json.dumps(dict(connected=len(held), failed=len(failures),
                                                   failures=failures[:10], **extra)))
    os.rename(path + ".tmp", path)
def connected(s, error):
    if error:
        failures.append("connect: " + error)
        s.close()
    elif s.send(header) != len(header):  # an empty send buffer takes 16 bytes whole
        failures.append("short send")
        s.close()
    else:
        held.append(s)
failures.extend(["connect timed out"] * connect_in_batches(ARGS["address"], ARGS["port"],
                                                           ARGS["count"], connected))
report("open", {})
deadline = time.monotonic() + ARGS["hold_s"]
while not os.path.exists(ARGS["release"]) and time.monotonic() < deadline:
    time.sleep(0.1)
ends = {"reset": 0, "eof": 0, "data": 0, "open": 0}
def ended(s):
    try:
        ends["data" if s.recv(4096) else "eof"] += 1
    except ConnectionResetError:
        ends["reset"] += 1
    return True
ends["open"] = len(poll_each({s.fileno(): s for s in held}, select.POLLIN, ARGS["watch_s"],
                             ended))
report("end", {"ends": ends})
for s in held:
    s.close()
"""


def start_slowloris(bed, tag: str, processes: int, per_process: int, hold_s: float,
                    watch_s: float) -> tuple[list, Path]:
    release = bed.workdir / f"{tag}.release"
    release.unlink(missing_ok=True)
    procs = []
    for i in range(processes):
        report = bed.workdir / f"{tag}.client{i}"
        for suffix in ("open", "end"):
            Path(f"{report}.{suffix}").unlink(missing_ok=True)
        procs.append(bed.python_popen("client", SLOWLORIS_CLIENT, {
            "address": LISTENER_ADDRESS, "port": VIP_PORT, "count": per_process,
            "header": PARTIAL_FRAME.hex(), "report": str(report), "release": str(release),
            "hold_s": hold_s, "watch_s": watch_s}))
    return procs, release


def slowloris_reports(bed, tag: str, processes: int, name: str, timeout_s: float) -> list[dict]:
    paths = [bed.workdir / f"{tag}.client{i}.{name}" for i in range(processes)]
    poll_until(lambda: all(p.exists() for p in paths), timeout_s, interval_s=0.5,
               what=f"every slowloris client's report '{name}'")
    return [json.loads(p.read_text()) for p in paths]


def test_slowloris_on_a_framed_listener_is_bounded_counted_and_others_are_served(bed):
    echoes = FrameEchoes(bed, ("b1",), BACKEND_PORT)
    # The frame timeout longer than the test: the partial frames are held throughout.
    config = framed_config(bed, {"frame_timeout_ms": 3_600_000})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        before = dp.stats()
        procs, release = start_slowloris(bed, "slowloris", SLOWLORIS_PROCESSES,
                                          SLOWLORIS_PER_PROCESS, hold_s=900.0, watch_s=5.0)
        opened = slowloris_reports(bed, "slowloris", SLOWLORIS_PROCESSES, "open", 600.0)
        assert all(r["failed"] == 0 for r in opened), opened
        assert sum(r["connected"] for r in opened) == SLOWLORIS
        # Every one is a session holding a partial frame, and counted as one.
        held = poll_until(
            lambda: (lambda l: l if l["partial_frames"] == SLOWLORIS else None)(
                listener_stats(dp, "framed")), 120.0, interval_s=0.5,
            what=f"{SLOWLORIS} partial frames counted")
        assert held["active"] == SLOWLORIS, held
        assert held["frame_timeouts"] == 0, held
        stats = dp.stats()
        held_mbufs = before["mbufs"]["available"] - stats["mbufs"]["available"]
        print(f"\n{SLOWLORIS} partial frames held: mbufs available "
              f"{before['mbufs']['available']} -> {stats['mbufs']['available']}; "
              f"listener {held}")
        # The headers went on to the backend and were acknowledged: a held partial frame holds no
        # mbuf (what is out of the pool is the devices' and the caches').
        assert held_mbufs < 512, (before["mbufs"], stats["mbufs"])
        assert all(d["rx_nombuf"] == 0 for d in stats["devices"].values()), stats["devices"]

        # A fresh client's framed transactions are served while the 10,000 hold.
        load = run_load(bed, "--connections", "4", "--frames", "200", "--sizes", "64:1,4096:1",
                        "--timeout", "30")
        print("fresh client meanwhile:", load)
        assert load["frames_sent"] == 200 and load["responses_ok"] == 200, load
        assert load["responses_mismatched"] == 0 and load["connection_errors"] == 0, load
        after = listener_stats(dp, "framed")
        assert after["frames_verified_to_backend"] >= 200, after

        release.touch()
        ended = slowloris_reports(bed, "slowloris", SLOWLORIS_PROCESSES, "end", 120.0)
        ends = [r["ends"] for r in ended]
        # Nothing came back on a connection whose frame never completed.
        assert sum(e["data"] for e in ends) == 0, ends
        for proc in procs:
            assert proc.wait(60) == 0
        # Their sessions end, the gauge with them.
        poll_until(lambda: (lambda l: l["active"] == 0 and l["partial_frames"] == 0)(
            listener_stats(dp, "framed")), 120.0, interval_s=0.5,
            what="every slowloris session to end")
        assert dp.stop() == 0, dp.output()
    echoes.total()


def test_partial_frames_are_reset_at_the_frame_timeout_and_whole_frames_are_not(bed):
    echoes = FrameEchoes(bed, ("b1",), BACKEND_PORT)
    config = framed_config(bed, {"frame_timeout_ms": 1500})
    processes, per_process = 2, 250
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        procs, _release = start_slowloris(bed, "expire", processes, per_process, hold_s=0.0,
                                          watch_s=60.0)
        # A client whose frames each complete within the timeout, for longer than it, on one
        # connection: 10 frames over about 5 s (--rate 2), every one answered.
        load = run_load(bed, "--connections", "1", "--rate", "2", "--duration", "5",
                        "--timeout", "10")
        print("\nwhole frames across the timeout:", load)
        assert load["frames_sent"] >= 8 and load["responses_ok"] == load["frames_sent"], load
        assert load["connection_resets"] == 0, load
        ended = slowloris_reports(bed, "expire", processes, "end", 180.0)
        assert all(r["failed"] == 0 for r in ended), ended
        ends = [r["ends"] for r in ended]
        print("slowloris connections at the frame timeout:", ends)
        assert sum(e["reset"] for e in ends) == processes * per_process, ends
        for proc in procs:
            assert proc.wait(60) == 0
        stats = wait_no_sessions(dp, "framed", 60.0)
        assert stats["frame_timeouts"] == processes * per_process, stats
        assert stats["partial_frames"] == 0, stats
        assert stats["idle_timeouts"] == 0, stats
        assert dp.stop() == 0, dp.output()
    echoes.total()


# ---- each side's own inactivity timeout ------------------------------------------------------

# A backend that reads whatever comes and never sends a byte. For each connection it notes how it
# ended ("reset", "eof") and the bytes it read, in ARGS["status"] (whole, by rename).
SILENT_BACKEND = r"""
import json, os, selectors, socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((ARGS["address"], ARGS["port"]))
listener.listen(64)
listener.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ, None)
status = {"accepted": 0, "bytes": 0, "reset": 0, "eof": 0}
print("ready", flush=True)
while True:
    changed = False
    for key, _ in sel.select(0.2):
        if key.data is None:
            conn, _peer = listener.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ, "conn")
            status["accepted"] += 1
        else:
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data, status["reset"] = None, status["reset"] + 1
            if data:
                status["bytes"] += len(data)
            else:
                if data == b"":
                    status["eof"] += 1
                sel.unregister(key.fileobj)
                key.fileobj.close()
        changed = True
    if changed:
        open(ARGS["status"] + ".tmp", "w").write(json.dumps(status))
        os.rename(ARGS["status"] + ".tmp", ARGS["status"])
"""

# Connects to ARGS["port"], sends ARGS["request"] (possibly nothing), and then waits, at most
# ARGS["wait_s"], for how the connection ends: "reset", "eof", "data" or "still open".
QUIET_CLIENT = r"""
import socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
if ARGS["request"]:
    s.sendall(ARGS["request"].encode())
s.settimeout(ARGS["wait_s"])
try:
    emit("data" if s.recv(4096) else "eof")
except ConnectionResetError:
    emit("reset")
except socket.timeout:
    emit("still open")
"""


def silent_backend_status(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_silent_client_and_a_silent_backend_each_hit_their_own_timeout(bed):
    status = bed.workdir / "silent-backend.json"
    status.unlink(missing_ok=True)
    backend = bed.python_popen("b1", SILENT_BACKEND, {
        "address": ADDRESSES["b1"], "port": BACKEND_PORT, "status": str(status)},
        stdout=subprocess.PIPE)
    assert _read_line(backend, 10.0) == "ready"
    config = bed.dataplane_config()
    config["pools"] = [{"name": "app", "backends": [
        {"name": "b1", "address": ADDRESSES["b1"], "port": BACKEND_PORT}]}]
    # A long idle_timeout_ms: each side's own key overrides it for that side only.
    common = {"address": LISTENER_ADDRESS, "protocol": "tcp", "pool": "app",
              "idle_timeout_ms": 600_000}
    config["listeners"] = [
        {"name": "quiet_client", "port": 80, "client_timeout_ms": 1000, **common},
        {"name": "quiet_server", "port": 81, "server_timeout_ms": 1000, **common},
    ]
    try:
        with DataplaneProcess(bed, config) as dp:
            dp.wait_ready(timeout_s=30.0)
            # A client that connects and says nothing, to a backend that says nothing: the
            # client's timeout (1 s) ends it, and the backend is reset too.
            outcome = bed.python("client", QUIET_CLIENT, {
                "address": LISTENER_ADDRESS, "port": 80, "request": "", "wait_s": 30.0})
            assert outcome == "reset"
            quiet = wait_no_sessions(dp, "quiet_client", 30.0)
            assert (quiet["client_timeouts"], quiet["server_timeouts"]) == (1, 0), quiet
            assert quiet["idle_timeouts"] == 1, quiet
            poll_until(lambda: silent_backend_status(status).get("reset") == 1, 30.0,
                       what="the backend to see its connection reset")

            # A client that asks and waits, to a backend that reads the request and never
            # answers: the backend's timeout (1 s) ends it, and the client is reset too.
            outcome = bed.python("client", QUIET_CLIENT, {
                "address": LISTENER_ADDRESS, "port": 81, "request": "question", "wait_s": 30.0})
            assert outcome == "reset"
            quiet = wait_no_sessions(dp, "quiet_server", 30.0)
            assert (quiet["client_timeouts"], quiet["server_timeouts"]) == (0, 1), quiet
            backend_seen = poll_until(
                lambda: (lambda s: s if s.get("reset") == 2 else None)(
                    silent_backend_status(status)), 30.0,
                what="the backend to see its second connection reset")
            assert backend_seen["bytes"] == len("question"), backend_seen
            # The first listener saw no more than its one session.
            assert listener_stats(dp, "quiet_client")["idle_timeouts"] == 1
            assert dp.stop() == 0, dp.output()
    finally:
        backend.kill()
        backend.wait(10)


# ---- fairness while one client floods --------------------------------------------------------

FLOOD_CONNECTIONS = 1_000
# Per connection, at most: more than its path holds (the sockets' buffers are kept small, so that
# the flood's memory is Weir's and not the kernels'), so each one's send meets a full path.
FLOOD_BYTES = 2 << 20
OTHER_CLIENTS = 20
ROUNDS = 25  # per kept connection
FRESH_TRANSACTIONS = 200  # each on a new connection
MESSAGE = 1024

# An echo server (asyncio): each connection's bytes back until EOF. 64 KiB socket buffers.
ECHO_BACKEND = r"""
import asyncio, socket
async def serve(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()
    except ConnectionError:
        pass
async def main():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # inherited by each accepted one
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.bind((ARGS["address"], ARGS["port"]))
    server = await asyncio.start_server(serve, sock=sock, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

# One client, ARGS["count"] connections (100 handshakes at a time), each sending up to
# ARGS["bytes"] as fast as it is taken and never reading its echo. Reports "saturated" once every
# connection's send has met a full path (EAGAIN) or sent all its bytes, or at ARGS["limit_s"];
# holds the connections until ARGS["release"] exists (at most ARGS["limit_s"]).
FLOOD_CLIENT = r"""
import json, os, select, socket, time
deadline = time.monotonic() + ARGS["limit_s"]
held, failures = [], []
def small_buffers(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
def connected(s, error):
    if error:
        failures.append(error)
        s.close()
    else:
        held.append(s)
failures.extend(["connect timed out"] * connect_in_batches(
    ARGS["address"], ARGS["port"], ARGS["count"], connected, prepare=small_buffers))
block = os.urandom(65536)
sent = {s.fileno(): 0 for s in held}
blocked = set()
by_fd = {s.fileno(): s for s in held}
poller = select.poll()
for fd in by_fd:
    poller.register(fd, select.POLLOUT)
reported = False
def report(name):
    path = ARGS["report"] + "." + name
    open(path + ".tmp", "w").write(json.dumps({
        "connected": len(held), "failures": failures[:10], "failed": len(failures),
        "bytes": sum(sent.values()), "blocked": len(blocked)}))
    os.rename(path + ".tmp", path)
while time.monotonic() < deadline and not os.path.exists(ARGS["release"]):
    for fd, event in poller.poll(200):
        s = by_fd[fd]
        if event & (select.POLLERR | select.POLLHUP):
            poller.unregister(fd)
            failures.append("connection failed after %d bytes" % sent[fd])
            continue
        try:
            while sent[fd] < ARGS["bytes"]:
                sent[fd] += s.send(block[: ARGS["bytes"] - sent[fd]])
        except BlockingIOError:
            blocked.add(fd)
        except OSError as error:
            failures.append(repr(error))
            poller.unregister(fd)
            continue
        if sent[fd] >= ARGS["bytes"]:
            blocked.add(fd)
            poller.unregister(fd)
    if not reported and len(blocked) == len(held):
        report("saturated")
        reported = True
if not reported:
    report("saturated")
report("end")
for s in held:
    s.close()
"""

# ARGS["clients"] kept connections, made first (reported "connected"); once ARGS["go"] exists,
# ARGS["rounds"] echo rounds of ARGS["message"] bytes on each, in turn, and then ARGS["fresh"]
# transactions each on a new connection. Every operation has a 30 s timeout; each failure is
# recorded, not retried; a new connection refused (RST) is counted apart.
OTHERS_CLIENT = r"""
import json, os, socket, time
message = os.urandom(ARGS["message"])
def round_trip(s):
    s.sendall(message)
    got = bytearray()
    while len(got) < len(message):
        piece = s.recv(len(message) - len(got))
        if not piece:
            raise EOFError("EOF after %d bytes" % len(got))
        got += piece
    if bytes(got) != message:
        raise ValueError("came back different")
kept = [socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
        for _ in range(ARGS["clients"])]
open(ARGS["connected"], "w").write("1")
deadline = time.monotonic() + 600
while not os.path.exists(ARGS["go"]) and time.monotonic() < deadline:
    time.sleep(0.05)
result = {"kept_ok": 0, "fresh_ok": 0, "fresh_refused": 0, "errors": []}
for _ in range(ARGS["rounds"]):
    for s in kept:
        try:
            round_trip(s)
            result["kept_ok"] += 1
        except Exception as error:
            result["errors"].append("kept: %r" % error)
for _ in range(ARGS["fresh"]):
    try:
        with socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30) as s:
            round_trip(s)
        result["fresh_ok"] += 1
    except ConnectionRefusedError:
        result["fresh_refused"] += 1  # a RST at once: the pool is under pressure
    except Exception as error:
        result["errors"].append("fresh: %r" % error)
open(ARGS["done"] + ".tmp", "w").write(json.dumps(result))
os.rename(ARGS["done"] + ".tmp", ARGS["done"])
"""


def test_established_clients_transactions_complete_while_one_client_floods(bed):
    backend = bed.python_popen("b1", ECHO_BACKEND, {"address": ADDRESSES["b1"],
                                                    "port": BACKEND_PORT},
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert _read_line(backend, 10.0) == "ready"
    config = bed.dataplane_config()
    config["listeners"] = [{"name": "web", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                            "protocol": "tcp", "pool": "app"}]
    config["pools"] = [{"name": "app", "backends": [
        {"name": "b1", "address": ADDRESSES["b1"], "port": BACKEND_PORT}]}]
    files = {name: bed.workdir / f"fair.{name}" for name in
             ("connected", "go", "done", "release", "flood.saturated", "flood.end")}
    for path in files.values():
        path.unlink(missing_ok=True)
    address = {"address": LISTENER_ADDRESS, "port": VIP_PORT}
    try:
        with DataplaneProcess(bed, config) as dp:
            dp.wait_ready(timeout_s=30.0)
            before = dp.stats()
            others = bed.python_popen("client", OTHERS_CLIENT, {
                **address, "clients": OTHER_CLIENTS, "rounds": ROUNDS,
                "fresh": FRESH_TRANSACTIONS, "message": MESSAGE,
                "connected": str(files["connected"]), "go": str(files["go"]),
                "done": str(files["done"])})
            poll_until(files["connected"].exists, 30.0, what="the other clients to connect")
            flood = bed.python_popen("client", FLOOD_CLIENT, {
                **address, "count": FLOOD_CONNECTIONS, "bytes": FLOOD_BYTES,
                "report": str(bed.workdir / "fair.flood"), "release": str(files["release"]),
                "limit_s": 300.0})
            poll_until(files["flood.saturated"].exists, 320.0,
                       what="every flood connection to meet a full path")
            saturated = json.loads(files["flood.saturated"].read_text())
            assert saturated["failed"] == 0, saturated
            # The hostile case: the flood has taken the mbuf pool into pressure.
            poll_until(lambda: tcp_totals(dp.stats())["memory_pressure_entered"] >= 1, 300.0,
                       interval_s=0.5, what="the flood to take the pool into memory pressure")
            during = dp.stats()
            print(f"\nflood: {saturated}; mbufs {before['mbufs']} -> {during['mbufs']}")
            # The others' transactions while the flood holds all it can.
            files["go"].touch()
            poll_until(files["done"].exists, 600.0, interval_s=0.5,
                       what="the other clients' transactions")
            result = json.loads(files["done"].read_text())
            after = dp.stats()
            print(f"others: kept {result['kept_ok']}/{OTHER_CLIENTS * ROUNDS}, fresh "
                  f"{result['fresh_ok']}/{FRESH_TRANSACTIONS}, errors {result['errors'][:5]}; "
                  f"mbufs {after['mbufs']}; tcp {tcp_totals(after)}; "
                  f"listener {after['listeners']['web']}")
            files["release"].touch()
            assert others.wait(30) == 0
            assert flood.wait(60) == 0
            end = json.loads(files["flood.end"].read_text())
            print("flood at its end:", end)
            # Every transaction on a connection made before the flood completes, byte for byte.
            assert result["errors"] == [], result["errors"][:10]
            assert result["kept_ok"] == OTHER_CLIENTS * ROUNDS
            # A new connection is served or refused at once with a RST (counted), none left to
            # hang. Not yet fair: while one client's flood holds the pool under pressure, every
            # new connection is refused (measured: 0 of 200 served; docs/operations.md).
            assert result["fresh_ok"] + result["fresh_refused"] == FRESH_TRANSACTIONS
            assert tcp_totals(after)["syns_refused_memory"] >= result["fresh_refused"]
            assert all(d["rx_nombuf"] == 0 for d in after["devices"].values()), after["devices"]
            assert dp.stop() == 0, dp.output()
    finally:
        backend.kill()
        backend.wait(10)
