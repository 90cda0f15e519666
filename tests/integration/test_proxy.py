"""The load balancer from outside: a Linux client in the client namespace connects to a `tcp`
listener on the dataplane, which places each connection on one of three Linux backends (b1-b3)
by Maglev and relays both directions (issue 5)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    Testbed,
    _read_line,
    bpf_object,
    drop_config,
    poll_until,
    testbed_factory,
)

ETH_P_IP = 0x0800

BACKEND_SERVER = Path(__file__).with_name("backend_server.py")
BACKEND_PORT = 8000
VIP_PORT = 80


class Backends:
    """backend_server.py in b1-b3, one mode for all, each with a status file."""

    def __init__(self, tb, mode: str, roles=("b1", "b2", "b3"), **extra):
        self.tb = tb
        self.status = {}
        self.procs = {}
        for role in roles:
            status = tb.workdir / f"{role}-{mode}.jsonl"
            status.unlink(missing_ok=True)
            self.status[role] = status
            argv = [sys.executable, str(BACKEND_SERVER), "--listen",
                    f"{ADDRESSES[role]}:{BACKEND_PORT}", "--name", role, "--mode", mode,
                    "--status", str(status)]
            for key, value in extra.items():
                argv += [f"--{key.replace('_', '-')}", str(value)]
            proc = tb.popen(role, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = _read_line(proc, 10.0)
            assert line == "ready", f"backend in {role}: {line}"
            self.procs[role] = proc

    def kill(self, role: str) -> None:
        """Stops one backend (this test bed's: never by name, which would match others')."""
        self.procs[role].kill()
        self.procs[role].wait(10)

    def records(self, role: str) -> list[dict]:
        path = self.status[role]
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


def proxy_config(tb, backends=("b1", "b2", "b3"), weights=None, listener_extra=None,
                 pool_extra=None, driver=None) -> dict:
    config = tb.dataplane_config(driver)
    weights = weights or {}
    pool = {
        "name": "app",
        "backends": [
            {"name": role, "address": ADDRESSES[role], "port": BACKEND_PORT,
             "weight": weights.get(role, 1)}
            for role in backends
        ],
    }
    pool.update(pool_extra or {})
    listener = {"name": "web", "address": LISTENER_ADDRESS, "port": VIP_PORT, "protocol": "tcp",
                "pool": "app"}
    listener.update(listener_extra or {})
    config["listeners"] = [listener]
    config["pools"] = [pool]
    return config


def listener_stats(dp: DataplaneProcess, name: str = "web") -> dict:
    return dp.stats()["listeners"][name]


# Opens ARGS["connections"] connections at once through the VIP; each sends ARGS["size"]
# pseudo-random bytes, half-closes, and reads the backend's answer (its SHA-256 of what arrived).
SHA_CLIENT = r"""
import hashlib, os, socket, threading, time
size, count = ARGS["size"], ARGS["connections"]
block = os.urandom(1 << 20)
results = [None] * count
def run(i):
    try:
        s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=120)
        digest = hashlib.sha256()
        left = size
        while left:
            piece = block[: min(left, len(block))]
            s.sendall(piece)
            digest.update(piece)
            left -= len(piece)
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
        s.close()
        results[i] = {"sent": digest.hexdigest(), "answer": answer.decode()}
    except Exception as error:
        results[i] = {"error": repr(error)}
start = time.monotonic()
threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join(600)
emit({"results": results, "seconds": time.monotonic() - start})
"""

# ARGS["connections"] short connections, ARGS["parallel"] at a time: connect, read to EOF (the
# backend's name), close. Reports the count per answer.
NAME_CLIENT = r"""
import collections, socket, threading
counts = collections.Counter()
lock = threading.Lock()
def worker(n):
    for _ in range(n):
        try:
            s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
            key = recv_all(s).decode() or "<empty>"
            s.close()
        except Exception as error:
            key = "error: " + type(error).__name__
        with lock:
            counts[key] += 1
