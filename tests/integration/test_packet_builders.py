"""The C++ test packet builders (tests/support/packet_builder.h) against scapy.

tests/support/packet_builder_cases prints the builder's frame for each named case as "NAME HEX";
this suite builds the same frames with scapy, which computes every length, offset and checksum
itself, and asserts the bytes are equal. It also has the program write a pcap and reads it back
with scapy's pcap reader. Every field either side would default is given explicitly.

Needs WEIR_BUILD_ROOT (set by meson test) and scapy (python3-scapy).
"""

import os
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Padding, Raw
from scapy.utils import PcapReader, rdpcap

CLIENT_MAC = "52:54:00:12:34:56"
BALANCER_MAC = "52:54:00:ab:cd:ef"
BROADCAST = "ff:ff:ff:ff:ff:ff"
CLIENT_IP = "198.51.100.7"
VIP = "203.0.113.10"


def client(**ip_fields):
    """Ether/IP from the client to the VIP with every IPv4 field scapy would default given."""
    fields = dict(version=4, tos=0, flags="DF", frag=0, ttl=64)
    fields.update(ip_fields)
    return Ether(src=CLIENT_MAC, dst=BALANCER_MAC) / IP(src=CLIENT_IP, dst=VIP, **fields)


def tcp(**fields):
    base = dict(sport=51514, dport=443, reserved=0, urgptr=0)
    base.update(fields)
    return TCP(**base)


def scapy_cases():
    ping_data = bytes(range(0x10, 0x10 + 56))
    return {
        "tcp_syn_options": client(id=0x1C46)
        / tcp(
            flags="S",
            seq=0x12345678,
            ack=0,
            window=64240,
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0xDEADBEEF, 0)),
                     ("NOP", None), ("WScale", 7)],
        ),
        "tcp_data_segment": client(id=0x1C47)
        / tcp(
            flags="PA",
            seq=0x12345679,
            ack=0x9ABCDEF0,
            window=502,
            options=[("NOP", None), ("NOP", None), ("Timestamp", (0xDEADBF00, 0x01020304))],
        )
        / Raw(b"GET / HTTP/1.1\r\nHost: weir.example\r\n\r\n"),
        "tcp_ack_sack": client(id=0x1C48)
        / tcp(
            flags="A",
            seq=0x12345679,
            ack=0x9ABCDEF0,
            window=501,
            options=[("NOP", None), ("NOP", None), ("Timestamp", (0xDEADBF10, 0x01020310)),
                     ("NOP", None), ("NOP", None),
                     ("SAck", (0x9ABD0000, 0x9ABD05B4, 0x9ABD0B68, 0x9ABD111C,
                               0xFFFFFA00, 0x00000100))],
        ),
        "tcp_options_zero_padded": client(id=1)
        / tcp(sport=51515, flags="S", seq=1, ack=0, window=65535,
              options=[("MSS", 8960), ("WScale", 14)]),
        "tcp_fin_ack": client(id=0x1C49)
        / tcp(flags="FA", seq=0x123456A0, ack=0x9ABCDEF0, window=501),
        "tcp_rst": Ether(src=BALANCER_MAC, dst=CLIENT_MAC)
        / IP(src=VIP, dst=CLIENT_IP, version=4, tos=0, id=0, flags=0, frag=0, ttl=255)
        / tcp(sport=443, dport=51514, flags="R", seq=0x9ABCDEF0, ack=0, window=0),
        "tcp_urgent_ecn": client(id=0x2000, ttl=63, tos=0x02)
        / tcp(flags="UECPA", seq=7, ack=8, window=1024, urgptr=3)
        / Raw(b"abc"),
        "tcp_odd_payload": client(id=0x1C4A)
        / tcp(flags="PA", seq=0x12345679, ack=0x9ABCDEF0, window=502)
        / Raw(b"weir!\x01\xff"),
        "ipv4_router_alert_option": client(id=0x42, ttl=1, flags=0,
                                           options=[IPOption_Router_Alert()])
        / tcp(flags="A", seq=5, ack=6, window=100),
        "ipv4_unaligned_options": client(id=0x43, flags=0,
                                         options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP()])
        / ICMP(type=8, code=0, id=7, seq=7),
        "ipv4_fragment": client(id=0x7777, flags="MF", frag=185, proto=6)
        / Raw(b"fragment data!!!"),
        "arp_request": Ether(src=CLIENT_MAC, dst=BROADCAST)
        / ARP(hwtype=1, ptype=0x0800, hwlen=6, plen=4, op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP,
              hwdst="00:00:00:00:00:00", pdst=VIP),
        "arp_reply": Ether(src=BALANCER_MAC, dst=CLIENT_MAC)
        / ARP(hwtype=1, ptype=0x0800, hwlen=6, plen=4, op=2, hwsrc=BALANCER_MAC, psrc=VIP,
              hwdst=CLIENT_MAC, pdst=CLIENT_IP),
        "arp_request_padded": Ether(src=CLIENT_MAC, dst=BROADCAST)
        / ARP(hwtype=1, ptype=0x0800, hwlen=6, plen=4, op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP,
              hwdst="00:00:00:00:00:00", pdst=VIP)
        / Padding(b"\x00" * 18),
        "icmp_echo_request": client(id=0x4D2)
        / ICMP(type=8, code=0, id=0x1234, seq=1)
        / Raw(ping_data),
        "icmp_echo_reply_odd_payload": Ether(src=BALANCER_MAC, dst=CLIENT_MAC)
        / IP(src=VIP, dst=CLIENT_IP, version=4, tos=0, id=0x4D3, flags=0, frag=0, ttl=64)
        / ICMP(type=0, code=0, id=0x1234, seq=2)
        / Raw(b"odd length!!!"),
        "malformed_checksums_ttl0": client(id=9, ttl=0, chksum=0xBEEF)
        / tcp(flags="A", seq=1, ack=2, window=10, chksum=0x1234),
        "malformed_ihl_and_length": client(id=10, ihl=15, len=9999)
        / ICMP(type=8, code=0, id=1, seq=1)
        / Raw(b"x"),
        "malformed_truncated_syn": bytes(
            client(id=11) / tcp(flags="S", seq=1, ack=0, window=64240, options=[("MSS", 1460)])
        )[:40],
    }


