"""`tls` listeners end to end (issue 14, docs/tls.md): a Python ssl client in the client namespace
does TLS 1.3 or 1.2 with the dataplane's VIP; the dataplane keeps both TCP connections and hands
the records to weir-tls-worker processes that weir-control started and attached to it (shared
memory channels, common/tls_attach.h); the plaintext reaches a Linux echo backend in b1 and comes
back. 1 MiB each way with equal SHA-256, close_notify both ways; then a worker killed with SIGKILL
resets its own sessions only, and new handshakes succeed again once weir-control has restarted
it."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    LISTENER_ADDRESS,
    DataplaneProcess,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_proxy import Backends, proxy_config
from test_tls_workers import control_request, control_status

BUILD = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
CONTROL = BUILD / "control" / "weir-control"
TLS_WORKER = BUILD / "tls" / "weir-tls-worker"
TLS_PORT = 7443
WORKERS = 2


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "site.pem", directory / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=site.example",
         "-addext", "subjectAltName=DNS:site.example"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def tls_plane_config(tb, backends=("b1",)) -> dict:
    """proxy_config's pool `app` over `backends`, and the tls listener `secure` on it."""
    cert, key = make_certificate(tb.workdir)
    config = proxy_config(tb, backends=backends)
    config["listeners"].append({
        "name": "secure", "address": LISTENER_ADDRESS, "port": TLS_PORT, "protocol": "tls",
        "pool": "app", "tls": {"certificates": [{"cert": str(cert), "key": str(key)}]}})
    config["tls"] = {"workers": WORKERS, "ticket_key_rotation_s": 3600}
    if os.geteuid() == 0:
        config["tls"]["user"] = "nobody"
    config["control"] = {"socket": str(tb.workdir / "control.sock"),
                         "state_file": str(tb.workdir / "control-state.json"),
                         "metrics": {"listen": "127.0.0.1:9464"}}
    return config


