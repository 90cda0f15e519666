"""weir-control beside the dataplane (issue 6): it runs in the ctl namespace, the management
interface of the test topology, so its health checks leave through the kernel network there and
reach the backends; it steers the dataplane through the control socket and serves /metrics."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    poll_until,
    testbed_factory,
)
from service_support import NotifySocket, version_of
from test_proxy import BACKEND_PORT, VIP_PORT, Backends, proxy_config

BUILD = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
CONTROL = BUILD / "control" / "weir-control"
METRICS_PORT = 9464
INTERVAL_MS, TIMEOUT_MS, RISE, FALL = 200, 150, 2, 2


def control_config(tb) -> dict:
    config = proxy_config(tb)
    config["pools"][0]["health"] = {"type": "tcp", "interval_ms": INTERVAL_MS,
                                    "timeout_ms": TIMEOUT_MS, "rise": RISE, "fall": FALL}
    config["control"] = {"socket": str(tb.workdir / "control.sock"),
                         "state_file": str(tb.workdir / "control-state.json"),
                         "metrics": {"listen": f"127.0.0.1:{METRICS_PORT}"}}
    return config


class ControlProcess:
    def __init__(self, tb, config_path: Path):
        self.tb, self.config_path = tb, config_path
        self.log = tb.workdir / "weir-control.log"
        self.proc = None

    def start(self):
        out = open(self.log, "ab")
        self.proc = self.tb.popen("ctl", [str(CONTROL), "--config", str(self.config_path)],
                                  stdout=subprocess.PIPE, stderr=out)
        # Its log (stderr, each line with the time and level) says when it serves.
        def serving() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            return "weir-control: metrics on" in self.log.read_text()

        poll_until(serving, 20.0, what="weir-control to serve")
        return self

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)

    def scrape(self) -> str:
        return self.tb.python("ctl", r"""
import urllib.request
emit(urllib.request.urlopen(f"http://127.0.0.1:{ARGS}/metrics", timeout=10).read().decode())
""", METRICS_PORT)


def metric(text: str, name: str, **labels) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
            found = True
    assert found, f"no {name} {labels} in the scrape"
    return total


def start_control(tb, dp) -> tuple[ControlProcess, Path]:
    """weir-control on the running dataplane's configuration, once connected to it; and the
    configuration file it reads."""
    import yaml

    path = tb.workdir / "weir.yaml"
    path.write_text(yaml.safe_dump(dp.config, sort_keys=False))
    control = ControlProcess(tb, path).start()
    poll_until(lambda: "connected to the dataplane" in control.log.read_text(), 10.0,
               what="weir-control to connect to the dataplane")
    return control, path


def running_plane(tb, config, mode: str = "name"):
    backends = Backends(tb, mode)
    with DataplaneProcess(tb, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        control, path = start_control(tb, dp)
        yield tb, dp, control, backends, path
        if control.proc.poll() is None:
            assert control.stop() == 0
        assert dp.stop() == 0, dp.output()


@pytest.fixture
def plane(testbed_factory):
    tb = testbed_factory()
    yield from running_plane(tb, control_config(tb))


def pool_states(dp) -> dict:
    return {b["name"]: b["state"] for b in dp.control({"op": "pools"})["pools"][0]["backends"]}


# Short connections in a loop for ARGS["seconds"]: each records [start, end, backend or error]
# (wall-clock times, comparable with the test's own across namespaces).
LOAD = r"""
import json, socket, sys, time
end = time.time() + ARGS["seconds"]
with open(ARGS["out"], "w") as out:
    while time.time() < end:
        t = time.time()
        try:
            s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=5)
            result = recv_all(s).decode() or "empty"
            s.close()
        except OSError as error:
            result = "error: " + type(error).__name__
        out.write(json.dumps([t, time.time(), result]) + "\n")
        out.flush()
