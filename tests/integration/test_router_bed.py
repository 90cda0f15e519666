"""Three Weir boxes behind a router (tests/integration/routerbed.py; docs/scale-out.md, "The test
bed"): each announces the VIP over BGP from BIRD 2, FRR's bgpd makes one ECMP route of them, and
clients behind the router reach the VIP through whichever box the router's 5-tuple hash picks.
The router's routing table is read for what BGP did; the clients' connections for what it did to
them."""

import json
import signal
import time
from collections import Counter

import pytest

from netbed import poll_until, _require_root
from scale_clients import LongLived
from routerbed import (
    BOX_ADDRESSES,
    Box,
    BOX_MGMT_ADDRESSES,
    MGMT_IFACE,
    VIP,
    VIP_PORT,
    box_role,
    running_bed,
)

NODES = ("a", "b", "c")

# ARGS["count"] new connections one after another, each echoing 100 bytes; per connection None
# or the error. Each waits at most ARGS["timeout"] seconds.
NEW_CONNECTIONS = r"""
import socket
results = []
for i in range(ARGS["count"]):
    try:
        with socket.create_connection((ARGS["vip"], ARGS["port"]), timeout=ARGS["timeout"]) as s:
            data = bytes((i + k) % 251 for k in range(100))
            s.sendall(data)
            results.append(None if recv_exactly(s, 100) == data else "different bytes")
    except OSError as error:
        results.append(repr(error))
emit(results)
"""


@pytest.fixture
def cluster():
    _require_root()
    with running_bed(NODES, NODES, NODES) as running:
        yield running


def all_next_hops(bed, expected: set, timeout_s: float = 30.0, router=None) -> None:
    poll_until(lambda: bed.vip_next_hops() == expected, timeout_s, interval_s=0.05,
               what=f"the router's route to {VIP} to have next hops {sorted(expected)}",
               describe=lambda: f"now: {sorted(bed.vip_next_hops())}\n"
                                + (router.vtysh("show ip bgp") if router else ""))


def boxes_of(*nodes) -> set:
    return {BOX_ADDRESSES[n] for n in nodes}


def new_connections(bed, count: int, timeout: float = 5.0) -> list:
    return bed.python("client", NEW_CONNECTIONS, {"count": count, "vip": VIP, "port": VIP_PORT,
                                                  "timeout": timeout}, timeout=count * 15 + 30)


def test_the_router_learns_the_vip_from_every_box_and_spreads_connections(cluster):
    bed, router, boxes = cluster
    all_next_hops(bed, boxes_of(*NODES), router=router)
    # One multipath route, learnt from three eBGP sessions.
    summary = json.loads(router.vtysh("show bgp ipv4 unicast summary json"))
    assert {peer["state"] for peer in summary["peers"].values()} == {"Established"}, summary
    assert len(summary["peers"]) == 3, summary
    results = new_connections(bed, 30)
    assert results == [None] * 30
    opened = {node: box.dataplane.stats()["listeners"]["web"]["connections"]
              for node, box in boxes.items()}
    # Each accepted by its row's primary, once: 30 in all, and every box took some (all on two
    # boxes by chance: about 3 in 10^5).
    assert sum(opened.values()) == 30 and min(opened.values()) > 0, opened
    forwarded = {node: box.dataplane.total(box.dataplane.stats(), "cluster",
                                           "forwarded_to_primary")
                 for node, box in boxes.items()}
    assert sum(forwarded.values()) > 0, forwarded


def long_lived_on_every_box(cluster, count: int):
    """Once the router has every box as a next hop: `count` LongLived connections echoing, and
    the sessions each box holds."""
    bed, router, boxes = cluster
    all_next_hops(bed, boxes_of(*NODES), router=router)
    client = LongLived(bed, count, processes=1, size=2000, period_s=0.0, seconds=120.0,
                       greeted=False)
    client.wait_rounds(2)
    return client, {node: box.active_sessions() for node, box in boxes.items()}


