"""What a `tls` listener does with the plaintext (issue 14, docs/tls.md): `sni_pools` sends a
session to the pool its client's server_name names (the listener's pool for any other name, or
none), and `inner: framed` verifies (and stamps) the Weir frames inside the TLS session both ways,
exactly as a `framed` listener does its bytes: a corrupt frame from the client (damaged before
encryption, so TLS carries it faithfully) or from the backend is counted in the same counters,
per backend too, and acted on per the listener's `framed.on_corrupt`."""

import json
import os
import subprocess

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_framed import RECORDING_BACKEND
from test_control_plane import metric
from test_proxy import BACKEND_PORT, Backends
from test_tls import TLS_PORT, Plane, tls_plane_config
from test_tools import frame

HEADER_SIZE = 16
NODE_ID = 7


def listener_totals(plane: Plane, name: str) -> dict:
    return plane.dp.stats()["listeners"][name]


def backend_counters(plane: Plane, pool: str, backend: str) -> dict:
    pools = {p["name"]: p for p in plane.dp.control({"op": "pools"})["pools"]}
    return {b["name"]: b for b in pools[pool]["backends"]}[backend]


SCRAPE = r"""
import urllib.request
emit(urllib.request.urlopen(ARGS["url"], timeout=10).read().decode())
"""


def scrape(plane: Plane) -> str:
    """weir-control's /metrics, from its own namespace (it asks the dataplane on each scrape)."""
    return plane.tb.python("ctl", SCRAPE, {
        "url": f"http://{plane.config['control']['metrics']['listen']}/metrics"})


def wait_for_counts(plane: Plane, name: str, expected: dict) -> dict:
    """The listener's counters once they say `expected` (they are counted before the client
    hears the outcome, but read from a snapshot)."""
    def matches():
        totals = listener_totals(plane, name)
        return totals if all(totals[k] == v for k, v in expected.items()) else None

    return poll_until(matches, 10.0, what=f"{name}'s counters to be {expected}",
                      describe=lambda: str(listener_totals(plane, name)))


# ---- sni_pools ------------------------------------------------------------------------------------

# One session per ARGS["names"] entry (None: no SNI): the handshake verified against the CA (the
# host name is not checked: one certificate serves every name here), then whatever the backend
# sends until it closes: backend_server.py's "name" mode sends its name.
NAME_CLIENT = r"""
import socket, ssl
ctx = ssl.create_default_context(cafile=ARGS["ca"])
ctx.check_hostname = False
answers = []
for name in ARGS["names"]:
    raw = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname=name)
    got = b""
    try:
        while True:
            piece = s.recv(4096)
            if not piece:
                break
            got += piece
        answers.append(got.decode())
    except Exception as error:
        answers.append(f"{type(error).__name__} after {got!r}")
    raw.close()
emit(answers)
"""


# Not TLS at all: what the client sees once the worker has refused it.
GARBAGE_CLIENT = r"""
import socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
try:
    emit(repr(recv_all(s)))
except ConnectionResetError as error:
    emit(repr(error))
"""


@pytest.fixture
def sni_plane(testbed_factory):
    tb = testbed_factory()
    config = tls_plane_config(tb)
    config["pools"] += [
        {"name": "alpha", "backends": [{"name": "b2", "address": ADDRESSES["b2"],
                                        "port": BACKEND_PORT}]},
        {"name": "beta", "backends": [{"name": "b3", "address": ADDRESSES["b3"],
                                       "port": BACKEND_PORT}]},
    ]
    secure = next(l for l in config["listeners"] if l["name"] == "secure")
    secure["tls"]["sni_pools"] = {"a.example": "alpha", "*.b.example": "beta"}
    p = Plane(tb, config, Backends(tb, "name", roles=("b1", "b2", "b3")))
    try:
        yield p
    finally:
        p.close()


