"""Weir's userspace TCP against Linux: a Linux client in the client namespace talks to the
dataplane's echo (RFC 862) and discard (RFC 863) services over the namespace test bed."""

import time

import pytest

from netbed import (  # noqa: F401 (fixtures)
    LISTENER_ADDRESS,
    DataplaneProcess,
    bpf_object,
    drop_config,
    poll_until,
    testbed_factory,
)

ECHO_PORT = 7
DISCARD_PORT = 9

# Sends ARGS["size"] pseudo-random bytes to the echo service on each of ARGS["connections"]
# connections at once, half-closes each after sending (the echo keeps sending back), reads until
# EOF, and reports the SHA-256 of what went each way.
ECHO_CLIENT = r"""
import hashlib, os, socket, threading, time
size, count, port = ARGS["size"], ARGS["connections"], ARGS["port"]
block = os.urandom(1 << 20)
results = [None] * count

def one(i):
    try:
        run(i)
    except Exception as error:
        results[i] = {"error": repr(error)}

def run(i):
    s = socket.create_connection((ARGS["address"], port), timeout=60)
    sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
    got = 0
    def reader():
        nonlocal got
        while True:
            chunk = s.recv(1 << 18)
            if not chunk:
                return
            got_hash.update(chunk)
            got += len(chunk)
    t = threading.Thread(target=reader)
    t.start()
    left = size
    while left:
        piece = block[: min(left, len(block))]
        s.sendall(piece)
        sent_hash.update(piece)
        left -= len(piece)
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    s.close()
    results[i] = {"sent": sent_hash.hexdigest(), "got": got_hash.hexdigest(), "bytes": got,
                  "eof": not t.is_alive()}

start = time.monotonic()
threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join(300)
emit({"results": results, "seconds": time.monotonic() - start})
"""


def echo(tb, size: int, connections: int = 1, timeout: float = 300.0) -> dict:
    return tb.python(
        "client",
        ECHO_CLIENT,
        {"address": LISTENER_ADDRESS, "port": ECHO_PORT, "size": size, "connections": connections},
        timeout=timeout,
    )


def tcp_total(dataplane: DataplaneProcess, name: str) -> int:
    return DataplaneProcess.total(dataplane.stats(), "tcp", name)


def services_config(tb) -> dict:
    config = tb.dataplane_config()
    config["listeners"].append(
        {"name": "discard", "address": LISTENER_ADDRESS, "port": DISCARD_PORT, "protocol": "discard"}
    )
    return config


@pytest.fixture
def dataplane(testbed_factory):
    tb = testbed_factory()
    with DataplaneProcess(tb, services_config(tb)) as dp:
        dp.wait_ready(timeout_s=30.0)
        yield tb, dp
        assert dp.stop() == 0, dp.output()


def assert_echoed(result: dict, size: int) -> None:
    for r in result["results"]:
        assert r is not None, result
        assert "error" not in r, r
        assert r["eof"], r
        assert r["bytes"] == size, r
        assert r["got"] == r["sent"], "the echo differs from what was sent"


def test_200_mb_echo_round_trip_is_intact(dataplane):
    tb, dp = dataplane
    size = 200 * 1024 * 1024
    result = echo(tb, size)
    assert_echoed(result, size)
    print(f"200 MiB echoed in {result['seconds']:.1f} s")
    stats = dp.stats()
    assert DataplaneProcess.total(stats, "tcp", "passive_opens") == 1
    assert DataplaneProcess.total(stats, "tcp", "established") == 1


def test_100_concurrent_connections(dataplane):
    tb, dp = dataplane
    size = 256 * 1024
    result = echo(tb, size, connections=100)
    assert_echoed(result, size)
    assert tcp_total(dp, "established") == 100


DISCARD_CLIENT = r"""
import os, socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
block = os.urandom(1 << 16)
for _ in range(ARGS["blocks"]):
    s.sendall(block)
s.shutdown(socket.SHUT_WR)
tail = s.recv(1)  # the service closes its side once the client has: EOF, and no data
emit({"eof_without_data": tail == b""})
"""


def test_discard_takes_everything_and_closes_after_the_client(dataplane):
    tb, dp = dataplane
    result = tb.python(
        "client", DISCARD_CLIENT, {"address": LISTENER_ADDRESS, "port": DISCARD_PORT, "blocks": 160}
    )
    assert result["eof_without_data"]
    assert tcp_total(dp, "segments_in") > 10 * 1024 * 1024 // 1460


RESET_CLIENT = r"""
import socket, struct
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
s.sendall(b"x" * 1000)
assert s.recv(1000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # linger 0: Linux sends RST
emit({"closed": True})
"""

