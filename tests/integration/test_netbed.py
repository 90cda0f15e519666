"""Tests of the network-namespace test bed (netbed.py) and of its eBPF tc programs (tests/bpf/).

Run by hand (as root):
    WEIR_BUILD_ROOT=build WEIR_SOURCE_ROOT=. pytest-3 -q tests/integration/test_netbed.py
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import netbed
from netbed import (
    ADDRESSES,
    BACKEND_ROLES,
    DataplaneProcess,
    Testbed,
    bad_switch_config,
    bpf_object,
    drop_config,
    poll_until,
)
from netbed import testbed, testbed_factory  # noqa: F401  (pytest fixtures)

ETH_P_IP = 0x0800


def root_link_names() -> set:
    return {link["ifname"] for link in json.loads(netbed.run(["ip", "-j", "link", "show"]).stdout)}


def binomial_bounds(n: int, p: float, sigmas: float = 6.0) -> tuple:
    """mean -/+ sigmas standard deviations of Binomial(n, p). With six, a correct program falls
    outside with probability 3e-8 (exact binomial tails for n = 2000, p = 0.03; the upper tail is
    the heavier one)."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


# ---------------------------------------------------------------------------------------------
# poll_until


def test_poll_until_returns_the_first_truthy_value():
    values = iter([0, None, "", 42, 43])
    assert poll_until(lambda: next(values), 5.0, interval_s=0.001, what="a value") == 42


def test_poll_until_names_what_it_waited_for_on_timeout():
    calls = []

    def never():
        calls.append(time.monotonic())
        return False

    start = time.monotonic()
    with pytest.raises(
        AssertionError, match=r"timed out after 0\.05 s waiting for the moon\nstate: dark"
    ):
        poll_until(never, 0.05, interval_s=0.01, what="the moon", describe=lambda: "state: dark")
    assert calls[-1] - start >= 0.05  # the predicate was asked once more at the deadline
    assert len(calls) >= 2


# ---------------------------------------------------------------------------------------------
# Topology


def test_every_namespace_has_exactly_its_addresses(testbed):
    for role in ("client", "ctl", *BACKEND_ROLES):
        assert testbed.ipv4_addresses(role) == {
            "lo": ["127.0.0.1/8"],
            "eth0": [f"{ADDRESSES[role]}/24"],
        }, role
    # DPDK owns the dataplane's address: the kernel has none on dp0, so it cannot answer for it.
    assert testbed.ipv4_addresses("dp") == {"lo": ["127.0.0.1/8"], "dp0": []}
    bridge = testbed.ipv4_addresses("br")
    assert bridge.pop("br0") == ["10.77.0.254/24"]
    assert bridge.pop("lo") == ["127.0.0.1/8"]
    assert bridge == {Testbed.bridge_port(r): [] for r in ("client", "ctl", *BACKEND_ROLES, "dp")}


def test_ipv6_is_off_and_no_interface_has_an_ipv6_address(testbed):
    for role in testbed.roles:
        links = json.loads(netbed.run(["ip", "-n", testbed.ns(role), "-j", "addr", "show"]).stdout)
        inet6 = [
            (link["ifname"], a["local"])
            for link in links
            for a in link.get("addr_info", [])
            if a["family"] == "inet6"
        ]
        assert inet6 == [], role
    for role, iface in (("dp", "dp0"), ("client", "eth0"), ("br", "br0")):
        path = f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"
        assert testbed.exec(role, ["cat", path]).stdout.strip() == "1", role


def test_interfaces_have_their_planned_macs_and_mtu(testbed):
    for role in ("client", "b1", "dp"):
        iface = "dp0" if role == "dp" else "eth0"
        (link,) = json.loads(testbed.exec(role, ["ip", "-j", "link", "show", iface]).stdout)
        assert link["address"] == testbed.macs[role]
        assert link["mtu"] == 1500


def test_client_reaches_every_backend_the_control_host_and_the_gateway(testbed):
    for target in ("b1", "b2", "b3", "ctl", "gateway"):
        testbed.wait_reachable("client", ADDRESSES[target], timeout_s=10.0)
    testbed.wait_reachable("b3", ADDRESSES["b1"], timeout_s=10.0)


