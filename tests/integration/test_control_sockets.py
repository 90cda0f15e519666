"""The daemons' Unix sockets (issue 12, item 5): each socket gets the mode and group the file
gives it, a read-only socket answers queries and refuses every change, two sockets never share a
path, a live socket is never taken from the process serving it, a stale one is replaced, and the
clients a socket turns away are counted. The real weir-dataplane and weir-control on the test bed
(test_control_plane.py's plane)."""

import grp
import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from netbed import DataplaneProcess, poll_until, testbed_factory  # noqa: F401 (fixture)
from test_control_plane import (
    BUILD,
    ControlProcess,
    admin,
    control_config,
    metric,
    pool_states,
    running_plane,
)

WEIRCTL = BUILD / "control" / "weirctl"
DATAPLANE = BUILD / "dataplane" / "weir-dataplane"
NOBODY = 65534
GROUP = "nogroup"  # Debian's group 65534: a group root is not in, nobody's own


def socket_config(tb) -> dict:
    """control_config with every socket given as a map: the dataplane's for its group (0660),
    weir-control's admin socket for root alone plus group read (0640: read is not enough to
    connect), and a read-only socket anyone may use (0666)."""
    config = control_config(tb)
    config["dataplane"]["control_socket"] = {
        "path": str(tb.workdir / "dataplane.sock"), "mode": "0660", "group": GROUP}
    config["control"]["socket"] = {
        "path": str(tb.workdir / "control.sock"), "mode": "0640", "group": GROUP}
    config["control"]["read_only_socket"] = {
        "path": str(tb.workdir / "monitor.sock"), "mode": "0666"}
    return config


def paths(config) -> tuple[Path, Path, Path]:
    return (Path(config["dataplane"]["control_socket"]["path"]),
            Path(config["control"]["socket"]["path"]),
            Path(config["control"]["read_only_socket"]["path"]))


def bind_stale(path: Path) -> None:
    """A socket file nobody serves: what a process killed with SIGKILL leaves behind."""
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    assert stat.S_ISSOCK(path.lstat().st_mode)


@pytest.fixture
def sockets_plane(testbed_factory):
    tb = testbed_factory()
    config = socket_config(tb)
    tb.workdir.chmod(0o755)  # so that nobody reaches the sockets; their own modes decide
    # Stale files at the dataplane's and the read-only socket's paths: each daemon replaces them.
    for path in (paths(config)[0], paths(config)[2]):
        bind_stale(path)
    yield from running_plane(tb, config)


def connect_as_nobody(path: Path) -> str:
    """Connects to `path` as uid and gid 65534 (nobody, nogroup), sends a status request and
    returns "ok", "refused: ..." (an error reply) or the error connecting."""
    code = r"""
import json, socket, sys
try:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sys.argv[1])
        s.sendall(b'{"v":1,"id":1,"op":"status"}\n')
        reply = json.loads(s.makefile("rb").readline())
    print("ok" if reply.get("ok") else "refused: " + reply.get("error", ""))
except OSError as error:
    print(type(error).__name__)
"""
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-c", code, str(path)],
        capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


def weirctl(socket_path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEIRCTL), "--socket", str(socket_path), *args],
                          capture_output=True, text=True, timeout=30)


def test_sockets_get_their_mode_and_group_and_replace_stale_files(sockets_plane):
    tb, dp, control, _, _ = sockets_plane
    nogroup = grp.getgrnam(GROUP).gr_gid
    dataplane_sock, admin_sock, monitor_sock = paths(dp.config)
    for path, mode, gid in ((dataplane_sock, 0o660, nogroup), (admin_sock, 0o640, nogroup),
                            (monitor_sock, 0o666, os.getgid())):
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode), path
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (mode, gid), path
    # No temporary name is left beside them.
    assert not [p.name for p in tb.workdir.iterdir() if p.name.endswith(".tmp")]
    # The stale files were replaced: the daemons answer on those paths.
    assert dp.control({"op": "hello"})["ok"] is True
    assert admin(tb, monitor_sock, {"op": "status"})["ok"] is True
    # The modes and groups are what decides: nobody is in nogroup, which may use the dataplane's
    # socket (0660), but may only read weir-control's admin socket (0640), which is not enough.
    assert connect_as_nobody(dataplane_sock).startswith("refused: unknown operation")
    assert connect_as_nobody(admin_sock) == "PermissionError"
    assert connect_as_nobody(monitor_sock) == "ok"


def test_a_read_only_socket_answers_queries_and_refuses_a_drain(sockets_plane):
    tb, dp, control, _, path = sockets_plane
    _, admin_sock, monitor_sock = paths(dp.config)
    status = weirctl(monitor_sock, "status")
    assert status.returncode == 0, status.stderr
    assert "connected" in status.stdout
    backends = weirctl(monitor_sock, "backends")
    assert backends.returncode == 0 and "b1" in backends.stdout, backends.stderr

    drain = weirctl(monitor_sock, "drain", "app/b1")
    assert drain.returncode == 1, drain
    assert '"set" refused: this socket is read-only' in drain.stderr, drain.stderr
    raw = admin(tb, monitor_sock, {"op": "reload"})
    assert raw["ok"] is False and "read-only" in raw["error"], raw
    # Nothing changed: the dataplane still has b1 up, weir-control holds no override.
    assert pool_states(dp)["b1"] == "up"
    overrides = [b for pool in admin(tb, admin_sock, {"op": "backends"})["pools"]
                 for b in pool["backends"] if b.get("override") not in (None, {})]
    assert overrides == []
    assert admin(tb, admin_sock, {"op": "status"})["reloads"]["ok"] == 0

    # The admin socket, at its default level, drains.
    assert weirctl(admin_sock, "drain", "app/b1").returncode == 0
    poll_until(lambda: pool_states(dp)["b1"] == "draining", 10.0, what="b1 to drain")
    scrape = control.scrape()
    assert metric(scrape, "weir_control_socket_read_only_refusals_total",
                  socket="control.read_only_socket") == 2
    assert metric(scrape, "weir_control_socket_read_only_refusals_total",
                  socket="control.socket") == 0