class Plane:
    """The echo backend, the dataplane, and weir-control with its TLS workers attached."""

    def __init__(self, tb, config=None, backends=None, control_first: bool = False,
                 adjust=None):
        import yaml

        self.tb = tb
        self.config = config or tls_plane_config(tb)
        if adjust is not None:
            adjust(self.config)
        self.backends = backends or Backends(tb, "echo", roles=("b1",))
        self.dp = DataplaneProcess(tb, self.config)
        if not control_first:
            self.dp.start().wait_ready()
        self.path = tb.workdir / "weir.yaml"
        self.path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.log = tb.workdir / "weir-control.log"
        self.control = tb.popen("ctl", [str(CONTROL), "--config", str(self.path), "--tls-worker",
                                        str(TLS_WORKER)],
                                stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        if not control_first:
            self.wait_attached(WORKERS)

    def attachments(self) -> int:
        return self.dp.output().count("attached: ")

    def wait_attached(self, count: int) -> None:
        def attached():
            assert self.control.poll() is None, self.log.read_text()
            return self.attachments() >= count

        poll_until(attached, 20.0, what=f"{count} TLS worker attachment(s) in the dataplane",
                   describe=lambda: self.dp.output() + self.log.read_text())

    def status(self) -> dict:
        return control_status(self.config["control"]["socket"])["tls"]

    def close(self):
        if self.control.poll() is None:
            self.control.send_signal(signal.SIGTERM)
            self.control.wait(15)
        if self.dp.proc is not None:
            self.dp.stop()


@pytest.fixture
def plane(testbed_factory):
    p = Plane(testbed_factory())
    try:
        yield p
    finally:
        p.close()


# One session: TLS ARGS["version"], ARGS["size"] random bytes echoed back in steps (at most 64 KiB
# in flight, so neither side's buffers decide the outcome), SHA-256 of both ways, then close_notify
# both ways (unwrap).
ECHO_CLIENT = r"""
import hashlib, os, socket, ssl
ctx = ssl.create_default_context(cafile=ARGS["ca"])
version = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}[ARGS["version"]]
ctx.minimum_version = ctx.maximum_version = version
raw = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=60)
s = ctx.wrap_socket(raw, server_hostname="site.example")
data = os.urandom(ARGS["size"])
got = hashlib.sha256()
sent = received = 0
while received < len(data):
    if sent < len(data):
        n = min(16384, len(data) - sent)
        s.sendall(data[sent:sent + n])
        sent += n
    while received < sent - (65536 if sent < len(data) else 0):
        piece = s.recv(65536)
        if not piece:
            raise EOFError(f"EOF after {received} bytes")
        got.update(piece)
        received += len(piece)
result = {"version": s.version(), "sent": hashlib.sha256(data).hexdigest(),
          "echoed": got.hexdigest(), "bytes": received}
try:
    s.unwrap()  # our close_notify out; returns once the far side's has come back
    result["clean_close"] = True
except Exception as error:
    result["clean_close"] = repr(error)
raw.close()
emit(result)
"""


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_a_mebibyte_each_way_through_a_tls_listener(plane, version):
    size = 1 << 20
    result = plane.tb.python("client", ECHO_CLIENT, {
        "ca": str(plane.tb.workdir / "site.pem"), "version": version,
        "address": LISTENER_ADDRESS, "port": TLS_PORT, "size": size}, timeout=180)
    assert result["version"] == f"TLSv{version}", result
    assert result["bytes"] == size and result["echoed"] == result["sent"], result
    assert result["clean_close"] is True, result
    stats = plane.dp.stats()["listeners"]["secure"]
    assert stats["connections"] >= 1 and stats["tls_resets"] == 0, stats
    # The backend saw the plaintext and its end (echo mode records each finished connection).
    poll_until(lambda: plane.backends.records("b1"), 10.0, what="the backend's record")


# ARGS["sessions"] TLS sessions opened one after the other, each echoing a line; "ready" on stdout;
# then, after a line on stdin, each tries again: "ok", or the error that ended it.
HELD_CLIENT = r"""
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=ARGS["ca"])
sessions = []
for i in range(ARGS["sessions"]):
    raw = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname="site.example")
    s.sendall(b"hello %d\n" % i)
    assert recv_exactly(s, len(b"hello %d\n" % i)) == b"hello %d\n" % i
    sessions.append(s)
print("ready", flush=True)
sys.stdin.readline()
outcomes = []
for i, s in enumerate(sessions):
    try:
        s.sendall(b"again %d\n" % i)
        answer = recv_exactly(s, len(b"again %d\n" % i))
        outcomes.append("ok" if answer == b"again %d\n" % i else "wrong")
    except Exception as error:
        outcomes.append(type(error).__name__)
emit(outcomes)
"""


def test_a_killed_worker_resets_only_its_sessions_and_new_handshakes_succeed(plane):
    sessions = 6
    ca = str(plane.tb.workdir / "site.pem")
    held = plane.tb.python_popen("client", HELD_CLIENT, {
        "ca": ca, "address": LISTENER_ADDRESS, "port": TLS_PORT, "sessions": sessions},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _read_line(held, 60.0) == "ready", held.stderr.read() if held.poll() else ""
    # The relay gives each new session to the TLS worker with the fewest: three each.
    victim = plane.status()["pids"][0]
    os.kill(victim, signal.SIGKILL)
    # The dataplane hears the worker's link end and resets that worker's sessions.
    poll_until(lambda: "detached" in plane.dp.output(), 10.0, what="the dataplane to detach it",
               describe=plane.dp.output)
    held.stdin.write("go\n")
    held.stdin.flush()
    out, err = held.communicate(timeout=120)
    outcomes = json.loads(out.rsplit("@@netbed-result@@", 1)[1])
    assert sorted(outcomes).count("ok") == sessions // WORKERS, (outcomes, err)
    assert all(o in ("ok", "ConnectionResetError", "SSLEOFError", "SSLZeroReturnError",
                     "EOFError") for o in outcomes), outcomes
    # weir-control restarts it, it attaches, and new handshakes succeed (polled: every attempt is
    # a whole TLS session through the VIP).
    plane.wait_attached(WORKERS + 1)
    assert victim not in plane.status()["pids"]

    def echoes():
        try:
            result = plane.tb.python("client", ECHO_CLIENT, {
                "ca": ca, "version": "1.3", "address": LISTENER_ADDRESS, "port": TLS_PORT,
                "size": 4096}, timeout=60)
        except AssertionError:  # the client failed (reset, refused): try again
            return None
        return result if result["echoed"] == result["sent"] else None

    for _ in range(2 * WORKERS):  # every worker, the new one included, serves
        poll_until(echoes, 10.0, what="a new TLS session to echo")
    stats = plane.dp.stats()["listeners"]["secure"]
    assert stats["tls_resets"] >= sessions // WORKERS, stats


def echo_once(plane, version: str = "1.3", size: int = 4096):
    """One whole TLS session through the VIP, or None if it failed (reset, refused)."""
    try:
        result = plane.tb.python("client", ECHO_CLIENT, {
            "ca": str(plane.tb.workdir / "site.pem"), "version": version,
            "address": LISTENER_ADDRESS, "port": TLS_PORT, "size": size}, timeout=60)
    except AssertionError:
        return None
    return result if result["echoed"] == result["sent"] else None


def test_workers_started_before_the_dataplane_attach_once_it_is_up(testbed_factory):
    """weir-control first, the dataplane later (a boot order systemd does not promise to avoid):
    the running workers get their channels without a restart, and serve."""
    plane = Plane(testbed_factory(), control_first=True)
    try:
        def workers_up():
            assert plane.control.poll() is None, plane.log.read_text()
            try:
                status = plane.status()
            except (FileNotFoundError, ConnectionRefusedError):  # not listening yet
                return None
            return status if status["running"] == WORKERS else None

        before = poll_until(workers_up, 20.0, what="the TLS workers to run without a dataplane",
                            describe=lambda: plane.log.read_text())
        assert before["attached"] == 0, before
        plane.dp.start().wait_ready()
        plane.wait_attached(WORKERS)
        after = poll_until(lambda: plane.status()["attached"] == WORKERS and plane.status(), 10.0,
                           what="weir-control to count the workers attached")
        # The same processes, attached in place: no restart.
        assert sorted(after["pids"]) == sorted(before["pids"]), (before, after)
        assert after["restarts"] == 0, after
        for _ in range(2 * WORKERS):  # the relay spreads new sessions: every worker serves
            result = poll_until(lambda: echo_once(plane), 10.0, what="a TLS session to echo")
            assert result["version"] == "TLSv1.3", result
        stats = plane.dp.stats()["listeners"]["secure"]
        assert stats["tls_no_worker"] == 0 and stats["tls_resets"] == 0, stats
    finally:
        plane.close()


# One TLS 1.3 session that does not verify the server (the test compares what it is shown): the
# SHA-256 of the certificate the server presented, after one line echoed.
FINGERPRINT_CLIENT = r"""
import hashlib, socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=20)
s = ctx.wrap_socket(raw, server_hostname="site.example")
der = s.getpeercert(binary_form=True)
s.sendall(b"fingerprint\n")
assert recv_exactly(s, 12) == b"fingerprint\n"
s.close()
emit({"fingerprint": hashlib.sha256(der).hexdigest()})
"""


def presented_fingerprint(plane):
    try:
        return plane.tb.python("client", FINGERPRINT_CLIENT, {
            "address": LISTENER_ADDRESS, "port": TLS_PORT}, timeout=60)["fingerprint"]
    except AssertionError:  # the session failed: the caller polls or asserts on None
        return None


def file_fingerprint(cert: Path) -> str:
    import hashlib
    import ssl

    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def replace_certificate(directory: Path) -> None:
    """A new key and certificate (same name), moved over site.pem and site.key as an operator's
    tooling would (rename: never a half-written file)."""
    fresh = directory / "fresh"
    fresh.mkdir(exist_ok=True)
    cert, key = make_certificate(fresh)
    os.replace(key, directory / "site.key")
    os.replace(cert, directory / "site.pem")


def test_a_certificate_reload_serves_the_new_one_and_keeps_open_sessions(plane):
    """`weirctl reload` after the files changed: new handshakes on every worker get the new
    certificate, sessions open across the reload keep echoing; a bad certificate is then refused
    with FILE:LINE:COL, and the last good one stays."""
    workdir = plane.tb.workdir
    old = file_fingerprint(workdir / "site.pem")
    assert presented_fingerprint(plane) == old
    sessions = 2 * WORKERS  # on every worker: the relay spreads them
    held = plane.tb.python_popen("client", HELD_CLIENT, {
        "ca": str(workdir / "site.pem"), "address": LISTENER_ADDRESS, "port": TLS_PORT,
        "sessions": sessions},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _read_line(held, 60.0) == "ready", held.stderr.read() if held.poll() else ""
    pids = plane.status()["pids"]

    replace_certificate(workdir)
    new = file_fingerprint(workdir / "site.pem")
    assert new != old
    reply = control_request(plane.config["control"]["socket"], "reload")
    assert reply["ok"], reply
    status = poll_until(
        lambda: (s := plane.status())["with_current_certificates"] == WORKERS and s, 10.0,
        what="every TLS worker to apply the certificate reload",
        describe=lambda: json.dumps(plane.status()) + plane.log.read_text())
    assert status["certificates_generation"] == 1 and status["certificates_refused"] == 0, status
    assert sorted(status["pids"]) == sorted(pids), "a reload restarts no worker"
    for _ in range(2 * WORKERS):  # every worker hands out the new one
        assert presented_fingerprint(plane) == new

    # The sessions opened before the reload are still there, on the old certificate's keys.
    held.stdin.write("go\n")
    held.stdin.flush()
    out, err = held.communicate(timeout=120)
    outcomes = json.loads(out.rsplit("@@netbed-result@@", 1)[1])
    assert outcomes == ["ok"] * sessions, (outcomes, err)

    # A certificate that is not the key's: refused where the configuration names it, nothing sent
    # to the workers, the last good certificate still served.
    other = workdir / "other"
    other.mkdir()
    make_certificate(other)
    os.replace(other / "site.pem", workdir / "site.pem")
    reply = control_request(plane.config["control"]["socket"], "reload")
    assert not reply["ok"], reply
    weir_yaml = str(plane.path)
    assert any(d.startswith(weir_yaml + ":") and ".tls.certificates[0].key: " in d
               and "is not the key of the certificate" in d
               for d in reply.get("diagnostics", [])), reply
    assert plane.status()["certificates_generation"] == 1
    for _ in range(2 * WORKERS):
        assert presented_fingerprint(plane) == new
    stats = plane.dp.stats()["listeners"]["secure"]
    assert stats["tls_resets"] == 0, stats