"""


def start_load(tb, name: str, seconds: float):
    """LOAD in the client namespace for `seconds`; returns the process and its record file once
    connections are flowing."""
    out = tb.workdir / name
    load = tb.python_popen("client", LOAD, {"address": LISTENER_ADDRESS, "port": VIP_PORT,
                                            "seconds": seconds, "out": str(out)})
    poll_until(lambda: out.exists() and len(out.read_text().splitlines()) > 50, 10.0,
               what="load to be flowing")
    return load, out


def load_records(out: Path) -> list[list]:
    return [json.loads(line) for line in out.read_text().splitlines()]


# In the ctl namespace, until ARGS["seconds"] pass: the dataplane's state of one backend, then
# weir-control's count of its failed checks, appended as [state, failed checks]. Read in that
# order, a sample "down" with fewer than `fall` failures can only mean it went down too early.
STATE_SAMPLER = r"""
import json, socket, time, urllib.request
def state():
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(ARGS["dataplane"])
        s.sendall(json.dumps({"v": 1, "id": 1, "op": "pools"}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(65536)
    backends = json.loads(data)["pools"][0]["backends"]
    return [b["state"] for b in backends if b["name"] == ARGS["backend"]][0]
def failed_checks():
    text = urllib.request.urlopen(ARGS["metrics"], timeout=5).read().decode()
    for line in text.splitlines():
        if (line.startswith("weir_health_checks_total{") and f'backend="{ARGS["backend"]}"' in line
                and 'result="fail"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
end = time.time() + ARGS["seconds"]
with open(ARGS["out"], "w") as out:
    while time.time() < end:
        out.write(json.dumps([state(), failed_checks()]) + "\n")
        out.flush()
        time.sleep(0.01)
"""


def test_a_killed_backend_is_marked_down_after_fall_failures_and_no_connection_fails(
        testbed_factory):
    tb = testbed_factory()
    config = control_config(tb)
    fall = 3  # two checks between the first failure and the transition: room to watch
    config["pools"][0]["health"]["fall"] = fall
    for tb, dp, control, backends, _ in running_plane(tb, config):
        samples_path = tb.workdir / "b3-states.jsonl"
        sampler = tb.python_popen("ctl", STATE_SAMPLER, {
            "dataplane": dp.config["dataplane"]["control_socket"], "backend": "b3",
            "metrics": f"http://127.0.0.1:{METRICS_PORT}/metrics", "seconds": 20,
            "out": str(samples_path)})

        def samples() -> list[list]:
            text = samples_path.read_text() if samples_path.exists() else ""
            return [json.loads(line) for line in text.splitlines()]

        poll_until(lambda: samples(), 10.0, what="the first state sample")
        assert samples()[-1] == ["up", 0], samples()[-1]
        load, out = start_load(tb, "load.jsonl", seconds=8)
        kill_started = time.time()
        backends.kill("b3")
        dead_at = time.time()
        poll_until(lambda: pool_states(dp)["b3"] == "down", 15.0, what="b3 to be marked down")
        down_at = time.time()
        poll_until(lambda: any(state == "down" for state, _ in samples()), 10.0,
                   what="the sampler to see b3 down")
        sampler.kill()
        sampler.wait(10)
        seen = samples()
        # Never down before `fall` failed checks, and seen up with some failures counted.
        assert all(failed >= fall for state, failed in seen if state == "down"), seen
        assert any(state == "up" and 0 < failed < fall for state, failed in seen), seen
        load.wait(30)
        records = load_records(out)
        assert len([r for r in records if r[0] > down_at]) > 20, "the load did not outlast it"
        # Every connection is accounted for. One started after b3 died was refused by b3 at
        # most, and a refused backend is skipped (docs/architecture.md, "Placement"): it reached
        # b1 or b2, whether b3 was marked down yet or not. One started before may have been
        # caught by the kill (accepted by b3, or in its accept queue) and then fail, but only if
        # it was still open when the kill began.
        for start, end, result in records:
            if start >= dead_at:
                assert result in ("b1", "b2"), (start, end, result, dead_at)
            else:
                assert result in ("b1", "b2", "b3") or end >= kill_started, (
                    start, end, result, kill_started)
        # Back after `rise` good checks.
        Backends(tb, "name", roles=("b3",))
        poll_until(lambda: pool_states(dp)["b3"] == "up", 10.0, what="b3 to come back up")
        scrape = control.scrape()
        assert metric(scrape, "weir_health_checks_total", backend="b3", result="fail") >= fall


def test_metrics_pass_promtool_and_move_with_traffic_and_survive_a_restart(plane):
    tb, dp, control, _, path = plane
    began = time.monotonic()
    first = control.scrape()
    promtool = subprocess.run(["promtool", "check", "metrics"], input=first, text=True,
                              capture_output=True)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    before = metric(first, "weir_listener_connections_total", listener="web")
    tb.python("client", r"""
import socket
for _ in range(20):
    s = socket.create_connection((ARGS, 80), timeout=5)
    while s.recv(100):
        pass
    s.close()
emit(True)
""", LISTENER_ADDRESS)
    second = control.scrape()
    ended = time.monotonic()
    assert metric(second, "weir_listener_connections_total", listener="web") == before + 20
    assert metric(second, "weir_backend_up", pool="app", backend="b1") == 1
    # Busy time is a counter per worker (one here, "-l 0-1"): it grew with the 20 sessions, and
    # by no more than the time between the two snapshots, which lie between `began` and `ended`
    # (1 % for the TSC frequency's estimate).
    busy_first = metric(first, "weir_worker_busy_seconds_total", worker="0")
    busy_second = metric(second, "weir_worker_busy_seconds_total", worker="0")
    assert 0 < busy_first < busy_second <= busy_first + (ended - began) * 1.01, (
        busy_first, busy_second, ended - began)
    assert "weir_worker_busy_ratio" not in second
    # process_* for both daemons; the dataplane's CPU time as /proc shows it, moving on.
    assert metric(second, "process_start_time_seconds", daemon="weir-control") > 0
    dataplane_cpu = metric(second, "process_cpu_seconds_total", daemon="weir-dataplane")
    assert 0 < dataplane_cpu <= dp.cpu_seconds(), (dataplane_cpu, dp.cpu_seconds())
    assert metric(second, "process_open_fds", daemon="weir-dataplane") >= 3
    # Restart weir-control: the counts live in the dataplane and continue.
    assert control.stop() == 0
    control.start()
    third = control.scrape()
    assert metric(third, "weir_listener_connections_total", listener="web") >= before + 20
    assert metric(third, "weir_dataplane_up") == 1


def test_dataplane_is_ready_only_once_it_serves_and_metrics_carry_both_builds(testbed_factory):
    """systemd's Type=notify, with the test as systemd (packaging/systemd/weir-dataplane.service):
    at READY=1 the control socket answers and a worker answers ARP on the port; weir_build_info
    then shows both daemons' --version."""
    import yaml

    tb = testbed_factory()
    Backends(tb, "name")
    notify = NotifySocket(tb.workdir)
    try:
        with DataplaneProcess(tb, control_config(tb), env=notify.env()) as dp:
            ready = notify.wait_for("READY=1", dp.proc, describe=dp.output)
            hello = dp.control({"op": "hello"})  # no retry: it must answer now
            assert dp.answers_arp(), "READY=1 before the port was served\n" + dp.output()
            dataplane_build, control_build = version_of(dp.executable), version_of(CONTROL)
            assert (hello["version"], hello["revision"]) == (dataplane_build["version"],
                                                             dataplane_build["revision"])
            socket_path = dp.config["dataplane"]["control_socket"]
            assert (f"STATUS=running with {hello['workers']} worker(s), control socket "
                    f"{socket_path}") in ready.split("\n"), ready
            path = tb.workdir / "weir.yaml"
            path.write_text(yaml.safe_dump(dp.config, sort_keys=False))
            control = ControlProcess(tb, path).start()
            poll_until(lambda: "connected to the dataplane" in control.log.read_text(), 10.0,
                       what="weir-control to connect to the dataplane")
            scrape = control.scrape()
            for daemon, build in (("weir-dataplane", dataplane_build),
                                  ("weir-control", control_build)):
                assert metric(scrape, "weir_build_info", daemon=daemon, version=build["version"],
                              revision=build["revision"]) == 1, scrape
            assert control.stop() == 0
            assert dp.stop() == 0, dp.output()
            # Sent before it exited, so waiting in the socket now.
            notify.wait_for("STOPPING=1", dp.proc, timeout_s=5)
    finally:
        notify.close()


def weirctl_raw(tb, path, *args):
    return tb.exec("ctl", [str(BUILD / "control" / "weirctl"), "--config", str(path), *args],
                   check=False)


def admin_line(sock: Path, line: bytes) -> dict:
    """Sends one raw request line to weir-control's admin socket; returns the reply."""
    import socket as socket_module

    with socket_module.socket(socket_module.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(line + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def admin(tb, sock: Path, request: dict) -> dict:
    return admin_line(sock, json.dumps({"v": 1, "id": 1, **request}).encode())


def test_malformed_admin_requests_get_errors_and_weir_control_stays_up(plane):
    tb, dp, control, _, path = plane
    sock = Path(dp.config["control"]["socket"])
    bad = {
        b'{"v":"1","id":3,"op":"status"}': "field \"v\"",
        b'{"v":1,"id":3,"op":["status"]}': "field \"op\"",
        b'{"v":1,"id":3,"op":"set","pool":7,"backend":"b1","state":"down"}': "\"pool\"",
        b'{"v":1,"id":3,"op":"set","pool":"app","backend":"b1","weight":"5"}': "\"weight\"",
        b"[" * 100_000 + b"]" * 100_000: "JSON object",
        b"\xff\xfe": "not valid JSON",
    }
    for line, why in bad.items():
        reply = admin_line(sock, line)
        assert reply["ok"] is False and why in reply["error"], (line[:60], reply)
        assert control.proc.poll() is None, f"weir-control died on {line[:60]!r}"
    assert admin(tb, sock, {"op": "status"})["ok"] is True


def test_manual_drain_overrides_health_and_reload_applies_weights(plane):
    import yaml

    tb, dp, control, _, path = plane
    sock = Path(dp.config["control"]["socket"])
    assert admin(tb, sock, {"op": "set", "pool": "app", "backend": "b2", "state": "draining"})["ok"]
    assert pool_states(dp)["b2"] == "draining"
    backends = admin(tb, sock, {"op": "backends"})["pools"][0]["backends"]
    b2 = [b for b in backends if b["name"] == "b2"][0]
    assert (b2["override"], b2["health"]) == ("draining", "up")
    assert admin(tb, sock, {"op": "set", "pool": "app", "backend": "b2", "state": "auto"})["ok"]
    assert pool_states(dp)["b2"] == "up"
    # A valid reload changes a weight in place.
    config = yaml.safe_load(path.read_text())
    config["pools"][0]["backends"][0]["weight"] = 7
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    reply = admin(tb, sock, {"op": "reload"})
    assert reply["ok"], reply
    assert any("weight of app/b1" in c for c in reply["changes"])
    poll_until(lambda: dp.control({"op": "pools"})["pools"][0]["backends"][0]["weight"] == 7, 5.0,
               what="the new weight to reach the dataplane")
    # An invalid file is refused with its position, and the running configuration stays.
    path.write_text(path.read_text().replace("weight: 7", "weight: seven"))
    reply = admin(tb, sock, {"op": "reload"})
    assert not reply["ok"]
    assert any(f"{path}:" in d for d in reply["diagnostics"]), reply
    assert dp.control({"op": "pools"})["pools"][0]["backends"][0]["weight"] == 7
    scrape = control.scrape()
    assert metric(scrape, "weir_config_reloads_total", result="failure") == 1
    assert metric(scrape, "weir_config_reloads_total", result="success") == 1


def test_weirctl_against_the_real_daemons(plane):
    tb, dp, control, _, path = plane
    status = weirctl_raw(tb, path, "status")
    assert status.returncode == 0, status.stderr
    assert weirctl_raw(tb, path, "drain", "app/b3").returncode == 0
    assert pool_states(dp)["b3"] == "draining"
    listing = weirctl_raw(tb, path, "--json", "backends", "app")
    assert listing.returncode == 0, listing.stderr
    b3 = [b for b in json.loads(listing.stdout)["pools"][0]["backends"] if b["name"] == "b3"][0]
    assert (b3["state"], b3["override"]) == ("draining", "draining")
    assert weirctl_raw(tb, path, "undrain", "app/b3").returncode == 0
    assert pool_states(dp)["b3"] == "up"
    table = weirctl_raw(tb, path, "backends")
    assert "b3" in table.stdout and "up" in table.stdout
    missing = weirctl_raw(tb, path, "drain", "app/b9")
    assert missing.returncode == 1 and "b9" in (missing.stdout + missing.stderr)
    control.stop()
    down = weirctl_raw(tb, path, "status")
    assert down.returncode == 1 and "weir-control" in (down.stdout + down.stderr)


def test_reload_under_load_adds_a_backend_changes_a_weight_and_removes_an_idle_listener(
        testbed_factory):
    import yaml

    tb = testbed_factory()
    config = control_config(tb)
    config["pools"][0]["backends"] = config["pools"][0]["backends"][:2]  # b1, b2
    spare = dict(config["listeners"][0], name="spare", port=81)
    config["listeners"].append(spare)
    for tb, dp, control, _, path in running_plane(tb, config):
        sock = Path(dp.config["control"]["socket"])
        load, out = start_load(tb, "reload-load.jsonl", seconds=6)
        changed = yaml.safe_load(path.read_text())
        changed["pools"][0]["backends"].append(
            {"name": "b3", "address": ADDRESSES["b3"], "port": BACKEND_PORT, "weight": 1})
        changed["pools"][0]["backends"][0]["weight"] = 3
        changed["listeners"] = [l for l in changed["listeners"] if l["name"] != "spare"]
        path.write_text(yaml.safe_dump(changed, sort_keys=False))
        reply = admin(tb, sock, {"op": "reload"})
        assert reply["ok"], reply
        reloaded_at = time.time()
        text = " | ".join(reply["changes"])
        assert "listener spare removed" in text and "backend app/b3 added" in text, text
        assert "weight of app/b1: 1 -> 3" in text, text
        load.wait(30)
        records = load_records(out)
        failures = [r for r in records if r[2] not in ("b1", "b2", "b3")]
        assert failures == [], failures[:5]
        after = [r for r in records if r[0] > reloaded_at]
        assert len(after) > 20
        assert "b3" in {r[2] for r in after}, "the added backend took no connection"
        pools = dp.control({"op": "pools"})["pools"][0]["backends"]
        assert [(b["name"], b["weight"]) for b in pools] == [("b1", 3), ("b2", 1), ("b3", 1)]
        refused = tb.python("client", r"""
import socket
try:
    socket.create_connection((ARGS, 81), timeout=5).recv(10)
    emit("open")
except ConnectionRefusedError:
    emit("refused")
except ConnectionResetError:
    emit("reset")
""", LISTENER_ADDRESS)
        assert refused == "refused", refused
        assert [l["name"] for l in dp.control({"op": "listeners"})["listeners"]] == ["web"]


def test_restarting_weir_control_drops_no_established_connection(testbed_factory):
    from test_control import Holder

    tb = testbed_factory()
    for tb, dp, control, _, path in running_plane(tb, control_config(tb), mode="sha"):
        holder = Holder(tb, 20)  # 20 sessions open, each waiting for its client's EOF
        before = metric(control.scrape(), "weir_listener_connections_total", listener="web")
        assert control.stop() == 0
        control.start()
        poll_until(lambda: control.log.read_text().count("connected to the dataplane") == 2, 10.0,
                   what="weir-control to reconnect")
        assert holder.finish() == ["ok"] * 20, "a session did not survive the restart"
        after = metric(control.scrape(), "weir_listener_connections_total", listener="web")
        assert after >= before >= 20


def test_metrics_count_injected_corruption(testbed_factory):
    tb = testbed_factory()
    config = control_config(tb)
    config["pools"].append({"name": "frames", "backends": [
        {"name": "e1", "address": ADDRESSES["b1"], "port": BACKEND_PORT + 1}]})
    config["listeners"].append({"name": "frames", "address": LISTENER_ADDRESS, "port": 82,
                                "protocol": "framed", "pool": "frames"})
    for tb, dp, control, _, path in running_plane(tb, config):
        tb.start_frame_echo("b1", f"{ADDRESSES['b1']}:{BACKEND_PORT + 1}")
        before = control.scrape()
        load = tb.exec("client", [str(BUILD / "tools" / "weir-frame-load"), "--connect",
                                  f"{LISTENER_ADDRESS}:82", "--connections", "2", "--frames",
                                  "200", "--corrupt-every", "10", "--reconnect", "--json"],
                       check=False, timeout=60)
        summary = json.loads(load.stdout.strip().splitlines()[-1])
        assert summary["corrupted_sent"] > 0, summary
        after = control.scrape()
        labels = {"listener": "frames", "direction": "to_backend"}
        corrupt = (metric(after, "weir_frames_corrupt_total", **labels) -
                   metric(before, "weir_frames_corrupt_total", **labels))
        verified = (metric(after, "weir_frames_verified_total", **labels) -
                    metric(before, "weir_frames_verified_total", **labels))
        # One frame in flight per connection: every corrupted frame reaches Weir and is caught.
        assert corrupt == summary["corrupted_sent"], (corrupt, summary)
        assert verified == summary["responses_ok"], (verified, summary)
        assert metric(after, "weir_frames_corrupt_resets_total", **labels) == corrupt


# What a running dataplane keeps (docs/operations.md, "Reload"): each change, made together with
# a change it would accept (b1's weight), is refused by name, and nothing of the file is applied.
FIXED_SETTINGS = {
    "dataplane.eal": lambda c: c["dataplane"]["eal"].append("--log-level=7"),
    "dataplane.ports": lambda c: c["dataplane"]["ports"][0].update(mtu=1400),
    "dataplane.ports (source_addresses)":
        lambda c: c["dataplane"]["ports"][0].update(source_addresses=["10.77.0.201"]),
    "dataplane.limits": lambda c: c["dataplane"].update(limits={"connections": 1000}),
    "dataplane.idle": lambda c: c["dataplane"].update(idle={"mode": "busy-poll"}),
    "tcp": lambda c: c.update(tcp={"min_rto_ms": 50}),
    "node_id": lambda c: c.update(node_id=9),
}


def extra_pools(count: int) -> list[dict]:
    return [{"name": f"extra{i}", "backends": [
        {"name": "x", "address": ADDRESSES["b1"], "port": BACKEND_PORT}]} for i in range(count)]


def extra_listeners(count: int) -> list[dict]:
    return [{"name": f"extra{i}", "address": LISTENER_ADDRESS, "port": 1000 + i,
             "protocol": "tcp", "pool": "app"} for i in range(count)]


def many_backends(count: int) -> list[dict]:
    return [{"name": f"n{i}", "address": ADDRESSES["b1"], "port": 10000 + i}
            for i in range(count)]


# Over a dataplane's life: 64 pools, 64 proxied listeners, 256 backends a pool, removed ones
# included. A file beyond them is refused before the dataplane sees it (the config suite); each
# change here is a valid file that only the running dataplane's history puts past a cap. `app`
# has 1 pool, 1 proxied listener and 3 backends (b1-b3).
def proxied_on(pool: str):
    return lambda c: [l.update(pool=pool) for l in c["listeners"] if l.get("pool")]


CAPS = {
    "65 pools": (lambda c: (c.update(pools=extra_pools(64)), proxied_on("extra0")(c)),
                 "more pools or listeners"),
    "65 listeners": (lambda c: c.update(listeners=[l for l in c["listeners"] if not l.get("pool")]
                                        + extra_listeners(64)),
                     "more pools or listeners"),
    "257 backends": (lambda c: c["pools"][0].update(backends=many_backends(254)),
                     "more than 256 backends over the dataplane's life"),
    # All or nothing: a new pool that could be added comes first, then `app` is refused.
    "257 backends after a new pool": (
        lambda c: (c["pools"][0].update(backends=many_backends(254)),
                   c["pools"].insert(0, {"name": "early", "backends": [
                       {"name": "x", "address": ADDRESSES["b2"], "port": BACKEND_PORT}]})),
        "more than 256 backends over the dataplane's life"),
}


def test_reload_refuses_what_a_running_dataplane_keeps_and_its_caps_and_changes_nothing(plane):
    import yaml

    tb, dp, control, _, path = plane
    sock = Path(dp.config["control"]["socket"])
    original = path.read_text()
    # Once every worker has applied the states weir-control sent at its start (plan_applied).
    poll_until(lambda: all(p["plan_applied"] for p in dp.control({"op": "pools"})["pools"]), 10.0,
               what="the workers to apply weir-control's first states")
    before = (dp.control({"op": "pools"}), dp.control({"op": "listeners"}))
    attempts = [(name, change, name.split()[0]) for name, change in FIXED_SETTINGS.items()]
    attempts += [(name, change, message) for name, (change, message) in CAPS.items()]
    for name, change, message in attempts:
        config = yaml.safe_load(original)
        config["pools"][0]["backends"][0]["weight"] = 5
        change(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        reply = admin(tb, sock, {"op": "reload"})
        assert not reply["ok"], (name, reply)
        assert message in reply["error"] and "restart" in reply["error"], (name, reply)
        assert (dp.control({"op": "pools"}), dp.control({"op": "listeners"})) == before, name
        weights = {b["name"]: b["weight"]
                   for b in admin(tb, sock, {"op": "backends"})["pools"][0]["backends"]}
        assert weights == {"b1": 1, "b2": 1, "b3": 1}, (name, weights)
    # The running configuration is intact: the same file with only the weight changed applies.
    config = yaml.safe_load(original)
    config["pools"][0]["backends"][0]["weight"] = 5
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    reply = admin(tb, sock, {"op": "reload"})
    assert reply["ok"], reply
    scrape = control.scrape()
    assert metric(scrape, "weir_config_reloads_total", result="failure") == len(attempts)
    assert metric(scrape, "weir_config_reloads_total", result="success") == 1


def test_reload_adds_a_tls_inner_framed_listener_with_sni_pools_and_a_change_of_route(plane):
    # The dataplane serves `inner: framed` and `sni_pools` (docs/tls.md): a reload adds such a
    # listener, and a reload that changes only its SNI routes or its inner protocol replaces it.
    import yaml

    tb, dp, control, _, path = plane
    sock = Path(dp.config["control"]["socket"])
    original = path.read_text()
    config = yaml.safe_load(original)
    first = config["listeners"][0]
    pool = config["pools"][0]["name"]
    config["pools"].append({"name": "second", "backends": [
        {"name": "only", "address": ADDRESSES["b2"], "port": BACKEND_PORT}]})
    secure = {
        "name": "secure", "address": first["address"], "port": 7443, "protocol": "tls",
        "pool": pool,
        "tls": {"certificates": [{"cert": "/nonexistent/site.pem", "key": "/nonexistent/site.key"}],
                "inner": "framed", "sni_pools": {"b.example": "second"}},
    }
    config["listeners"].append(secure)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    reply = admin(tb, sock, {"op": "reload"})
    assert reply["ok"], reply
    assert "listener secure added" in reply["changes"], reply
    assert "secure" in [l["name"] for l in dp.control({"op": "listeners"})["listeners"]]
    for change in ({"sni_pools": {"b.example": pool}}, {"inner": "tcp"}):
        secure["tls"].update(change)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        reply = admin(tb, sock, {"op": "reload"})
        assert reply["ok"], (change, reply)
        assert "listener secure changed" in reply["changes"], (change, reply)
    path.write_text(original)


def test_sighup_reloads_adding_a_pool_and_a_listener(plane):
    import yaml

    tb, dp, control, _, path = plane
    config = yaml.safe_load(path.read_text())
    config["pools"].append({"name": "second", "backends": [
        {"name": "only", "address": ADDRESSES["b2"], "port": BACKEND_PORT}]})
    config["listeners"].append({"name": "more", "address": LISTENER_ADDRESS, "port": 81,
                                "protocol": "tcp", "pool": "second"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    control.proc.send_signal(signal.SIGHUP)
    line = poll_until(lambda: [l for l in control.log.read_text().splitlines()
                               if " notice weir-control: SIGHUP: " in l], 10.0,
                      what="weir-control to log the reload")[0]
    reply = json.loads(line.split(" notice weir-control: SIGHUP: ", 1)[1])
    assert reply["ok"], reply
    assert {"pool second added", "listener more added", "backend second/only added"} <= set(
        reply["changes"]), reply
    assert [l["name"] for l in dp.control({"op": "listeners"})["listeners"]] == ["web", "more"]
    answers = tb.python("client", r"""
import socket
answers = []
for port in (80, 81):
    s = socket.create_connection((ARGS, port), timeout=5)
    answers.append(recv_all(s).decode())
    s.close()
emit(answers)
""", LISTENER_ADDRESS)
    # Port 81 reaches the new pool, whose one backend is b2; port 80 still the old one.
    assert answers[1] == "b2" and answers[0] in ("b1", "b2", "b3"), answers