def test_clients_past_the_limit_are_turned_away_and_counted(sockets_plane):
    tb, dp, control, _, _ = sockets_plane
    _, _, monitor_sock = paths(dp.config)
    held = []
    try:
        # 16 clients that send nothing, each known to be served (one status answered first).
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(str(monitor_sock))
            s.sendall(b'{"v":1,"id":1,"op":"status"}\n')
            assert s.makefile("rb").readline()
            held.append(s)
        with socket.socket(socket.AF_UNIX) as extra:
            extra.settimeout(10)
            extra.connect(str(monitor_sock))
            reply = json.loads(extra.makefile("rb").readline())
        assert reply == {"v": 1, "id": None, "ok": False, "error": "too many control clients"}
        scrape = control.scrape()  # over HTTP: not a socket client
        assert metric(scrape, "weir_control_socket_clients_refused_total",
                      daemon="weir-control", socket="control.read_only_socket") == 1
        assert metric(scrape, "weir_control_socket_clients_refused_total",
                      daemon="weir-control", socket="control.socket") == 0
        assert metric(scrape, "weir_control_socket_clients_refused_total",
                      daemon="weir-dataplane", socket="dataplane.control_socket") == 0
        assert metric(scrape, "weir_control_socket_clients_closed_total",
                      socket="control.read_only_socket", reason="idle") == 0
    finally:
        for s in held:
            s.close()
    # Their slots free again once they leave.
    poll_until(lambda: admin(tb, monitor_sock, {"op": "status"})["ok"], 10.0,
               what="the read-only socket to serve again")


def test_a_live_socket_is_never_taken_from_its_daemon(sockets_plane):
    tb, dp, control, _, path = sockets_plane
    dataplane_sock, admin_sock, _ = paths(dp.config)
    # A second weir-control on the same file: refused at its admin socket, before anything else.
    second_log = tb.workdir / "weir-control-second.log"
    with open(second_log, "wb") as out:
        proc = tb.popen("ctl", [str(BUILD / "control" / "weir-control"), "--config", str(path)],
                        stdout=subprocess.DEVNULL, stderr=out)
        assert proc.wait(30) == 1
    log = second_log.read_text()
    assert f"another process is serving {admin_sock} (control.socket;" in log, log
    # A second dataplane on the same file: refused before EAL and the ports are touched.
    second_dp = DataplaneProcess(tb, dp.config, name="second-dataplane")
    second_dp.start()
    assert second_dp.proc.wait(30) == 1, second_dp.output()
    stderr = second_dp.stderr_path.read_text()
    assert f"another process is serving {dataplane_sock} (dataplane.control_socket;" in stderr, \
        second_dp.output()
    # Its only words: nothing of EAL, the ports or the workers was started.
    assert len(stderr.strip().splitlines()) == 1, second_dp.output()
    # The first ones keep their sockets and serve.
    assert dataplane_sock.exists() and admin_sock.exists()
    assert dp.control({"op": "hello"})["ok"] is True
    assert admin(tb, admin_sock, {"op": "status"})["dataplane"]["connected"] is True


def test_a_killed_weir_control_leaves_a_stale_socket_its_successor_replaces(sockets_plane):
    tb, dp, control, _, path = sockets_plane
    _, admin_sock, monitor_sock = paths(dp.config)
    control.proc.send_signal(signal.SIGKILL)
    control.proc.wait(10)
    assert stat.S_ISSOCK(admin_sock.lstat().st_mode), "SIGKILL leaves the socket file"
    with socket.socket(socket.AF_UNIX) as s:
        with pytest.raises(ConnectionRefusedError):
            s.connect(str(admin_sock))
    restarted = ControlProcess(tb, path)
    restarted.log = tb.workdir / "weir-control-restarted.log"  # the first one's says "serving"
    restarted.start()
    control.proc = restarted.proc  # the fixture stops this one
    assert admin(tb, admin_sock, {"op": "status"})["ok"] is True
    assert admin(tb, monitor_sock, {"op": "status"})["ok"] is True
    assert stat.S_IMODE(admin_sock.lstat().st_mode) == 0o640


def test_one_path_for_two_sockets_is_refused_with_its_position(tmp_path):
    text = (
        "dataplane:\n"
        "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
        "  control_socket: /run/weir/weir.sock\n"
        "  ports:\n"
        "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
        "listeners:\n"
        "  - { name: e, address: 10.0.0.100, port: 7, protocol: echo }\n"
        "control:\n"
        "  read_only_socket: { path: /run/weir/weir.sock, mode: \"0666\" }\n"
    )
    config = tmp_path / "weir.yaml"
    config.write_text(text)
    for argv in ([str(DATAPLANE), "--check-config", str(config)],
                 [str(WEIRCTL), "check-config", str(config)]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, result
        assert (f"{config}:9:21: control.read_only_socket: \"/run/weir/weir.sock\" is both "
                "dataplane.control_socket and control.read_only_socket") in result.stderr, result
