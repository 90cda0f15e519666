"""weir-control supervising weir-tls-worker processes (docs/tls.md, "Worker crash"): with a `tls:`
section it starts tls.workers of them, each acknowledging the ticket keys weir-control sent it; a
worker killed with SIGKILL is replaced (a new pid, the restart counted in /metrics); weir-control's
SIGTERM leaves no worker behind, and a weir-control killed with SIGKILL takes its workers with it
(their ticket key socket ends). No dataplane, no namespaces; root only to check the workers drop to
tls.user."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
import yaml

from netbed import poll_until
from service_support import FakeDataplane, samples

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", "."))
CONTROL = BUILD_ROOT / "control" / "weir-control"
TLS_WORKER = BUILD_ROOT / "tls" / "weir-tls-worker"
WORKERS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Control:
    """weir-control with a tls section, its admin socket and /metrics."""

    def __init__(self, workdir: Path, ticket_keys_file: Path = None):
        self.workdir = workdir
        self.port = free_port()
        config = yaml.safe_load((SOURCE_ROOT / "config" / "examples" / "minimal.yaml").read_text())
        config["dataplane"]["control_socket"] = str(workdir / "dataplane.sock")  # nobody listens
        config["control"] = {"socket": str(workdir / "control.sock"),
                             "state_file": str(workdir / "control-state.json"),
                             "metrics": {"listen": f"127.0.0.1:{self.port}"}}
        config["tls"] = {"workers": WORKERS, "ticket_key_rotation_s": 3600}
        if ticket_keys_file is not None:
            config["tls"]["ticket_keys_file"] = str(ticket_keys_file)
        if os.geteuid() == 0:
            config["tls"]["user"] = "nobody"
        path = workdir / "weir.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "weir-control.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(CONTROL), "--config", str(path), "--tls-worker", str(TLS_WORKER)],
            stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict:
        return control_status(self.workdir / "control.sock")

    def tls(self):
        """The status's tls part, or None before the admin socket answers."""
        assert self.proc.poll() is None, self.log()
        try:
            return self.status()["tls"]
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    def scrape(self) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                      timeout=10).read().decode()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def control_request(socket_path, op: str) -> dict:
    """weir-control's reply to `op` on its admin socket (not asserted ok)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(socket_path))
        s.sendall(json.dumps({"v": 1, "id": 1, "op": op}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "weir-control closed the admin connection"
            data += chunk
    return json.loads(data)


def control_status(socket_path) -> dict:
    """weir-control's `status` reply on its admin socket."""
    reply = control_request(socket_path, "status")
    assert reply["ok"], reply
    return reply