def test_sni_pools_route_each_name_to_its_pool_and_any_other_to_the_listeners(sni_plane):
    plane = sni_plane
    # The name -> the backend that must answer: b2 is pool alpha's, b3 beta's, b1 the listener's.
    expected = {
        "a.example": "b2",
        "A.EXAMPLE": "b2",        # names compare in lower case
        "x.b.example": "b3",      # the wildcard: one label
        "b.example": "b1",        # ... not none
        "y.x.b.example": "b1",    # ... nor two
        "other.example": "b1",    # not listed: the listener's pool
        "a.example.evil": "b1",   # a listed name is not a prefix
        None: "b1",               # no SNI at all
    }
    names = list(expected)
    answers = plane.tb.python("client", NAME_CLIENT, {
        "ca": str(plane.tb.workdir / "site.pem"), "names": names,
        "address": LISTENER_ADDRESS, "port": TLS_PORT}, timeout=120)
    assert dict(zip(map(str, names), answers)) == {str(k): v for k, v in expected.items()}
    routed = sum(1 for backend in expected.values() if backend != "b1")
    totals = wait_for_counts(plane, "secure", {"tls_sni_routed": routed,
                                               "tls_handshakes_failed": 0, "tls_resets": 0})
    assert totals["tls_handshakes_tls13"] == len(names), totals
    # The backend counters are kept by the session's pool, not the listener's.
    assert backend_counters(plane, "alpha", "b2")["connections"] == 2
    assert backend_counters(plane, "beta", "b3")["connections"] == 1
    assert backend_counters(plane, "app", "b1")["connections"] == len(names) - routed
    # The same through the catalogue into /metrics.
    text = scrape(plane)
    assert metric(text, "weir_listener_tls_sni_routed_total", listener="secure") == routed
    assert metric(text, "weir_listener_tls_handshakes_total", listener="secure",
                  version="1.3") == len(names)
    assert metric(text, "weir_listener_tls_handshakes_total", listener="secure",
                  version="1.2") == 0
    assert metric(text, "weir_listener_tls_handshake_failures_total", listener="secure") == 0
    # Every session's handshake crossed the rings both ways, and each backend's answer; the
    # clients sent no data, so no plaintext came out of the worker for a backend.
    for direction, way in (("to_backend", "to_worker"), ("to_client", "from_worker"),
                           ("to_client", "to_worker")):
        assert metric(text, "weir_listener_tls_records_total", listener="secure",
                      direction=direction, way=way) >= len(names), (direction, way)
    assert metric(text, "weir_listener_tls_records_total", listener="secure",
                  direction="to_backend", way="from_worker") == 0
    assert metric(text, "weir_listener_tls_ring_full_total", listener="secure") == 0
    # The relay's own counters, per dataplane worker (summed): a session per client, no record
    # refused, no worker reset; ciphertext both ways, no plaintext for a backend.
    assert metric(text, "weir_tls_relay_sessions_total") == len(names)
    assert metric(text, "weir_tls_relay_worker_resets_total") == 0
    assert metric(text, "weir_tls_relay_refused_records_total") == 0
    assert metric(text, "weir_tls_relay_channels_dropped_total") == 0
    assert metric(text, "weir_tls_relay_ciphertext_bytes_total", way="to_worker") > 0
    assert metric(text, "weir_tls_relay_ciphertext_bytes_total", way="from_worker") > 0
    assert metric(text, "weir_tls_relay_plaintext_bytes_total", way="from_worker") == 0

    # Garbage instead of a ClientHello: the worker refuses it, and the handshake counts as failed.
    plane.tb.python("client", GARBAGE_CLIENT, {"address": LISTENER_ADDRESS, "port": TLS_PORT})
    wait_for_counts(plane, "secure", {"tls_handshakes_failed": 1, "tls_resets": 1})
    text = scrape(plane)
    assert metric(text, "weir_listener_tls_handshake_failures_total", listener="secure") == 1
    # ... the relay counts it by the worker's reason (before the listener's reset).
    assert metric(text, "weir_tls_relay_worker_resets_total", reason="not_tls") == 1
    assert metric(text, "weir_tls_relay_worker_resets_total") == 1
    assert metric(text, "weir_tls_relay_sessions_total") == len(names) + 1


