"""Operating a running box (issue 16): `weirctl drain --wait` against sessions held open by the
test, passive health taking out a backend the health checks still see up, weir-control's state
file across its restart, and draining the whole box for a rolling deploy.

The backends run backend_server.py's named_hold mode: each answers a connection with its name and
holds it until the client's EOF, so the test knows which backend holds which session and decides
when each one ends."""

import json
import subprocess
import time
from pathlib import Path

from netbed import (  # noqa: F401 (fixtures)
    LISTENER_ADDRESS,
    _read_line,
    poll_until,
    testbed_factory,
)
from test_control_plane import BUILD, control_config, running_plane
from test_proxy import VIP_PORT

WEIRCTL = BUILD / "control" / "weirctl"

# Holds connections to the VIP and obeys one command a line on stdin, answering one JSON line:
#   open N     opens N connections, answers the backend names they were given (or "refused")
#   close I    half-closes connection I and reads to its end: "ok" (the backend's EOF, so the
#              session lived until now) or "reset"
HOLDER = r"""
import json, socket, sys
conns = []
def answer(value):
    print(json.dumps(value), flush=True)
for line in sys.stdin:
    command, arg = line.split()
    if command == "open":
        names = []
        for _ in range(int(arg)):
            try:
                s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
                name = b""
                while not name.endswith(b"\n"):
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    name += chunk
                names.append(name.decode().strip() or "closed")
                conns.append(s)
            except OSError:
                names.append("refused")
                conns.append(None)
        answer(names)
    elif command == "close":
        s = conns[int(arg)]
        try:
            s.shutdown(socket.SHUT_WR)
            answer("ok" if recv_all(s) == b"" else "data")
        except OSError:
            answer("reset")
        s.close()
"""


