"""weir-control as a systemd Type=notify service (packaging/systemd/weir-control.service), with the
test in systemd's place: READY=1 comes only once /metrics and the admin socket answer, with no
dataplane yet (weir-control retries it); STOPPING=1 on SIGTERM; a notification socket that is not
there changes nothing. /metrics carries weir_build_info with the version --version prints. No
root, no DPDK: the dataplane's side is in test_control_plane.py."""

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
from service_support import FakeDataplane, NotifySocket, samples, version_of

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", "."))
CONTROL = BUILD_ROOT / "control" / "weir-control"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="weir-service-") as d:
        yield Path(d)


def write_config(workdir: Path, metrics_port: int) -> Path:
    config = yaml.safe_load((SOURCE_ROOT / "config" / "examples" / "minimal.yaml").read_text())
    config["dataplane"]["control_socket"] = str(workdir / "dataplane.sock")  # nobody listens
    config["control"] = {"socket": str(workdir / "control.sock"),
                         "state_file": str(workdir / "control-state.json"),
                         "metrics": {"listen": f"127.0.0.1:{metrics_port}"}}
    path = workdir / "weir.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(config: Path, workdir: Path, env: dict) -> subprocess.Popen:
    log = open(workdir / "weir-control.log", "wb")
    return subprocess.Popen([str(CONTROL), "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env})


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


def test_ready_only_once_it_serves_and_stopping_on_sigterm(workdir):
    port = free_port()
    config = write_config(workdir, port)
    notify = NotifySocket(workdir)
    proc = start(config, workdir, notify.env())
    log = lambda: (workdir / "weir-control.log").read_text(errors="replace")  # noqa: E731
    try:
        ready = notify.wait_for("READY=1", proc, describe=log)
        # At the moment of READY=1, not after a retry: what it promises holds already.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.connect(str(workdir / "control.sock"))
        text = scrape(port)
        assert "STATUS=metrics on 127.0.0.1:%d, dataplane not reachable yet, retrying" % port \
            in ready.split("\n"), ready
        assert notify.messages == [ready], "nothing before READY=1"
        built = version_of(CONTROL)
        # One series: weir-control's; no dataplane has answered.
        assert samples(text, "weir_build_info") == [
            ({"daemon": "weir-control", "version": built["version"],
              "revision": built["revision"]}, 1.0)], text
        assert samples(text, "weir_dataplane_up") == [({}, 0.0)], text
        # process_*: weir-control's own, read from /proc/<its pid> here to compare.
        with open(f"/proc/{proc.pid}/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        start_time = boot + started_ticks / os.sysconf("SC_CLK_TCK")
        assert samples(text, "process_start_time_seconds") == [
            ({"daemon": "weir-control"}, pytest.approx(start_time, abs=0.02))], text
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        (labels, open_fds), = samples(text, "process_open_fds")
        assert labels == {"daemon": "weir-control"} and 3 <= open_fds <= fds + 2, (open_fds, fds)
        (_, resident), = samples(text, "process_resident_memory_bytes")
        (_, virtual), = samples(text, "process_virtual_memory_bytes")
        assert 0 < resident <= virtual, text
        (_, cpu), = samples(text, "process_cpu_seconds_total")
        assert cpu >= 0 and samples(text, "process_max_fds")[0][1] >= open_fds, text
        assert "# TYPE process_cpu_seconds_total counter" in text, text
        assert stop(proc) == 0, log()
        notify.wait_for("STOPPING=1", proc, timeout_s=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


def test_a_missing_notification_socket_changes_nothing(workdir):
    port = free_port()
    config = write_config(workdir, port)
    proc = start(config, workdir, {"NOTIFY_SOCKET": str(workdir / "no-such-socket")})
    try:
        # Its readiness line on stdout is the sign it serves; then the scrape must work.
        def serving():
            assert proc.poll() is None, (workdir / "weir-control.log").read_text()
            return "metrics on" in (workdir / "weir-control.log").read_text()

        poll_until(serving, 30.0, what="weir-control to serve")
        assert "weir_build_info{" in scrape(port)
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# Answers every request on the dataplane's control socket in the envelope (v, id, ok) but with
# fields of the wrong type: a pid that is text, workers that is a list, an error that is a number.
FAKE_DATAPLANE_REPLY = {"ok": True, "pid": "not a number", "workers": [1], "version": 5,
                        "error": 7, "changes": "none"}


def test_malformed_dataplane_replies_do_not_stop_weir_control(workdir):
    with FakeDataplane(workdir / "dataplane.sock", lambda op: FAKE_DATAPLANE_REPLY) as fake:
        port = free_port()
        proc = start(write_config(workdir, port), workdir, {})
        try:
            # Several syncs (one a second) with replies it cannot use, and a scrape and a reload.
            poll_until(lambda: fake.served.count("hello") >= 3, 30.0, interval_s=0.2,
                       what="weir-control to ask the fake dataplane three times",
                       describe=lambda: (workdir / "weir-control.log").read_text())
            assert proc.poll() is None, (workdir / "weir-control.log").read_text()
            assert "weir_build_info{" in scrape(port)
            proc.send_signal(signal.SIGHUP)
            poll_until(lambda: "SIGHUP" in (workdir / "weir-control.log").read_text(), 30.0,
                       what="weir-control to answer the reload")
            assert proc.poll() is None, (workdir / "weir-control.log").read_text()
            log = (workdir / "weir-control.log").read_text()
            assert "malformed reply from the dataplane" in log, log
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
