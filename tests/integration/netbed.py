"""Network-namespace test bed for Weir's integration tests.

One machine, one subnet (10.77.0.0/24, the addresses of config/examples/contract.yaml), every host
in its own network namespace, all joined by a Linux bridge that lives in a namespace of its own:

    weir-<runid>-client  eth0 10.77.0.1   ─┐
    weir-<runid>-ctl     eth0 10.77.0.5   ─┤   weir-<runid>-br
    weir-<runid>-b1      eth0 10.77.0.11  ─┼── br0 (10.77.0.254, "the gateway"; STP off, no
    weir-<runid>-b2      eth0 10.77.0.12  ─┤        forward delay, no multicast snooping); ports
    weir-<runid>-b3      eth0 10.77.0.13  ─┤        p-client, p-ctl, p-b1..3, p-dp
    weir-<runid>-dp      dp0 (no address) ─┘   DPDK reads dp0 through net_af_packet (or
                                                net_af_xdp, or virtio: PORT_DRIVERS)

Safety: nothing here touches the host's interfaces. Each veth pair is created from inside the
namespace of one end (`ip -n NS link add eth0 ... peer name p-ROLE netns BRIDGE_NS`), so neither
end ever exists in the root namespace, and teardown deletes only the namespaces this run created
(which deletes their veths). Traffic goes only to addresses inside those namespaces.

Names are unique per run: the run id is claimed atomically by creating a marker file
(/run/weir-netbed/<runid>.json, O_EXCL) that records the owning process; a later run deletes the
namespaces of a marker whose owner died without cleaning up (SIGKILL), and nothing else.

Code that must run inside a namespace (scapy, raw sockets, small TCP peers) runs in a child
process under `ip netns exec`: it enters the namespace and remounts /sys for it, so every
interface lookup (scapy's included) sees the namespace's own devices. setns() from the pytest
process would switch only the calling thread and leave /sys pointing at the host.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import dataclasses
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import pytest

PREFIX = "weir-"
NETNS_DIR = Path("/run/netns")
MARKER_DIR = Path("/run/weir-netbed")
# DPDK's runtime directory for a --file-prefix: created by rte_eal_init even with --no-shconf.
DPDK_RUNTIME_DIR = Path("/var/run/dpdk")
PREFIX_LENGTH = 24
BRIDGE_ROLE = "br"
DATAPLANE_ROLE = "dp"
# A second dataplane box, for the scale-out tests (Testbed(second_dataplane=True)).
SECOND_DATAPLANE_ROLE = "dp2"
DATAPLANE_IFACE = "dp0"
HOST_IFACE = "eth0"
BRIDGE_IFACE = "br0"

# role -> IPv4 address on the test subnet (config/examples/contract.yaml uses the same plan).
ADDRESSES = {
    "client": "10.77.0.1",
    "dp": "10.77.0.2",  # the dataplane's port address: DPDK answers for it, never the kernel
    "dp2": "10.77.0.3",  # the second dataplane's, when the test bed has one
    "ctl": "10.77.0.5",  # management path for the control process
    "b1": "10.77.0.11",
    "b2": "10.77.0.12",
    "b3": "10.77.0.13",
    "gateway": "10.77.0.254",  # on br0 in the bridge namespace
}
BACKEND_ROLES = ("b1", "b2", "b3")
# A listener address (a VIP): the dataplane answers ARP and ping for it as for its port address.
LISTENER_ADDRESS = "10.77.0.100"
# A second address of the client host, for tests that need two clients (add_address): the
# dataplane tells clients apart by address (its per-source accounting).
SECOND_CLIENT_ADDRESS = "10.77.0.21"


def _mac_for(address: str) -> str:
    """Locally administered unicast MAC 02:77:00:00:00:<last octet>: readable in captures and
    distinct within one test bed (two test beds never share a bridge)."""
    return "02:77:00:00:00:%02x" % int(address.rsplit(".", 1)[1])


MACS = {role: _mac_for(address) for role, address in ADDRESSES.items()}


# ---------------------------------------------------------------------------------------------
# Polling (the house rule: no sleeps standing in for synchronisation)


def poll_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    interval_s: float = 0.01,
    what: str = "a condition",
    describe: Optional[Callable[[], str]] = None,
) -> Any:
    """Calls predicate until it returns a truthy value, which is returned. After timeout_s raises
    AssertionError naming `what` (and `describe()`'s account of the state, if given). The predicate
    runs at least once, and once more at the deadline, so a slow machine fails only when the
    condition really did not hold in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = predicate()
            if value:
                return value
            detail = f"\n{describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        time.sleep(interval_s)


# ---------------------------------------------------------------------------------------------
# Commands


class CommandFailed(AssertionError):
    pass


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw
) -> subprocess.CompletedProcess:
    """subprocess.run with text output captured; a failure names the command and its output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    result = subprocess.run(list(argv), timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise CommandFailed(
            f"command failed (exit {result.returncode}): {' '.join(map(str, argv))}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def _ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *map(str, argv)]


def _process_start_time(pid: int) -> Optional[str]:
    """Field 22 of /proc/PID/stat (start time in clock ticks): with the pid it identifies a process
    even after pid reuse. None if the process does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def _netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _kill_pids_in(ns: str) -> None:
    """SIGKILLs every process left inside namespace `ns` (one of ours) so that deleting it frees
    its devices at once instead of when the last process inside exits."""
    result = run(["ip", "netns", "pids", ns], check=False)
    for token in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(token), signal.SIGKILL)


def _delete_netns(ns: str) -> Optional[str]:
    """Deletes one of our namespaces; returns an error message instead of raising."""
    if not _netns_exists(ns):
        return None
    _kill_pids_in(ns)
    result = run(["ip", "netns", "del", ns], check=False)
    if result.returncode != 0 and _netns_exists(ns):
        return f"ip netns del {ns}: {result.stderr.strip()}"
    return None


def sweep_stale_runs() -> list[str]:
    """Deletes the namespaces of earlier runs whose owning process is gone (killed before it could
    clean up). Only namespaces listed in one of our markers are touched. Returns their names."""
    swept: list[str] = []
    if not MARKER_DIR.is_dir():
        return swept
    for marker in sorted(MARKER_DIR.glob("*.json")):
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # being written by its owner right now, or not ours to judge
        owner_alive = _process_start_time(record["pid"]) == record["start_time"]
        if owner_alive:
            continue
        for ns in record.get("namespaces", []):
            if ns.startswith(PREFIX + record["runid"] + "-") and _delete_netns(ns) is None:
                swept.append(ns)
        # Every DPDK prefix of the run: its first dataplane's, "-dp2", the vhost switch's and
        # the router bed's boxes' ("-box-a", ...) all start with it.
        for runtime in DPDK_RUNTIME_DIR.glob(f"{PREFIX}{record['runid']}*"):
            shutil.rmtree(runtime, ignore_errors=True)
        workdir = record.get("workdir")
        if workdir and Path(workdir).name == f"{PREFIX}{record['runid']}-netbed":
            shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return swept


