"""Locating corruption (issue 16): the bad switch (tests/bpf/bad_switch.bpf.c) corrupts the
answers of one backend, b1, on its bridge port; Weir's per-backend counters, its frame events
(`weirctl events`, through weir-control) and the last-seen gauge must put every caught frame on
b1's path back to the client, and nothing on b2's, which carried clean traffic all along. A storm
of malformed frames must become a bounded number of log lines plus counts that add up."""

import json
import math
import re
import time

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    FrameEchoes,
    Testbed,
    poll_until,
    testbed_factory,
)
from test_control_plane import metric, start_control, weirctl_raw
from test_framed import BACKEND_PORT, VIP_PORT, attach_bad_switch_on_backend, run_load

METRICS_PORT = 9464
BURST = 10  # FrameEventLog::kBurst: lines at once per listener, then one a second


def config_for(tb: Testbed, backends: tuple[str, ...]) -> dict:
    config = tb.dataplane_config()
    config["pools"] = [{
        "name": "frames",
        "backends": [{"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in backends],
    }]
    config["listeners"] = [{"name": "framed", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                            "protocol": "framed", "pool": "frames",
                            "framed": {"on_corrupt": "reset"}}]
    config["control"] = {"socket": str(tb.workdir / "control.sock"),
                         "metrics": {"listen": f"127.0.0.1:{METRICS_PORT}"}}
    return config


def backends_by_name(dp: DataplaneProcess) -> dict:
    return {b["name"]: b for b in dp.control({"op": "pools"})["pools"][0]["backends"]}


def caught(counters: dict, direction: str) -> int:
    return counters[f"frames_corrupt_{direction}"] + counters[f"frames_malformed_{direction}"]


def test_corruption_on_one_backends_path_shows_only_on_that_backend(testbed_factory):
    tb = testbed_factory()
    FrameEchoes(tb, ("b1", "b2"), BACKEND_PORT)
    # The bad switch on b1's link only: b1's answers are hit.
    program = attach_bad_switch_on_backend(tb, "b1", every_nth=5)
    started_unix = time.time()
    with DataplaneProcess(tb, config_for(tb, ("b1", "b2"))) as dp:
        dp.wait_ready(timeout_s=30.0)
        control, path = start_control(tb, dp)
        run_load(tb, "--connections", "16", "--duration", "3", "--sizes", "4000", "--seed", "16",
                 "--timeout", "5")
        flipped = program.read_u64_array("bad_switch_cnt")[1]
        assert flipped > 0, "b1 answered nothing through the switch: the test shows nothing"

        backends = backends_by_name(dp)
        b1, b2 = backends["b1"], backends["b2"]
        listener = dp.control({"op": "counters"})["listeners"]["framed"]
        print(f"switch flipped {flipped} of b1's segments; b1 caught {caught(b1, 'to_client')}, "
              f"b2 verified {b2['frames_verified_to_client']} answers")
        # Every frame caught on the way to the clients is on b1's path, none on b2's, which
        # carried clean answers (else its zeros would prove nothing).
        assert caught(b1, "to_client") > 0
        assert caught(b1, "to_client") == caught(listener, "to_client")
        assert b2["frames_verified_to_client"] > 0
        assert caught(b2, "to_client") == 0 and caught(b2, "to_backend") == 0
        assert caught(b1, "to_backend") == 0  # the clients' frames went through clean
        assert b1["frames_verified_to_backend"] + b2["frames_verified_to_backend"] == \
            listener["frames_verified_to_backend"]
        assert "last_corrupt_frame_unix_to_client" in b1
        assert "last_corrupt_frame_unix_to_client" not in b2

        # The events, through weir-control and weirctl: one per caught frame (the ring dropped
        # none), each on b1's path back to a client, with its fields.
        events_reply = weirctl_raw(tb, path, "--json", "events", "256")
        assert events_reply.returncode == 0, events_reply.stderr
        events = json.loads(events_reply.stdout)["events"]
        frame_events = dp.control({"op": "counters"})["frame_events"]
        assert frame_events["dropped"] == 0, frame_events
        assert frame_events["recorded"] == caught(listener, "to_client"), frame_events
        assert len(events) == min(256, frame_events["recorded"])
        crc = re.compile(r"^0x[0-9a-f]{8}$")
        for e in events:
            assert (e["listener"], e["pool"], e["backend"], e["direction"]) == \
                ("framed", "frames", "b1", "to_client"), e
            host, port = e["client"].rsplit(":", 1)
            assert host == ADDRESSES["client"] and 0 < int(port) < 65536, e
            assert e["action"] == "reset", e
            assert started_unix - 1 <= e["unix_us"] / 1e6 <= time.time() + 1, e
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", e["time"]), e
            if e["verdict"] == "corrupt":
                assert crc.match(e["expected_crc"]) and crc.match(e["received_crc"]), e
                assert e["expected_crc"] != e["received_crc"], e
                # The length as the header said: a flipped header byte can change it.
                assert isinstance(e["length"], int) and isinstance(e["stream"], int), e
            else:
                assert e["verdict"] == "malformed" and e["reason"], e
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        table = weirctl_raw(tb, path, "events", "5")
        assert table.returncode == 0, table.stderr
        rows = table.stdout.strip().splitlines()
        assert rows[0].split()[:3] == ["TIME", "LISTENER", "DIRECTION"], table.stdout
        assert len(rows) == 1 + min(5, len(events))
        assert all(" framed " in r and " to_client " in r and " frames/b1 " in r for r in rows[1:])

        # Prometheus: the same split, and the last-seen time of b1's path only.
        scrape = control.scrape()
        for direction in ("to_backend", "to_client"):
            for family in ("weir_backend_frames_corrupt_total",
                           "weir_backend_frames_malformed_total"):
                assert metric(scrape, family, backend="b2", direction=direction) == 0
        assert metric(scrape, "weir_backend_frames_corrupt_total", backend="b1",
                      direction="to_client") == b1["frames_corrupt_to_client"]
        last = metric(scrape, "weir_backend_last_corrupt_frame_timestamp_seconds", backend="b1",
                      direction="to_client")
        assert started_unix - 1 <= last <= time.time() + 1
        assert 'weir_backend_last_corrupt_frame_timestamp_seconds{backend="b2"' not in scrape
        assert not [line for line in scrape.splitlines() if line.startswith(
            "weir_backend_last_corrupt_frame_timestamp_seconds") and 'backend="b2"' in line]
        assert control.stop() == 0
        assert dp.stop() == 0, dp.output()


# In the client namespace: ARGS["count"] connections one after the other, each sending one
# malformed header (bad magic) and waiting for Weir to reset it.
MALFORMED_STORM = r"""
import socket
reset = 0
for _ in range(ARGS["count"]):
    s = socket.create_connection((ARGS["address"], ARGS["port"]), timeout=10)
    s.sendall(b"XX\x01\x00" + bytes(12))
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        reset += 1
    s.close()
emit(reset)
"""

SUPPRESSED = re.compile(r"\((\d+) similar messages? suppressed\)$|: (\d+) more not logged")


def test_a_malformed_frame_storm_is_a_few_log_lines_and_counts_that_add_up(testbed_factory):
    tb = testbed_factory()
    FrameEchoes(tb, ("b1",), BACKEND_PORT)
    count = 600
    with DataplaneProcess(tb, config_for(tb, ("b1",))) as dp:
        dp.wait_ready(timeout_s=30.0)
        started = time.monotonic()
        resets = tb.python("client", MALFORMED_STORM, {"address": LISTENER_ADDRESS,
                                                        "port": VIP_PORT, "count": count},
                           timeout=300)
        assert resets == count
        listener = dp.control({"op": "counters"})["listeners"]["framed"]
        assert listener["frames_malformed_to_backend"] == count

        def settled():
            events = dp.control({"op": "counters"})["frame_events"]
            lines = [line for line in dp.stderr_path.read_text().splitlines()
                     if "weir-dataplane: frame event" in line]
            reported = sum(int(a or b) for line in lines for a, b in SUPPRESSED.findall(line))
            # Every held-back line is eventually said (a line a second at most).
            if events["recorded"] == count and reported == events["suppressed"]:
                return events, lines
            return None

        events, lines = poll_until(settled, 10.0, what="the held-back lines to be reported",
                                   describe=dp.output)
        elapsed = time.monotonic() - started
        logged = [line for line in lines if "frame event: " in line]
        print(f"{count} malformed frames in {elapsed:.1f} s: {len(logged)} event lines, "
              f"{events['suppressed']} held back, {len(lines) - len(logged)} summary lines")
        assert events["dropped"] == 0
        assert len(logged) == events["logged"]
        assert events["logged"] + events["suppressed"] == count
        # The limit: the burst, then one line a second (event or summary), whatever the storm.
        assert len(lines) <= BURST + math.ceil(elapsed) + 1, lines
        assert events["suppressed"] > 0
        for line in logged:
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning weir-dataplane: "
                            r"frame event: time=\S+ listener=framed direction=to_backend "
                            r"client=10\.77\.0\.1:\d+ pool=frames backend=b1 stream=0 "
                            r"length=0 verdict=malformed reason=\"[^\"]+\" action=reset", line), line
        assert dp.stop() == 0, dp.output()