REFUSED_CLIENT = r"""
import socket
try:
    socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
    emit({"refused": False})
except ConnectionRefusedError:
    emit({"refused": True})
"""


def test_a_linux_rst_closes_the_connection_and_closed_ports_refuse(dataplane):
    tb, dp = dataplane
    assert tb.python("client", RESET_CLIENT, {"address": LISTENER_ADDRESS, "port": ECHO_PORT})
    poll_until(lambda: tcp_total(dp, "resets_received") == 1, 10.0, what="the RST to be taken")
    # A port with no listener answers a SYN with RST (RFC 9293 3.10.7.1).
    refused = tb.python("client", REFUSED_CLIENT, {"address": LISTENER_ADDRESS, "port": 4444})
    assert refused["refused"]
    assert tcp_total(dp, "resets_sent") >= 1


def test_echo_through_3_percent_loss_each_way(testbed_factory):
    tb = testbed_factory()
    # On the bridge side of the client's veth, where a switch would lose frames: a drop on the
    # sender's own egress would make its send fail instead (docs/testing.md).
    port = tb.bridge_port("client")
    programs = [
        tb.attach_tc_bpf("br", port, bpf_object("drop"), direction=direction)
        for direction in ("ingress", "egress")
    ]
    with DataplaneProcess(tb, services_config(tb)) as dp:
        dp.wait_ready(timeout_s=30.0)
        for program in programs:
            program.map_update("drop_config", b"\0\0\0\0", drop_config(0.03, 0x0800))
        size = 4 * 1024 * 1024
        result = echo(tb, size, connections=4)
        assert_echoed(result, size)
        print(f"4 x 4 MiB echoed through 3% loss each way in {result['seconds']:.1f} s")
        stats = dp.stats()
        dropped = [program.read_u64_array("drop_counters")[1] for program in programs]
        assert all(d > 0 for d in dropped), dropped
        assert DataplaneProcess.total(stats, "tcp", "retransmitted_segments") > 0
        assert dp.stop() == 0, dp.output()


# Raw SYNs from random sources in 198.18.0.0/15 (RFC 2544's benchmarking range, routed through
# the test bed's gateway, which drops them): ARGS["count"] of them, as fast as Python sends.
SYN_FLOOD = r"""
import os, random, socket, struct, time
def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dst = socket.inet_aton(ARGS["address"])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rng = random.Random(4987)
sent = 0
deadline = time.monotonic() + ARGS["seconds"]
while sent < ARGS["count"] and time.monotonic() < deadline:
    src = struct.pack("!I", (198 << 24 | 18 << 16) + rng.randrange(1, 1 << 17))
    sport = rng.randrange(1024, 65535)
    tcp = struct.pack("!HHIIBBHHH", sport, ARGS["port"], rng.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    sock.sendto(ip + tcp, (ARGS["address"], 0))
    sent += 1
emit({"sent": sent})
"""

MANY_CONNECTIONS = r"""
import socket
ok = 0
for i in range(ARGS["count"]):
    s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
    s.sendall(b"%d" % i)
    if s.recv(16) == b"%d" % i:
        ok += 1
    s.close()
emit({"ok": ok})
"""


def test_syn_flood_is_answered_with_cookies_while_real_clients_connect(dataplane):
    import threading

    tb, dp = dataplane
    flood_result = {}
    flood = threading.Thread(
        target=lambda: flood_result.update(
            tb.python(
                "client",
                SYN_FLOOD,
                {"address": LISTENER_ADDRESS, "port": ECHO_PORT, "count": 30000, "seconds": 60},
                timeout=120,
            )
        )
    )
    flood.start()
    # Connect once the flood has filled the listener's SYN queue (its backlog), so that the
    # clients' own SYNs are the ones answered with cookies.
    poll_until(lambda: tcp_total(dp, "syn_cookies_sent") > 0, 60.0, what="the SYN queue to fill")
    result = tb.python(
        "client", MANY_CONNECTIONS, {"address": LISTENER_ADDRESS, "port": ECHO_PORT, "count": 1000},
        timeout=300,
    )
    flood.join(130)
    assert result["ok"] == 1000
    stats = dp.stats()
    cookies_sent = DataplaneProcess.total(stats, "tcp", "syn_cookies_sent")
    accepted = DataplaneProcess.total(stats, "tcp", "syn_cookies_accepted")
    print(f"flood: {flood_result.get('sent')} SYNs; cookies sent {cookies_sent}, accepted {accepted}")
    assert accepted > 0, "the clients' connections completed through cookies"
    assert cookies_sent >= accepted
