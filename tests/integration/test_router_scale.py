"""The cluster's membership changes under load, and what the owner decides, on the router bed
(tests/integration/routerbed.py; docs/scale-out.md, "The test bed"): a fourth box joins while
1,000 long-lived connections exchange data, then new flows spread over four boxes; a box is
drained and removed with the connections still open; a corrupt frame of a forwarded flow is
caught by its owner, stamped with the owner's node_id; the same client 4-tuple gets the same
backend whichever box owns it. The live peer set is what every box is told by `weirctl
cluster-peers` (the operator's override of the heartbeats, docs/scale-out.md, "Membership": this
file keeps the operator's path tested, test_router_bed.py the heartbeats'; the dataplane's
`cluster_peers` directly on boxes that run no weir-control)."""

import json
import os
import struct
import subprocess
import time
from collections import Counter

import pytest

from netbed import ADDRESSES, _read_line, _require_root, poll_until
from routerbed import (
    BOX_ADDRESSES,
    BOX_NODE_IDS,
    CLIENT_ADDRESS,
    VIP,
    Box,
    running_bed,
    set_peers_everywhere,
)
from scale_clients import LongLived, new_connections, same_tuples
from test_router_bed import all_next_hops, boxes_of
from test_framed import EXCHANGE_CLIENT, HEADER_SIZE, RECORDING_BACKEND
from test_tools import frame

LONG_LIVED_COUNT = 1000
NEW_FLOWS = 2000


def states(live=(), draining=(), gone=()) -> dict:
    return {**{n: "live" for n in live}, **{n: "draining" for n in draining},
            **{n: "gone" for n in gone}}


def owner_names(addresses) -> Counter:
    by_address = {address: node for node, address in BOX_ADDRESSES.items()}
    return Counter(by_address.get(address, address) for address in addresses)


def failures(results: list, boxes: dict) -> list:
    """The failed connections of `results`; when there are any, each box's counters that tell a
    dropped or refused packet from a lost one are printed beside them."""
    failed = [(error, owner, name) for error, owner, name in results if error is not None]
    if failed:
        for node, box in boxes.items():
            stats = box.dataplane.stats()
            notable = {f"{section}.{key}": value
                       for worker in stats["workers"] for section, counters in worker.items()
                       if isinstance(counters, dict)
                       for key, value in counters.items()
                       if isinstance(value, int) and value and any(
                           word in key for word in ("drop", "refus", "fail", "reset", "rto",
                                                    "retrans", "cookie", "full", "hop"))}
            print(f"box {node}: {notable}")
    return failed


@pytest.fixture
def four_box_bed():
    """Boxes a, b and c running, configured with the peers a-d, told d is gone; d's namespace
    ready for it to join."""
    _require_root()
    with running_bed("abcd", "abc", "abcd", backend_mode="whois_echo") as (bed, router, boxes):
        set_peers_everywhere(boxes.values(), states(live="abc", gone="d"))
        yield bed, router, boxes