def test_drain_box_withdraws_its_route_and_long_lived_connections_go_on(cluster):
    bed, router, boxes = cluster
    count = 60
    client, held = long_lived_on_every_box(cluster, count)
    assert sum(held.values()) == count and held["a"] > 0, held
    result = boxes["a"].weirctl("drain-box")
    assert result.returncode == 0, result.stderr
    all_next_hops(bed, boxes_of("b", "c"), timeout_s=10.0, router=router)
    # Traffic goes on: the flows the router moved off a reach b or c, which forward those a
    # holds back to it; a's sessions go on, and so does every other.
    client.wait_rounds(3)
    assert boxes["a"].active_sessions() == held["a"]
    # The drained box is still the primary of a third of the rows, and refuses their SYNs (drain
    # -box: RST), until every box counts it as draining. No operator step: its heartbeats now say
    # `draining`, and every weir-control sends that to its dataplane (a's own from its drain):
    # then the secondary is primary, a the secondary, so new connections go elsewhere and a's
    # sessions still reach it by the second chance; a stays draining, never gone, while it runs.
    for box in boxes.values():
        box.wait_peers_applied({"a": "draining", "b": "live", "c": "live"}, timeout_s=15.0)
    assert new_connections(bed, 30) == [None] * 30
    client.wait_rounds(3)
    assert boxes["a"].active_sessions() == held["a"]
    for node in "bc":  # still heard, still draining: its sessions keep their second chance
        assert boxes[node].dataplane.control({"op": "box"})["cluster"]["peers"]["a"] == "draining"
    outcome = client.finish()
    assert outcome["errors"] == [None] * count, outcome
    # Its existing connections finish: every one of a's sessions ended by the clients' close.
    poll_until(lambda: boxes["a"].active_sessions() == 0, 20.0,
               what="box a's sessions to end")


def test_a_killed_dataplane_is_withdrawn_within_3_s_and_only_its_connections_break(cluster):
    bed, router, boxes = cluster
    count = 60
    client, held = long_lived_on_every_box(cluster, count)
    assert sum(held.values()) == count and held["c"] > 0, held
    killed_at = time.monotonic()
    boxes["c"].dataplane.proc.send_signal(signal.SIGKILL)
    # weir-control sees the dataplane's socket close, BIRD withdraws the route, the router
    # removes the next hop: within BGP's hold time (3 s), the bound of the requirement.
    all_next_hops(bed, boxes_of("a", "b"), timeout_s=3.0, router=router)
    withdrawn_s = time.monotonic() - killed_at
    print(f"route withdrawn {withdrawn_s:.3f} s after SIGKILL")
    # No operator step: c's kernel lives but its dataplane is dead, so its heartbeats (sent by
    # the dataplane, through the data link) stop; after cluster.heartbeat's 3 x 300 ms of
    # silence a's and b's weir-controls count c gone and send it to their dataplanes, and the
    # owner table moves c's rows to a and b, while the long-lived connections go on (before
    # membership, about a third of new connections went to c and failed until the operator
    # stepped in).
    gone = {"a": "live", "b": "live", "c": "gone"}
    for node in "ab":
        boxes[node].wait_peers_applied(gone, timeout_s=15.0)
    print(f"c counted gone by a and b {time.monotonic() - killed_at:.2f} s after SIGKILL")
    client.wait_rounds(3)
    outcome = client.finish()
    broken = [error for error in outcome["errors"] if error is not None]
    # Exactly the connections c held break; those of a and b go on, whichever box they enter by.
    assert len(broken) == held["c"], (held, outcome)
    results = new_connections(bed, 200, timeout=5.0)
    assert [r for r in results if r is not None] == [], Counter(results)


def bfd_peers(router) -> dict:
    """The router's BFD sessions, peer address -> status ("up", "down", ...)."""
    peers = json.loads(router.vtysh("show bfd peers json"))
    return {peer["peer"]: peer["status"] for peer in peers}


def test_a_box_cut_off_from_the_router_is_withdrawn_and_no_connection_breaks(cluster):
    # The box's management link goes silent (no FIN, no RST: what a dead kernel or a cut cable
    # looks like to the router): BFD (300 ms x 3), or else the hold time (3 s), ends the session
    # and the router withdraws the box's route. Its dataplane still serves its sessions, and the
    # other boxes forward their packets to it over the data link: nothing breaks.
    bed, router, boxes = cluster
    count = 60
    client, held = long_lived_on_every_box(cluster, count)
    assert held["c"] > 0, held
    mgmt = {node: address for node, address in BOX_MGMT_ADDRESSES.items() if node in NODES}
    poll_until(lambda: bfd_peers(router) == {address: "up" for address in mgmt.values()}, 10.0,
               what="a BFD session up with every box",
               describe=lambda: router.vtysh("show bfd peers"))
    cut_at = time.monotonic()
    bed.exec(box_role("c"), ["ip", "link", "set", MGMT_IFACE, "down"])
    all_next_hops(bed, boxes_of("a", "b"), timeout_s=3.0, router=router)
    print(f"route withdrawn {time.monotonic() - cut_at:.3f} s after the link was cut")
    # BFD ended the session, not the hold time: bgpd's log says why it sent its NOTIFICATION.
    assert any(mgmt["c"] in line and "(Cease/BFD Down)" in line
               for line in (router.dir / "bgpd.log").read_text().splitlines()), router.output()
    # The session is gone with the dynamic neighbour (or down, if bgpd still lists it).
    assert bfd_peers(router).get(mgmt["c"], "gone") in ("down", "gone"), router.vtysh(
        "show bfd peers")
    client.wait_rounds(3)
    # The heartbeats go through the data link, not the management one: a and b still hear c,
    # and keep it live in their owner tables (gone, c's sessions would break).
    for node in "ab":
        assert boxes[node].dataplane.control({"op": "box"})["cluster"]["peers"]["c"] == "live"
    outcome = client.finish()
    assert outcome["errors"] == [None] * count, outcome