parallel = ARGS["parallel"]
per = ARGS["connections"] // parallel
threads = [threading.Thread(target=worker, args=(per,)) for _ in range(parallel)]
for t in threads: t.start()
for t in threads: t.join(600)
emit(dict(counts))
"""


def send_and_check_digests(bed, size: int, connections: int) -> dict:
    """SHA_CLIENT through the VIP to "sha" backends: every connection's bytes arrive intact."""
    result = bed.python("client", SHA_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                               "size": size, "connections": connections},
                        timeout=600)
    for r in result["results"]:
        assert r is not None and "error" not in r, r
        digest, count = r["answer"].split()
        # The answer came after the client's FIN: the backend saw EOF (half-close) and its
        # reply still flowed back.
        assert int(count) == size, r
        assert digest == r["sent"], "the backend received different bytes"
    return result


@pytest.fixture
def bed(testbed_factory):
    return testbed_factory()


def test_50_connections_of_10_mb_arrive_intact_and_half_close_crosses(bed):
    Backends(bed, "sha")
    with DataplaneProcess(bed, proxy_config(bed)) as dp:
        dp.wait_ready(timeout_s=30.0)
        size = 10 * 1000 * 1000
        result = send_and_check_digests(bed, size, 50)
        print(f"50 x 10 MB through the proxy in {result['seconds']:.1f} s")
        stats = listener_stats(dp)
        assert stats["connections"] == 50
        assert stats["bytes_to_backend"] == 50 * size
        poll_until(lambda: listener_stats(dp)["active"] == 0, 10.0, what="sessions to end")
        assert dp.stop() == 0, dp.output()


def test_short_connections_spread_by_weight(bed):
    Backends(bed, "name")
    weights = {"b1": 1, "b2": 2, "b3": 1}
    with DataplaneProcess(bed, proxy_config(bed, weights=weights)) as dp:
        dp.wait_ready(timeout_s=30.0)
        total = 3000
        counts = bed.python("client", NAME_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                    "connections": total, "parallel": 8},
                            timeout=600)
        assert sum(counts.values()) == total
        assert set(counts) == {"b1", "b2", "b3"}, counts
        weight_sum = sum(weights.values())
        for role, weight in weights.items():
            expected = total * weight / weight_sum
            assert abs(counts[role] - expected) <= 0.25 * expected, (role, counts)
        assert listener_stats(dp)["connections"] == total
        assert dp.stop() == 0, dp.output()


def test_a_backend_that_refuses_is_skipped(bed):
    Backends(bed, "name", roles=("b1", "b2"))  # b3 has nothing listening: it answers RST
    with DataplaneProcess(bed, proxy_config(bed)) as dp:
        dp.wait_ready(timeout_s=30.0)
        counts = bed.python("client", NAME_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                    "connections": 300, "parallel": 4},
                            timeout=300)
        assert counts.get("b3", 0) == 0
        assert counts.get("b1", 0) + counts.get("b2", 0) == 300, counts
        stats = listener_stats(dp)
        assert stats["backend_connect_failures"] > 0, "b3 was never tried: the test shows nothing"
        assert stats["no_backend"] == 0
        assert dp.stop() == 0, dp.output()


def test_when_every_backend_refuses_the_client_is_reset_and_counted(bed):
    # Nothing listens on b1-b3: every attempt is refused (RST), and each connection tries the
    # first candidate and `retries` (2, the default) more before its client is reset.
    with DataplaneProcess(bed, proxy_config(bed)) as dp:
        dp.wait_ready(timeout_s=30.0)
        counts = bed.python("client", NAME_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                    "connections": 20, "parallel": 2},
                            timeout=120)
        assert counts == {"error: ConnectionResetError": 20}, counts
        poll_until(lambda: listener_stats(dp)["active"] == 0, 10.0, what="sessions to end")
        stats = listener_stats(dp)
        assert stats["connections"] == 20
        assert stats["no_backend"] == 20
        assert stats["backend_connect_failures"] == 20 * 3
        assert dp.stop() == 0, dp.output()


def skips_a_blackholed_b3(bed, config):
    Backends(bed, "name")
    # b3 listens, but nothing it sends leaves its link: Weir's SYNs to it are never answered
    # (ARP passes, so it is not an unroutable backend).
    blackhole = bed.attach_tc_bpf("br", Testbed.bridge_port("b3"), bpf_object("drop"),
                                  direction="ingress")
    blackhole.map_update("drop_config", b"\0\0\0\0", drop_config(1.0, ETH_P_IP))
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        counts = bed.python("client", NAME_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                    "connections": 60, "parallel": 4},
                            timeout=300)
        assert counts.get("b1", 0) + counts.get("b2", 0) == 60, counts
        stats = dp.stats()
        listener = stats["listeners"]["web"]
        assert listener["backend_connect_failures"] > 0, "b3 was never tried: the test shows nothing"
        assert listener["no_backend"] == 0
        # Each failure was a handshake given up (no RST came back from b3).
        assert DataplaneProcess.total(stats, "tcp", "timeouts") == listener[
            "backend_connect_failures"]
        assert DataplaneProcess.total(stats, "tcp", "resets_received") == 0
        assert blackhole.read_u64_array("drop_counters")[1] > 0
        assert dp.stop() == 0, dp.output()