def test_a_box_joins_and_one_is_drained_and_removed_under_1000_long_lived_connections(
        four_box_bed):
    bed, router, boxes = four_box_bed
    all_next_hops(bed, boxes_of("a", "b", "c"), router=router)
    started = time.monotonic()
    client = LongLived(bed, LONG_LIVED_COUNT)
    try:
        client.wait_rounds(2, timeout_s=180.0)
        print(f"{LONG_LIVED_COUNT} connections open and echoing after "
              f"{time.monotonic() - started:.1f} s")
        held = {node: box.active_sessions() for node, box in boxes.items()}
        # Each session is where its backend says it came from, and nowhere else.
        assert owner_names(client.owners().elements()) == Counter(held), held
        assert sum(held.values()) == LONG_LIVED_COUNT, held

        # --- d joins: its dataplane up with every peer live; every other box told d is live
        # (weirctl cluster-peers); then its weir-control announces the VIP, its BGP route joins the
        # router's ECMP group.
        joined_at = time.monotonic()
        d = Box(bed, "d", "abcd")
        boxes["d"] = d
        d.start()
        d.dataplane.wait_ready(timeout_s=60.0)
        set_peers_everywhere([boxes[n] for n in "abc"], states(live="abcd"))
        d.start_control()
        d.wait_announcing()
        all_next_hops(bed, boxes_of("a", "b", "c", "d"), timeout_s=30.0, router=router)
        # Its BGP session is up beside the others', and every box computes owners over four
        # live peers, d over the states it started with.
        summary = json.loads(router.vtysh("show bgp ipv4 unicast summary json"))
        assert [peer["state"] for peer in summary["peers"].values()] == ["Established"] * 4
        for box in boxes.values():
            cluster = box.dataplane.control({"op": "box"})["cluster"]
            assert (cluster["peers"], cluster["applied"]) == (states(live="abcd"), True), \
                (box.node, cluster)
        print(f"d joined (route in the router's ECMP group) {time.monotonic() - joined_at:.1f} s"
              " after its start")
        # A quarter of the flows now enter through d, which holds none of them: it forwards
        # them to their rows' primaries (or, in the rows it is primary of, to the old primary,
        # now the secondary). Nothing breaks, nothing moves.
        client.wait_rounds(3)
        assert {node: boxes[node].active_sessions() for node in "abc"} == held
        assert d.active_sessions() == 0
        assert d.dataplane.total(d.dataplane.stats(), "cluster", "forwarded_to_primary") + \
            d.dataplane.total(d.dataplane.stats(), "cluster", "forwarded_to_secondary") > 0

        # --- new flows after the join: each accepted by its row's primary, a quarter per box.
        before = {node: box.accepted() for node, box in boxes.items()}
        results = new_connections(bed, NEW_FLOWS, processes=4)
        assert failures(results, boxes) == []
        accepted = {node: box.accepted() - before[node] for node, box in boxes.items()}
        print(f"{NEW_FLOWS} new flows over four boxes: {accepted}")
        assert sum(accepted.values()) == NEW_FLOWS, accepted
        assert owner_names(owner for _, owner, _ in results) == Counter(accepted)
        # Within +-20 % of a quarter: 400-600 of 2,000. Binomial: sd = sqrt(2000 / 4 * 3 / 4)
        # = 19.4, so 100 is 5.2 sd (about 2e-7 for one box), on top of the table's own share,
        # 1/4 of its rows per peer.
        for node, count in accepted.items():
            assert abs(count - NEW_FLOWS / 4) <= 0.2 * NEW_FLOWS / 4, accepted
        client.wait_rounds(2)

        # --- a is drained: weirctl drain-box withdraws its route, every box is told a is
        # draining (a's rows' primary is now their secondary, a the secondary), a keeps its
        # sessions, reached by the second chance.
        drained_at = time.monotonic()
        result = boxes["a"].weirctl("drain-box")
        assert result.returncode == 0, result.stderr
        all_next_hops(bed, boxes_of("b", "c", "d"), timeout_s=10.0, router=router)
        print(f"a's route withdrawn {time.monotonic() - drained_at:.2f} s after drain-box")
        set_peers_everywhere(boxes.values(), states(live="bcd", draining="a"))
        client.wait_rounds(3)
        assert boxes["a"].active_sessions() == held["a"]
        more = new_connections(bed, 40)
        assert failures(more, boxes) == []
        assert "a" not in owner_names(owner for _, owner, _ in more), more
        # Its sessions end (here the clients close those a holds; the others go on), and once a
        # holds none it is removed: every box is told it is gone.
        client.close_those_of([BOX_ADDRESSES["a"]])
        poll_until(lambda: boxes["a"].active_sessions() == 0, 60.0, interval_s=0.2,
                   what="box a's sessions to end")
        set_peers_everywhere(boxes.values(), states(live="bcd", gone="a"))
        client.wait_rounds(3)
        outcome = client.finish()
    finally:
        client.kill()
    broken = [error for error in outcome["errors"] if error is not None]
    assert broken == [], Counter(broken)
    assert sum(outcome["closed"]) == LONG_LIVED_COUNT
    assert owner_names(outcome["owners"]) == Counter(held)
    print(f"rounds per client process: {outcome['rounds']}; "
          f"test took {time.monotonic() - started:.0f} s after the bed was up")
    # The states went through weirctl cluster-peers: b's weir-control keeps them and sends them
    # to b's dataplane when it restarts (which would otherwise count every peer live, a too).
    b = boxes["b"]
    assert b.dataplane.stop() == 0, b.output()
    b.dataplane.start()
    b.dataplane.wait_ready(timeout_s=60.0)
    b.wait_peers_applied(states(live="bcd", gone="a"), timeout_s=15.0)
    assert "sent the cluster peers' states to the dataplane" in b.log()


# --- the owner decides: framed verification and backend choice, whichever box a flow enters by

FRAMED_PORT = 81
RECORDER_PORT = 8001
def with_framed_listener(config: dict) -> None:
    """A framed listener on the VIP (stamping hops, counting and forwarding corrupt frames) in
    front of one recording backend."""
    config["pools"].append({"name": "recorder", "backends": [
        {"name": "r1", "address": ADDRESSES["b1"], "port": RECORDER_PORT}]})
    config["listeners"].append({"name": "framed", "address": VIP, "port": FRAMED_PORT,
                                "protocol": "framed", "pool": "recorder",
                                "framed": {"stamp_hop": True, "on_corrupt": "count"}})


@pytest.fixture
def entry_through_a():
    """Boxes a, b and c with a framed listener besides the web one; only a announces the VIP,
    so every client flow enters the cluster through a."""
    _require_root()
    with running_bed("abc", "abc", "abc", backend_mode="whois_echo",
                     customize=with_framed_listener, announcing="a") as (bed, router, boxes):
        all_next_hops(bed, boxes_of("a"), router=router)
        yield bed, boxes


def forwarded_by(box: Box) -> int:
    stats = box.dataplane.stats()
    return (box.dataplane.total(stats, "cluster", "forwarded_to_primary")
            + box.dataplane.total(stats, "cluster", "forwarded_to_secondary"))