def process(pid: int):
    """(state, ppid, executable path, uid) of a live process, or None (gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    if state == "Z":
        return None
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    return state, int(ppid), exe, uid


@pytest.fixture
def control():
    with tempfile.TemporaryDirectory(prefix="weir-tls-workers-") as d:
        c = Control(Path(d))
        try:
            yield c
        finally:
            c.close()


def all_running_with_keys(control: Control):
    tls = control.tls()
    if tls and tls["running"] == WORKERS and tls["with_current_key"] == WORKERS:
        return tls
    return None


def check_workers(control: Control, pids):
    expected_uid = __import__("pwd").getpwnam("nobody").pw_uid if os.geteuid() == 0 \
        else os.geteuid()
    for pid in pids:
        seen = process(pid)
        assert seen is not None, (pid, control.log())
        _, ppid, exe, uid = seen
        assert ppid == control.proc.pid and exe == str(TLS_WORKER.resolve()), seen
        # A worker answers the ticket keys as soon as it has read them, which can be just before
        # it drops root: wait for the drop, which must come.
        def dropped(pid=pid):
            now = process(pid)
            return now if now is not None and now[3] == expected_uid else None

        poll_until(dropped, 10.0, what=f"worker {pid} running as uid {expected_uid} (tls.user)",
                   describe=control.log)


def test_workers_started_restarted_after_sigkill_and_stopped(control):
    tls = poll_until(lambda: all_running_with_keys(control), 30.0,
                     what=f"{WORKERS} TLS workers holding the current ticket key",
                     describe=control.log)
    assert tls["workers"] == WORKERS and tls["restarts"] == 0 and tls["key_rotations"] == 0, tls
    pids = tls["pids"]
    assert len(set(pids)) == WORKERS, tls
    check_workers(control, pids)
    text = control.scrape()
    assert samples(text, "weir_tls_workers_running") == [({}, float(WORKERS))], text
    assert samples(text, "weir_tls_worker_restarts_total") == [({}, 0.0)], text
    assert samples(text, "weir_tls_ticket_key_rotations_total") == [({}, 0.0)], text

    victim = pids[1]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        t = control.tls()
        if t["restarts"] == 1 and t["running"] == WORKERS and t["with_current_key"] == WORKERS:
            return t
        return None

    tls = poll_until(replaced, 30.0, what="the killed worker replaced", describe=control.log)
    assert victim not in tls["pids"] and set(pids) - {victim} < set(tls["pids"]), (pids, tls)
    assert process(victim) is None, "reaped, not left a zombie"
    check_workers(control, tls["pids"])
    text = control.scrape()
    assert samples(text, "weir_tls_worker_restarts_total") == [({}, 1.0)], text
    assert samples(text, "weir_tls_workers_running") == [({}, float(WORKERS))], text
    assert f"killed by signal {signal.SIGKILL}" in control.log(), control.log()

    control.proc.send_signal(signal.SIGTERM)
    assert control.proc.wait(timeout=30) == 0, control.log()
    # weir-control reaped its workers before it exited: none is left, not even as a zombie.
    assert [pid for pid in tls["pids"] if process(pid) is not None] == [], control.log()


def test_workers_end_with_a_killed_weir_control(control):
    tls = poll_until(lambda: all_running_with_keys(control), 30.0,
                     what=f"{WORKERS} TLS workers holding the current ticket key",
                     describe=control.log)
    control.proc.kill()
    control.proc.wait()
    # No SIGTERM from weir-control: each worker stops by itself, on the parent-death signal set at
    # fork, or (once its setuid to tls.user cleared that) on its ticket key socket's end.
    poll_until(lambda: all(process(pid) is None for pid in tls["pids"]), 30.0,
               what="the orphaned workers to stop",
               describe=lambda: repr([(pid, process(pid)) for pid in tls["pids"]]))


# ------------------------------------------------ certificate expiry (issue 16: /metrics, alerts)

# The dataplane's control socket as weir-control needs it for a reload: hello, an apply_config
# that applies, and empty counters and pools. A reload goes through the dataplane first; the real
# one refuses tls listeners until its relay stage lands (docs/tls.md).
FAKE_DATAPLANE_OPS = {"hello": {"pid": 4242, "workers": 1, "version": "fake", "revision": "fake"},
                      "apply_config": {"changes": []}, "pools": {"pools": []}}


def self_signed(d: Path, name: str, days: int) -> int:
    """A self-signed certificate NAME.pem (key NAME.key) valid for `days`; its notAfter (Unix)."""
    import datetime

    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key", "-out",
                    f"{name}.pem", "-subj", f"/CN={name}.example", "-days", str(days)],
                   cwd=d, check=True, capture_output=True, timeout=60)
    for f in (f"{name}.key", f"{name}.pem"):
        (d / f).chmod(0o644)  # readable by the workers once they run as tls.user
    end = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", f"{name}.pem"], cwd=d,
                         check=True, capture_output=True, text=True, timeout=60).stdout
    when = datetime.datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def test_certificate_expiry_is_exported_and_read_again_on_reload():
    with tempfile.TemporaryDirectory(prefix="weir-cert-expiry-") as name:
        d = Path(name)
        d.chmod(0o755)
        site_until = self_signed(d, "site", 30)
        renewed_until = self_signed(d, "renewed", 3)
        port = free_port()
        config = yaml.safe_load((SOURCE_ROOT / "config" / "examples" / "minimal.yaml").read_text())
        config["dataplane"]["control_socket"] = str(d / "dataplane.sock")
        config["control"] = {"socket": str(d / "control.sock"),
                             "state_file": str(d / "control-state.json"),
                             "metrics": {"listen": f"127.0.0.1:{port}"}}
        config["tls"] = {"workers": 1}
        if os.geteuid() == 0:
            config["tls"]["user"] = "nobody"
        config["pools"] = [{"name": "kv", "backends": [
            {"name": "b1", "address": "192.0.2.11", "port": 80}]}]
        secure = {"name": "secure", "address": "192.0.2.100", "port": 443, "protocol": "tls",
                  "pool": "kv", "tls": {"certificates": [
                      {"cert": str(d / "site.pem"), "key": str(d / "site.key")}]}}
        config["listeners"].append(secure)
        path = d / "weir.yaml"
        path.write_text(yaml.safe_dump(config))
        with FakeDataplane(d / "dataplane.sock",
                           lambda op: {"ok": True, **FAKE_DATAPLANE_OPS.get(op, {})}):
            log_path = d / "weir-control.log"
            proc = subprocess.Popen([str(CONTROL), "--config", str(path), "--tls-worker",
                                     str(TLS_WORKER)], stdout=open(log_path, "wb"),
                                    stderr=subprocess.STDOUT)
            family = "weir_tls_certificate_expiry_timestamp_seconds"

            def expiries():
                assert proc.poll() is None, log_path.read_text()
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                  timeout=10).read().decode()
                except OSError:
                    return None
                return sorted((s[0]["certificate"], s[0]["listener"], s[1])
                              for s in samples(text, family)) or None

            try:
                assert poll_until(expiries, 30.0, what="the first scrape") == [
                    (str(d / "site.pem"), "secure", float(site_until))]
                # A second certificate whose file is missing: the reload is refused before
                # anything changes (the certificate check, docs/tls.md "Certificate reload"),
                # the file named in the log, the value unchanged.
                secure["tls"]["certificates"] = [
                    {"cert": str(d / "renewed.pem"), "key": str(d / "renewed.key")},
                    {"cert": str(d / "missing.pem"), "key": str(d / "renewed.key")}]
                path.write_text(yaml.safe_dump(config))
                proc.send_signal(signal.SIGHUP)
                poll_until(lambda: "a certificate does not load" in log_path.read_text(), 30.0,
                           what="the reload refused", describe=lambda: log_path.read_text())
                log = log_path.read_text()
                assert f"{path}:" in log and "missing.pem" in log, log
                assert expiries() == [(str(d / "site.pem"), "secure", float(site_until))]
                # Renewed (a shorter one here, so that the value moves): read again on reload.
                secure["tls"]["certificates"] = [
                    {"cert": str(d / "renewed.pem"), "key": str(d / "renewed.key")}]
                path.write_text(yaml.safe_dump(config))
                proc.send_signal(signal.SIGHUP)
                expected = [(str(d / "renewed.pem"), "secure", float(renewed_until))]
                poll_until(lambda: expiries() == expected, 30.0, what="the reloaded certificates",
                           describe=lambda: f"{expiries()}\n{log_path.read_text()}")
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0, log_path.read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


# ------------------------------------------------ tls.ticket_keys_file (shared by several boxes)

def key_line() -> str:
    import base64

    return base64.b64encode(os.urandom(80)).decode()


def key_name(line: str) -> str:
    import base64

    return base64.b64decode(line)[:16].hex()


def test_instances_sharing_a_ticket_keys_file_encrypt_with_the_same_key():
    """Two weir-control instances (two boxes) with one ticket keys file: both workers sets encrypt
    with its penultimate key (so each decrypts the other's tickets: tls_worker's
    BoxesOnTwoVersionsOfTheKeyFileResumeEachOthersTickets), move together when a key is appended
    and they reload, and refuse a broken file with KEYS_FILE:LINE, keeping their keys."""
    with tempfile.TemporaryDirectory(prefix="weir-ticket-keys-") as name:
        d = Path(name)
        d.chmod(0o755)
        keys = d / "ticket-keys"
        lines = [key_line() for _ in range(3)]
        keys.write_text("# shared by every box\n" + "\n".join(lines) + "\n")
        keys.chmod(0o600)  # root only: the workers never open it, weir-control sends the keys
        boxes = []
        try:
            for box in ("a", "b"):
                (d / box).mkdir()
                boxes.append(Control(d / box, ticket_keys_file=keys))

            def on_key(expected):
                def check():
                    tls = [c.tls() for c in boxes]
                    return tls if all(t and t["running"] == WORKERS and
                                      t["with_current_key"] == WORKERS and
                                      t["current_key_name"] == expected for t in tls) else None
                return check

            tls = poll_until(on_key(key_name(lines[1])), 30.0,
                             what="both boxes' workers on the file's penultimate key",
                             describe=lambda: "".join(c.log() for c in boxes))
            assert all(t["ticket_keys"] == "file" and t["key_rotations"] == 0 for t in tls), tls

            lines.append(key_line())
            keys.write_text("\n".join(lines) + "\n")
            with FakeDataplane(d / "a" / "dataplane.sock",
                               lambda op: {"ok": True, **FAKE_DATAPLANE_OPS.get(op, {})}), \
                    FakeDataplane(d / "b" / "dataplane.sock",
                                  lambda op: {"ok": True, **FAKE_DATAPLANE_OPS.get(op, {})}):
                for c in boxes:
                    reply = control_request(c.workdir / "control.sock", "reload")
                    assert reply["ok"], reply
                poll_until(on_key(key_name(lines[2])), 30.0,
                           what="both boxes on the new penultimate key after the reload",
                           describe=lambda: "".join(c.log() for c in boxes))

                keys.write_text("\n".join(lines) + "\nnot a key!\n")
                for c in boxes:
                    reply = control_request(c.workdir / "control.sock", "reload")
                    assert not reply["ok"], reply
                    assert reply["diagnostics"] == [
                        f"{keys}:5:1: tls.ticket_keys_file: not a base64 ticket key"], reply
                    assert c.tls()["current_key_name"] == key_name(lines[2])
        finally:
            for c in boxes:
                c.close()