class Holder:
    """HOLDER in the client namespace."""

    def __init__(self, tb):
        self.proc = tb.python_popen("client", HOLDER,
                                    {"address": LISTENER_ADDRESS, "port": VIP_PORT},
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.names: list[str] = []

    def ask(self, line: str):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return json.loads(_read_line(self.proc, 60.0))

    def open(self, n: int) -> list[str]:
        names = self.ask(f"open {n}")
        self.names += names
        return names

    def on(self, backend: str) -> list[int]:
        return [i for i, name in enumerate(self.names) if name == backend]

    def open_until(self, backend: str, count: int, limit: int = 200) -> None:
        """Opens connections until `backend` holds `count` of them (Maglev places them by the
        client's port)."""
        while len(self.on(backend)) < count:
            assert len(self.names) < limit, f"{backend} got {len(self.on(backend))} of {limit}"
            self.open(4)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def weirctl(tb, path: Path, *args) -> subprocess.CompletedProcess:
    return tb.exec("ctl", [str(WEIRCTL), "--config", str(path), *args], check=False)


def weirctl_popen(tb, path: Path, *args) -> subprocess.Popen:
    return tb.popen("ctl", [str(WEIRCTL), "--config", str(path), *args],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def backend_view(dp, name: str) -> dict:
    pool = dp.control({"op": "pools"})["pools"][0]
    return dict([b for b in pool["backends"] if b["name"] == name][0],
                plan_applied=pool["plan_applied"])


def hold_plane(tb, **pool_extra):
    config = control_config(tb)
    config["pools"][0].update(pool_extra)
    return running_plane(tb, config, mode="named_hold")


def test_drain_wait_returns_only_when_the_last_session_ends(testbed_factory):
    tb = testbed_factory()
    # A drain timeout far beyond the test: every session here ends because the test ends it.
    for tb, dp, control, _, path in hold_plane(tb, drain_timeout_ms=600_000):
        holder = Holder(tb)
        holder.open_until("b3", 3)
        held = len(holder.on("b3"))  # 3 or more: connections are opened four at a time
        poll_until(lambda: backend_view(dp, "b3")["sessions"] == held, 10.0,
                   what="b3's sessions counted")
        wait = weirctl_popen(tb, path, "drain", "--wait", "app/b3")
        assert _read_line(wait, 10.0) == "app/b3: draining (manual override)"
        # Once every worker has the plan without b3, no new session goes there.
        poll_until(lambda: backend_view(dp, "b3")["plan_applied"], 10.0,
                   what="the drained plan applied by every worker")
        assert "b3" not in holder.open(20)
        first, *rest = holder.on("b3")
        for i in rest:
            assert holder.ask(f"close {i}") == "ok"
        poll_until(lambda: backend_view(dp, "b3")["sessions"] == 1, 10.0,
                   what="b3 down to its last session")
        assert wait.poll() is None, "drain --wait returned with a session left: " + \
            wait.stdout.read().decode() + wait.stderr.read().decode()
        assert holder.ask(f"close {first}") == "ok"
        assert wait.wait(10) == 0, wait.stderr.read().decode()
        out = wait.stdout.read().decode()
        assert out.startswith("app/b3: drained, no session left"), out
        # The drain reset nothing, and the other backends' sessions lived on.
        assert backend_view(dp, "b3")["drain_resets"] == 0
        for backend in ("b1", "b2"):
            assert all(holder.ask(f"close {i}") == "ok" for i in holder.on(backend))
        holder.close()


def test_drain_wait_times_out_with_the_sessions_left(testbed_factory):
    tb = testbed_factory()
    for tb, dp, control, _, path in hold_plane(tb, drain_timeout_ms=600_000):
        holder = Holder(tb)
        holder.open_until("b3", 2)
        held = len(holder.on("b3"))
        poll_until(lambda: backend_view(dp, "b3")["sessions"] == held, 10.0,
                   what="b3's sessions counted")
        result = weirctl(tb, path, "drain", "--wait", "--timeout", "1", "app/b3")
        assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
        assert f"app/b3 still has {held} sessions after" in result.stderr, result.stderr
        # It stays drained, its sessions untouched.
        assert backend_view(dp, "b3")["state"] == "draining"
        # A usage error is not a timeout.
        bad = weirctl(tb, path, "drain", "--timeout", "1", "app/b3")
        assert bad.returncode == 2 and "--timeout goes with --wait" in bad.stderr, bad.stderr
        assert all(holder.ask(f"close {i}") == "ok" for i in holder.on("b3"))
        holder.close()


def test_passive_health_takes_out_a_backend_the_health_checks_still_see_up(testbed_factory):
    """The data path to b3 is cut for the dataplane's address only (SYNs from it dropped on the
    bridge port toward b3); weir-control's health checks come from the ctl namespace and still
    pass. The dataplane's failed connects mark b3 down; no client sees an error meanwhile (a
    failed attempt is retried on another backend)."""
    import socket
    import struct

    from netbed import Testbed, bpf_object
    from test_control_plane import load_records, metric, start_load

    tb = testbed_factory()
    config = control_config(tb)
    config["pools"][0].update({
        "passive_health": {"error_limit": 3, "hold_down_ms": 600_000},
        "connect_timeout_ms": 300, "retries": 2})
    for tb, dp, control, _, path in running_plane(tb, config, mode="name"):
        cut = tb.attach_tc_bpf("br", Testbed.bridge_port("b3"), bpf_object("drop_syn"),
                               direction="egress")
        cut.map_update("drop_syn_config", struct.pack("<I", 0),
                       socket.inet_aton(dp.port_address(0)) + struct.pack("<I", 0))
        load, out = start_load(tb, "passive-load.jsonl", seconds=6)
        poll_until(lambda: backend_view(dp, "b3")["state"] == "down", 20.0,
                   what="passive health to take b3 down")
        dropped, passed = cut.read_u64_array("drop_syn_counts")
        assert dropped >= 3, (dropped, passed)
        # The active checks' SYNs went through the same filter and still pass.
        assert passed > 0
        listing = json.loads(weirctl(tb, path, "--json", "backends", "app").stdout)
        b3 = [b for b in listing["pools"][0]["backends"] if b["name"] == "b3"][0]
        assert (b3["state"], b3["health"], b3["passive"], b3["override"]) == (
            "down", "up", "down", None), b3
        assert b3["connect_failures"] >= 3
        status = weirctl(tb, path, "status")
        assert "down: app/b3" in status.stdout, status.stdout
        scrape = control.scrape()
        assert metric(scrape, "weir_backend_passive_down", backend="b3") == 1
        assert metric(scrape, "weir_backend_passive_mark_downs_total", backend="b3") == 1
        assert metric(scrape, "weir_health_up", backend="b3") == 1
        for backend in ("b1", "b2"):
            assert metric(scrape, "weir_backend_passive_down", backend=backend) == 0
            assert backend_view(dp, backend)["state"] == "up"
        assert "app/b3 is down by passive health" in control.log.read_text()
        load.wait(30)
        results = {result for _, _, result in load_records(out)}
        assert results <= {"b1", "b2"}, results

        # The hold-down survives a restart of weir-control (the state file), though the
        # dataplane is told otherwise meanwhile: only the restored hold-down puts b3 down again.
        state_file = Path(dp.config["control"]["state_file"])
        held = json.loads(state_file.read_text())["passive_down"]
        assert [(h["pool"], h["backend"]) for h in held] == [("app", "b3")], held
        assert held[0]["down_until_unix_ms"] > time.time() * 1000 + 500_000, held
        assert control.stop() == 0
        assert dp.control({"op": "set_backend", "pool": "app", "backend": "b3", "state": "up",
                           "weight": 1})["ok"]
        control.start()
        poll_until(lambda: backend_view(dp, "b3")["state"] == "down", 10.0,
                   what="the restored hold-down sent to the dataplane")
        assert "app/b3 is down by passive health: held down across weir-control's restart" in \
            control.log.read_text()
        listing = json.loads(weirctl(tb, path, "--json", "backends", "app").stdout)
        b3 = [b for b in listing["pools"][0]["backends"] if b["name"] == "b3"][0]
        assert (b3["state"], b3["health"], b3["passive"]) == ("down", "up", "down"), b3

        # A hold-down that ended while weir-control was stopped: b3 comes back up.
        assert control.stop() == 0
        state = json.loads(state_file.read_text())
        state["passive_down"][0]["down_until_unix_ms"] = int(time.time() * 1000) - 1000
        state_file.write_text(json.dumps(state))
        control.start()
        poll_until(lambda: backend_view(dp, "b3")["state"] == "up", 10.0,
                   what="b3 up once its hold-down is over")
        assert "app/b3 is no longer down by passive health: its hold-down ended" in \
            control.log.read_text()


def test_overrides_survive_a_weir_control_restart_and_a_corrupt_state_file_does_not_stop_it(
        testbed_factory):
    tb = testbed_factory()
    for tb, dp, control, _, path in running_plane(tb, control_config(tb), mode="name"):
        state_file = Path(dp.config["control"]["state_file"])
        assert weirctl(tb, path, "drain", "app/b2").returncode == 0
        assert weirctl(tb, path, "weight", "app/b1", "5").returncode == 0
        saved = json.loads(state_file.read_text())
        assert saved == {"version": 1, "box_drained": False, "backends": [
            {"pool": "app", "backend": "b1", "weight": 5},
            {"pool": "app", "backend": "b2", "state": "draining"}]}, saved
        assert control.stop() == 0
        # Meanwhile the dataplane is told otherwise: only a restored override puts it back.
        assert dp.control({"op": "set_backend", "pool": "app", "backend": "b2", "state": "up",
                           "weight": 1})["ok"]
        assert dp.control({"op": "set_backend", "pool": "app", "backend": "b1", "weight": 1})["ok"]
        control.start()
        poll_until(lambda: backend_view(dp, "b2")["state"] == "draining"
                   and backend_view(dp, "b1")["weight"] == 5, 10.0,
                   what="the restored overrides sent to the dataplane")
        assert "restored 2 manual override(s)" in control.log.read_text()
        listing = json.loads(weirctl(tb, path, "--json", "backends").stdout)
        b2 = [b for b in listing["pools"][0]["backends"] if b["name"] == "b2"][0]
        assert b2["override"] == "draining"

        # A corrupt file: reported, kept aside, and weir-control runs without overrides.
        assert control.stop() == 0
        garbage = '{"version": 1, "backends": [{"pool": "app", "backend": "b2", "st'
        state_file.write_text(garbage)
        control.start()
        poll_until(lambda: control.log.read_text().count("connected to the dataplane") == 3, 10.0,
                   what="weir-control to connect again")
        log = control.log.read_text()
        assert f"the state file {state_file} is unusable (not valid JSON)" in log, log
        assert Path(str(state_file) + ".corrupt").read_text() == garbage
        status = weirctl(tb, path, "status")
        assert status.returncode == 0
        assert f"state      {state_file}: not valid JSON" in status.stdout, status.stdout
        poll_until(lambda: backend_view(dp, "b2")["state"] == "up", 10.0,
                   what="b2 back to its health checks' verdict")
        # The next change writes a good file again.
        assert weirctl(tb, path, "drain", "app/b3").returncode == 0
        assert json.loads(state_file.read_text())["backends"] == [
            {"pool": "app", "backend": "b3", "state": "draining"}]


def test_drain_box_refuses_new_connections_while_held_ones_finish(testbed_factory):
    from test_control_plane import metric

    tb = testbed_factory()
    for tb, dp, control, _, path in hold_plane(tb):
        holder = Holder(tb)
        held = holder.open(6)
        assert "refused" not in held, held
        poll_until(lambda: dp.control({"op": "box"})["sessions"] == 6, 10.0,
                   what="the six sessions counted")
        drained = weirctl(tb, path, "drain-box")
        assert drained.returncode == 0, drained.stderr
        poll_until(lambda: dp.control({"op": "box"})["applied"], 10.0,
                   what="every worker to stop accepting")
        assert dp.control({"op": "box"})["accepting"] is False
        assert holder.open(3) == ["refused"] * 3
        assert "box        drained" in weirctl(tb, path, "status").stdout
        assert metric(control.scrape(), "weir_box_drained") == 1
        assert json.loads(Path(dp.config["control"]["state_file"]).read_text())["box_drained"]
        wait = weirctl_popen(tb, path, "drain-box", "--wait")
        assert _read_line(wait, 10.0).startswith("box drained")
        for i in range(5):
            assert holder.ask(f"close {i}") == "ok", "a held session was cut"
        poll_until(lambda: dp.control({"op": "box"})["sessions"] == 1, 10.0,
                   what="one session left")
        assert wait.poll() is None, "drain-box --wait returned with a session left"
        assert holder.ask("close 5") == "ok"
        assert wait.wait(10) == 0, wait.stderr.read().decode()
        assert wait.stdout.read().decode().startswith("the box: drained, no session left")
        undrained = weirctl(tb, path, "undrain-box")
        assert undrained.returncode == 0, undrained.stderr
        poll_until(lambda: dp.control({"op": "box"})["applied"], 10.0,
                   what="every worker to accept again")
        assert set(holder.open(3)) <= {"b1", "b2", "b3"}
        holder.close()