# ---- inner: framed --------------------------------------------------------------------------------

# One TLS session: for each step, ARGS["steps"][i]["send"] (hex) is written, then
# ["read"] bytes are read; a step that ends in an error (a reset, EOF) ends the session.
FRAME_CLIENT = r"""
import socket, ssl
ctx = ssl.create_default_context(cafile=ARGS["ca"])
raw = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=20)
s = ctx.wrap_socket(raw, server_hostname="site.example")
out = []
for step in ARGS["steps"]:
    got = b""
    try:
        s.sendall(bytes.fromhex(step["send"]))
        while len(got) < step["read"]:
            piece = s.recv(65536)
            if not piece:
                raise EOFError("EOF")
            got += piece
        out.append({"got": got.hex()})
    except Exception as error:
        out.append({"got": got.hex(), "error": type(error).__name__})
        break
raw.close()
emit(out)
"""

def damaged(encoded: bytes) -> bytes:
    """The frame with one payload bit flipped after its trailer was computed: what a client's or
    backend's own bug (not the network: TLS would refuse that) sends."""
    out = bytearray(encoded)
    out[HEADER_SIZE + 5] ^= 0x10
    return bytes(out)


def framed_listener(name: str, port: int, pool: str, on_corrupt: str, tls: dict) -> dict:
    return {"name": name, "address": LISTENER_ADDRESS, "port": port, "protocol": "tls",
            "pool": pool, "tls": {**tls, "inner": "framed"},
            "framed": {"on_corrupt": on_corrupt, "stamp_hop": True}}


@pytest.fixture
def framed_plane(testbed_factory):
    tb = testbed_factory()
    config = tls_plane_config(tb)
    config["node_id"] = NODE_ID
    config["pools"].append({"name": "damaging", "backends": [
        {"name": "b2", "address": ADDRESSES["b2"], "port": BACKEND_PORT}]})
    secure = next(l for l in config["listeners"] if l["name"] == "secure")
    tls = secure["tls"]
    config["listeners"] = [l for l in config["listeners"] if l["name"] != "secure"] + [
        framed_listener("secure", TLS_PORT, "app", "reset", tls),
        framed_listener("counting", TLS_PORT + 1, "app", "count", tls),
        framed_listener("answers", TLS_PORT + 2, "damaging", "reset", tls),
    ]
    p = Plane(tb, config)
    try:
        yield p
    finally:
        p.close()


def run_frames(plane: Plane, port: int, steps: list) -> list:
    return plane.tb.python("client", FRAME_CLIENT, {
        "ca": str(plane.tb.workdir / "site.pem"), "address": LISTENER_ADDRESS, "port": port,
        "steps": steps}, timeout=60)