# ---------------------------------------------------------------------------------------------
# Cleanup of live test beds at interpreter exit and on SIGTERM/SIGHUP

_live_testbeds: "set[Testbed]" = set()
_live_lock = threading.Lock()
_signal_cleanup_installed = False


def _destroy_live_testbeds() -> None:
    with _live_lock:
        beds = list(_live_testbeds)
    for bed in beds:
        with contextlib.suppress(Exception):
            bed.destroy()


def _terminate_into_interrupt(signum, _frame):
    # Unwinds like Ctrl-C: context managers exit, pytest stops the session and runs every fixture
    # teardown (a SystemExit would only fail the current test and go on); atexit runs after.
    signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process for good
    raise KeyboardInterrupt(f"signal {signum}")


def _install_cleanup_hooks() -> None:
    global _signal_cleanup_installed
    if _signal_cleanup_installed:
        return
    _signal_cleanup_installed = True
    atexit.register(_destroy_live_testbeds)
    if threading.current_thread() is threading.main_thread():
        # meson test ends a test that ran over its timeout with SIGTERM; the default action would
        # kill the interpreter without running any cleanup.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _terminate_into_interrupt)


# ---------------------------------------------------------------------------------------------
# eBPF tc programs


def bpf_object(name: str) -> Path:
    """Path of a compiled tc program from tests/bpf/ (e.g. "drop" -> .../drop.bpf.o). They are
    built by meson (tests/integration/meson.build) into the integration tests' build directory."""
    build_root = os.environ.get("WEIR_BUILD_ROOT")
    if not build_root:
        raise AssertionError(
            "WEIR_BUILD_ROOT is not set: run under `meson test` or set it to the build directory"
        )
    path = Path(build_root) / "tests" / "integration" / f"{name}.bpf.o"
    if not path.is_file():
        raise AssertionError(
            f"{path} does not exist: build it with"
            f" `ninja -C {build_root} tests/integration/{name}.bpf.o`"
        )
    return path


@dataclasses.dataclass
class TcBpfProgram:
    """A program attached with tc clsact + cls_bpf direct-action. Its maps are reached by id with
    bpftool (ids are global, so this works from the root namespace without touching anything of
    the host's)."""

    ns: str
    iface: str
    direction: str
    prog_id: int
    map_ids: dict[str, int]

    def _map_id(self, name: str) -> int:
        if name not in self.map_ids:
            raise AssertionError(
                f"program {self.prog_id} has no map {name!r}; it has {sorted(self.map_ids)}"
            )
        return self.map_ids[name]

    def map_update(self, name: str, key: bytes, value: bytes) -> None:
        key_hex = [f"{b:02x}" for b in key]
        value_hex = [f"{b:02x}" for b in value]
        argv = ["bpftool", "map", "update", "id", str(self._map_id(name)), "key", "hex", *key_hex]
        run([*argv, "value", "hex", *value_hex])

    def map_dump(self, name: str) -> dict[bytes, bytes]:
        entries = json.loads(
            run(["bpftool", "-j", "map", "dump", "id", str(self._map_id(name))]).stdout
        )
        return {
            bytes(int(b, 16) for b in e["key"]): bytes(int(b, 16) for b in e["value"])
            for e in entries
        }

    def read_percpu_u64_sums(self, name: str) -> list[int]:
        """A per-CPU array map of u64 counters, each summed over the CPUs, indexed by its key."""
        entries = json.loads(
            run(["bpftool", "-j", "map", "dump", "id", str(self._map_id(name))]).stdout
        )
        sums = {}
        for e in entries:
            key = struct.unpack("<I", bytes(int(b, 16) for b in e["key"]))[0]
            sums[key] = sum(
                struct.unpack("<Q", bytes(int(b, 16) for b in v["value"]))[0]
                for v in e["values"]
            )
        return [sums[i] for i in range(len(sums))]

    def read_u64_array(self, name: str) -> list[int]:
        """An array map of u64 counters (host byte order), indexed by its u32 key."""
        entries = self.map_dump(name)
        values = {struct.unpack("<I", k)[0]: struct.unpack("<Q", v)[0] for k, v in entries.items()}
        return [values[i] for i in range(len(values))]


# Configuration layouts of tests/bpf/*.bpf.c (host byte order; this runs on x86-64 only).
def drop_config(drop_fraction: float, ethertype: int = 0) -> bytes:
    """Value for drop.bpf.c's drop_config map: drop each matching frame with probability
    drop_fraction; ethertype 0 matches every frame, 0x0800 only IPv4."""
    if not 0.0 <= drop_fraction <= 1.0:
        raise ValueError(f"drop_fraction {drop_fraction} is not a probability")
    return struct.pack("<II", round(drop_fraction * 1_000_000), ethertype)


def burst_config(run: int, period: int, ethertype: int = 0, max_run_us: int = 20_000) -> bytes:
    """Value for burst_drop.bpf.c's burst_config map: every `period` matching frames a run
    begins that drops the next `run` frames, or those within max_run_us (run 0: drop nothing)."""
    if run < 0 or (run > 0 and period <= run) or max_run_us <= 0:
        raise ValueError(f"burst_config: run {run}, period {period}, max_run_us {max_run_us}")
    return struct.pack("<IIII", run, period, ethertype, max_run_us)


def bad_switch_config(
    dst_port: int, every_nth: int, patch_checksum: bool = True, match_source: bool = False
) -> bytes:
    """Value for bad_switch.bpf.c's bad_switch_cfg map: corrupt every Nth segment to dst_port,
    or, with match_source, from it (a server's answers)."""
    if not 0 < dst_port < 65536 or every_nth < 1:
        raise ValueError(f"bad_switch_config: dst_port {dst_port}, every_nth {every_nth}")
    return struct.pack(
        "<HBBI", dst_port, 1 if patch_checksum else 0, 1 if match_source else 0, every_nth
    )


# ---------------------------------------------------------------------------------------------
# Packet capture inside a namespace


@dataclasses.dataclass
class CapturedFrame:
    data: bytes  # the frame as an AF_PACKET socket reads it (up to 65535 bytes)
    wire_length: int  # tp_len: the frame's full length
    outgoing: bool  # sent by this namespace's own stack (PACKET_OUTGOING)
    checksum_not_ready: bool  # TP_STATUS_CSUMNOTREADY: L4 checksum still partial (offload)