def test_an_idle_segment_is_silent(testbed_factory):
    """No frame appears on any port unless a test sends it (no IPv6, no IGMP, no STP): captures
    and eBPF counters count only the test's own traffic. Two seconds of observation."""
    tb = testbed_factory()
    captures = {
        role: tb.start_capture("br", Testbed.bridge_port(role)) for role in ("client", "b1", "dp")
    }
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # an observation window, not a synchronisation
        time.sleep(deadline - time.monotonic())
    assert {role: [Ether(f.data).summary() for f in c.stop()] for role, c in captures.items()} == {
        "client": [],
        "b1": [],
        "dp": [],
    }


def test_scapy_runs_inside_a_namespace(testbed):
    """Testbed.python runs code in the namespace; scapy there sees the namespace's eth0 and gets
    the gateway's ARP answer, from br0's planned MAC."""
    source = """
from scapy.all import ARP, Ether, get_if_hwaddr, srp1
reply = srp1(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=ARGS["gateway"]), iface="eth0",
             timeout=2, retry=3, verbose=False)
emit({"own_mac": get_if_hwaddr("eth0"), "gateway_mac": reply[ARP].hwsrc if reply else None})
"""
    result = testbed.python("client", source, {"gateway": ADDRESSES["gateway"]})
    assert result == {"own_mac": testbed.macs["client"], "gateway_mac": testbed.macs["gateway"]}


def test_nothing_answers_arp_for_the_dataplane_address_until_the_dataplane_runs(testbed):
    arping = ["arping", "-q", "-c", "1", "-w", "1", "-i", "eth0"]
    # The probe works (the gateway on br0 answers), so its silence for 10.77.0.2 means something.
    assert testbed.exec("client", [*arping, ADDRESSES["gateway"]], check=False).returncode == 0
    assert testbed.exec("client", [*arping, ADDRESSES["dp"]], check=False).returncode != 0


def test_offloads_are_off_on_dp0_and_its_bridge_side_peer(testbed):
    for role, iface in (("dp", "dp0"), ("br", Testbed.bridge_port("dp"))):
        features = testbed.offloads(role, iface)
        for feature in (
            "tx-checksumming",
            "tcp-segmentation-offload",
            "generic-segmentation-offload",
            "generic-receive-offload",
        ):
            assert features[feature] is False, f"{feature} on {iface}"
    # The client keeps the kernel's defaults (a real host's), which is what the next test relies on.
    assert testbed.offloads("client", "eth0")["tx-checksumming"] is True


def _frame_faults(frame: netbed.CapturedFrame) -> list:
    """What would hurt a DPDK port reading this frame: oversize (GSO), a partial checksum."""
    faults = []
    if frame.wire_length > 1514:
        faults.append(f"{frame.wire_length} bytes")
    if frame.checksum_not_ready:
        faults.append("TP_STATUS_CSUMNOTREADY")
    packet = Ether(frame.data)
    if IP in packet and TCP in packet and len(frame.data) == frame.wire_length:
        for layer in (IP, TCP):  # scapy recomputes a deleted checksum from the bytes
            sent = packet[layer].chksum
            copy = Ether(frame.data)
            del copy[layer].chksum
            correct = Ether(bytes(copy))[layer].chksum
            if correct != sent:
                faults.append(f"{layer.__name__} checksum {sent:#06x}, correct {correct:#06x}")
    return faults


def test_dp0_sees_only_mtu_sized_frames_with_complete_checksums(testbed_factory):
    tb = testbed_factory()
    # With learning off on b1's port the bridge floods client->b1 frames to every port, dp's too.
    tb.exec("br", ["bridge", "link", "set", "dev", Testbed.bridge_port("b1"), "learning", "off"])
    tb.wait_reachable("client", ADDRESSES["b1"])
    at_dp0 = tb.start_capture("dp", "dp0")
    at_b1 = tb.start_capture("b1", "eth0")
    transfer = tb.tcp_transfer("client", "b1", random.Random(1).randbytes(300_000), port=5001)
    assert transfer.tcp_reported_no_error and transfer.received == transfer.sent
    dp0_frames = [
        f for f in at_dp0.stop() if TCP in Ether(f.data) and Ether(f.data)[TCP].dport == 5001
    ]
    b1_frames = [
        f for f in at_b1.stop() if TCP in Ether(f.data) and Ether(f.data)[TCP].dport == 5001
    ]

    # The client sends with offloads on, so b1 (whose path keeps them) gets GSO frames with
    # partial checksums: the faults exist, and the check below can see them.
    assert any(_frame_faults(f) for f in b1_frames)
    # All the payload reached dp0, as complete frames of at most 1514 bytes.
    assert sum(len(Ether(f.data)[TCP].payload) for f in dp0_frames) >= 300_000
    faulty = [(i, _frame_faults(f)) for i, f in enumerate(dp0_frames) if _frame_faults(f)]
    assert faulty == []


