"""`framed` listeners from outside: weir-frame-load in the client namespace sends Weir frames
through a "bad switch" (an eBPF tc program on the client's bridge port that flips a payload bit
and patches the TCP checksum, so TCP cannot notice) to the dataplane, which verifies every frame
on its way to three weir-frame-echo backends (issue 5)."""

import json
import os
from pathlib import Path

import pytest

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    FrameEchoes,
    Testbed,
    bad_switch_config,
    bpf_object,
    testbed_factory,
)

BUILD = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
LOAD = BUILD / "tools" / "weir-frame-load"
BACKEND_PORT = 8000
VIP_PORT = 80
ROLES = ("b1", "b2", "b3")


def framed_config(tb: Testbed, framed: dict) -> dict:
    config = tb.dataplane_config()
    config["node_id"] = 7
    config["pools"] = [{
        "name": "frames",
        "backends": [{"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in ROLES],
    }]
    config["listeners"] = [{"name": "framed", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                            "protocol": "framed", "pool": "frames", "framed": framed}]
    return config


def run_load(tb: Testbed, *args: str) -> dict:
    result = tb.exec("client", [str(LOAD), "--connect", f"{LISTENER_ADDRESS}:{VIP_PORT}",
                                "--json", *args], check=False, timeout=120)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def attach_bad_switch(tb: Testbed, every_nth: int):
    tb.set_offloads("client", "eth0", enabled=False)
    tb.set_offloads("br", Testbed.bridge_port("client"), enabled=False)
    program = tb.attach_tc_bpf("br", Testbed.bridge_port("client"), bpf_object("bad_switch"),
                               direction="ingress")
    program.map_update("bad_switch_cfg", b"\0\0\0\0", bad_switch_config(VIP_PORT, every_nth))
    return program


def framed_totals(dp: DataplaneProcess) -> dict:
    return dp.stats()["listeners"]["framed"]


@pytest.fixture
def bed(testbed_factory):
    return testbed_factory()


def test_clean_frames_are_verified_and_stamped(bed):
    echoes = FrameEchoes(bed, ROLES, BACKEND_PORT)
    config = framed_config(bed, {"stamp_hop": True})
    with DataplaneProcess(bed, config) as dp:
        dp.wait_ready(timeout_s=30.0)
        # The echo answers a PING with a PONG carrying the hop it received; the load generator
        # checks each answer byte for byte against the frame it sent, so a hop changed by Weir
        # in both directions must come back... as the node id, which it did not send.
        summary = run_load(bed, "--connections", "6", "--frames", "3000",
                           "--sizes", "64:0.5,1500:0.3,20000:0.2", "--seed", "3")
        totals = framed_totals(dp)
        assert summary["frames_sent"] == 3000
        # Stamped frames differ from what was sent only in the hop (node_id 7, not 0): every
        # answer mismatches, and every one of them verified at the echo and at Weir.
        assert summary["responses_mismatched"] == 3000, summary
        assert totals["frames_verified_to_backend"] == 3000
        assert totals["frames_verified_to_client"] == 3000
        assert totals["frames_corrupt_to_backend"] == 0
        counters = echoes.total()
        assert counters["frames_good"] == 3000, counters
        assert counters["frames_corrupt"] == 0
        assert dp.stop() == 0, dp.output()


def test_clean_frames_pass_unchanged_without_stamping(bed):
    echoes = FrameEchoes(bed, ROLES, BACKEND_PORT)
    with DataplaneProcess(bed, framed_config(bed, {})) as dp:
        dp.wait_ready(timeout_s=30.0)
        summary = run_load(bed, "--connections", "6", "--frames", "3000", "--ping",
                           "--sizes", "64:0.5,1500:0.3,20000:0.2", "--seed", "4")
        assert summary["frames_sent"] == 3000
        assert summary["responses_ok"] == 3000, summary
        assert summary["responses_mismatched"] == 0
        totals = framed_totals(dp)
        assert totals["frames_verified_to_backend"] == 3000
        assert totals["bytes_verified_to_backend"] == summary["bytes_sent"]
        assert echoes.total()["frames_good"] == 3000
        assert dp.stop() == 0, dp.output()


def test_reset_mode_lets_no_corrupt_frame_through_the_bad_switch(bed):
    echoes = FrameEchoes(bed, ROLES, BACKEND_PORT)
    program = attach_bad_switch(bed, every_nth=7)
    with DataplaneProcess(bed, framed_config(bed, {"on_corrupt": "reset"})) as dp:
        dp.wait_ready(timeout_s=30.0)
        run_load(bed, "--connections", "8", "--duration", "3", "--sizes", "4000",
                 "--seed", "5", "--timeout", "5")
        matched, flipped = program.read_u64_array("bad_switch_cnt")[:2]
        totals = framed_totals(dp)
        caught = totals["frames_corrupt_to_backend"] + totals["frames_malformed_to_backend"]
        print(f"switch flipped {flipped} of {matched} segments; Weir caught {caught}")
        assert flipped > 0, "the bad switch corrupted nothing: the test shows nothing"
        assert caught > 0
        assert totals["corrupt_resets_to_backend"] == caught
        counters = echoes.total()
        assert counters["frames_corrupt"] == 0, counters
        assert counters["frames_malformed"] == 0, counters
        assert dp.stop() == 0, dp.output()


def test_count_mode_forwards_exactly_what_it_counted(bed):
    echoes = FrameEchoes(bed, ROLES, BACKEND_PORT)
    program = attach_bad_switch(bed, every_nth=11)
    # Large frames: a flipped first byte of a segment almost always lands in a payload (corrupt,
    # forwarded and counted) rather than a header (malformed: that connection is reset).
    with DataplaneProcess(bed, framed_config(bed, {"on_corrupt": "count"})) as dp:
        dp.wait_ready(timeout_s=30.0)
        run_load(bed, "--connections", "4", "--frames", "400", "--sizes", "60000",
                 "--seed", "6", "--timeout", "5")
        flipped = program.read_u64_array("bad_switch_cnt")[1]
        totals = framed_totals(dp)
        assert flipped > 0
        assert totals["frames_corrupt_to_backend"] > 0
        counters = echoes.total()
        assert counters["frames_corrupt"] == totals["frames_corrupt_to_backend"], (counters, totals)
        assert dp.stop() == 0, dp.output()


def test_corruption_on_the_backend_side_never_reaches_the_client(bed):
    echoes = FrameEchoes(bed, ROLES, BACKEND_PORT)
    # The bad switch on b1's link, corrupting b1's answers (segments from the backend port).
    bed.set_offloads("b1", "eth0", enabled=False)
    bed.set_offloads("br", Testbed.bridge_port("b1"), enabled=False)
    program = bed.attach_tc_bpf("br", Testbed.bridge_port("b1"), bpf_object("bad_switch"),
                                direction="ingress")
    program.map_update("bad_switch_cfg", b"\0\0\0\0",
                       bad_switch_config(BACKEND_PORT, 5, match_source=True))
    with DataplaneProcess(bed, framed_config(bed, {"on_corrupt": "reset"})) as dp:
        dp.wait_ready(timeout_s=30.0)
        summary = run_load(bed, "--connections", "12", "--duration", "3", "--sizes", "4000",
                           "--seed", "8", "--timeout", "5")
        flipped = program.read_u64_array("bad_switch_cnt")[1]
        totals = framed_totals(dp)
        caught = totals["frames_corrupt_to_client"] + totals["frames_malformed_to_client"]
        print(f"switch flipped {flipped} of b1's segments; Weir caught {caught}")
        assert flipped > 0, "b1 answered nothing through the switch: the test shows nothing"
        assert caught > 0
        assert totals["corrupt_resets_to_client"] == caught
        # Every answer the client received matched what it sent, byte for byte.
        assert summary["responses_mismatched"] == 0, summary
        assert echoes.total()["frames_corrupt"] == 0
        assert dp.stop() == 0, dp.output()
