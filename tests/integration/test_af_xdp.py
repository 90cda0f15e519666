"""The dataplane on net_af_xdp (an AF_XDP socket on the veth dp0) instead of net_af_packet.

net_af_xdp cannot send a chain of mbufs (it has no RTE_ETH_TX_OFFLOAD_MULTI_SEGS: it sends the
frame's length from the first mbuf, so a TCP data segment, built as a header mbuf and payload
mbufs, left with garbage behind its headers and no data ever arrived). TxBuffers copies chains
into one mbuf for such a device (`tx_linearised`). These tests carry data both ways through
it: the echo service and a proxied `tcp` listener in front of Linux echo backends, several
connections at once, every byte compared."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    _read_line,
    kernel_has_af_xdp,
    testbed_factory,
)

BACKEND_SERVER = Path(__file__).with_name("backend_server.py")
BACKEND_PORT = 8000
VIP_PORT = 80
MEGABYTE = 1 << 20

# ARGS["connections"] connections at once to ARGS["address"]:ARGS["port"]; each sends
# ARGS["size"] bytes (its own pseudo-random ones) while reading the echo, half-closes, reads to
# EOF, and reports the SHA-256 of what it sent and of what came back.
ECHO_CLIENT = r"""
import hashlib, random, socket, threading
size, count = ARGS["size"], ARGS["connections"]
results = [None] * count
def run(i):
    try:
        data = random.Random(i).randbytes(size)
        s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=60)
        received = bytearray()
        def read():
            while True:
                piece = s.recv(1 << 16)
                if not piece:
                    return
                received.extend(piece)
        reader = threading.Thread(target=read)
        reader.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reader.join(120)
        s.close()
        results[i] = {"sent": hashlib.sha256(data).hexdigest(), "sent_bytes": len(data),
                      "echoed": hashlib.sha256(received).hexdigest(),
                      "echoed_bytes": len(received)}
    except Exception as error:
        results[i] = {"error": repr(error)}
threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join(180)
emit(results)
"""


@pytest.fixture
def bed(testbed_factory):
    # AF_XDP is the kernel's (CONFIG_XDP_SOCKETS), the same in every namespace.
    why = kernel_has_af_xdp()
    if why:
        pytest.skip(why)
    return testbed_factory()


def start_echo_backends(tb, roles=("b1", "b2", "b3")) -> None:
    for role in roles:
        proc = tb.popen(role, [sys.executable, str(BACKEND_SERVER), "--listen",
                               f"{ADDRESSES[role]}:{BACKEND_PORT}", "--name", role, "--mode",
                               "echo"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert _read_line(proc, 10.0) == "ready", f"echo backend in {role} did not start"


def af_xdp_config(tb) -> dict:
    config = tb.dataplane_config("af_xdp")
    config["pools"] = [{"name": "echoes", "backends": [
        {"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in ("b1", "b2", "b3")]}]
    config["listeners"].append({"name": "web", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                                "protocol": "tcp", "pool": "echoes"})
    return config


def echo_through(tb, port: int, connections: int, size: int) -> None:
    results = tb.python("client", ECHO_CLIENT, {"address": LISTENER_ADDRESS, "port": port,
                                                "connections": connections, "size": size},
                        timeout=240)
    for i, result in enumerate(results):
        assert "error" not in result, f"connection {i}: {result}"
        assert result["echoed_bytes"] == result["sent_bytes"] == size, f"connection {i}: {result}"
        assert result["echoed"] == result["sent"], f"connection {i}: the echo differs"


def port_counters(dp) -> dict:
    return dp.stats()["workers"][0]["ports"]["dp0"]


def test_af_xdp_echoes_and_proxies_a_megabyte_per_connection(bed):
    start_echo_backends(bed)
    with DataplaneProcess(bed, af_xdp_config(bed)) as dp:
        dp.wait_ready(timeout_s=30.0)
        assert "driver net_af_xdp" in dp.output(), dp.output()
        echo_through(bed, 7, connections=1, size=MEGABYTE)  # the dataplane's own echo service
        echo_through(bed, VIP_PORT, connections=1, size=MEGABYTE)  # proxied to a Linux echo
        echo_through(bed, VIP_PORT, connections=8, size=MEGABYTE)  # eight at once
        ports = port_counters(dp)
        # The data segments went as chains copied into one mbuf each, and none was lost to it.
        assert ports["tx_linearised"] > 0, ports
        assert ports["drops"]["tx_linearise_failed"] == 0, ports
        assert ports["drops"]["tx_prepare_refused"] == 0, ports
        assert dp.stats()["listeners"]["web"]["connections"] == 9
        assert dp.stop() == 0, dp.output()