def test_a_backend_that_never_answers_its_syn_is_skipped(bed):
    config = proxy_config(bed)
    # The SYN retries of an active open are spaced by the RTO: short ones keep the test short.
    config["tcp"] = {"min_rto_ms": 20, "max_rto_ms": 40}
    skips_a_blackholed_b3(bed, config)


def test_the_pools_connect_timeout_ends_an_unanswered_handshake(bed):
    # Default TCP timers: the SYN retransmission schedule alone would hold each attempt on b3 for
    # about a minute, past the clients' 30 s timeout; connect_timeout_ms ends it after 300 ms.
    config = proxy_config(bed)
    config["pools"][0]["connect_timeout_ms"] = 300
    skips_a_blackholed_b3(bed, config)


RST_CLIENT = r"""
import socket, struct
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
assert s.recv(1) == b"+"  # the backend's greeting: both connections are up
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # with linger 0: a RST, not a FIN
emit(True)
"""


def test_a_client_reset_aborts_the_backend_side(bed):
    backends = Backends(bed, "hold", roles=("b1",))
    with DataplaneProcess(bed, proxy_config(bed, backends=("b1",))) as dp:
        dp.wait_ready(timeout_s=30.0)
        bed.python("client", RST_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT})
        record = poll_until(lambda: backends.records("b1"), 10.0,
                            what="the backend's connection to end")
        assert record == [{"mode": "hold", "ended": "reset"}], record
        poll_until(lambda: listener_stats(dp)["active"] == 0, 10.0, what="the session to end")
        assert dp.stop() == 0, dp.output()


RESET_CLIENT = r"""
import socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
s.sendall(b"hello\n")
try:
    data = s.recv(100)
    emit({"outcome": "eof" if data == b"" else "data"})
except ConnectionResetError:
    emit({"outcome": "reset"})
"""


def test_a_backend_reset_resets_the_client(bed):
    Backends(bed, "rst")
    with DataplaneProcess(bed, proxy_config(bed)) as dp:
        dp.wait_ready(timeout_s=30.0)
        result = bed.python("client", RESET_CLIENT,
                            {"address": LISTENER_ADDRESS, "port": VIP_PORT})
        assert result["outcome"] == "reset"
        assert dp.stop() == 0, dp.output()


# Connects, then reads nothing until ARGS["go"] exists, writing to ARGS["inq"] what its kernel
# holds unread (FIONREAD) all the while; then reads ARGS["expect"] bytes.
SLOW_READER = r"""
import fcntl, os, socket, struct, termios, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect((ARGS["address"], ARGS["port"]))
s.settimeout(30)
while not os.path.exists(ARGS["go"]):
    unread = struct.unpack("i", fcntl.ioctl(s, termios.FIONREAD, b"\0" * 4))[0]
    with open(ARGS["inq"] + ".tmp", "w") as f:
        f.write(str(unread))
    os.replace(ARGS["inq"] + ".tmp", ARGS["inq"])
    time.sleep(0.05)
got = 0
while got < ARGS["expect"]:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    got += len(chunk)
open(ARGS["done"], "w").write(str(got))
"""


