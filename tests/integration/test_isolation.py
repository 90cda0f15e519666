"""One client never hurts another (issue 12, items 2 and 3): slowloris on a `framed` listener
(10,000 connections each holding one partial frame: bounded, counted, a fresh client served, and
reset at framed.frame_timeout_ms), and each side's own inactivity timeout (client_timeout_ms,
server_timeout_ms).

Fairness while one client floods a `tcp` listener is not here yet: the test for it (commit
05d064d) failed once in three runs (an established session's round stalled for 30 s) and new
connections were refused in every run; docs/operations.md, "Limits and defences", has the figures.

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