# From the client's namespace, UDP datagrams to ARGS["box"]'s GUE port: first ARGS["bad"] GUE
# control messages that are no well-formed heartbeat (other types, bad versions, states, lengths,
# random bytes behind a control header), then one well-formed heartbeat from this non-peer.
BAD_HEARTBEATS = r"""
import random, socket
rng = random.Random(17)
good = bytes([0x21, 0x48, 0, 0, 0x57, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
bad = [bytes([0x21, t]) + good[2:] for t in (0, 1, 4, 0x47, 0x49, 255)]
bad += [good[:i] + bytes([good[i] ^ 0xff]) + good[i + 1:] for i in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
bad += [good[:8], good[:15], good + b"x", good + bytes(100)]
while len(bad) < ARGS["bad"]:
    bad.append(bytes([0x21]) + rng.randbytes(rng.randrange(7, 64)))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for payload in bad[:ARGS["bad"]] + [good]:
    s.sendto(payload, (ARGS["box"], 19523))
emit(len(bad[:ARGS["bad"]]))
"""


def cluster_counter(box, name: str) -> int:
    return box.dataplane.total(box.dataplane.stats(), "cluster", name)


def test_a_box_that_joins_is_live_everywhere_without_the_operator():
    _require_root()
    with running_bed("abcd", "abc", "abcd") as (bed, router, boxes):
        # d is in every box's cluster.peers but never heard: once the heartbeats have had time,
        # each weir-control counts it gone (and a, b and c live) on its own.
        without_d = {"a": "live", "b": "live", "c": "live", "d": "gone"}
        for box in boxes.values():
            box.wait_peers_applied(without_d, timeout_s=15.0)
        # Bad heartbeats crash nothing and count nothing as heard; a still hears b and c.
        a = boxes["a"]
        before = {name: cluster_counter(a, name) for name in (
            "heartbeats_malformed", "unknown_peer_drops", "heartbeats_received")}
        sent = bed.python("client", BAD_HEARTBEATS, {"box": BOX_ADDRESSES["a"], "bad": 40})
        poll_until(lambda: cluster_counter(a, "heartbeats_malformed")
                   - before["heartbeats_malformed"] == sent
                   and cluster_counter(a, "unknown_peer_drops")
                   - before["unknown_peer_drops"] == 1, 10.0,
                   what="box a to count the bad heartbeats",
                   describe=lambda: f"{a.dataplane.stats()['workers']}")
        poll_until(lambda: cluster_counter(a, "heartbeats_received")
                   > before["heartbeats_received"], 5.0, what="box a to hear its peers again")
        a.wait_peers_applied(without_d, timeout_s=5.0)
        assert a.dataplane.proc.poll() is None and a.control.poll() is None

        # d joins: BIRD, dataplane, weir-control; nobody is told anything.
        joined_at = time.monotonic()
        d = Box(bed, "d", "abcd")
        boxes["d"] = d
        d.start()
        d.dataplane.wait_ready(timeout_s=60.0)
        d.start_control()
        d.wait_announcing()
        everyone = {n: "live" for n in "abcd"}
        for box in boxes.values():
            box.wait_peers_applied(everyone, timeout_s=15.0)
        print(f"d live in every box's table {time.monotonic() - joined_at:.1f} s after its start")
        all_next_hops(bed, boxes_of("a", "b", "c", "d"), router=router)
        # d owns a quarter of the rows now: it accepts some of 40 new connections (none: (3/4)^40,
        # about 1e-5), and every one succeeds.
        accepted = d.accepted()
        assert new_connections(bed, 40) == [None] * 40
        assert d.accepted() > accepted