def test_a_slow_reader_does_not_grow_weirs_buffers(bed):
    flood = 64 << 20
    backends = Backends(bed, "flood", roles=("b1",), flood_bytes=flood)
    config = proxy_config(bed, backends=("b1",))
    receive_buffer = send_buffer = 32768
    config["tcp"] = {"receive_buffer_bytes": receive_buffer, "send_buffer_bytes": send_buffer}
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        work = bed.workdir
        inq, go, done = work / "slow.inq", work / "slow.go", work / "slow.done"
        for path in (inq, go, done):
            path.unlink(missing_ok=True)
        proc = bed.python_popen("client", SLOW_READER,
                                {"address": LISTENER_ADDRESS, "port": VIP_PORT, "inq": str(inq),
                                 "go": str(go), "done": str(done), "expect": flood})
        progress = Path(str(backends.status["b1"]) + ".progress")

        # No gauge says what Weir holds, so it is measured from outside: the bytes the backend's
        # kernel saw acknowledged (taken by Weir) less the bytes the client's kernel holds
        # unread (given by Weir) are in Weir. Every figure is read while it does not move.
        def snapshot() -> tuple:
            if not progress.exists() or not inq.exists():
                return ()
            backend = json.loads(progress.read_text())
            return (backend["sent"], backend["unacked"], int(inq.read_text()),
                    listener_stats(dp)["bytes_to_client"])

        previous = [()]

        def stalled() -> tuple:
            now = snapshot()
            # The backend has bytes Weir does not take, the client has bytes it does not read,
            # and nothing moved since the last look: the chain is full.
            full = bool(now) and now[1] > 0 and now[2] > 0 and now == previous[0]
            previous[0] = now
            return now if full else ()

        sent, unacked, unread, to_client = poll_until(
            stalled, 60.0, interval_s=0.2, what="the flood to stall behind the sleeping reader",
            describe=lambda: f"last snapshot {previous[0]}")
        taken_by_weir = sent - unacked
        print(f"stalled: the backend sent {sent} bytes, Weir took {taken_by_weir}, handed "
              f"{to_client} to the client side; the client holds {unread} unread")
        assert sent < flood, "the backend got everything out to a reader asleep"
        # The receiving side holds at most one receive window, the sending side at most its send
        # budget (docs/architecture.md, "Relay and backpressure").
        assert taken_by_weir - to_client <= receive_buffer, (taken_by_weir, to_client)
        assert to_client - unread <= send_buffer, (to_client, unread)
        go.touch()
        poll_until(done.exists, 120.0, what="the slow reader to read everything")
        assert int(done.read_text()) == flood
        proc.wait(30)
        assert dp.stop() == 0, dp.output()


def test_proxy_protocol_v2_tells_the_backend_the_client_address(bed):
    backends = Backends(bed, "proxy", roles=("b1",))
    config = proxy_config(bed, backends=("b1",), listener_extra={"proxy_protocol": "v2"})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        result = bed.python("client", r"""
import socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
emit({"port": s.getsockname()[1], "answer": recv_all(s).decode()})
""", {"address": LISTENER_ADDRESS, "port": VIP_PORT})
        assert result["answer"].split() == [ADDRESSES["client"], str(result["port"])]
        record = poll_until(lambda: backends.records("b1"), 10.0, what="the backend's record")[0]
        assert record["version_command"] == 0x21 and record["family"] == 0x11, record
        assert (record["destination"], record["destination_port"]) == (LISTENER_ADDRESS, VIP_PORT)
        assert dp.stop() == 0, dp.output()


HOLD_CLIENT = r"""
import socket, time
socks = []
outcomes = []
for i in range(ARGS["connections"]):
    try:
        socks.append(socket.create_connection((ARGS["address"], ARGS["port"]),
                                              timeout=ARGS["wait"]))
    except ConnectionResetError:  # the RST may overtake the end of connect()
        socks.append(None)
for s in socks:
    start = time.monotonic()
    if s is None:
        outcomes.append({"outcome": "reset", "after": 0})
        continue
    try:
        data = s.recv(100)
        outcomes.append({"outcome": "eof" if data == b"" else "data",
                         "after": time.monotonic() - start})
    except ConnectionResetError:
        outcomes.append({"outcome": "reset", "after": time.monotonic() - start})
    except socket.timeout:
        outcomes.append({"outcome": "open", "after": time.monotonic() - start})
emit(outcomes)
"""


def test_idle_sessions_are_reset_after_the_listeners_idle_timeout(bed):
    Backends(bed, "sha", roles=("b1",))  # reads until EOF: the session stays silent
    config = proxy_config(bed, backends=("b1",), listener_extra={"idle_timeout_ms": 300})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        outcomes = bed.python("client", HOLD_CLIENT, {"address": LISTENER_ADDRESS,
                                                      "port": VIP_PORT, "connections": 2,
                                                      "wait": 10})
        assert [o["outcome"] for o in outcomes] == ["reset", "reset"], outcomes
        stats = listener_stats(dp)
        assert stats["idle_timeouts"] == 2
        assert stats["active"] == 0
        assert dp.stop() == 0, dp.output()


