"""The TLS workers' own counters in weir-control's /metrics (issue 14, docs/metrics.md "The TLS
workers"): sessions through a `tls` listener, some succeeding (TLS 1.3, TLS 1.2, one resumed) and
some failing on purpose (a client that refuses the certificate for the name it asked, a TLS 1.2
client at a listener that wants 1.3, bytes that are not TLS), then the exact counts by worker
family: handshakes by version, resumptions, resets by reason, alerts by type both ways, plaintext
bytes. A worker killed with SIGKILL leaves its counts to its slot: after its restart no series has
gone down, and the totals are unchanged. And a certificate refused at a worker's start and on a
reload is counted, and logged with its file and the reason."""

import json
import os
import re
import shutil
import signal

import pytest

from netbed import LISTENER_ADDRESS, poll_until, testbed_factory  # noqa: F401 (fixture)
from test_control_plane import metric
from test_tls import TLS_PORT, WORKERS, Plane, make_certificate
from test_tls_workers import control_request

STRICT_PORT = 7444
PAYLOAD = 1000  # plaintext bytes each successful session sends (and gets echoed)

SCRAPE = r"""
import urllib.request
emit(urllib.request.urlopen(ARGS["url"], timeout=10).read().decode())
"""

# Each session in ARGS["sessions"]: [kind, port, server_name]; its outcome. Every session, also a
# failed one, waits for the connection's end (the dataplane's FIN or RST), which comes after the
# worker counted the session's outcome.
SESSIONS = r"""
import socket, ssl

def context(version):
    c = ssl.create_default_context(cafile=ARGS["ca"])
    v = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}[version]
    c.minimum_version = c.maximum_version = v
    return c

def drain(raw):
    raw.settimeout(30)
    try:
        while raw.recv(65536):
            pass
    except ConnectionResetError:
        pass

contexts = {v: context(v) for v in ("1.3", "1.2")}
last_session = None
outcomes = []
for kind, port, name in ARGS["sessions"]:
    raw = socket.create_connection((ARGS["address"], port), timeout=30)
    if kind == "garbage":
        raw.sendall(b"GET / HTTP/1.0\r\nHost: site.example\r\n\r\n")
        drain(raw)
        raw.close()
        outcomes.append("closed")
        continue
    version = "1.2" if kind in ("ok12", "old") else "1.3"
    watch = raw.dup()  # the connection, also once the TLS socket has closed its fd
    try:
        s = contexts[version].wrap_socket(raw, server_hostname=name,
                                          session=last_session if kind == "resume" else None)
    except ssl.SSLError as error:
        drain(watch)
        watch.close()
        outcomes.append(type(error).__name__)
        continue
    data = bytes(range(256)) * 4
    data = data[:ARGS["payload"]]
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        piece = s.recv(65536)
        if not piece:
            break
        got += piece
    reused = s.session_reused
    last_session = s.session
    s.unwrap().close()  # close_notify both ways
    drain(watch)
    watch.close()
    outcomes.append(("resumed" if reused else "ok") if got == data else "short")
emit(outcomes)
"""


def strict_listener(config: dict) -> None:
    """A second tls listener on the same certificate that wants TLS 1.3."""
    secure = next(l for l in config["listeners"] if l["name"] == "secure")
    strict = json.loads(json.dumps(secure))
    strict.update({"name": "strict", "port": STRICT_PORT})
    strict["tls"]["min_version"] = "1.3"
    config["listeners"].append(strict)


@pytest.fixture
def plane(testbed_factory):
    p = Plane(testbed_factory(), adjust=strict_listener)
    try:
        yield p
    finally:
        p.close()


def scrape(plane: Plane) -> str:
    return plane.tb.python("ctl", SCRAPE, {
        "url": f"http://{plane.config['control']['metrics']['listen']}/metrics"})