class PacketCapture:
    """An AF_PACKET socket on one interface of one namespace, as DPDK's net_af_packet reads it.
    Started by Testbed.start_capture, which returns once the socket is bound."""

    def __init__(self, testbed: "Testbed", role: str, iface: str, max_frames: int):
        self._proc = testbed.popen(
            role,
            [sys.executable, str(Path(__file__).resolve()), "capture", iface, str(max_frames)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        ready = _read_line(self._proc, 10.0)
        if ready != "ready":
            self._proc.kill()
            _, err = self._proc.communicate()
            raise AssertionError(
                f"capture on {iface} in {testbed.ns(role)} did not start: {ready!r} {err.decode()}"
            )

    def stop(self, timeout_s: float = 10.0) -> list[CapturedFrame]:
        out, err = self._proc.communicate(b"stop\n", timeout=timeout_s)
        if self._proc.returncode != 0:
            raise AssertionError(f"capture failed (exit {self._proc.returncode}): {err.decode()}")
        frames = json.loads(out)
        return [
            CapturedFrame(bytes.fromhex(f["hex"]), f["len"], f["outgoing"], f["csum_not_ready"])
            for f in frames
        ]


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """One line of a child's stdout, within a deadline (the child's readiness handshake)."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout_s
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return buf.decode(errors="replace") + "<timeout>"
        chunk = os.read(fd, 1)
        if not chunk:
            return buf.decode(errors="replace") + "<eof>"
        buf += chunk
    return buf.decode().strip()


@dataclasses.dataclass
class TcpTransfer:
    sent: bytes
    received: bytes
    source_report: dict  # {"sent": n, "error": None or the socket error}
    sink_report: dict  # {"bytes": n, "error": None or the socket error}

    @property
    def tcp_reported_no_error(self) -> bool:
        return self.source_report["error"] is None and self.sink_report["error"] is None


# ---------------------------------------------------------------------------------------------
# The test bed


class Testbed:
    """Builds the namespaces on enter (or create()), deletes them on exit (or destroy()), also when
    the body raised, at interpreter exit, and on SIGTERM/SIGHUP."""

    __test__ = False  # not a pytest test class despite the name

    dataplane_iface = DATAPLANE_IFACE
    addresses = ADDRESSES
    macs = MACS

    def __init__(
        self, *, with_ctl: bool = True, with_gateway: bool = True, workdir: Optional[Path] = None,
        second_dataplane: bool = False,
    ):
        self.with_ctl = with_ctl
        self.with_gateway = with_gateway
        self.host_roles = ("client", *BACKEND_ROLES) + (("ctl",) if with_ctl else ())
        self.dataplane_roles = (DATAPLANE_ROLE,) + (
            (SECOND_DATAPLANE_ROLE,) if second_dataplane else ()
        )
        self.roles = (BRIDGE_ROLE, *self.host_roles, *self.dataplane_roles)
        self.runid: Optional[str] = None
        self._created: list[str] = []  # namespaces, in creation order
        self._marker: Optional[Path] = None
        self._processes: list[subprocess.Popen] = []
        self._vhost_switch: Optional[subprocess.Popen] = None
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self.workdir: Optional[Path] = None

    # --- names

    def ns(self, role: str) -> str:
        if self.runid is None:
            raise AssertionError("the test bed is not built")
        if role not in self.roles:
            raise AssertionError(f"no role {role!r}; roles are {self.roles}")
        return f"{PREFIX}{self.runid}-{role}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(role) for role in self.roles]

    @property
    def dpdk_file_prefix(self) -> str:
        """--file-prefix for a DPDK process of this run: unique, and removed by destroy()."""
        return f"{PREFIX}{self.runid}"

    def dpdk_prefix_for(self, role: str) -> str:
        """--file-prefix for the dataplane in `role`'s namespace: the first one's is
        dpdk_file_prefix, a second one's its own."""
        if role == DATAPLANE_ROLE:
            return self.dpdk_file_prefix
        return f"{self.dpdk_file_prefix}-{role}"

    @staticmethod
    def bridge_port(role: str) -> str:
        """Name, inside the bridge namespace, of the bridge-side end of `role`'s veth."""
        return f"p-{role}"

    # --- lifecycle

    def __enter__(self) -> "Testbed":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def create(self) -> "Testbed":
        if self.runid is not None:
            raise AssertionError("create() called twice")
        _install_cleanup_hooks()
        sweep_stale_runs()
        self._claim_runid()
        with _live_lock:
            _live_testbeds.add(self)
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _claim_runid(self) -> None:
        MARKER_DIR.mkdir(mode=0o755, exist_ok=True)
        for _ in range(32):
            runid = secrets.token_hex(3)
            if any(p.name.startswith(f"{PREFIX}{runid}-") for p in NETNS_DIR.glob("*")):
                continue
            marker = MARKER_DIR / f"{runid}.json"
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            self.runid = runid
            self._marker = marker
            if self._own_workdir:  # named after the run id, so a sweep can find it
                self.workdir = Path(tempfile.gettempdir()) / f"{PREFIX}{runid}-netbed"
                self.workdir.mkdir(mode=0o700)
            else:
                self.workdir = Path(self._workdir_arg)
            record = {
                "runid": runid,
                "pid": os.getpid(),
                "start_time": _process_start_time(os.getpid()),
                "namespaces": self.namespaces,
                "workdir": str(self.workdir) if self._own_workdir else None,
            }
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            return
        raise AssertionError("could not find an unused run id in 32 tries")

    def _add_netns(self, role: str) -> None:
        ns = self.ns(role)
        run(["ip", "netns", "add", ns])  # fails if the name exists: never adopt a foreign namespace
        self._created.append(ns)
        # Before any device exists, so every interface made later inherits it: no IPv6 (no router
        # solicitations or DAD in captures).
        self.sysctl(role, "net/ipv6/conf/all/disable_ipv6", "1")
        self.sysctl(role, "net/ipv6/conf/default/disable_ipv6", "1")
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _build(self) -> None:
        for role in self.roles:
            self._add_netns(role)
        br = self.ns(BRIDGE_ROLE)
        # Ports forward as soon as they are up (no STP, no forward delay). Multicast snooping off:
        # with it the bridge joins 224.0.0.106 (RFC 4286) and sends IGMP reports onto the segment,
        # which would show up in captures and in the eBPF programs' counters.
        bridge = "type bridge stp_state 0 forward_delay 0 mcast_snooping 0".split()
        run(["ip", "-n", br, "link", "add", BRIDGE_IFACE, "address", MACS["gateway"], *bridge])
        if self.with_gateway:
            gateway = f"{ADDRESSES['gateway']}/{PREFIX_LENGTH}"
            run(["ip", "-n", br, "addr", "add", gateway, "dev", BRIDGE_IFACE])
        run(["ip", "-n", br, "link", "set", BRIDGE_IFACE, "up"])
        # With br_netfilter loaded (Docker hosts load it), bridged IPv4 is validated and
        # defragmented on its way through: frames with bad header checksums, bad lengths or IHL,
        # or a lone fragment never reach dp0, and the malformed-frame tests would test the host.
        # The switch per network namespace is off here (a new namespace starts with it on).
        for family in ("iptables", "ip6tables", "arptables"):
            key = f"net/bridge/bridge-nf-call-{family}"
            if self.exec(BRIDGE_ROLE, ["test", "-e", f"/proc/sys/{key}"], check=False).returncode == 0:
                self.sysctl(BRIDGE_ROLE, key, "0")

        for role in (*self.host_roles, *self.dataplane_roles):
            iface = DATAPLANE_IFACE if role in self.dataplane_roles else HOST_IFACE
            ns = self.ns(role)
            port = self.bridge_port(role)
            # Created inside `ns` with its peer created directly in the bridge namespace: neither
            # end ever exists in the root namespace, so no host name can clash or be touched.
            peer = ["type", "veth", "peer", "name", port, "netns", br]
            run(["ip", "-n", ns, "link", "add", iface, "address", MACS[role], "mtu", "1500", *peer])
            run(["ip", "-n", br, "link", "set", port, "mtu", "1500", "master", BRIDGE_IFACE, "up"])
            if role in self.dataplane_roles:
                # DPDK reads dp0 with an AF_PACKET socket: with offloads on, the kernel hands it
                # frames with partial checksums or GSO frames larger than the MTU. Off on both
                # ends: the bridge-side end's transmit path is where checksums get completed and
                # GSO frames get segmented; dp0's own GRO would merge frames again.
                self.set_offloads(BRIDGE_ROLE, port, enabled=False)
                self.set_offloads(role, iface, enabled=False)
                # No address: the kernel must not answer ARP or ICMP for the dataplane's address.
                self.sysctl(role, f"net/ipv6/conf/{iface}/disable_ipv6", "1")
            else:
                address = f"{ADDRESSES[role]}/{PREFIX_LENGTH}"
                run(["ip", "-n", ns, "addr", "add", address, "dev", iface])
            run(["ip", "-n", ns, "link", "set", iface, "up"])

        poll_until(
            self._all_links_up,
            10.0,
            what="every veth to report carrier (operstate UP)",
            describe=lambda: run(["ip", "-n", br, "-br", "link"], check=False).stdout,
        )
        poll_until(
            self._bridge_ports_forwarding,
            10.0,
            what="every bridge port to reach forwarding",
            describe=lambda: run(["bridge", "-n", br, "link", "show"], check=False).stdout,
        )

    def _all_links_up(self) -> bool:
        for role in (*self.host_roles, *self.dataplane_roles):
            iface = DATAPLANE_IFACE if role in self.dataplane_roles else HOST_IFACE
            (link,) = json.loads(
                run(["ip", "-n", self.ns(role), "-j", "link", "show", iface]).stdout
            )
            if link.get("operstate") != "UP":
                return False
        return True

    def _bridge_ports_forwarding(self) -> bool:
        links = json.loads(run(["bridge", "-n", self.ns(BRIDGE_ROLE), "-j", "link", "show"]).stdout)
        states = {
            link["ifname"]: link.get("state")
            for link in links
            if link.get("master") == BRIDGE_IFACE
        }
        expected = {self.bridge_port(role) for role in (*self.host_roles, *self.dataplane_roles)}
        return set(states) == expected and all(state == "forwarding" for state in states.values())

    def destroy(self) -> None:
        """Idempotent. Stops the processes this test bed started, then deletes its namespaces
        (which deletes their veths and tc programs). Raises after doing all it can if anything
        could not be deleted."""
        errors: list[str] = []
        for proc in self._processes:
            _stop_process(proc, 2.0)
        self._processes.clear()
        for ns in reversed(self._created):
            error = _delete_netns(ns)
            if error:
                errors.append(error)
        self._created = [ns for ns in self._created if _netns_exists(ns)]
        self._vhost_switch = None
        if self.runid is not None:
            for role in self.dataplane_roles:
                shutil.rmtree(DPDK_RUNTIME_DIR / self.dpdk_prefix_for(role), ignore_errors=True)
            shutil.rmtree(DPDK_RUNTIME_DIR / f"{self.dpdk_file_prefix}{VHOST_SWITCH_SUFFIX}",
                          ignore_errors=True)
        if not self._created and self._marker is not None:
            with contextlib.suppress(FileNotFoundError):
                self._marker.unlink()
            self._marker = None
        if self.workdir is not None and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        with _live_lock:
            if not self._created:
                _live_testbeds.discard(self)
        if errors:
            raise AssertionError("test bed teardown left namespaces behind:\n" + "\n".join(errors))

    # --- running things inside a namespace

    def exec(
        self, role: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw
    ) -> subprocess.CompletedProcess:
        """subprocess.run of argv inside `role`'s namespace (ip netns exec)."""
        return run(_ns_argv(self.ns(role), argv), check=check, timeout=timeout, **kw)

    def popen(self, role: str, argv: Sequence[str], **kw) -> subprocess.Popen:
        """subprocess.Popen inside `role`'s namespace; stopped by destroy() if still running."""
        proc = subprocess.Popen(_ns_argv(self.ns(role), argv), **kw)
        self._processes.append(proc)
        return proc

    # What every Python source run in a namespace sees besides ARGS: emit(obj) hands the result
    # back; recv_all(sock) reads a socket to EOF; recv_exactly(sock, n) reads n bytes or raises;
    # poll_each(pending, events, timeout_s, ready) polls the sockets of `pending` (fd -> socket,
    # non-blocking) and calls ready(socket) for each that is ready until it returns True (done
    # with it), for at most timeout_s; returns the sockets never done with, by fd.
    # connect_in_batches(address, port, count, connected, batch, prepare) opens `count`
    # connections, `batch` handshakes at a time (30 s each batch), calling prepare(socket) before
    # each connect and connected(socket, error) (errno name or None) once each is done; returns
    # how many timed out (closed).
    _PYTHON_PRELUDE = (
        "import json, sys\n"
        "def emit(obj):\n"
        "    sys.stdout.write('\\n@@netbed-result@@' + json.dumps(obj) + '\\n')\n"
        "def recv_all(sock, chunk=65536):\n"
        "    data = b''\n"
        "    while True:\n"
        "        piece = sock.recv(chunk)\n"
        "        if not piece:\n"
        "            return data\n"
        "        data += piece\n"
        "def recv_exactly(sock, n):\n"
        "    data = b''\n"
        "    while len(data) < n:\n"
        "        piece = sock.recv(n - len(data))\n"
        "        if not piece:\n"
        "            raise EOFError(f'EOF after {len(data)} of {n} bytes')\n"
        "        data += piece\n"
        "    return data\n"
        "def poll_each(pending, events, timeout_s, ready):\n"
        "    import select, time\n"
        "    pending, poller = dict(pending), select.poll()\n"
        "    for fd in pending:\n"
        "        poller.register(fd, events)\n"
        "    deadline = time.monotonic() + timeout_s\n"
        "    while pending and time.monotonic() < deadline:\n"
        "        for fd, _ in poller.poll(1000):\n"
        "            if ready(pending[fd]):\n"
        "                poller.unregister(fd)\n"
        "                del pending[fd]\n"
        "    return pending\n"
        "def connect_in_batches(address, port, count, connected, batch=100, prepare=None):\n"
        "    import errno, select, socket\n"
        "    timed_out = 0\n"
        "    for first in range(0, count, batch):\n"
        "        pending = {}\n"
        "        for _ in range(min(batch, count - first)):\n"
        "            s = socket.socket()\n"
        "            if prepare:\n"
        "                prepare(s)\n"
        "            s.setblocking(False)\n"
        "            s.connect_ex((address, port))\n"
        "            pending[s.fileno()] = s\n"
        "        def done(s):\n"
        "            error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)\n"
        "            connected(s, errno.errorcode.get(error, str(error)) if error else None)\n"
        "            return True\n"
        "        for s in poll_each(pending, select.POLLOUT, 30, done).values():\n"
        "            timed_out += 1\n"
        "            s.close()\n"
        "    return timed_out\n"
    )

    def python(self, role: str, source: str, args: Any = None, *, timeout: float = 60.0) -> Any:
        """Runs Python `source` inside `role`'s namespace in a child interpreter (this one, so
        scapy from the Debian package is importable). The source sees ARGS (the JSON-decoded
        `args`) and calls emit(obj) once; the JSON-decoded obj is returned."""
        prelude = self._PYTHON_PRELUDE + "ARGS = json.loads(sys.stdin.read())\n"
        result = self.exec(
            role, [sys.executable, "-c", prelude + source], input=json.dumps(args), timeout=timeout
        )
        marker = "@@netbed-result@@"
        if marker not in result.stdout:
            raise AssertionError(
                f"python in {self.ns(role)} emitted nothing\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return json.loads(result.stdout.rsplit(marker, 1)[1])

    def python_popen(self, role: str, source: str, args: Any = None, **kw) -> subprocess.Popen:
        """The same in the background (a load that runs while the test acts): ARGS come on the
        command line, so stdin stays free for the test to talk to the child."""
        prelude = self._PYTHON_PRELUDE + "ARGS = json.loads(sys.argv[1])\n"
        return self.popen(role, [sys.executable, "-c", prelude + source, json.dumps(args)], **kw)

    def start_frame_echo(self, role: str, listen: str, stats_file: Optional[Path] = None,
                         build_root: Optional[Path] = None) -> subprocess.Popen:
        """weir-frame-echo (tools/) in `role` on `listen` (ADDRESS:PORT), once it listens."""
        build = build_root or Path(os.environ["WEIR_BUILD_ROOT"])
        argv = [str(build / "tools" / "weir-frame-echo"), "--listen", listen]
        if stats_file is not None:
            argv += ["--stats-file", str(stats_file)]
        proc = self.popen(role, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc.stdout = proc.stderr  # its readiness line is on stderr
        line = _read_line(proc, 10.0)
        if not line.startswith("listening on"):
            raise AssertionError(f"weir-frame-echo in {role} did not start: {line}")
        return proc

    # --- interfaces

    def sysctl(self, role: str, key: str, value: str) -> None:
        """Writes /proc/sys/KEY (e.g. "net/ipv6/conf/all/disable_ipv6") in `role`'s namespace:
        /proc/sys/net belongs to the namespace of the process that opens it."""
        self.exec(role, ["tee", f"/proc/sys/{key}"], input=value + "\n")

    def set_offloads(self, role: str, iface: str, *, enabled: bool) -> None:
        state = "on" if enabled else "off"
        self.exec(
            role, ["ethtool", "-K", iface, "tx", state, "tso", state, "gso", state, "gro", state]
        )

    def offloads(self, role: str, iface: str) -> dict[str, bool]:
        """`ethtool -k` as {feature: enabled}, e.g. {"tx-checksumming": False, ...}."""
        features = {}
        for line in self.exec(role, ["ethtool", "-k", iface]).stdout.splitlines()[1:]:
            match = re.match(r"^\s*([a-z0-9-]+):\s+(on|off)\b", line)
            if match:
                features[match.group(1)] = match.group(2) == "on"
        return features

    def add_address(self, role: str, address: str) -> None:
        """A further address on the host's eth0 (same MAC: its kernel answers ARP for both)."""
        run(["ip", "-n", self.ns(role), "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", HOST_IFACE])

    def ipv4_addresses(self, role: str) -> dict[str, list[str]]:
        """{ifname: ["a.b.c.d/len", ...]} for every interface of the namespace."""
        links = json.loads(run(["ip", "-n", self.ns(role), "-j", "addr", "show"]).stdout)
        return {
            link["ifname"]: [
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", [])
                if a.get("family") == "inet"
            ]
            for link in links
        }

    # --- traffic helpers

    def ping(
        self,
        role: str,
        address: str,
        *,
        count: int = 1,
        interval_s: Optional[float] = None,
        wait_s: float = 1.0,
        timeout: float = 60.0,
    ) -> tuple[int, int]:
        """Pings from `role`'s namespace; returns (transmitted, received)."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", f"{wait_s:g}"]
        if interval_s is not None:
            argv += ["-i", f"{interval_s:g}"]
        result = self.exec(role, [*argv, address], check=False, timeout=timeout)
        match = re.search(r"(\d+) packets transmitted, (\d+) received", result.stdout)
        if not match:
            raise AssertionError(f"cannot parse ping output: {result.stdout}{result.stderr}")
        return int(match.group(1)), int(match.group(2))

    def wait_reachable(self, role: str, address: str, timeout_s: float = 10.0) -> None:
        poll_until(
            lambda: self.ping(role, address)[1] == 1,
            timeout_s,
            what=f"{address} to answer ping from {self.ns(role)}",
        )

    def snmp(self, role: str) -> dict[str, int]:
        """The namespace's /proc/net/snmp counters as {"Tcp.InCsumErrors": n, ...}."""
        text = self.exec(role, ["cat", "/proc/net/snmp"]).stdout.splitlines()
        counters = {}
        for header, values in zip(text[0::2], text[1::2]):
            proto, names = header.split(":", 1)
            for name, value in zip(names.split(), values.split(":", 1)[1].split()):
                counters[f"{proto}.{name}"] = int(value)
        return counters

    def start_capture(self, role: str, iface: str, max_frames: int = 100_000) -> PacketCapture:
        return PacketCapture(self, role, iface, max_frames)

    def tcp_transfer(
        self, src_role: str, dst_role: str, data: bytes, port: int, timeout_s: float = 30.0
    ) -> "TcpTransfer":
        """Sends `data` over one TCP connection from src_role to dst_role's address:port (a small
        Python peer in each namespace) and returns what arrived and what each side's socket
        calls reported."""
        sent_path = self.workdir / f"tcp-{port}.sent"
        received_path = self.workdir / f"tcp-{port}.received"
        sent_path.write_bytes(data)
        helper = [sys.executable, str(Path(__file__).resolve())]
        sink = self.popen(
            dst_role,
            [*helper, "tcp-sink", str(port), str(received_path), str(timeout_s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        ready = _read_line(sink, 10.0)
        if ready != "ready":
            _stop_process(sink, 1.0)
            raise AssertionError(
                f"tcp-sink in {self.ns(dst_role)} did not start: {ready!r}"
                f" {sink.stderr.read().decode()}"
            )
        source = self.exec(
            src_role,
            [*helper, "tcp-source", ADDRESSES[dst_role], str(port), str(sent_path), str(timeout_s)],
            timeout=timeout_s + 10,
        )
        out, err = sink.communicate(timeout=timeout_s + 10)
        if sink.returncode != 0:
            raise AssertionError(f"tcp-sink failed (exit {sink.returncode}): {err.decode()}")
        return TcpTransfer(
            sent=data,
            received=received_path.read_bytes() if received_path.exists() else b"",
            source_report=json.loads(source.stdout),
            sink_report=json.loads(out),
        )

    # --- eBPF

    def attach_tc_bpf(
        self,
        role: str,
        iface: str,
        obj: Path | str,
        section: str = "tc",
        direction: str = "ingress",
    ) -> TcBpfProgram:
        """Loads a tc program: clsact qdisc (added once per interface) and a cls_bpf filter in
        direct-action mode on `direction` ("ingress" or "egress")."""
        if direction not in ("ingress", "egress"):
            raise ValueError(f"direction must be ingress or egress, not {direction!r}")
        qdiscs = self.exec(role, ["tc", "qdisc", "show", "dev", iface]).stdout
        if "clsact" not in qdiscs:
            self.exec(role, ["tc", "qdisc", "add", "dev", iface, "clsact"])
        before = self._tc_prog_ids(role, iface, direction)
        program = ["bpf", "direct-action", "obj", str(obj), "sec", section]
        self.exec(role, ["tc", "filter", "add", "dev", iface, direction, *program])
        new = self._tc_prog_ids(role, iface, direction) - before
        if len(new) != 1:
            raise AssertionError(f"expected one new tc program on {iface} {direction}, found {new}")
        (prog_id,) = new
        prog = json.loads(run(["bpftool", "-j", "prog", "show", "id", str(prog_id)]).stdout)
        maps = {}
        for map_id in prog.get("map_ids", []):
            info = json.loads(run(["bpftool", "-j", "map", "show", "id", str(map_id)]).stdout)
            maps[info["name"]] = map_id
        return TcBpfProgram(self.ns(role), iface, direction, prog_id, maps)

    def detach_tc_bpf(self, role: str, iface: str, direction: str) -> None:
        """Removes every tc filter on that hook."""
        self.exec(role, ["tc", "filter", "del", "dev", iface, direction])

    def _tc_prog_ids(self, role: str, iface: str, direction: str) -> set[int]:
        filters = json.loads(
            self.exec(role, ["tc", "-j", "filter", "show", "dev", iface, direction]).stdout or "[]"
        )
        return {f["options"]["prog"]["id"] for f in filters if "prog" in f.get("options", {})}

    # --- the dataplane

    def dataplane_config(self, driver: Optional[str] = None) -> dict:
        """The base configuration for a weir-dataplane on this test bed (the shape of
        config/examples/contract.yaml): one port on dp0 through `driver` (PORT_DRIVERS; by
        default $WEIR_TEST_PORT_DRIVER, else af_packet). Tests add listeners and backends to a
        copy."""
        driver = driver or default_port_driver()
        device, vdev = PORT_DRIVERS[driver]
        if driver == "virtio":
            vdev = vdev.format(socket=self.vhost_switch())
        return {
            "dataplane": {
                # In the test bed's work directory: test beds run side by side.
                "control_socket": str(self.workdir / "dataplane.sock"),
                "eal": [
                    *("-l", "0-1", "--no-huge", "-m", "512", "--no-pci", "--no-shconf"),
                    *("--file-prefix", self.dpdk_file_prefix),
                    f"--vdev={device},{vdev}",
                ],
                "ports": [
                    {
                        "name": DATAPLANE_IFACE,
                        "device": device,
                        "address": f"{ADDRESSES['dp']}/{PREFIX_LENGTH}",
                        "gateway": ADDRESSES["gateway"],
                        "mtu": 1500,
                    }
                ],
            },
            "listeners": [
                {"name": "echo", "address": LISTENER_ADDRESS, "port": 7, "protocol": "echo"},
            ],
        }


    # --- the virtio port's other end

    def vhost_switch(self, timeout_s: float = 30.0) -> Path:
        """Starts, once per test bed, what stands in for a hypervisor's virtio-net backend:
        dpdk-testpmd in the dp namespace with a vhost-user server port (net_vhost0, the socket
        whose path is returned) forwarding in `io` mode to and from a net_af_packet port on dp0.
        The dataplane's net_virtio_user port connects to the socket and negotiates virtio
        features with DPDK's vhost library, as a guest's virtio PMD does with QEMU's. It polls
        one core; destroy() stops it. Returns once testpmd forwards (its "Press enter to exit",
        printed after start_packet_forwarding)."""
        socket_path = self.workdir / "vhost-dp0.sock"
        if self._vhost_switch is not None:
            if self._vhost_switch.poll() is not None:
                raise AssertionError(
                    f"dpdk-testpmd (the vhost switch) exited with {self._vhost_switch.returncode}:"
                    f"\n{self._vhost_switch_log().read_text(errors='replace')[-4000:]}"
                )
            return socket_path
        testpmd = shutil.which("dpdk-testpmd")
        if testpmd is None:
            raise AssertionError("dpdk-testpmd not found: it is in Debian's dpdk-dev (scripts/deps)")
        log = self._vhost_switch_log()
        argv = [
            # stdout line-buffered: the readiness line must reach the log file when printed.
            "stdbuf", "-oL", testpmd,
            *("-l", "0-1", "--no-huge", "-m", "256", "--no-pci", "--no-shconf"),
            *("--file-prefix", f"{self.dpdk_file_prefix}{VHOST_SWITCH_SUFFIX}"),
            f"--vdev=net_vhost0,iface={socket_path},queues=1",
            f"--vdev=net_af_packet0,iface={DATAPLANE_IFACE},framecnt=4096",
            "--",
            "--forward-mode=io",
            f"--total-num-mbufs={VHOST_SWITCH_MBUFS}",
            "--rxd=1024", "--txd=1024",
        ]
        with open(log, "wb") as out:
            # stdin stays an open pipe: non-interactive testpmd exits when it reads EOF there.
            self._vhost_switch = self.popen(
                DATAPLANE_ROLE, argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT
            )

        def forwarding() -> bool:
            if self._vhost_switch.poll() is not None:
                raise AssertionError(
                    f"dpdk-testpmd (the vhost switch) exited with {self._vhost_switch.returncode}:"
                    f"\n{log.read_text(errors='replace')[-4000:]}"
                )
            return socket_path.is_socket() and "Press enter to exit" in log.read_text(
                errors="replace")

        poll_until(forwarding, timeout_s, what="dpdk-testpmd forwarding between vhost and dp0")
        return socket_path

    def _vhost_switch_log(self) -> Path:
        return self.workdir / "vhost-switch.log"


# The vhost switch's DPDK file prefix is the test bed's with this suffix.
VHOST_SWITCH_SUFFIX = "-vhost"
# Its one mbuf pool, for both ports' rings (1024 descriptors each way) and what is in flight.
VHOST_SWITCH_MBUFS = 16384

# How the dataplane reaches dp0: driver name -> (DPDK device, its --vdev arguments).
PORT_DRIVERS = {
    # 4096 ring frames a queue: the default 512 overflows under bursts of 64 KiB writes, and
    # every overflow costs a retransmission timeout.
    "af_packet": ("net_af_packet0", f"iface={DATAPLANE_IFACE},framecnt=4096"),
    # An AF_XDP socket on dp0's queue 0: the PMD attaches its XDP program to dp0 (native XDP on
    # a veth; libxdp warns that without bpffs it loads the program without its dispatcher).
    "af_xdp": ("net_af_xdp0", f"iface={DATAPLANE_IFACE},start_queue=0,queue_count=1"),
    # DPDK's virtio PMD, as on a VM's virtio-net NIC, on a vhost-user socket served by
    # Testbed.vhost_switch ({socket} is filled in by dataplane_config).
    "virtio": ("net_virtio_user0", "path={socket},queues=1,queue_size=1024"),
}
PORT_DRIVER_ENV = "WEIR_TEST_PORT_DRIVER"


def default_port_driver() -> str:
    """$WEIR_TEST_PORT_DRIVER (af_packet, af_xdp or virtio), else af_packet: CI runs
    af_packet, and the proxy and framed suites again over virtio (the `virtio` meson suite); a
    developer can run any integration suite over another driver by setting the variable."""
    driver = os.environ.get(PORT_DRIVER_ENV, "af_packet")
    if driver not in PORT_DRIVERS:
        raise AssertionError(f"{PORT_DRIVER_ENV}={driver!r}: choose one of {sorted(PORT_DRIVERS)}")
    return driver


def kernel_has_af_xdp() -> Optional[str]:
    """None if this kernel opens AF_XDP sockets, else why not (the reason to skip with)."""
    af_xdp = getattr(socket, "AF_XDP", 44)
    try:
        socket.socket(af_xdp, socket.SOCK_RAW).close()
    except OSError as error:
        return f"this kernel cannot open an AF_XDP socket ({error}): CONFIG_XDP_SOCKETS is off"
    return None


def _stop_process(proc: subprocess.Popen, grace_s: float) -> Optional[int]:
    """SIGTERM, then SIGKILL after grace_s. Returns the exit code (None if it would not die)."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(5.0)
    return None


# ---------------------------------------------------------------------------------------------
# weir-frame-echo backends


class FrameEchoes:
    """weir-frame-echo (tools/) on `port` in each of `roles`; its counters read through SIGUSR1
    and the stats files it writes atomically."""

    def __init__(self, testbed: "Testbed", roles: Sequence[str], port: int, tag: str = "echo"):
        self.procs: dict[str, subprocess.Popen] = {}
        self.files: dict[str, Path] = {}
        for role in roles:
            path = testbed.workdir / f"{role}-{tag}.json"
            self.procs[role] = testbed.start_frame_echo(role, f"{ADDRESSES[role]}:{port}", path)
            self.files[role] = path

    def counters(self) -> dict[str, dict]:
        """Each echo's counters as of now: the old files go, SIGUSR1, and the new ones are
        polled for (a file present can only be an answer to this signal)."""
        for path in self.files.values():
            path.unlink(missing_ok=True)
        for proc in self.procs.values():
            os.kill(proc.pid, signal.SIGUSR1)

        def read_all() -> Optional[dict[str, dict]]:
            if not all(path.exists() for path in self.files.values()):
                return None
            return {role: json.loads(path.read_text()) for role, path in self.files.items()}

        return poll_until(read_all, 10.0, what="the echoes' counters")

    def total(self) -> dict[str, int]:
        """The counters summed over the echoes."""
        total: dict[str, int] = {}
        for counters in self.counters().values():
            for key, value in counters.items():
                if isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total


# ---------------------------------------------------------------------------------------------
# The dataplane process


class DataplaneProcess:
    """weir-dataplane running in the test bed's dp namespace:

        with DataplaneProcess(tb, config) as dp:
            dp.wait_ready()
            ...
        # or dp.stop() to check the exit code

    Output goes to files in the test bed's work directory; failures quote it."""

    def __init__(self, testbed: Testbed, config: dict, name: str = "dataplane",
                 env: Optional[dict] = None, role: str = DATAPLANE_ROLE):
        self.testbed = testbed
        self.role = role  # the namespace it runs in
        self.config = copy.deepcopy(config)
        self.name = name
        self.env = None if env is None else {**os.environ, **env}  # added to the environment
        build_root = os.environ.get("WEIR_BUILD_ROOT")
        if not build_root:
            raise AssertionError(
                "WEIR_BUILD_ROOT is not set: run under `meson test` or set it to the build"
                " directory"
            )
        self.executable = Path(build_root) / "dataplane" / "weir-dataplane"
        self.config_path = testbed.workdir / f"{name}.yaml"
        self.stdout_path = testbed.workdir / f"{name}.stdout"
        self.stderr_path = testbed.workdir / f"{name}.stderr"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "DataplaneProcess":
        import yaml  # python3-yaml

        if not self.executable.is_file():
            raise AssertionError(f"{self.executable} does not exist (build the dataplane first)")
        self.config_path.write_text(
            yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False)
        )
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = self.testbed.popen(
                self.role,
                [str(self.executable), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
            )
        return self

    def __enter__(self) -> "DataplaneProcess":
        return self.start()

    def __exit__(self, exc_type, *_exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if exc_type is None:
            self.stop()
        else:
            _stop_process(self.proc, 5.0)  # the body's exception is the one to report

    def output(self) -> str:
        def read(path: Path) -> str:
            return path.read_text(errors="replace") if path.exists() else ""

        return (
            f"--- {self.name} config ({self.config_path}):\n{read(self.config_path)}"
            f"--- stdout:\n{read(self.stdout_path)}--- stderr:\n{read(self.stderr_path)}"
        )

    def port_address(self, index: int = 0) -> str:
        return self.config["dataplane"]["ports"][index]["address"].split("/")[0]

    def answers_arp(self, from_role: str = "client") -> bool:
        """One ARP request from `from_role`'s eth0 for the port address; True if answered."""
        result = self.testbed.exec(
            from_role,
            ["arping", "-q", "-c", "1", "-w", "1", "-i", HOST_IFACE, self.port_address()],
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Polls until the dataplane answers ARP for its port address from the client namespace;
        fails at once, with its output, if the process exits meanwhile."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready\n"
                    + self.output()
                )
            return self.answers_arp()

        poll_until(
            ready,
            timeout_s,
            interval_s=0.05,
            what=f"{self.name} to answer ARP for {self.port_address()}",
            describe=self.output,
        )

    def stats(self, timeout_s: float = 10.0) -> dict:
        """The counters the dataplane prints as one JSON line on SIGUSR1 (polled for)."""

        def json_lines() -> list[str]:
            text = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
            # Whole lines only: a large line can be read while the dataplane is still writing it.
            complete = text[: text.rfind("\n") + 1]
            return [line for line in complete.splitlines() if line.startswith("{")]

        before = len(json_lines())
        os.kill(self.proc.pid, signal.SIGUSR1)
        lines = poll_until(
            lambda: (lambda now: now if len(now) > before else None)(json_lines()),
            timeout_s,
            what=f"{self.name} to print its counters after SIGUSR1",
            describe=self.output,
        )
        return json.loads(lines[before])

    @staticmethod
    def drops(stats: dict) -> dict[str, int]:
        """Drops by reason, summed over workers and ports."""
        total: dict[str, int] = {}
        for worker in stats["workers"]:
            for port in worker["ports"].values():
                for reason, count in port["drops"].items():
                    total[reason] = total.get(reason, 0) + count
        return total

    @staticmethod
    def total(stats: dict, section: str, name: str) -> int:
        """A worker counter (section "loop" or "l3") summed over workers."""
        return sum(worker[section][name] for worker in stats["workers"])

    def control_socket(self) -> str:
        """dataplane.control_socket's path (the key is a path, or a map with one)."""
        given = self.config["dataplane"]["control_socket"]
        return given if isinstance(given, str) else given["path"]

    def control(self, request: dict, timeout_s: float = 10.0) -> dict:
        """One request on the dataplane's control socket (docs/protocol.md, "The control
        channel"); the reply. `v` and `id` are filled in when absent."""
        import socket as socket_module

        message = {"v": 1, "id": 1, **request}
        with socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(self.control_socket())
            s.sendall(json.dumps(message).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                reply += chunk
        return json.loads(reply)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used (/proc/PID/stat), in seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def shutdown_grace_s(self) -> float:
        """dataplane.shutdown_grace_ms of the configuration, in seconds (default 5 s)."""
        return self.config["dataplane"].get("shutdown_grace_ms", 5000) / 1000

    def stop(self, timeout_s: Optional[float] = None) -> int:
        """SIGTERM, and the exit code. A dataplane that does not stop within timeout_s (by
        default 5 s after its shutdown grace, which sessions still open take) is killed and the
        test fails with its output."""
        if self.proc is None:
            raise AssertionError(f"{self.name} was never started")
        if timeout_s is None:
            timeout_s = self.shutdown_grace_s() + 5.0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
                raise AssertionError(
                    f"{self.name} did not stop within {timeout_s:g} s of SIGTERM; killed\n"
                    + self.output()
                )
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------
# pytest fixtures (import into a test module: `from netbed import testbed  # noqa: F401`)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the network-namespace test bed needs root (ip netns, tc, bpf)")


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    """One test bed shared by the tests of a module. Tests that change it (offloads, tc
    programs, processes) should use testbed_factory instead, or undo what they did."""
    _require_root()
    with Testbed() as bed:
        yield bed


@pytest.fixture
def testbed_factory() -> Iterator[Callable[..., Testbed]]:
    """make(**Testbed kwargs) -> a fresh, built Testbed, destroyed when the test ends."""
    _require_root()
    beds: list[Testbed] = []

    def make(**kwargs) -> Testbed:
        bed = Testbed(**kwargs).create()
        beds.append(bed)
        return bed

    yield make
    errors = []
    for bed in reversed(beds):
        try:
            bed.destroy()
        except AssertionError as error:
            errors.append(str(error))
    if errors:
        raise AssertionError("\n".join(errors))


# ---------------------------------------------------------------------------------------------
# Helpers run inside a namespace: python3 netbed.py COMMAND ...


def _capture_main(iface: str, max_frames: int) -> int:
    """Prints "ready" once the socket is bound, records frames until "stop" on stdin, then prints
    them as JSON."""
    eth_p_all, sol_packet, packet_auxdata, packet_outgoing = 0x0003, 263, 8, 4
    tp_status_csumnotready = 1 << 3
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(eth_p_all))
    sock.setsockopt(sol_packet, packet_auxdata, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((iface, eth_p_all))
    frames = []

    def record_one() -> None:
        data, ancdata, _flags, address = sock.recvmsg(65536, socket.CMSG_SPACE(32))
        status, length = 0, len(data)
        for level, kind, payload in ancdata:
            if level == sol_packet and kind == packet_auxdata:  # struct tpacket_auxdata
                status, length = struct.unpack_from("<II", payload)
        if len(frames) < max_frames:
            frames.append(
                {
                    "hex": data.hex(),
                    "len": length,
                    "outgoing": address[2] == packet_outgoing,
                    "csum_not_ready": bool(status & tp_status_csumnotready),
                }
            )

    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([sock, stdin], [], [], 30.0)
        if not readable or stdin in readable:
            break  # "stop" (or EOF), or 30 s without traffic or word: stop by ourselves
        record_one()
    # Drain what arrived before "stop" without blocking.
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            record_one()
    json.dump(frames, sys.stdout)
    return 0


def _tcp_sink_main(port: int, out_path: str, timeout_s: float) -> int:
    """Accepts one connection on PORT, writes everything received to OUT_PATH; prints "ready"
    when listening and a JSON report at the end."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1)
    listener.settimeout(timeout_s)
    print("ready", flush=True)
    report: dict[str, Any] = {"bytes": 0, "error": None}
    try:
        conn, _ = listener.accept()
        conn.settimeout(timeout_s)
        with conn, open(out_path, "wb") as out:
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                report["bytes"] += len(chunk)
    except OSError as error:
        report["error"] = repr(error)
    print(json.dumps(report), flush=True)
    return 0


def _tcp_source_main(host: str, port: int, in_path: str, timeout_s: float) -> int:
    """Sends IN_PATH's bytes to HOST:PORT, half-closes, waits for the peer to close; prints a JSON
    report (error is None when TCP reported nothing wrong)."""
    data = Path(in_path).read_bytes()
    report: dict[str, Any] = {"sent": 0, "error": None}
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(data)
            report["sent"] = len(data)
            conn.shutdown(socket.SHUT_WR)
            if conn.recv(1) != b"":
                report["error"] = "peer sent data"
    except OSError as error:
        report["error"] = repr(error)
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str]) -> int:
    commands = {
        "capture": lambda a: _capture_main(a[0], int(a[1])),
        "tcp-sink": lambda a: _tcp_sink_main(int(a[0]), a[1], float(a[2])),
        "tcp-source": lambda a: _tcp_source_main(a[0], int(a[1]), a[2], float(a[3])),
    }
    if not argv or argv[0] not in commands:
        print(f"usage: netbed.py {{{','.join(commands)}}} ARGS...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