# ---------------------------------------------------------------------------------------------
# Lifecycle


def test_the_vhost_switch_starts_once_and_teardown_stops_it():
    """The virtio mode's dpdk-testpmd (Testbed.vhost_switch): forwarding once the call returns,
    one process however often it is asked for, and gone with its DPDK runtime directory after
    destroy(); one that died is reported with its log, not reused."""
    with Testbed() as tb:
        socket_path = tb.vhost_switch()
        proc = tb._vhost_switch
        assert socket_path.is_socket()
        assert proc.poll() is None
        assert tb.vhost_switch() == socket_path and tb._vhost_switch is proc
        config = tb.dataplane_config("virtio")
        assert f"--vdev=net_virtio_user0,path={socket_path},queues=1,queue_size=1024" in (
            config["dataplane"]["eal"])
        runtime = netbed.DPDK_RUNTIME_DIR / f"{tb.dpdk_file_prefix}{netbed.VHOST_SWITCH_SUFFIX}"
        assert runtime.is_dir()  # made by rte_eal_init even with --no-shconf; destroy() removes it
        proc.kill()  # SIGKILL: testpmd cannot clean up after itself
        proc.wait(10)
        with pytest.raises(AssertionError, match="dpdk-testpmd .* exited"):
            tb.vhost_switch()
    assert proc.poll() is not None
    assert not runtime.exists()


def test_teardown_deletes_every_namespace_and_the_marker():
    links_before = root_link_names()
    with Testbed() as tb:
        names = tb.namespaces
        marker = netbed.MARKER_DIR / f"{tb.runid}.json"
        dpdk_runtime = netbed.DPDK_RUNTIME_DIR / tb.dpdk_file_prefix
        workdir = tb.workdir
        assert workdir.is_dir()
        dpdk_runtime.mkdir(parents=True)  # what rte_eal_init leaves, even with --no-shconf
        assert all((netbed.NETNS_DIR / n).exists() for n in names)
        assert marker.exists()
        # Nothing of the test bed appears in the root namespace.
        assert root_link_names() - links_before == set()
    assert [n for n in names if (netbed.NETNS_DIR / n).exists()] == []
    assert not marker.exists()
    assert not dpdk_runtime.exists()
    assert not workdir.exists()
    assert (
        len(names) == 7
        and len(set(names)) == 7
        and all(n.startswith(f"weir-{tb.runid}-") for n in names)
    )


def test_teardown_happens_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with Testbed() as tb:
            names = tb.namespaces
            tb.popen("b1", ["sleep", "600"])  # a process inside must not keep anything alive
            raise RuntimeError("boom")
    assert [n for n in names if (netbed.NETNS_DIR / n).exists()] == []


def test_two_testbeds_at_once_have_distinct_names_and_separate_segments(testbed_factory):
    first, second = testbed_factory(), testbed_factory()
    assert first.runid != second.runid
    assert set(first.namespaces).isdisjoint(second.namespaces)
    first.wait_reachable("client", ADDRESSES["b1"])
    second.wait_reachable("client", ADDRESSES["b1"])
    # Same addresses, separate segments: taking b1 down in the second leaves the first's b1 alone.
    second.exec("b1", ["ip", "link", "set", "eth0", "down"])
    assert first.ping("client", ADDRESSES["b1"]) == (1, 1)
    assert second.ping("client", ADDRESSES["b1"]) == (1, 0)