SCAPY_FRAMES = {name: bytes(packet) for name, packet in scapy_cases().items()}


def cases_binary():
    build_root = os.environ.get("WEIR_BUILD_ROOT")
    if not build_root:
        pytest.fail("WEIR_BUILD_ROOT is not set (run this suite through meson test)")
    binary = Path(build_root) / "tests" / "support" / "packet_builder_cases"
    if not binary.is_file():
        pytest.fail(f"{binary} not built")
    return binary


def run_cases(*args):
    result = subprocess.run([str(cases_binary()), *args], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, f"packet_builder_cases failed: {result.stderr}"
    frames = {}
    for line in result.stdout.splitlines():
        name, _, hex_bytes = line.partition(" ")
        assert name not in frames, f"case {name} printed twice"
        frames[name] = bytes.fromhex(hex_bytes)
    return frames


@pytest.fixture(scope="module")
def builder_frames():
    return run_cases()


def test_builder_prints_exactly_the_scapy_cases_in_order(builder_frames):
    assert list(builder_frames) == list(SCAPY_FRAMES)


@pytest.mark.parametrize("name", list(SCAPY_FRAMES))
def test_builder_frame_equals_scapy(name, builder_frames):
    ours = builder_frames.get(name)
    assert ours is not None, f"packet_builder_cases printed no case {name}"
    theirs = SCAPY_FRAMES[name]
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                     min(len(ours), len(theirs)))
        pytest.fail(
            f"{name}: first difference at byte {first} (lengths {len(ours)} vs {len(theirs)})\n"
            f"builder: {ours.hex()}\nscapy:   {theirs.hex()}\n"
            f"scapy dissects the builder's frame as:\n{Ether(ours).show(dump=True)}"
        )


def test_pcap_file_reads_back_with_scapy(tmp_path, builder_frames):
    path = tmp_path / "cases.pcap"
    assert run_cases("--pcap", str(path)) == builder_frames

    # File header (pcap-savefile(5)), written little-endian.
    raw = path.read_bytes()
    magic, major, minor, thiszone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", raw)
    assert (magic, major, minor, thiszone, sigfigs, snaplen, linktype) == (
        0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)

    with PcapReader(str(path)) as reader:
        assert reader.linktype == 1  # DLT_EN10MB: Ethernet
    packets = rdpcap(str(path))
    assert len(packets) == len(builder_frames)
    for index, (packet, (name, frame)) in enumerate(zip(packets, builder_frames.items())):
        assert bytes(packet) == frame, f"record {index} ({name}) differs"
        assert packet.time == Decimal(1_700_000_000 + index) + Decimal(index * 1111) / 1_000_000
        assert packet.wirelen == len(frame)
