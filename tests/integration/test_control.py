"""The dataplane's control socket from outside (docs/protocol.md, "The control channel"): queries,
bad requests, and backend states (down, draining) changed while connections are open."""

import json
import socket
import subprocess

import pytest

from netbed import (  # noqa: F401 (fixtures)
    LISTENER_ADDRESS,
    DataplaneProcess,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_proxy import VIP_PORT, Backends, proxy_config


@pytest.fixture
def running(testbed_factory):
    tb = testbed_factory()
    Backends(tb, "sha")  # each backend holds a connection until the client's EOF
    config = proxy_config(tb, pool_extra={"drain_timeout_ms": 1500})
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        yield tb, dp
        assert dp.stop() == 0, dp.output()


def backends(dp) -> dict:
    reply = dp.control({"op": "pools"})
    assert reply["ok"], reply
    return {b["name"]: b for b in reply["pools"][0]["backends"]}


def test_queries_answer_and_bad_requests_get_errors(running):
    tb, dp = running
    hello = dp.control({"op": "hello"})
    assert hello["ok"] and hello["versions"] == [1] and hello["workers"] == 1
    listeners = dp.control({"op": "listeners", "id": 42})
    assert listeners["id"] == 42
    assert [l["name"] for l in listeners["listeners"]] == ["web"]
    assert set(backends(dp)) == {"b1", "b2", "b3"}
    assert all(b["state"] == "up" for b in backends(dp).values())
    counters = dp.control({"op": "counters"})
    assert "workers" in counters
    # The device's own counts, per configured port (af_packet counts what it drops itself).
    ports = [p["name"] for p in dp.config["dataplane"]["ports"]]
    assert sorted(counters["devices"]) == sorted(ports), counters["devices"]
    for port in ports:
        device = counters["devices"][port]
        assert set(device) == {"rx_nombuf", "rx_missed", "rx_errors", "tx_errors"}, device
        assert all(isinstance(v, int) and v >= 0 for v in device.values()), device
    # Malformed and unknown requests: an error naming the problem, and the dataplane carries on.
    path = dp.config["dataplane"]["control_socket"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"not json\n[1,2]\n{\"v\": 2, \"op\": \"hello\"}\n{\"v\": 1, \"op\": \"reboot\"}\n"
                  b"{\"v\": 1, \"op\": \"set_backend\", \"pool\": \"app\", \"backend\": \"b9\", "
                  b"\"state\": \"down\"}\n"
                  b"{\"v\": 1, \"op\": \"set_backend\", \"pool\": \"app\", \"backend\": \"b1\", "
                  b"\"state\": \"sideways\"}\n")
        s.shutdown(socket.SHUT_WR)
        replies = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            replies += chunk
    errors = [json.loads(line)["error"] for line in replies.decode().splitlines()]
    assert len(errors) == 6, errors
    assert "not valid JSON" in errors[0]
    assert "JSON object" in errors[1]
    assert "version 2" in errors[2]
    assert "unknown operation \"reboot\"" in errors[3]
    assert "no backend named \"b9\"" in errors[4]
    assert "\"sideways\"" in errors[5]
    assert all(b["state"] == "up" for b in backends(dp).values())


# Opens ARGS["n"] connections to the VIP and sends a little on each without closing, then waits
# for a line on stdin; then finishes each (half-close, read the backend's digest) and reports
# which succeeded.
HOLDER = r"""
import hashlib, json, socket, sys
conns = []
for i in range(ARGS["n"]):
    s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=30)
    s.sendall(b"x" * 100)
    conns.append(s)
print("open", flush=True)
sys.stdin.readline()
results = []
for s in conns:
    try:
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
        results.append("ok" if answer.split()[0] == hashlib.sha256(b"x" * 100).hexdigest().encode()
                        else "wrong")
    except (OSError, IndexError):  # reset: ECONNRESET, EPIPE or ENOTCONN
        results.append("reset")
print(json.dumps(results), flush=True)
"""


class Holder:
    def __init__(self, tb, n: int):
        self.proc = tb.python_popen("client", HOLDER,
                                    {"address": LISTENER_ADDRESS, "port": VIP_PORT, "n": n},
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert _read_line(self.proc, 30.0) == "open"

    def finish(self) -> list:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        return json.loads(_read_line(self.proc, 60.0))


def active(dp) -> dict:
    return {name: b["active"] for name, b in backends(dp).items()}


def test_draining_takes_no_new_sessions_and_resets_old_ones_after_the_timeout(running):
    tb, dp = running
    first = Holder(tb, 30)
    before = poll_until(lambda: (lambda a: a if sum(a.values()) == 30 else None)(active(dp)), 10.0,
                        what="30 sessions on the backends")
    assert before["b3"] > 0, before
    reply = dp.control({"op": "set_backend", "pool": "app", "backend": "b3", "state": "draining"})
    assert reply["ok"], reply
    assert backends(dp)["b3"]["state"] == "draining"
    second = Holder(tb, 30)
    poll_until(lambda: sum(active(dp).values()) == 60, 10.0, what="60 sessions")
    assert active(dp)["b3"] == before["b3"], "a draining backend took new sessions"
    # After drain_timeout_ms (1.5 s) b3's sessions are reset; the others are untouched.
    poll_until(lambda: active(dp)["b3"] == 0, 10.0, what="b3's sessions to be reset")
    assert backends(dp)["b3"]["drain_resets"] == before["b3"]
    first_results, second_results = first.finish(), second.finish()
    assert first_results.count("reset") == before["b3"], first_results
    assert first_results.count("ok") == 30 - before["b3"]
    assert second_results == ["ok"] * 30


def test_down_takes_no_new_sessions_and_keeps_old_ones(running):
    tb, dp = running
    first = Holder(tb, 30)
    before = poll_until(lambda: (lambda a: a if sum(a.values()) == 30 else None)(active(dp)), 10.0,
                        what="30 sessions on the backends")
    assert dp.control({"op": "set_backend", "pool": "app", "backend": "b1", "state": "down"})["ok"]
    second = Holder(tb, 30)
    poll_until(lambda: sum(active(dp).values()) == 60, 10.0, what="60 sessions")
    assert active(dp)["b1"] == before["b1"], "a down backend took new sessions"
    assert first.finish() == ["ok"] * 30, "established sessions to a down backend were cut"
    assert second.finish() == ["ok"] * 30
    assert dp.control({"op": "set_backend", "pool": "app", "backend": "b1", "state": "up",
                       "weight": 5})["ok"]
    b1 = backends(dp)["b1"]
    assert (b1["state"], b1["weight"]) == ("up", 5)