def test_inner_framed_verifies_and_stamps_frames_inside_tls_both_ways(framed_plane):
    plane = framed_plane
    first = frame(stream=1, payload=os.urandom(300))
    # Longer than an mbuf's room: the dataplane verifies it across pieces, as TCP segments.
    second = frame(stream=2, payload=os.urandom(5000))
    bad = damaged(frame(stream=3, payload=b"x" * 64))
    # Echoed by b1, each frame passes the verifier twice: hop 7 both times, a trailer that
    # verifies (an incremental stamp of a good trailer), and a damaged frame stays damaged.
    stamped = {f: frame(stream=s, payload=p, hop=NODE_ID) for f, s, p in (
        (first, 1, first[HEADER_SIZE:-4]), (second, 2, second[HEADER_SIZE:-4]))}
    stamped_bad = damaged(frame(stream=3, payload=b"x" * 64, hop=NODE_ID))

    # Reset mode, the client's frame damaged inside a valid TLS session: the session is reset
    # before the trailer leaves, so neither the backend nor the client sees it whole.
    out = run_frames(plane, TLS_PORT, [{"send": first.hex(), "read": len(first)},
                                       {"send": bad.hex(), "read": len(bad)}])
    assert bytes.fromhex(out[0]["got"]) == stamped[first], out
    assert len(out) == 2 and "error" in out[1], out
    assert len(bytes.fromhex(out[1]["got"])) < len(bad), out
    totals = wait_for_counts(plane, "secure", {
        "frames_verified_to_backend": 1, "frames_corrupt_to_backend": 1,
        "corrupt_resets_to_backend": 1, "frames_verified_to_client": 1,
        "frames_corrupt_to_client": 0, "corrupt_resets_to_client": 0})
    assert totals["tls_handshakes_tls13"] == 1 and totals["tls_handshakes_failed"] == 0, totals
    assert backend_counters(plane, "app", "b1")["frames_corrupt_to_backend"] == 1
    # The backend's connection was reset with the client's, not ended as if the stream were whole.
    record = poll_until(lambda: plane.backends.records("b1"), 10.0, what="b1's record")[-1]
    assert "ConnectionResetError" in record.get("error", ""), record

    # Count mode: the damaged frame is counted each way and goes on; the session with it.
    out = run_frames(plane, TLS_PORT + 1, [{"send": first.hex(), "read": len(first)},
                                           {"send": bad.hex(), "read": len(bad)},
                                           {"send": second.hex(), "read": len(second)}])
    assert [bytes.fromhex(o["got"]) for o in out] == [stamped[first], stamped_bad,
                                                      stamped[second]], out
    wait_for_counts(plane, "counting", {
        "frames_verified_to_backend": 2, "frames_corrupt_to_backend": 1,
        "frames_verified_to_client": 2, "frames_corrupt_to_client": 1,
        "corrupt_resets_to_backend": 0, "corrupt_resets_to_client": 0, "tls_resets": 0})


def test_inner_framed_resets_a_session_whose_backend_answers_a_damaged_frame(framed_plane):
    plane = framed_plane
    request = frame(stream=9, payload=b"question")
    good = frame(stream=9, payload=b"answer one")
    bad = damaged(frame(stream=9, payload=b"answer two, damaged by the backend"))
    # test_framed's backend: one answer per request frame, each a segment of its own (a damaged
    # frame costs the segment it is in: the good answer must not share it).
    recorded = plane.tb.workdir / "recorded-frames.json"
    backend = plane.tb.python_popen("b2", RECORDING_BACKEND, {
        "address": ADDRESSES["b2"], "port": BACKEND_PORT, "out": str(recorded),
        "answers": [good.hex(), bad.hex()]}, stdout=subprocess.PIPE, text=True)
    assert _read_line(backend, 10.0) == "ready"
    out = run_frames(plane, TLS_PORT + 2, [{"send": request.hex(), "read": len(good)},
                                           {"send": request.hex(), "read": len(bad)}])
    # The good answer arrives stamped; the damaged one never whole (its trailer is held back).
    assert bytes.fromhex(out[0]["got"]) == frame(stream=9, payload=b"answer one", hop=NODE_ID), out
    assert len(out) == 2 and "error" in out[1], out
    assert len(bytes.fromhex(out[1]["got"])) < len(bad), out
    wait_for_counts(plane, "answers", {
        "frames_verified_to_backend": 2, "frames_verified_to_client": 1,
        "frames_corrupt_to_client": 1, "corrupt_resets_to_client": 1,
        "frames_corrupt_to_backend": 0})
    assert backend_counters(plane, "damaging", "b2")["frames_corrupt_to_client"] == 1
    # The backend got both requests, verified and stamped on their way.
    backend.wait(30)
    assert json.loads(recorded.read_text()) == 2 * [
        frame(stream=9, payload=b"question", hop=NODE_ID).hex()]