def framed_counts(box: Box) -> dict:
    listener = box.dataplane.stats()["listeners"]["framed"]
    return {key: listener[key] for key in ("connections", "frames_verified_to_backend",
                                           "frames_corrupt_to_backend")}


def test_a_corrupt_frame_of_a_forwarded_flow_is_caught_by_its_owner(entry_through_a):
    bed, boxes = entry_through_a
    out = bed.workdir / "recorded.jsonl"
    good = frame(0, 300, 0, b"corrupt me" * 10)
    damaged = bytearray(good)
    damaged[HEADER_SIZE + 5] ^= 0x10  # a payload bit, after the CRC was computed
    clean = frame(0, 100, 0, os.urandom(500))
    answers = [frame(0, 200, 0, b"answer one"), frame(0, 201, 0, b"answer two")]
    recorder = bed.python_popen("b1", RECORDING_BACKEND, {
        "address": ADDRESSES["b1"], "port": RECORDER_PORT, "connections": 2,
        "answers": [a.hex() for a in answers], "out": str(out)}, stdout=subprocess.PIPE)
    assert _read_line(recorder, 10.0) == "ready"

    def stamped(f: bytes, hop: int) -> bytes:
        return frame(f[3], struct.unpack(">I", f[8:12])[0], hop, f[16:-4])

    try:
        # a is never an owner (draining, every other box live in turn): the flow enters by a,
        # which forwards all of it to the owner, b and then c.
        for owner, other in (("b", "c"), ("c", "b")):
            set_peers_everywhere(boxes.values(), states(live=owner, draining="a" + other))
            before = {node: framed_counts(box) for node, box in boxes.items()}
            forwarded = forwarded_by(boxes["a"])
            events_before = len(boxes[owner].dataplane.control({"op": "events"})["events"])
            at_client = bed.python("client", EXCHANGE_CLIENT, {
                "address": VIP, "port": FRAMED_PORT, "frames": [clean.hex(), bytes(damaged).hex()]})
            at_backend = json.loads(poll_until(
                lambda n=2 if owner == "c" else 1: out.exists()
                and len(out.read_text().splitlines()) >= n and out.read_text().splitlines()[n - 1],
                10.0, what="the recording backend's frames"))
            change = {node: {key: value - before[node][key]
                             for key, value in framed_counts(box).items()}
                      for node, box in boxes.items()}
            print(f"owner {owner}: {change}")
            # The owner accepted the connection and verified the frames; a only forwarded.
            assert change[owner] == {"connections": 1, "frames_verified_to_backend": 1,
                                     "frames_corrupt_to_backend": 1}, change
            assert change["a"] == change[other] == {
                "connections": 0, "frames_verified_to_backend": 0,
                "frames_corrupt_to_backend": 0}, change
            assert forwarded_by(boxes["a"]) > forwarded
            # Stamped with the owner's node_id, the damage kept (the trailer stamped, never
            # recomputed over it), the answers stamped the same way.
            node_id = BOX_NODE_IDS[owner]
            expected = bytearray(stamped(good, node_id))
            expected[HEADER_SIZE + 5] ^= 0x10
            assert [bytes.fromhex(f) for f in at_backend] == [stamped(clean, node_id),
                                                              bytes(expected)]
            assert [bytes.fromhex(f) for f in at_client] == [stamped(a, node_id)
                                                            for a in answers]
            # And recorded where it was caught: an event on the owner, none on a.
            events = boxes[owner].dataplane.control({"op": "events"})["events"][events_before:]
            assert [(e["listener"], e["verdict"], e["action"], e["client"].split(":")[0])
                    for e in events] == [("framed", "corrupt", "forwarded", CLIENT_ADDRESS)]
            assert boxes["a"].dataplane.control({"op": "events"})["events"] == []
        assert recorder.wait(30) == 0
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(10)


def test_the_same_client_tuple_gets_the_same_backend_whichever_box_owns_it(entry_through_a):
    # The same 24 client 4-tuples, three times: each time one box is the only live peer (the
    # others draining), so it owns every flow and chooses every backend with its own Maglev
    # table. The flows enter by a each time; a forwards them to b and c.
    bed, boxes = entry_through_a
    ports = list(range(41000, 41024))
    chosen = {}
    for owner in "abc":
        set_peers_everywhere(boxes.values(),
                             states(live=owner, draining=[n for n in "abc" if n != owner]))
        results = same_tuples(bed, CLIENT_ADDRESS, ports)
        assert [error for error, _, _ in results] == [None] * len(ports), results
        assert {address for _, address, _ in results} == {BOX_ADDRESSES[owner]}, results
        chosen[owner] = [backend for _, _, backend in results]
        poll_until(lambda: all(box.active_sessions() == 0 for box in boxes.values()), 20.0,
                   what="the reset sessions to end on every box")
    print(f"backends per tuple: {Counter(chosen['a'])}")
    assert chosen["b"] == chosen["a"] and chosen["c"] == chosen["a"], chosen
    # Not one backend for everything (which any table would give alike).
    assert len(set(chosen["a"])) >= 2, chosen