def _child_building_a_testbed(then: str) -> subprocess.Popen:
    """A separate interpreter that builds a test bed, prints its namespaces, and then `then`."""
    source = textwrap.dedent(
        f"""
        import json, os, signal, sys, time
        sys.path.insert(0, {str(Path(netbed.__file__).parent)!r})
        import netbed
        tb = netbed.Testbed().create()
        print(json.dumps(tb.namespaces), flush=True)
        {then}
    """
    )
    return subprocess.Popen(
        [sys.executable, "-c", source],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_sigterm_tears_the_testbed_down():
    child = _child_building_a_testbed("signal.pause()")
    try:
        names = json.loads(netbed._read_line(child, 20.0))
        assert all((netbed.NETNS_DIR / n).exists() for n in names)
        child.send_signal(signal.SIGTERM)
        child.wait(20.0)
    finally:
        if child.poll() is None:
            child.kill()
    assert [n for n in names if (netbed.NETNS_DIR / n).exists()] == []


def test_a_killed_run_is_swept_by_the_next_one():
    child = _child_building_a_testbed("os.kill(os.getpid(), signal.SIGKILL)")
    names = json.loads(netbed._read_line(child, 20.0))
    assert child.wait(20.0) == -signal.SIGKILL
    assert all((netbed.NETNS_DIR / n).exists() for n in names)  # SIGKILL leaves them behind
    runid = names[0].split("-")[1]
    marker = netbed.MARKER_DIR / f"{runid}.json"
    workdir = Path(json.loads(marker.read_text())["workdir"])
    assert workdir.is_dir()
    netbed.sweep_stale_runs()  # (a concurrent run may have swept it first: same outcome)
    assert [n for n in names if (netbed.NETNS_DIR / n).exists()] == []
    assert not marker.exists()
    assert not workdir.exists()


def test_the_sweep_leaves_live_runs_alone(testbed):
    netbed.sweep_stale_runs()
    assert all((netbed.NETNS_DIR / n).exists() for n in testbed.namespaces)


def test_two_processes_have_testbeds_at_once_and_both_carry_traffic():
    """What two runs of the suites at once do: separate interpreters claim their own run ids in
    the shared marker directory; both beds exist together, and each client reaches its b1."""
    then = (
        "sys.stdin.readline(); "
        "tb.wait_reachable('client', netbed.ADDRESSES['b1']); "
        "print(json.dumps(tb.ping('client', netbed.ADDRESSES['b1'])), flush=True); "
        "tb.destroy()"
    )
    children = [_child_building_a_testbed(then) for _ in range(2)]
    try:
        lines = [netbed._read_line(child, 30.0) for child in children]
        assert all(line.startswith("[") for line in lines), lines
        first, second = (json.loads(line) for line in lines)
        assert set(first).isdisjoint(second)
        assert all((netbed.NETNS_DIR / n).exists() for n in first + second)  # both at once
        for child in children:
            child.stdin.write(b"go\n")
            child.stdin.flush()
        assert [netbed._read_line(child, 30.0) for child in children] == ["[1, 1]", "[1, 1]"]
        for child in children:
            assert child.wait(30.0) == 0, child.stderr.read().decode()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [n for n in first + second if (netbed.NETNS_DIR / n).exists()] == []


# ---------------------------------------------------------------------------------------------
# eBPF: a lossy link


def _ping_burst(tb: Testbed, count: int) -> tuple:
    return tb.ping(
        "client", ADDRESSES["b1"], count=count, interval_s=0.002, wait_s=1.0, timeout=60.0
    )


def test_no_ping_is_lost_without_the_drop_program(testbed):
    testbed.wait_reachable("client", ADDRESSES["b1"])
    assert _ping_burst(testbed, 2000) == (2000, 2000)


def test_drop_program_loses_the_configured_fraction_each_way(testbed_factory):
    tb = testbed_factory()
    tb.wait_reachable("client", ADDRESSES["b1"])  # ARP is spared below, but start resolved anyway
    port = Testbed.bridge_port("client")
    # On the switch side of the client's link: a frame dropped there is lost silently. (Dropped
    # on the client's own egress, the send would fail and ping would send it again.)
    requests = tb.attach_tc_bpf("br", port, bpf_object("drop"), direction="ingress")
    replies = tb.attach_tc_bpf("br", port, bpf_object("drop"), direction="egress")
    requests.map_update("drop_config", b"\0\0\0\0", drop_config(0.03, ETH_P_IP))
    replies.map_update("drop_config", b"\0\0\0\0", drop_config(0.03, ETH_P_IP))

    transmitted, received = _ping_burst(tb, 2000)
    request_matched, request_dropped = requests.read_u64_array("drop_counters")
    reply_matched, reply_dropped = replies.read_u64_array("drop_counters")

    assert transmitted == 2000
    # Every echo request passed the ingress hook, every reply that existed the egress hook, and
    # ping's own loss count is exactly what the two programs dropped.
    assert request_matched == 2000
    assert reply_matched == 2000 - request_dropped
    assert transmitted - received == request_dropped + reply_dropped
    low, high = binomial_bounds(2000, 0.03)
    assert low <= request_dropped <= high, (request_dropped, low, high)
    low, high = binomial_bounds(reply_matched, 0.03)
    assert low <= reply_dropped <= high, (reply_dropped, low, high)
    # The same program inert (its configuration zeroed) loses nothing.
    requests.map_update("drop_config", b"\0\0\0\0", drop_config(0.0))
    replies.map_update("drop_config", b"\0\0\0\0", drop_config(0.0))
    assert _ping_burst(tb, 500) == (500, 500)


# ---------------------------------------------------------------------------------------------
# eBPF: a switch that corrupts TCP payload and fixes the checksum

BAD_SWITCH_PORT = 5002
EVERY_NTH = 10
TRANSFER_BYTES = 200_000


def _bad_switch_run(tb: Testbed, patch_checksum: bool):
    """A 200 KB client->b1 transfer through the bad switch on the client's bridge port. Returns
    (transfer, payload offsets at which the captured segments start, program counters [matched,
    flipped], b1's TCP checksum errors, client's retransmitted segments)."""
    # Offloads off on the client's link: every segment is one frame with a complete checksum that
    # b1 verifies in software (a CHECKSUM_PARTIAL skb crossing veths would never be verified).
    tb.set_offloads("client", "eth0", enabled=False)
    tb.set_offloads("br", Testbed.bridge_port("client"), enabled=False)
    tb.wait_reachable("client", ADDRESSES["b1"])
    program = tb.attach_tc_bpf(
        "br", Testbed.bridge_port("client"), bpf_object("bad_switch"), direction="ingress"
    )
    program.map_update(
        "bad_switch_cfg", b"\0\0\0\0", bad_switch_config(BAD_SWITCH_PORT, EVERY_NTH, patch_checksum)
    )
    # Packet taps run before the tc ingress hook and keep their own copy: this sees every segment
    # as the client sent it. (Not necessarily in the program's order: segments sent from both CPUs
    # are processed on both, so only the set of segments is compared, never their order.)
    capture = tb.start_capture("br", Testbed.bridge_port("client"))
    snmp_b1, snmp_client = tb.snmp("b1"), tb.snmp("client")
    data = random.Random(7).randbytes(TRANSFER_BYTES)
    transfer = tb.tcp_transfer("client", "b1", data, BAD_SWITCH_PORT)
    frames = capture.stop()
    csum_errors = tb.snmp("b1")["Tcp.InCsumErrors"] - snmp_b1["Tcp.InCsumErrors"]
    retransmits = tb.snmp("client")["Tcp.RetransSegs"] - snmp_client["Tcp.RetransSegs"]

    segments = [Ether(f.data) for f in frames if not f.outgoing]
    segments = [p for p in segments if TCP in p and p[TCP].dport == BAD_SWITCH_PORT]
    (isn,) = [p[TCP].seq for p in segments if p[TCP].flags.S]
    matched, segment_starts = 0, set()
    for packet in segments:
        payload_length = packet[IP].len - 4 * packet[IP].ihl - 4 * packet[TCP].dataofs
        if payload_length >= 2:  # the program's rule: room for the 16-bit word it rewrites
            matched += 1
            segment_starts.add((packet[TCP].seq - isn - 1) % (1 << 32))
    counters = program.read_u64_array("bad_switch_cnt")
    assert counters[0] == matched, "the capture and the program counted different segments"
    return transfer, segment_starts, counters, csum_errors, retransmits


def _differing_offsets(a: bytes, b: bytes) -> list:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_bad_switch_corrupts_payload_and_tcp_does_not_notice(testbed_factory):
    tb = testbed_factory()
    transfer, segment_starts, (matched, flipped), csum_errors, retransmits = _bad_switch_run(
        tb, patch_checksum=True
    )

    assert transfer.tcp_reported_no_error
    assert len(transfer.received) == TRANSFER_BYTES
    assert matched >= TRANSFER_BYTES // 1460  # at least one segment per MSS of data
    assert flipped == matched // EVERY_NTH > 0
    assert csum_errors == 0  # every corrupted segment carried a valid checksum
    differing = _differing_offsets(transfer.sent, transfer.received)
    # Only bit 0 of the first payload byte of a segment, and as many as the switch flipped.
    assert all(transfer.sent[i] ^ transfer.received[i] == 0x01 for i in differing)
    assert set(differing) <= segment_starts
    if retransmits == 0:
        assert len(differing) == flipped
    else:  # a flipped copy that TCP discarded as a duplicate flips nothing
        assert flipped - retransmits <= len(differing) <= flipped


def test_bad_switch_without_the_checksum_patch_is_caught_by_tcp(testbed_factory):
    """The control experiment: the same corruption with a stale checksum. b1 must drop every
    corrupted segment and TCP must retransmit it, so the data arrives intact. This shows that the
    previous test's damage got through only because the checksum was patched."""
    tb = testbed_factory()
    transfer, _segment_starts, (matched, flipped), csum_errors, retransmits = _bad_switch_run(
        tb, patch_checksum=False
    )

    assert transfer.tcp_reported_no_error
    assert flipped == matched // EVERY_NTH > 0
    assert csum_errors == flipped
    assert retransmits >= flipped
    assert transfer.received == transfer.sent


# ---------------------------------------------------------------------------------------------
# DataplaneProcess, against a stand-in that speaks only ARP (the real binary is tested once built)

FAKE_DATAPLANE = r"""
import json, signal, socket, struct, sys
import yaml

mode = "{mode}"
config = yaml.safe_load(open(sys.argv[2]))
port = config["dataplane"]["ports"][0]
if mode == "refuse":
    print("weir-dataplane: port 'dp0': refusing to start (stand-in)", file=sys.stderr)
    sys.exit(1)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else lambda *_: sys.exit(0))
print("config " + json.dumps(config), flush=True)
address = socket.inet_aton(port["address"].split("/")[0])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind((port["name"], 0x0806))
mac = sock.getsockname()[4]
while True:
    frame = sock.recv(2048)
    op, sha, spa, tpa = frame[20:22], frame[22:28], frame[28:32], frame[38:42]
    if op == b"\x00\x01" and tpa == address:  # an ARP request for us (RFC 826)
        arp_reply = bytes.fromhex("0001080006040002") + mac + address + sha + spa
        sock.send(sha + mac + b"\x08\x06" + arp_reply)
"""


def _fake_build_root(tmp_path: Path, monkeypatch, mode: str) -> None:
    exe = tmp_path / "dataplane" / "weir-dataplane"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!{sys.executable}\n" + FAKE_DATAPLANE.replace("{mode}", mode))
    exe.chmod(0o755)
    monkeypatch.setenv("WEIR_BUILD_ROOT", str(tmp_path))


def test_dataplane_process_waits_for_arp_and_stops_with_sigterm(
    testbed_factory, tmp_path, monkeypatch
):
    tb = testbed_factory()
    _fake_build_root(tmp_path, monkeypatch, "normal")
    config = tb.dataplane_config()
    dataplane = DataplaneProcess(tb, config)
    assert not dataplane.answers_arp()
    dataplane.start()
    dataplane.wait_ready(timeout_s=20.0)
    assert dataplane.answers_arp()
    assert dataplane.stop() == 0
    # The process got the configuration it was given, through the file named on its command line.
    first_line = dataplane.stdout_path.read_text().splitlines()[0]
    assert json.loads(first_line.removeprefix("config ")) == config
    assert (
        "--file-prefix" in config["dataplane"]["eal"]
        and f"weir-{tb.runid}" in config["dataplane"]["eal"]
    )


def test_dataplane_process_reports_an_early_exit_with_its_output(
    testbed_factory, tmp_path, monkeypatch
):
    tb = testbed_factory()
    _fake_build_root(tmp_path, monkeypatch, "refuse")
    dataplane = DataplaneProcess(tb, tb.dataplane_config()).start()
    with pytest.raises(
        AssertionError, match=r"(?s)exited with 1 before it was ready.*refusing to start"
    ):
        dataplane.wait_ready(timeout_s=20.0)


def test_dataplane_process_that_ignores_sigterm_fails_loudly(
    testbed_factory, tmp_path, monkeypatch
):
    tb = testbed_factory()
    _fake_build_root(tmp_path, monkeypatch, "stubborn")
    dataplane = DataplaneProcess(tb, tb.dataplane_config()).start()
    dataplane.wait_ready(timeout_s=20.0)
    with pytest.raises(AssertionError, match="did not stop within 0.5 s of SIGTERM; killed"):
        dataplane.stop(timeout_s=0.5)
    assert dataplane.proc.returncode == -signal.SIGKILL


def test_real_dataplane_answers_arp_and_ping_then_stops_cleanly(testbed_factory):
    exe = Path(os.environ.get("WEIR_BUILD_ROOT", "/nonexistent")) / "dataplane" / "weir-dataplane"
    if not exe.is_file():
        pytest.skip(f"{exe} is not built")
    tb = testbed_factory()
    with DataplaneProcess(tb, tb.dataplane_config()) as dataplane:
        dataplane.wait_ready(timeout_s=30.0)
        tb.wait_reachable("client", ADDRESSES["dp"], timeout_s=10.0)
        assert dataplane.stop() == 0, dataplane.output()
