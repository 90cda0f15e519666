"""weirctl (docs/weirctl.md): the real binary against a fake weir-control, a Unix socket server in
this process that answers the admin protocol's ops with canned data and records every request. No
root, no DPDK, no dataplane. Checked: the exact requests each command sends, the tables and the
--json output, the exit codes, and the failures (no daemon, refused, timeout, error replies, bad
usage); check-config runs locally on the real config loader."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", "."))
EXE = BUILD_ROOT / "control" / "weirctl"
EXAMPLES = SOURCE_ROOT / "config" / "examples"
TIMEOUT_S = 5  # weirctl's own deadline for a reply

STATUS = {
    "dataplane": {"connected": True, "pid": 4242, "workers": 2, "node_id": 7},
    "config": "/etc/weir/weir.yaml",
    "reloads": {"ok": 3, "failed": 1, "last_success_unix": 1700000000},
    "health": {"checks": 4},
    "passive": [{"pool": "app", "backend": "b1", "down": False, "errors_in_row": 1,
                 "mark_downs": 0},
                {"pool": "app", "backend": "b2", "down": True, "errors_in_row": 0,
                 "mark_downs": 2}],
    "box": {"drained": True},
    "cluster": {"states": {"a": "live", "b": "gone", "c": "draining"}, "overrides": {"c": "draining"},
                "peers_lost": 1},
    "state_file": {"path": "/var/lib/weir/control-state.json", "error": "not valid JSON"},
}

LISTENERS = {
    "listeners": [
        {"name": "web", "address": "192.0.2.100", "port": 80, "protocol": "tcp", "pool": "app",
         "connections": 1234, "active": 17},
        {"name": "echo", "address": "192.0.2.100", "port": 7, "protocol": "echo", "pool": None,
         "connections": 5, "active": 0},
    ]
}

POOLS = [
    {"name": "app", "backends": [
        {"name": "b1", "address": "10.0.0.11", "port": 8080, "state": "up", "weight": 1,
         "active": 10, "connections": 400, "health": "up", "override": None, "passive": "ok"},
        {"name": "b2", "address": "10.0.0.12", "port": 8080, "state": "draining", "weight": 2,
         "active": 3, "connections": 250, "health": "up", "override": "draining",
         "passive": "down"},
    ]},
    {"name": "api", "backends": [
        {"name": "a1", "address": "10.0.1.1", "port": 9000, "state": "down", "weight": 100,
         "active": 0, "connections": 0, "health": "down", "override": None},
        {"name": "a2", "address": "10.0.1.2", "port": 9000, "state": "up", "weight": 100,
         "active": 0, "connections": 0, "health": "unchecked", "override": "up"},
    ]},
]

DROPS = {"bad_checksum": 1, "truncated": 0, "not_ours": 4}
COUNTERS = {
    "workers": [
        {"id": 0, "loop": {"polls": 100, "busy_polls": 10, "busy_cycles": 250, "total_cycles": 1000,
                           "sleeps": 5},
         "l3": {"arp_requests_answered": 1},
         "tcp": {"established": 12, "retransmitted_segments": 3, "resets_sent": 1},
         "ports": {"fabric": {"rx_packets": 1000, "rx_bytes": 64000, "tx_packets": 900,
                              "tx_bytes": 60000, "drops": DROPS}}},
        {"id": 1, "loop": {"polls": 100, "busy_polls": 0, "busy_cycles": 0, "total_cycles": 0,
                           "sleeps": 50},
         "l3": {},
         "tcp": {"established": 0, "retransmitted_segments": 0, "resets_sent": 0},
         "ports": {"fabric": {"rx_packets": 7, "rx_bytes": 448, "tx_packets": 0, "tx_bytes": 0,
                              "drops": {"bad_checksum": 0}}}},
    ],
    "listeners": {
        "web": {"connections": 1234, "active": 17, "refused_max_connections": 0, "no_backend": 2,
                "backend_connect_failures": 6, "idle_timeouts": 0, "bytes_to_backend": 1048576,
                "bytes_to_client": 4194304, "frames_corrupt_to_backend": 0,
                "frames_corrupt_to_client": 0},
    },
}

SILENT = object()  # accept the request, never answer
HANG_UP = object()  # close the connection without answering


class FakeControl:
    """A weir-control stand-in on a Unix socket: one request per connection, answered from
    `replies` (op -> reply fields, a callable(request) -> fields, SILENT or HANG_UP); every request
    received is kept in `requests`, parsed. What goes wrong in its threads (a second request on a
    connection, a line that is not JSON) is kept in `failures` and raised by close(), so that it
    fails the test rather than dying with the thread."""

    def __init__(self, path: str):
        self.path = path
        self.requests = []
        self.failures = []
        self.replies = {
            "status": STATUS,
            "listeners": LISTENERS,
            "backends": self._backends,
            "set": self._set,
            "reload": {"changes": ["pool app: backend b3 added", "listener web: idle_timeout_ms "
                                   "300000 -> 60000"]},
            "stats": COUNTERS,
        }
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(16)
        self._server.settimeout(0.05)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @staticmethod
    def _backends(request):
        pools = [p for p in POOLS if "pool" not in request or p["name"] == request["pool"]]
        if not pools:
            return {"ok": False, "error": f'no pool named "{request["pool"]}"'}
        return {"pools": pools}

    @staticmethod
    def _set(request):
        known = {(p["name"], b["name"]) for p in POOLS for b in p["backends"]}
        if (request.get("pool"), request.get("backend")) not in known:
            return {"ok": False,
                    "error": f'pool "{request.get("pool")}" has no backend named '
                             f'"{request.get("backend")}"'}
        return {}

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket):
        try:
            self._answer(conn)
        except Exception as error:  # noqa: BLE001 (handed to the test by close())
            self.failures.append(error)

    def _answer(self, conn: socket.socket):
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            line, _, rest = data.partition(b"\n")
            if rest:
                raise AssertionError(f"more than one request on a connection: {data!r}")
            request = json.loads(line)
            self.requests.append(request)
            reply = self.replies.get(request.get("op"),
                                     {"ok": False, "error": f'unknown op "{request.get("op")}"'})
            if callable(reply):
                reply = reply(request)
            if reply is HANG_UP:
                return
            if reply is SILENT:
                self._stop.wait(30)
                return
            message = {"v": 1, "id": request.get("id"), "ok": True}
            message.update(reply)
            conn.sendall(json.dumps(message).encode() + b"\n")

    def close(self):
        self._stop.set()
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)
            if thread.is_alive():
                self.failures.append(AssertionError(f"{thread.name} did not stop"))
        if self.failures:
            raise AssertionError(f"the fake weir-control failed: {self.failures!r}")


@pytest.fixture(scope="module")
def exe():
    assert EXE.exists(), f"{EXE} not built (WEIR_BUILD_ROOT={BUILD_ROOT})"
    return EXE


@pytest.fixture
def short_dir():
    # Unix socket paths hold at most 107 bytes; pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="weirctl-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def control(short_dir):
    server = FakeControl(str(short_dir / "control.sock"))
    yield server
    server.close()


def weirctl(exe, *args, socket_path=None, timeout=30):
    command = [str(exe)]
    if socket_path is not None:
        command += ["--socket", str(socket_path)]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout)


def ctl(exe, control, *args):
    return weirctl(exe, *args, socket_path=control.path)


def only_request(control) -> dict:
    assert len(control.requests) == 1, control.requests
    request = dict(control.requests[0])
    assert request.pop("v") == 1
    assert isinstance(request.pop("id"), int)
    return request


# --- Queries ---

def test_status(exe, control):
    result = ctl(exe, control, "status")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        "dataplane  connected (pid 4242, 2 workers, node_id 7)\n"
        "config     /etc/weir/weir.yaml\n"
        "reloads    3 ok, 1 failed, last success 2023-11-14 22:13:20 UTC\n"
        "health     4 checks\n"
        "passive    2 backends observed, down: app/b2\n"
        "box        drained (weirctl drain-box): listeners refuse new connections\n"
        "cluster    a=live b=gone c=draining*, 1 peers lost (* weirctl cluster-peers)\n"
        "state      /var/lib/weir/control-state.json: not valid JSON\n"
    )
    assert only_request(control) == {"op": "status"}


def test_status_without_dataplane(exe, control):
    control.replies["status"] = {
        "dataplane": {"connected": False}, "config": "/etc/weir/weir.yaml",
        "reloads": {"ok": 0, "failed": 0, "last_success_unix": None}, "health": {"checks": 0}}
    result = ctl(exe, control, "status")
    assert result.returncode == 0, result.stderr
    assert "dataplane  not connected\n" in result.stdout
    assert "last success never" in result.stdout


def test_json_prints_the_reply(exe, control):
    result = ctl(exe, control, "--json", "status")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply.pop("ok") is True and reply.pop("v") == 1
    reply.pop("id")
    assert reply == STATUS
    # --json may also follow the command.
    again = ctl(exe, control, "stats", "--json")
    assert again.returncode == 0, again.stderr
    assert {k: v for k, v in json.loads(again.stdout).items() if k in COUNTERS} == COUNTERS


def test_listeners_table(exe, control):
    result = ctl(exe, control, "listeners")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "NAME  ADDRESS         PROTOCOL  POOL  CONNECTIONS  ACTIVE\n"
        "web   192.0.2.100:80  tcp       app          1234      17\n"
        "echo  192.0.2.100:7   echo      -               5       0\n"
    )
    assert only_request(control) == {"op": "listeners"}


def test_backends_table(exe, control):
    result = ctl(exe, control, "backends")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "POOL  BACKEND  ADDRESS         STATE     WEIGHT  ACTIVE  CONNECTIONS  HEALTH     OVERRIDE"
        "  PASSIVE\n"
        "app   b1       10.0.0.11:8080  up             1      10          400  up         -       "
        "  ok\n"
        "app   b2       10.0.0.12:8080  draining       2       3          250  up         draining"
        "  down\n"
        "api   a1       10.0.1.1:9000   down         100       0            0  down       -       "
        "  -\n"
        "api   a2       10.0.1.2:9000   up           100       0            0  unchecked  up      "
        "  -\n"
    )
    assert only_request(control) == {"op": "backends"}


def test_backends_of_one_pool(exe, control):
    result = ctl(exe, control, "backends", "api")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["POOL", "BACKEND", "ADDRESS", "STATE", "WEIGHT", "ACTIVE",
                               "CONNECTIONS", "HEALTH", "OVERRIDE", "PASSIVE"]
    assert [row.split()[:2] for row in rows[1:]] == [["api", "a1"], ["api", "a2"]]
    assert only_request(control) == {"op": "backends", "pool": "api"}


def test_backends_of_an_unknown_pool(exe, control):
    result = ctl(exe, control, "backends", "nope")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == 'weirctl: backends nope failed: no pool named "nope"\n'


def test_stats_tables(exe, control):
    result = ctl(exe, control, "stats")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["WORKER", "BUSY", "RX_PACKETS", "TX_PACKETS", "DROPS",
                                "ESTABLISHED", "RETRANSMITS", "RESETS_SENT"]
    assert lines[1].split() == ["0", "25.0%", "1000", "900", "5", "12", "3", "1"]
    assert lines[2].split() == ["1", "-", "7", "0", "0", "0", "0", "0"]
    assert lines[3] == ""
    assert lines[4].split() == [
        "LISTENER", "CONNECTIONS", "ACTIVE", "NO_BACKEND", "CONNECT_FAILURES", "BYTES_TO_BACKEND",
        "BYTES_TO_CLIENT", "CORRUPT"]
    assert lines[5].split() == ["web", "1234", "17", "2", "6", "1048576", "4194304", "0"]
    assert only_request(control) == {"op": "stats"}


def test_stats_nested_under_counters(exe, control):
    control.replies["stats"] = {"counters": COUNTERS}
    result = ctl(exe, control, "stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["0", "25.0%"]


# --- Changes: the exact requests ---

@pytest.mark.parametrize("args, request_fields, printed", [
    (["drain", "app/b1"], {"state": "draining"}, "app/b1: draining (manual override)\n"),
    (["undrain", "app/b1"], {"state": "auto"},
     "app/b1: manual override cleared; health checks decide\n"),
    (["down", "app/b1"], {"state": "down"}, "app/b1: down (manual override)\n"),
    (["up", "app/b1"], {"state": "auto"},
     "app/b1: manual override cleared; health checks decide\n"),
    (["weight", "app/b1", "5"], {"weight": 5}, "app/b1: weight 5\n"),
    (["weight", "app/b1", "65535"], {"weight": 65535}, "app/b1: weight 65535\n"),
], ids=lambda value: "-".join(value) if isinstance(value, list) else None)
def test_set_requests(exe, control, args, request_fields, printed):
    result = ctl(exe, control, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed
    assert only_request(control) == {"op": "set", "pool": "app", "backend": "b1", **request_fields}


@pytest.mark.parametrize("args, op, printed", [
    (["drain-box"], "drain_box", "box drained: every listener refuses new connections\n"),
    (["undrain-box"], "undrain_box", "box undrained: the listeners accept connections\n"),
])
def test_box_requests(exe, control, args, op, printed):
    control.replies[op] = {}
    result = ctl(exe, control, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed
    assert only_request(control) == {"op": op}


def test_cluster_peers_sends_every_peer_state(exe, control):
    control.replies["cluster_peers"] = {}
    result = ctl(exe, control, "cluster-peers", "a=live", "b=draining", "c=gone")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "cluster peers' states sent to the dataplane\n"
    assert only_request(control) == {"op": "cluster_peers",
                                     "peers": {"a": "live", "b": "draining", "c": "gone"}}


def waited_pool(state: str, sessions: int, applied: bool = True) -> dict:
    return {"pools": [{"name": "app", "plan_applied": applied, "backends": [
        {"name": "b1", "state": state, "sessions": sessions, "drain_resets": 0}]}]}


def test_drain_wait_polls_until_no_session_is_left(exe, control):
    answers = [waited_pool("draining", 2, applied=False), waited_pool("draining", 0, False),
               waited_pool("draining", 1), waited_pool("draining", 0)]
    control.replies["backends"] = lambda request: answers.pop(0)
    result = ctl(exe, control, "drain", "--wait", "app/b1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "app/b1: draining (manual override)"
    assert lines[1].startswith("app/b1: drained, no session left (waited "), lines
    # Not before the plan was applied everywhere (the 0 of the second answer does not count).
    assert answers == []
    polls = [r for r in control.requests if r["op"] == "backends"]
    assert len(polls) == 4 and all(r["pool"] == "app" for r in polls)


def test_drain_wait_times_out_and_stops_if_undrained(exe, control):
    control.replies["backends"] = waited_pool("draining", 2)
    result = ctl(exe, control, "drain", "--wait", "--timeout=0.3", "app/b1")
    assert result.returncode == 3, result.stderr
    assert "app/b1 still has 2 sessions after" in result.stderr
    control.replies["backends"] = waited_pool("up", 2)
    result = ctl(exe, control, "drain", "--wait", "app/b1")
    assert result.returncode == 1
    assert "no longer draining" in result.stderr


def test_drain_box_wait(exe, control):
    control.replies["drain_box"] = {}
    answers = [{"drained": True, "dataplane": {"applied": True, "sessions": 3}},
               {"drained": True, "dataplane": {"applied": True, "sessions": 0}}]
    control.replies["box"] = lambda request: answers.pop(0)
    result = ctl(exe, control, "drain-box", "--wait", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("the box: drained, no session left")
    assert answers == []


def test_set_json(exe, control):
    result = ctl(exe, control, "--json", "drain", "api/a2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert only_request(control) == {"op": "set", "pool": "api", "backend": "a2",
                                     "state": "draining"}


def test_set_error_reply(exe, control):
    result = ctl(exe, control, "down", "app/b9")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == 'weirctl: down app/b9 failed: pool "app" has no backend named "b9"\n'
    as_json = ctl(exe, control, "--json", "down", "app/b9")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"] == 'pool "app" has no backend named "b9"'


def test_backend_name_keeps_later_slashes(exe, control):
    control.replies["set"] = {}
    result = ctl(exe, control, "drain", "app/rack/1")
    assert result.returncode == 0, result.stderr
    assert only_request(control) == {"op": "set", "pool": "app", "backend": "rack/1",
                                     "state": "draining"}


# --- Reload ---

def test_reload(exe, control):
    result = ctl(exe, control, "reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "reloaded: 2 changes\n"
        "  pool app: backend b3 added\n"
        "  listener web: idle_timeout_ms 300000 -> 60000\n"
    )
    assert only_request(control) == {"op": "reload"}


def test_reload_without_changes(exe, control):
    control.replies["reload"] = {"changes": []}
    result = ctl(exe, control, "reload")
    assert (result.returncode, result.stdout) == (0, "reloaded: no changes\n")


FAILED_RELOAD = {
    "ok": False,
    "error": "/etc/weir/weir.yaml is invalid; the running configuration is kept",
    "diagnostics": ["/etc/weir/weir.yaml:12:9: pools[0].backends[1].port: 70000 is out of range",
                    "/etc/weir/weir.yaml:20:1: colour: unknown key"],
}


def test_reload_failure_prints_the_diagnostics(exe, control):
    control.replies["reload"] = FAILED_RELOAD
    result = ctl(exe, control, "reload")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "weirctl: reload failed: /etc/weir/weir.yaml is invalid; the running configuration is kept",
        *FAILED_RELOAD["diagnostics"],
    ]
    as_json = ctl(exe, control, "--json", "reload")
    assert as_json.returncode == 1
    reply = json.loads(as_json.stdout)
    assert reply["diagnostics"] == FAILED_RELOAD["diagnostics"] and reply["ok"] is False


# --- Reaching weir-control ---

def test_no_daemon(exe, short_dir):
    path = short_dir / "absent.sock"
    result = weirctl(exe, "status", socket_path=path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"weirctl: weir-control is not running (no socket at {path})\n"


def test_refused(exe, short_dir):
    # A socket file nobody listens on: what a crashed weir-control leaves behind.
    path = short_dir / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    result = weirctl(exe, "backends", socket_path=path)
    assert result.returncode == 1
    assert result.stderr == f"weirctl: connection to {path} refused: is weir-control running?\n"


def test_timeout(exe, control):
    control.replies["status"] = SILENT
    start = time.monotonic()
    result = ctl(exe, control, "status")
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert result.stderr == (f"weirctl: no reply from weir-control at {control.path} "
                             f"within {TIMEOUT_S} s\n")
    assert TIMEOUT_S - 0.5 <= elapsed < TIMEOUT_S + 5
    assert only_request(control) == {"op": "status"}


def test_hang_up_and_garbage(exe, control):
    control.replies["status"] = HANG_UP
    result = ctl(exe, control, "status")
    assert result.returncode == 1
    assert "closed the connection without replying" in result.stderr
    control.replies["status"] = lambda request: {"id": request["id"] + 1}
    result = ctl(exe, control, "status")
    assert result.returncode == 1
    assert "answered another request" in result.stderr


def test_unknown_op_reply(exe, control):
    del control.replies["stats"]
    result = ctl(exe, control, "stats")
    assert result.returncode == 1
    assert result.stderr == 'weirctl: stats failed: unknown op "stats"\n'


def minimal_with_socket(path) -> str:
    return (EXAMPLES / "minimal.yaml").read_text() + f"control:\n  socket: {path}\n"


def test_socket_from_config(exe, control, short_dir):
    config = short_dir / "weir.yaml"
    config.write_text(minimal_with_socket(control.path))
    result = weirctl(exe, "--config", str(config), "listeners")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert only_request(control) == {"op": "listeners"}


def test_socket_from_an_invalid_config(exe, control, short_dir):
    # An operator edits the file, breaks it, and asks for a reload: the reload's diagnostics
    # are what they need, so weirctl still finds the socket.
    config = short_dir / "weir.yaml"
    config.write_text(minimal_with_socket(control.path) + "colour: red\n")
    control.replies["reload"] = FAILED_RELOAD
    result = weirctl(exe, f"--config={config}", "reload")
    assert result.returncode == 1
    assert f"warning: {config} has errors" in result.stderr
    assert FAILED_RELOAD["diagnostics"][0] in result.stderr
    assert only_request(control) == {"op": "reload"}


@pytest.mark.skipif(os.path.exists("/run/weir/control.sock"),
                    reason="a weir-control runs on this machine")
def test_default_socket_from_config(exe, short_dir):
    config = short_dir / "weir.yaml"
    shutil.copy(EXAMPLES / "minimal.yaml", config)
    result = weirctl(exe, "--config", str(config), "status")
    # No control.socket: the default, /run/weir/control.sock, which does not exist here.
    assert result.returncode == 1
    assert result.stderr == (
        "weirctl: weir-control is not running (no socket at /run/weir/control.sock)\n")


def test_unreadable_config(exe, short_dir):
    result = weirctl(exe, "--config", str(short_dir / "absent.yaml"), "status")
    assert result.returncode == 1
    assert "absent.yaml: cannot open the file" in result.stderr
    assert "cannot take the control socket from" in result.stderr


# --- check-config: local ---

DIAGNOSTIC = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): .+$")


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_check_config_valid(exe, example):
    # No --socket and no daemon: check-config needs neither.
    result = weirctl(exe, "check-config", str(example))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{example}: configuration is valid\n"
    assert result.stderr == ""


def test_check_config_broken_yaml(exe, short_dir):
    path = short_dir / "broken.yaml"
    path.write_text("dataplane:\n  eal: [\"--no-pci\"\nlisteners: []\n")
    result = weirctl(exe, "check-config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines, "at least one diagnostic"
    for line in lines:
        match = DIAGNOSTIC.match(line)
        assert match, f"FILE:LINE:COLUMN: message, got {line!r}"
        assert match["file"] == str(path) and int(match["line"]) >= 1 and int(match["column"]) >= 1


def test_check_config_invalid_values(exe, short_dir):
    path = short_dir / "invalid.yaml"
    path.write_text((EXAMPLES / "minimal.yaml").read_text() + "colour: red\n")
    result = weirctl(exe, "check-config", str(path))
    assert result.returncode == 1
    match = DIAGNOSTIC.match(result.stderr.splitlines()[0])
    assert match and match["file"] == str(path)
    assert ": colour: unknown key" in result.stderr
    as_json = weirctl(exe, "--json", "check-config", str(path))
    assert as_json.returncode == 1
    reply = json.loads(as_json.stdout)
    assert reply["ok"] is False and reply["file"] == str(path)
    assert reply["diagnostics"] == result.stderr.splitlines()


def test_check_config_missing_file(exe, short_dir):
    result = weirctl(exe, "check-config", str(short_dir / "absent.yaml"))
    assert result.returncode == 1
    assert "absent.yaml: cannot open the file" in result.stderr


# --- Usage ---

@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["status", "extra"],
    ["backends", "a", "b"],
    ["drain"],
    ["drain", "app"],
    ["drain", "/b1"],
    ["drain", "app/"],
    ["weight", "app/b1"],
    ["weight", "app/b1", "0"],
    ["weight", "app/b1", "65536"],
    ["weight", "app/b1", "-3"],
    ["weight", "app/b1", "2x"],
    ["check-config"],
    ["drain", "--timeout", "1", "app/b1"],
    ["drain", "--wait", "--timeout", "0", "app/b1"],
    ["drain", "--wait", "--timeout", "soon", "app/b1"],
    ["status", "--wait"],
    ["drain-box", "extra"],
    ["cluster-peers"],
    ["cluster-peers", "a"],
    ["cluster-peers", "=live"],
    ["--bogus", "status"],
    ["--socket"],
    ["--socket", "/tmp/a.sock", "--config", "/tmp/weir.yaml", "status"],
], ids=lambda args: " ".join(args) or "nothing")
def test_usage_errors(exe, control, args):
    result = ctl(exe, control, *args) if args[:1] != ["--socket"] else weirctl(exe, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("weirctl: ")
    assert "usage: weirctl [--socket PATH | --config FILE] [--json] COMMAND [ARGS]" in result.stderr
    assert control.requests == []


@pytest.mark.parametrize("args", [["help"], ["--help"], ["-h"]])
def test_help(exe, args):
    result = weirctl(exe, *args)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: weirctl ")
    for command in ["status", "listeners", "backends [POOL]",
                    "drain [--wait [--timeout S]] POOL/BACKEND\n", "undrain POOL/BACKEND",
                    "down POOL/BACKEND", "up POOL/BACKEND", "weight POOL/BACKEND N",
                    "drain-box [--wait [--timeout S]]\n", "undrain-box",
                    "cluster-peers NAME=STATE...\n", "reload",
                    "check-config FILE", "stats", "help"]:
        assert f"  {command}" + ("" if command.endswith("\n") else " ") in result.stdout, command