def test_connections_beyond_the_listeners_limit_are_refused_and_counted(bed):
    Backends(bed, "sha", roles=("b1",))
    config = proxy_config(bed, backends=("b1",), listener_extra={"max_connections": 2})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        outcomes = bed.python("client", HOLD_CLIENT, {"address": LISTENER_ADDRESS,
                                                      "port": VIP_PORT, "connections": 3,
                                                      "wait": 2})
        assert [o["outcome"] for o in outcomes] == ["open", "open", "reset"], outcomes
        stats = listener_stats(dp)
        assert stats["refused_max_connections"] == 1
        assert stats["connections"] == 3
        assert dp.stop() == 0, dp.output()


def test_two_workers_without_rss_steer_both_halves_of_each_flow_in_software(bed):
    """net_af_packet has no RSS: the kernel spreads frames over the two queues by its own hash,
    and the workers hand each TCP segment to its owner (dataplane/steering.h)."""
    Backends(bed, "sha")
    config = proxy_config(bed, driver="af_packet")  # qpairs is net_af_packet's
    eal = config["dataplane"]["eal"]
    at = eal.index("-l")
    eal[at: at + 2] = ["--lcores", "0@0,1@1,2@1"]  # two workers sharing CPU 1
    config["dataplane"]["eal"] = [f"{a},qpairs=2" if a.startswith("--vdev") else a for a in eal]
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        send_and_check_digests(bed, 2 * 1000 * 1000, 20)
        stats = dp.stats()
        workers = stats["workers"]
        print("steering:", [w["steering"] for w in workers],
              "established:", [w["tcp"]["established"] for w in workers])
        assert len(workers) == 2
        # Both workers own sessions, and segments crossed between them.
        assert all(w["tcp"]["established"] > 0 for w in workers), [w["tcp"] for w in workers]
        assert sum(w["steering"]["handed_out"] for w in workers) > 0
        assert sum(w["steering"]["taken_in"] for w in workers) == sum(
            w["steering"]["handed_out"] for w in workers)
        assert listener_stats(dp)["connections"] == 20
        assert dp.stop() == 0, dp.output()


SESSION_LINE = re.compile(
    r" info weir-dataplane: session: start=\S+ listener=(?P<listener>\S+) "
    r"client=(?P<client>\S+) pool=(?P<pool>\S+) backend=(?P<backend>\S+) "
    r"bytes_to_backend=(?P<to_backend>\d+) bytes_to_client=(?P<to_client>\d+) "
    r"duration_ms=\d+\.\d end=(?P<end>\S+)$")


def session_lines(dp: DataplaneProcess) -> list[dict]:
    return [m.groupdict() for line in dp.stdout_path.read_text().splitlines()
            if (m := SESSION_LINE.search(line))]