def worker_series(text: str) -> dict:
    """Every weir_tls_worker_* sample: {(name, labels): value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("weir_tls_worker_") and not line.startswith("weir_tls_worker_restarts"):
            head, value = line.rsplit(" ", 1)
            out[head] = float(value)
    return out


def run_sessions(plane: Plane, sessions: list, ca: str = "site.pem") -> list:
    return plane.tb.python("client", SESSIONS, {
        "ca": str(plane.tb.workdir / ca), "address": LISTENER_ADDRESS,
        "payload": PAYLOAD, "sessions": sessions}, timeout=180)


def test_worker_counters_reach_metrics_exactly_and_survive_a_restart(plane):
    good = "site.example"
    sessions = ([["ok13", TLS_PORT, good]] * 3 + [["resume", TLS_PORT, good]]
                + [["ok12", TLS_PORT, good]] * 2
                + [["wrong_name", TLS_PORT, "wrong.example"]] * 2
                + [["old", STRICT_PORT, good]] * 2
                + [["garbage", TLS_PORT, good]] * 3)
    outcomes = run_sessions(plane, sessions)
    assert outcomes == (["ok"] * 3 + ["resumed"] + ["ok"] * 2
                        + ["SSLCertVerificationError"] * 2 + ["SSLError"] * 2
                        + ["closed"] * 3), outcomes

    text = scrape(plane)
    total = lambda name, **labels: metric(text, name, **labels)  # noqa: E731 (summed over slots)
    assert total("weir_tls_worker_sessions_total") == len(sessions)
    assert total("weir_tls_worker_handshakes_total", version="1.3") == 4
    assert total("weir_tls_worker_handshakes_total", version="1.2") == 2
    assert total("weir_tls_worker_resumed_handshakes_total") == 1
    # Refused: the two names the client would not take and the two old versions in the handshake;
    # the bytes that were not TLS before OpenSSL saw them.
    assert total("weir_tls_worker_resets_total", reason="handshake_failed") == 4
    assert total("weir_tls_worker_resets_total", reason="not_tls") == 3
    assert total("weir_tls_worker_resets_total") == 7
    # Alerts: close_notify both ways for each of the 6 good sessions; protocol_version sent to
    # the two old clients; the two clients that refused the certificate said so (OpenSSL's
    # client sends bad_certificate for a name that does not match).
    assert total("weir_tls_worker_alerts_received_total", type="close_notify") == 6
    assert total("weir_tls_worker_alerts_sent_total", type="close_notify") == 6
    assert total("weir_tls_worker_alerts_sent_total", type="protocol_version") == 2
    assert total("weir_tls_worker_alerts_received_total", type="bad_certificate") == 2
    assert total("weir_tls_worker_alerts_sent_total") == 8
    assert total("weir_tls_worker_alerts_received_total") == 8
    assert total("weir_tls_worker_plaintext_bytes_total", way="to_backend") == 6 * PAYLOAD
    assert total("weir_tls_worker_plaintext_bytes_total", way="from_backend") == 6 * PAYLOAD
    assert total("weir_tls_worker_ciphertext_bytes_total", way="from_client") > 6 * PAYLOAD
    # One series per slot. One session at a time: the relay gives each to the worker with the
    # fewest (none), the first: slot 0 served them all, the one killed below.
    for slot in range(WORKERS):
        metric(text, "weir_tls_worker_sessions_total", tls_worker=str(slot))  # asserts it exists
    assert metric(text, "weir_tls_worker_sessions_total", tls_worker="0") == len(sessions)

    # A worker killed: its slot keeps its counts, and after the restart nothing went down.
    before = worker_series(text)
    victim = plane.status()["pids"][0]
    os.kill(victim, signal.SIGKILL)
    plane.wait_attached(WORKERS + 1)
    assert victim not in plane.status()["pids"]
    after_text = scrape(plane)
    after = worker_series(after_text)
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}
    assert metric(after_text, "weir_tls_worker_restarts_total") == 1
    # The new worker counts on top: two more good sessions, and the totals grow by exactly that.
    assert run_sessions(plane, [["ok13", TLS_PORT, good]] * 2) == ["ok"] * 2
    last = scrape(plane)
    assert metric(last, "weir_tls_worker_handshakes_total", version="1.3") == 6
    assert metric(last, "weir_tls_worker_sessions_total") == len(sessions) + 2
    for key, value in worker_series(last).items():
        assert value >= before[key], key


def test_a_refused_certificate_is_counted_and_logged_at_start_and_on_reload(plane):
    """On reload: a certificate that is not its key's is refused (the running one stays, still
    served), counted as stage="reload", and logged with the file and why. At start: a worker whose
    key file is unreadable refuses to start, counted as stage="start" (once per attempt)."""
    workdir = plane.tb.workdir
    text = scrape(plane)
    assert metric(text, "weir_tls_certificates_refused_total", stage="reload") == 0
    assert metric(text, "weir_tls_certificates_refused_total", stage="start") == 0

    shutil.copy(workdir / "site.pem", workdir / "old.pem")
    other = workdir / "other"
    other.mkdir()
    make_certificate(other)
    os.replace(other / "site.pem", workdir / "site.pem")  # no longer site.key's certificate
    reply = control_request(plane.config["control"]["socket"], "reload")
    assert not reply["ok"], reply
    text = scrape(plane)
    assert metric(text, "weir_tls_certificates_refused_total", stage="reload") == 1
    log = plane.log.read_text(errors="replace")
    assert re.search(r"certificate refused: .*site\.key.* is not the key of the certificate in "
                     r".*site\.pem", log), log
    # The old certificate is still served: a client that trusts only it completes a session.
    assert run_sessions(plane, [["ok13", TLS_PORT, "site.example"]], ca="old.pem") == ["ok"]

    # At start: the key unreadable to the worker (gone), then a worker killed: its successor
    # refuses to start, and each attempt is counted.
    os.rename(workdir / "site.key", workdir / "site.key.gone")
    os.kill(plane.status()["pids"][0], signal.SIGKILL)
    text = poll_until(
        lambda: (t := scrape(plane)) and metric(
            t, "weir_tls_certificates_refused_total", stage="start") >= 1 and t,
        20.0, what="a refused start to be counted",
        describe=lambda: plane.log.read_text(errors="replace"))
    log = plane.log.read_text(errors="replace")
    assert re.search(r"weir-tls-worker: certificate refused: .*site\.key", log), log
    assert metric(text, "weir_tls_certificates_refused_total", stage="reload") == 1
