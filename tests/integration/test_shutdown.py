"""Stopping the dataplane without an outage's silence (issue 16, docs/operations.md "Stopping"):
SIGTERM closes the listeners at once, lets open sessions finish for dataplane.shutdown_grace_ms,
resets what remains and exits 0; SIGHUP is refused with a message, never silently ignored.

Clients in the client namespace hold sessions through a `tcp` listener to Linux backends in
"hold" mode (they answer "+" and read until EOF or a reset, and record which). Every connection
must end with a FIN (EOF) or a RST that its client sees: a client left waiting is silence."""

import json
import os
import signal
import subprocess

from netbed import (  # noqa: F401 (fixtures)
    LISTENER_ADDRESS,
    DataplaneProcess,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_proxy import VIP_PORT, Backends, proxy_config

# ARGS["finishers"] connections keep sending until the test writes "close" on stdin, then
# half-close and read to the end; ARGS["stayers"] connections only wait for the end. Every
# connection first reads the backend's "+", so that "open" means every session is established end
# to end. Each connection's outcome: "eof" (the end of the stream, a FIN), "reset", or anything
# else (a timeout is silence). Bounded: sends stop after ARGS["max_sends"], reads time out.
SESSIONS = r"""
import socket, sys, threading
finishers, stayers = ARGS["finishers"], ARGS["stayers"]
outcome = {}
close_now = threading.Event()
conns = []
for i in range(finishers + stayers):
    s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=ARGS["timeout"])
    assert s.recv(1) == b"+"
    conns.append(s)
def finish(i, s):
    try:
        block = b"x" * 16384
        for _ in range(ARGS["max_sends"]):
            if close_now.is_set():
                break
            s.sendall(block)
        close_now.wait(ARGS["timeout"])
        s.shutdown(socket.SHUT_WR)
        outcome[i] = "eof" if recv_all(s) == b"" else "data"
    except ConnectionResetError:
        outcome[i] = "reset"
    except Exception as error:
        outcome[i] = "error: " + repr(error)
def stay(i, s):
    try:
        outcome[i] = "eof" if s.recv(1) == b"" else "data"
    except ConnectionResetError:
        outcome[i] = "reset"
    except Exception as error:
        outcome[i] = "error: " + repr(error)
threads = [threading.Thread(target=finish if i < finishers else stay, args=(i, s))
           for i, s in enumerate(conns)]
for t in threads:
    t.start()
print("open", flush=True)
if sys.stdin.readline().strip() == "close":
    close_now.set()
for t in threads:
    t.join(2 * ARGS["timeout"])
emit({"finishers": [outcome.get(i, "silence") for i in range(finishers)],
      "stayers": [outcome.get(i, "silence") for i in range(finishers, finishers + stayers)]})
"""

# ARGS["attempts"] new connections; each "refused" (a RST to the SYN) or what happened instead.
CONNECT = r"""
import socket
results = []
for _ in range(ARGS["attempts"]):
    try:
        socket.create_connection((ARGS["address"], ARGS["port"]), timeout=ARGS["timeout"]).close()
        results.append("accepted")
    except ConnectionRefusedError:
        results.append("refused")
    except Exception as error:
        results.append(repr(error))
emit(results)
"""

FINISHERS, STAYERS = 6, 4
READ_TIMEOUT_S = 60  # a client still waiting after this is silence, and fails the test


def output_has(dp: DataplaneProcess, text: str, stream: str = "stdout") -> bool:
    path = dp.stdout_path if stream == "stdout" else dp.stderr_path
    return path.exists() and text in path.read_text(errors="replace")


def active_sessions(dp: DataplaneProcess) -> int:
    return dp.control({"op": "counters"})["listeners"]["web"]["active"]


def test_sigterm_under_load_finishes_or_resets_every_session_and_refuses_new_ones(
        testbed_factory):
    tb = testbed_factory()
    backends = Backends(tb, "hold")
    config = proxy_config(tb)
    # Room for the test's own steps inside the grace on a busy machine (the default, 5 s, is the
    # configuration suite's to check).
    config["dataplane"]["shutdown_grace_ms"] = 10000
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        clients = tb.python_popen(
            "client", SESSIONS,
            {"address": LISTENER_ADDRESS, "port": VIP_PORT, "finishers": FINISHERS,
             "stayers": STAYERS, "timeout": READ_TIMEOUT_S, "max_sends": 200000},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _read_line(clients, 60.0) == "open", clients.stderr.read()
        assert active_sessions(dp) == FINISHERS + STAYERS

        os.kill(dp.proc.pid, signal.SIGTERM)
        # Once every worker has closed its listeners the dataplane says so, with the count.
        poll_until(lambda: output_has(dp, "weir-dataplane: listeners closed"), 10.0,
                   what="the listeners to close")
        assert output_has(dp, f"listeners closed; {FINISHERS + STAYERS} session(s) have until "
                              "10000 ms after the signal to finish"), dp.output()
        relayed = dp.control({"op": "counters"})["listeners"]["web"]["bytes_to_backend"]
        # New connections are refused from then on (a RST to each SYN), and a reload too.
        refused = tb.python("client", CONNECT, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                                "attempts": 5, "timeout": 10})
        assert refused == ["refused"] * 5, refused
        reload = dp.control({"op": "apply_config", "path": str(dp.config_path)})
        assert reload["ok"] is False and "shutting down" in reload["error"], reload
        # The open sessions still relay: the finishers have been sending all along.
        assert dp.proc.poll() is None, dp.output()
        assert active_sessions(dp) == FINISHERS + STAYERS
        poll_until(lambda: dp.control({"op": "counters"})["listeners"]["web"]["bytes_to_backend"]
                   > relayed, 10.0, what="the finishers' data to keep flowing")

        # The finishers close within the grace: their sessions end with FINs both ways.
        clients.stdin.write("close\n")
        clients.stdin.flush()
        poll_until(lambda: active_sessions(dp) == STAYERS, 30.0,
                   what="the finishers' sessions to end")
        # The stayers are reset when the grace is over; then the dataplane exits 0.
        assert dp.proc.wait(dp.shutdown_grace_s() + 10.0) == 0, dp.output()
        out, err = clients.communicate(timeout=2 * READ_TIMEOUT_S + 30)
        result = json.loads(out.split("@@netbed-result@@", 1)[1])
        assert result["finishers"] == ["eof"] * FINISHERS, (result, err)
        assert result["stayers"] == ["reset"] * STAYERS, (result, err)
        stdout = dp.stdout_path.read_text()
        assert f"reset {STAYERS} session(s)" in stdout, stdout
        assert "weir-dataplane: stopped" in stdout, stdout

    # The backends saw the same: the finishers' ends as EOF, the stayers' as resets.
    ended = [r.get("ended") for role in ("b1", "b2", "b3") for r in backends.records(role)]
    assert sorted(ended) == sorted(["eof"] * FINISHERS + ["reset"] * STAYERS), ended


def test_sigterm_without_sessions_exits_at_once_and_a_second_one_cuts_the_grace(testbed_factory):
    tb = testbed_factory()
    Backends(tb, "hold")
    config = proxy_config(tb)
    config["dataplane"]["shutdown_grace_ms"] = 60000  # longer than the test waits
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        # No session: SIGTERM stops without waiting for the 60 s grace (20 s is a third of it).
        assert dp.stop(timeout_s=20.0) == 0, dp.output()
    assert "every session finished within" in dp.stdout_path.read_text(), dp.output()

    with DataplaneProcess(tb, config, name="second") as dp:
        dp.wait_ready(timeout_s=30.0)
        clients = tb.python_popen(
            "client", SESSIONS,
            {"address": LISTENER_ADDRESS, "port": VIP_PORT, "finishers": 0, "stayers": 3,
             "timeout": READ_TIMEOUT_S, "max_sends": 0},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _read_line(clients, 60.0) == "open", clients.stderr.read()
        os.kill(dp.proc.pid, signal.SIGTERM)
        poll_until(lambda: output_has(dp, "listeners closed; 3 session(s)"), 10.0,
                   what="the listeners to close")
        # A second SIGTERM: the sessions are reset now, not after 60 s.
        os.kill(dp.proc.pid, signal.SIGTERM)
        assert dp.proc.wait(20.0) == 0, dp.output()
        out, err = clients.communicate("\n", timeout=2 * READ_TIMEOUT_S + 30)
        result = json.loads(out.split("@@netbed-result@@", 1)[1])
        assert result["stayers"] == ["reset"] * 3, (result, err)
        assert "SIGTERM again: the sessions left are reset now" in dp.stdout_path.read_text()


def test_sighup_is_refused_with_a_message_and_changes_nothing(testbed_factory):
    tb = testbed_factory()
    Backends(tb, "name")
    with DataplaneProcess(tb, proxy_config(tb)) as dp:
        dp.wait_ready(timeout_s=30.0)
        os.kill(dp.proc.pid, signal.SIGHUP)
        poll_until(lambda: output_has(dp, "SIGHUP refused", "stderr"), 10.0,
                   what="the dataplane to answer SIGHUP")
        assert "weirctl reload" in dp.stderr_path.read_text()
        # Still running and serving.
        answer = tb.python("client", r"""
import socket
s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
emit(recv_all(s).decode())
""", {"address": LISTENER_ADDRESS, "port": VIP_PORT})
        assert answer in ("b1", "b2", "b3"), answer
        assert dp.proc.poll() is None
        assert dp.stop() == 0, dp.output()