def test_the_session_log_says_how_each_sampled_session_ended(bed):
    """Issue 16's session log: every session of the listener with session_log_sample 1 is one
    line with its client, backend, bytes each way and how it ended (a clean close, the client's
    RST, the idle timeout); the listener with 3 logs one session in three; one without logs none."""
    Backends(bed, "sha", roles=("b1",))  # reads to EOF, answers "DIGEST COUNT", closes
    config = proxy_config(bed, backends=("b1",),
                          listener_extra={"session_log_sample": 1, "idle_timeout_ms": 2000})
    base = config["listeners"][0]
    config["listeners"] += [dict(base, name="sampled", port=VIP_PORT + 1, session_log_sample=3),
                            {k: v for k, v in dict(base, name="quiet", port=VIP_PORT + 2).items()
                             if k != "session_log_sample"}]
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        sha = {"address": LISTENER_ADDRESS, "size": 1000}
        clean = bed.python("client", SHA_CLIENT, dict(sha, port=VIP_PORT, connections=2))
        answers = [r["answer"] for r in clean["results"]]
        assert all(a.split()[1] == "1000" for a in answers), clean
        bed.python("client", RST_CLIENT.replace('assert s.recv(1) == b"+"', 's.sendall(b"x")'),
                   {"address": LISTENER_ADDRESS, "port": VIP_PORT})
        idle = bed.python("client", HOLD_CLIENT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                  "connections": 1, "wait": 10})
        assert [o["outcome"] for o in idle] == ["reset"], idle
        for port in (VIP_PORT + 1, VIP_PORT + 2):
            for _ in range(6):  # one after the other: the one-in-three is by accept order
                bed.python("client", SHA_CLIENT, dict(sha, port=port, connections=1))

        def all_logged():
            lines = session_lines(dp)
            return lines if len(lines) >= 6 and listener_stats(dp)["active"] == 0 else None

        lines = poll_until(all_logged, 10.0, what="the session lines", describe=dp.output)
        web = [line for line in lines if line["listener"] == "web"]
        assert sorted(line["end"] for line in web) == \
            ["client_reset", "fin", "fin", "idle_timeout"], lines
        for line in web:
            assert line["client"].startswith(ADDRESSES["client"] + ":"), line
            assert (line["pool"], line["backend"]) == ("app", "b1"), line
        for line in (line for line in web if line["end"] == "fin"):
            assert int(line["to_backend"]) == 1000, line
            assert int(line["to_client"]) == len(answers[0]), line
        idle_line = next(line for line in web if line["end"] == "idle_timeout")
        assert (idle_line["to_backend"], idle_line["to_client"]) == ("0", "0"), idle_line
        sampled = [line for line in lines if line["listener"] == "sampled"]
        assert [line["end"] for line in sampled] == ["fin", "fin"], lines
        assert not [line for line in lines if line["listener"] == "quiet"], lines
        assert len(lines) == 6, lines
        assert dp.control({"op": "counters"})["session_log"] == {"logged": 6, "dropped": 0,
                                                            "suppressed": 0}
        assert dp.stop() == 0, dp.output()


# A session line of the rate-limited session log, and the counts of held-back lines that a line
# let through ("(N similar messages suppressed)") or a summary line says.
SESSION_STORM_LINE = re.compile(r"session: start=\S+ listener=web .* end=\S+")
SESSIONS_HELD_BACK = re.compile(r"\((\d+) similar messages? suppressed\)$|"
                                r"session log: listener=web: (\d+) more sessions not logged")
SESSION_LOG_BURST = 100  # SessionLog::kBurst (dataplane/main_lcore/session_log.h)


def test_a_storm_of_short_sessions_is_a_few_session_lines_and_counts_that_add_up(bed):
    """The Jawas seed: every session sampled (session_log_sample 1), a storm of short sessions
    must not be as many log lines. Each sampled session is either a line or counted held back (or
    dropped by a full ring), the held-back ones are all said in the end, and the lines stay within
    the limit (the burst, then ten a second)."""
    import math
    import time

    Backends(bed, "name", roles=("b1",))
    count = 1200
    config = proxy_config(bed, backends=("b1",), listener_extra={"session_log_sample": 1})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        started = time.monotonic()
        counts = bed.python("client", NAME_CLIENT, {"address": LISTENER_ADDRESS,
                                                    "port": VIP_PORT, "connections": count,
                                                    "parallel": 4}, timeout=600)
        assert counts == {"b1": count}, counts

        def settled():
            log = dp.control({"op": "counters"})["session_log"]
            lines = [line for line in dp.stdout_path.read_text().splitlines()
                     if SESSION_STORM_LINE.search(line) or SESSIONS_HELD_BACK.search(line)]
            said = sum(int(a or b) for line in lines for a, b in SESSIONS_HELD_BACK.findall(line))
            if (log["logged"] + log["suppressed"] + log["dropped"] == count
                    and said == log["suppressed"]):
                return log, lines
            return None

        log, lines = poll_until(settled, 20.0, what="every session logged or counted",
                                describe=dp.output)
        elapsed = time.monotonic() - started
        logged = [line for line in lines if SESSION_STORM_LINE.search(line)]
        print(f"{count} sessions in {elapsed:.1f} s: {log['logged']} session lines, "
              f"{log['suppressed']} held back, {log['dropped']} dropped, "
              f"{len(lines) - len(logged)} summary lines")
        assert len(logged) == log["logged"]
        assert log["suppressed"] > 0
        # The limit: the burst, then ten lines a second (session or summary), whatever the storm.
        assert len(lines) <= SESSION_LOG_BURST + 10 * math.ceil(elapsed) + 1, len(lines)
        assert listener_stats(dp)["connections"] == count
        assert dp.stop() == 0, dp.output()
