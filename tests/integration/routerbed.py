"""The router test bed of docs/scale-out.md ("The test bed"): Weir boxes behind a router that
learns the VIP from each box over BGP and spreads clients' flows over them by ECMP.

    weir-<runid>-client  eth0 10.77.2.1 ── c0 10.77.2.254 ┐
                                                weir-<runid>-rtr  (FRR: zebra, bgpd, bfdd)
             data bridge br0 ── eth0 10.77.0.254 ──────────┤  ECMP over the boxes' next hops,
             mgmt bridge br1 ── mgmt0 10.77.9.1 ───────────┘  fib_multipath_hash_policy=1
    weir-<runid>-box-N   dp0 (DPDK, net_af_packet; the box's port 10.77.0.2N) on br0
                         mgmt0 10.77.9.2N on br1 (the kernel's: BIRD 2's BGP session, weir-control)
    weir-<runid>-b1..b3  eth0 10.77.0.11-13 on br0 (the backends)
    weir-<runid>-br      br0 (data) and br1 (management), STP off

Each box is a weir-dataplane (idle backoff), a weir-control with `cluster.bird` and a BIRD 2
announcing the VIP /32 with the box's data address as next hop (hold time 3 s, keepalive 1 s,
BFD 300 ms x 3). The router's bgpd accepts any box of 10.77.9.0/24 (`bgp listen range`), all in one AS, so a box that
joins needs no router change; `maximum-paths` makes the routes one multipath route. The clients'
packets reach a box by the router's 5-tuple hash; the owner answers the client directly through
the router (its gateway). Every process is started with Testbed.popen and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence


from netbed import (
    ADDRESSES,
    BACKEND_ROLES,
    BRIDGE_IFACE,
    BRIDGE_ROLE,
    DATAPLANE_IFACE,
    HOST_IFACE,
    MACS,
    DataplaneProcess,
    Testbed,
    _mac_for,
    poll_until,
    run,
)

ROUTER_ROLE = "rtr"
MGMT_BRIDGE = "br1"
MGMT_IFACE = "mgmt0"
ROUTER_DATA_ADDRESS = ADDRESSES["gateway"]  # 10.77.0.254: the boxes' gateway, as in netbed
ROUTER_MGMT_ADDRESS = "10.77.9.1"
ROUTER_CLIENT_ADDRESS = "10.77.2.254"
CLIENT_ADDRESS = "10.77.2.1"
MGMT_PREFIX = "10.77.9.0/24"
# A VIP outside every connected subnet: the router reaches it only through BGP routes.
VIP = "10.77.5.100"
VIP_PORT = 80
BACKEND_PORT = 8000
ROUTER_AS, BOX_AS = 65000, 65001
BOX_NAMES = ("a", "b", "c", "d")
BOX_ADDRESSES = {name: f"10.77.0.{21 + i}" for i, name in enumerate(BOX_NAMES)}
BOX_MGMT_ADDRESSES = {name: f"10.77.9.{21 + i}" for i, name in enumerate(BOX_NAMES)}
# Each box's node_id (what framed listeners stamp into the hops of the frames they forward).
BOX_NODE_IDS = {name: 21 + i for i, name in enumerate(BOX_NAMES)}
FRR = Path("/usr/lib/frr")
BIRD = "bird"
BUILD_CONTROL = "control/weir-control"
BACKEND_SERVER = Path(__file__).with_name("backend_server.py")


def box_role(node: str) -> str:
    return f"box-{node}"


class RouterBed(Testbed):
    """The namespaces and links above; Box and Router start the processes."""

    def __init__(self, boxes: Sequence[str] = ("a", "b", "c")):
        super().__init__(with_ctl=False, with_gateway=False)
        self.boxes = tuple(boxes)
        self.host_roles = ("client", *BACKEND_ROLES)
        self.dataplane_roles = tuple(box_role(n) for n in self.boxes)
        self.roles = (BRIDGE_ROLE, ROUTER_ROLE, *self.host_roles, *self.dataplane_roles)

    def _veth_to_bridge(self, role: str, iface: str, bridge: str, port: str, mac: str,
                        address: Optional[str]) -> None:
        # As netbed: each pair is created inside its namespace with its peer created in the
        # bridge's, so no end ever exists in the root namespace.
        br = self.ns(BRIDGE_ROLE)
        run(["ip", "-n", self.ns(role), "link", "add", iface, "address", mac, "mtu", "1500",
             "type", "veth", "peer", "name", port, "netns", br])
        run(["ip", "-n", br, "link", "set", port, "mtu", "1500", "master", bridge, "up"])
        if address:
            run(["ip", "-n", self.ns(role), "addr", "add", address, "dev", iface])
        run(["ip", "-n", self.ns(role), "link", "set", iface, "up"])

    def _build(self) -> None:
        for role in self.roles:
            self._add_netns(role)
        br = self.ns(BRIDGE_ROLE)
        for bridge in (BRIDGE_IFACE, MGMT_BRIDGE):
            run(["ip", "-n", br, "link", "add", bridge, "type", "bridge", "stp_state", "0",
                 "forward_delay", "0", "mcast_snooping", "0"])
            run(["ip", "-n", br, "link", "set", bridge, "up"])
        for family in ("iptables", "ip6tables", "arptables"):  # see netbed's _build
            key = f"net/bridge/bridge-nf-call-{family}"
            if self.exec(BRIDGE_ROLE, ["test", "-e", f"/proc/sys/{key}"],
                         check=False).returncode == 0:
                self.sysctl(BRIDGE_ROLE, key, "0")

        rtr = self.ns(ROUTER_ROLE)
        self._veth_to_bridge(ROUTER_ROLE, HOST_IFACE, BRIDGE_IFACE, "p-rtr", MACS["gateway"],
                             f"{ROUTER_DATA_ADDRESS}/24")
        self._veth_to_bridge(ROUTER_ROLE, MGMT_IFACE, MGMT_BRIDGE, "m-rtr",
                             _mac_for(ROUTER_MGMT_ADDRESS).replace(":77:", ":79:"),
                             f"{ROUTER_MGMT_ADDRESS}/24")
        # The client hangs off the router directly.
        client = self.ns("client")
        run(["ip", "-n", client, "link", "add", HOST_IFACE, "type", "veth", "peer", "name", "c0",
             "netns", rtr])
        run(["ip", "-n", client, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", HOST_IFACE])
        run(["ip", "-n", rtr, "addr", "add", f"{ROUTER_CLIENT_ADDRESS}/24", "dev", "c0"])
        run(["ip", "-n", client, "link", "set", HOST_IFACE, "up"])
        run(["ip", "-n", rtr, "link", "set", "c0", "up"])
        run(["ip", "-n", client, "route", "add", "default", "via", ROUTER_CLIENT_ADDRESS])
        self.sysctl(ROUTER_ROLE, "net/ipv4/ip_forward", "1")
        # ECMP over the 5-tuple, not the addresses alone (one client would land on one box).
        self.sysctl(ROUTER_ROLE, "net/ipv4/fib_multipath_hash_policy", "1")
        self.sysctl(ROUTER_ROLE, "net/ipv4/conf/all/rp_filter", "0")

        for role in BACKEND_ROLES:
            self._veth_to_bridge(role, HOST_IFACE, BRIDGE_IFACE, f"p-{role}", MACS[role],
                                 f"{ADDRESSES[role]}/24")
        for node in self.boxes:
            role = box_role(node)
            port = f"p-{role}"
            self._veth_to_bridge(role, DATAPLANE_IFACE, BRIDGE_IFACE, port,
                                 _mac_for(BOX_ADDRESSES[node]), None)
            # DPDK reads dp0 through AF_PACKET: offloads off on both ends (see netbed).
            self.set_offloads(BRIDGE_ROLE, port, enabled=False)
            self.set_offloads(role, DATAPLANE_IFACE, enabled=False)
            self._veth_to_bridge(role, MGMT_IFACE, MGMT_BRIDGE, f"m-{role}",
                                 _mac_for(BOX_MGMT_ADDRESSES[node]).replace(":77:", ":79:"),
                                 f"{BOX_MGMT_ADDRESSES[node]}/24")
        poll_until(self._links_up, 10.0, what="every link of the router bed to be up")
        # FRR's daemons run as the frr user: they need a directory of theirs under the work
        # directory, which is reachable (not readable) by others for that.
        self.workdir.chmod(0o711)

    def _links_up(self) -> bool:
        for role in self.roles:
            if role == BRIDGE_ROLE:
                continue
            links = json.loads(run(["ip", "-n", self.ns(role), "-j", "link", "show"]).stdout)
            if any(link["ifname"] != "lo" and link.get("operstate") != "UP" for link in links):
                return False
        return True

    def vip_next_hops(self, vip: str = VIP) -> set[str]:
        """The next hops of the router's kernel route to vip/32 (what zebra installed from the
        BGP RIB: one next hop, or several for ECMP); empty when it has none."""
        routes = json.loads(self.exec(ROUTER_ROLE, ["ip", "-j", "route", "show", f"{vip}/32"]
                                      ).stdout or "[]")
        hops: set[str] = set()
        for route in routes:
            if "gateway" in route:
                hops.add(route["gateway"])
            for hop in route.get("nexthops", []):
                hops.add(hop["gateway"])
        return hops


def _stop_pid(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
    return proc.returncode


class Router:
    """FRR's zebra and bgpd in the router namespace: eBGP with every box of the management
    subnet, multipath, hold time 3 s."""

    def __init__(self, bed: RouterBed, maximum_paths: int = 8):
        self.bed = bed
        self.dir = bed.workdir / "frr"
        self.dir.mkdir()
        shutil.chown(self.dir, "frr", "frr")
        self.maximum_paths = maximum_paths
        self.procs: dict[str, subprocess.Popen] = {}

    def _daemon(self, name: str, config: str, *extra: str) -> None:
        conf = self.dir / f"{name}.conf"
        conf.write_text(config)
        argv = [str(FRR / name), "-f", str(conf), "-i", str(self.dir / f"{name}.pid"),
                "-z", str(self.dir / "zserv.api"), "--vty_socket", str(self.dir), "-P", "0",
                "--log", f"file:{self.dir / name}.log", *extra]
        self.procs[name] = self.bed.popen(ROUTER_ROLE, argv, stdout=subprocess.DEVNULL,
                                          stderr=open(self.dir / f"{name}.stderr", "wb"))

    def start(self) -> "Router":
        self._daemon("zebra", "hostname rtr\n")
        poll_until(lambda: self._alive() and (self.dir / "zserv.api").is_socket(), 10.0,
                   what="zebra's socket", describe=self.output)
        # BFD (300 ms x 3) with every box: bgpd registers its sessions with bfdd through zebra.
        self._daemon("bfdd", "hostname rtr\n", "--bfdctl", str(self.dir / "bfdd.sock"))
        poll_until(lambda: self._alive() and (self.dir / "bfdd.vty").is_socket(), 10.0,
                   what="bfdd's vty socket", describe=self.output)
        self._daemon("bgpd", "\n".join([
            "hostname rtr",
            f"router bgp {ROUTER_AS}",
            f" bgp router-id {ROUTER_MGMT_ADDRESS}",
            " no bgp ebgp-requires-policy",
            " bgp log-neighbor-changes",
            " neighbor boxes peer-group",
            f" neighbor boxes remote-as {BOX_AS}",
            " neighbor boxes timers 1 3",
            " neighbor boxes bfd",
            f" bgp listen range {MGMT_PREFIX} peer-group boxes",
            " address-family ipv4 unicast",
            f"  maximum-paths {self.maximum_paths}",
            " exit-address-family",
            ""]))
        poll_until(lambda: self._alive() and (self.dir / "bgpd.vty").is_socket(), 10.0,
                   what="bgpd's vty socket", describe=self.output)
        return self

    def _alive(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"FRR's {name} exited with {proc.returncode}\n"
                                     + self.output())
        return True

    def vtysh(self, command: str) -> str:
        return self.bed.exec(ROUTER_ROLE, ["vtysh", "--vty_socket", str(self.dir), "-c",
                                           command]).stdout

    def output(self) -> str:
        text = ""
        for path in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.stderr")):
            text += f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}"
        return text

    def stop(self) -> None:
        for name in ("bgpd", "bfdd", "zebra"):
            if name in self.procs:
                _stop_pid(self.procs[name])


class BoxDataplane(DataplaneProcess):
    def answers_arp(self, from_role: str = "b1") -> bool:  # the client is behind the router
        return super().answers_arp(from_role)


class Box:
    """One Weir box: BIRD 2, weir-dataplane and weir-control in the box's namespace."""

    def __init__(self, bed: RouterBed, node: str, peers: Sequence[str],
                 backends: Sequence[str] = BACKEND_ROLES,
                 customize: Optional[Callable[[dict], None]] = None):
        self.bed, self.node, self.role = bed, node, box_role(node)
        self.dir = bed.workdir / self.role
        self.dir.mkdir()
        config = bed.dataplane_config()
        config["node_id"] = BOX_NODE_IDS[node]
        dataplane = config["dataplane"]
        dataplane["control_socket"] = str(self.dir / "dataplane.sock")
        eal = dataplane["eal"]
        eal[eal.index("--file-prefix") + 1] = bed.dpdk_prefix_for(self.role)
        dataplane["ports"][0]["address"] = f"{BOX_ADDRESSES[node]}/24"
        config["listeners"] = [{"name": "web", "address": VIP, "port": VIP_PORT,
                                "protocol": "tcp", "pool": "app"}]
        config["pools"] = [{"name": "app", "backends": [
            {"name": role, "address": ADDRESSES[role], "port": BACKEND_PORT}
            for role in backends]}]
        config["control"] = {"socket": str(self.dir / "control.sock"),
                             "state_file": str(self.dir / "control-state.json"),
                             "metrics": {"listen": "127.0.0.1:9464"}}
        config["cluster"] = {
            "node": node,
            "peers": [{"name": n, "address": BOX_ADDRESSES[n]} for n in peers],
            "bird": {"socket": str(self.dir / "bird.ctl"),
                     "routes_file": str(self.dir / "bird-routes.conf")},
        }
        if customize is not None:
            customize(config)
        self.dataplane = BoxDataplane(bed, config, name=f"{self.role}-dataplane", role=self.role)
        self.bird: Optional[subprocess.Popen] = None
        self.control: Optional[subprocess.Popen] = None
        self.control_log = self.dir / "weir-control.log"

    def bird_config(self) -> str:
        mgmt = BOX_MGMT_ADDRESSES[self.node]
        return "\n".join([
            f"router id {mgmt};",
            f'log "{self.dir / "bird.log"}" all;',
            "protocol device {}",
            "protocol bfd {",
            f'  interface "{MGMT_IFACE}" {{ min rx interval 300 ms; min tx interval 300 ms;'
            " multiplier 3; };",
            "}",
            f'include "{self.dir / "bird-routes.conf"}";',
            "protocol bgp uplink {",
            f"  local {mgmt} as {BOX_AS};",
            f"  neighbor {ROUTER_MGMT_ADDRESS} as {ROUTER_AS};",
            "  hold time 3; keepalive time 1; connect retry time 1; bfd on;",
            "  ipv4 { import none; export where proto = \"weir_vips\";",
            f"         next hop address {BOX_ADDRESSES[self.node]}; }};",
            "}", ""])

    def start(self) -> "Box":
        # BIRD first, with no VIP (the include must exist); weir-control writes the file later.
        (self.dir / "bird-routes.conf").write_text("protocol static weir_vips { ipv4; }\n")
        (self.dir / "bird.conf").write_text(self.bird_config())
        self.bird = self.bed.popen(self.role, [
            BIRD, "-f", "-c", str(self.dir / "bird.conf"), "-s", str(self.dir / "bird.ctl"),
            "-P", str(self.dir / "bird.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "bird.stderr", "wb"))
        poll_until(lambda: self._bird_alive() and self.birdc("show status").returncode == 0,
                   10.0, what=f"{self.role}'s BIRD to answer on its control socket")
        self.dataplane.start()
        return self

    def birdc(self, command: str) -> subprocess.CompletedProcess:
        return run(["birdc", "-s", str(self.dir / "bird.ctl"), *command.split()], check=False,
                   timeout=10.0)

    def _bird_alive(self) -> bool:
        if self.bird.poll() is not None:
            raise AssertionError(f"{self.role}'s BIRD exited with {self.bird.returncode}: "
                                 + (self.dir / "bird.stderr").read_text(errors="replace"))
        return True

    def start_control(self) -> None:
        """weir-control, once the dataplane answers (start() then dataplane.wait_ready())."""
        import os
        control = Path(os.environ["WEIR_BUILD_ROOT"]) / BUILD_CONTROL
        self.control = self.bed.popen(
            self.role, [str(control), "--config", str(self.dataplane.config_path)],
            stdout=subprocess.DEVNULL, stderr=open(self.control_log, "ab"))

    def wait_announcing(self, timeout_s: float = 30.0) -> None:
        poll_until(lambda: "announcing 1 VIP(s) through BIRD" in self.log(), timeout_s,
                   what=f"{self.role}'s weir-control to announce the VIP", describe=self.output)

    def log(self) -> str:
        return self.control_log.read_text(errors="replace") if self.control_log.exists() else ""

    def weirctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        import os
        exe = Path(os.environ["WEIR_BUILD_ROOT"]) / "control" / "weirctl"
        return run([str(exe), "--socket", str(self.dir / "control.sock"), *args],
                   timeout=timeout)

    def active_sessions(self, listener: str = "web") -> int:
        return self.dataplane.stats()["listeners"][listener]["active"]

    def accepted(self, listener: str = "web") -> int:
        """The connections the box's listener has accepted (it owned their rows' SYNs)."""
        return self.dataplane.stats()["listeners"][listener]["connections"]

    def set_peers(self, states: dict[str, str]) -> None:
        """The peers' states this box computes its owner table over (the dataplane's
        cluster_peers: what an operator, or membership, sends every box): through `weirctl
        cluster-peers` where the box runs weir-control (which keeps them for a dataplane that
        restarts), else to the dataplane directly."""
        if self.control is not None and self.control.poll() is None:
            result = self.weirctl("cluster-peers", *(f"{n}={s}" for n, s in states.items()))
            assert result.returncode == 0, (self.role, states, result.stderr)
            return
        reply = self.dataplane.control({"op": "cluster_peers", "peers": states})
        assert reply["ok"] is True, (self.role, states, reply)

    def wait_peers_applied(self, states: dict[str, str], timeout_s: float = 10.0) -> None:
        """Until every worker of the box forwards by the owner table of `states` (`box`)."""
        def applied() -> bool:
            cluster = self.dataplane.control({"op": "box"})["cluster"]
            return cluster["applied"] and cluster["peers"] == states
        poll_until(applied, timeout_s, interval_s=0.02,
                   what=f"{self.role}'s workers to apply the peer states {states}")

    def output(self) -> str:
        bird_log = self.dir / "bird.log"
        bird = bird_log.read_text(errors="replace")[-3000:] if bird_log.exists() else ""
        return (self.dataplane.output() + f"--- weir-control:\n{self.log()[-3000:]}"
                + f"--- bird:\n{bird}")

    def stop(self) -> None:
        """weir-control first (it withdraws the VIPs), then the dataplane, then BIRD."""
        if self.control is not None:
            _stop_pid(self.control)
        if self.dataplane.proc is not None and self.dataplane.proc.poll() is None:
            self.dataplane.stop()
        if self.bird is not None:
            _stop_pid(self.bird)


def start_backends(bed: RouterBed, mode: str = "echo") -> dict[str, subprocess.Popen]:
    """backend_server.py in b1-b3 on BACKEND_PORT, once each says it listens."""
    import sys
    from netbed import _read_line

    procs = {}
    for role in BACKEND_ROLES:
        proc = bed.popen(role, [sys.executable, str(BACKEND_SERVER), "--listen",
                                f"{ADDRESSES[role]}:{BACKEND_PORT}", "--name", role,
                                "--mode", mode], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
        line = _read_line(proc, 10.0)
        assert line == "ready", f"backend in {role}: {line}"
        procs[role] = proc
    return procs


def start_boxes(bed: RouterBed, nodes: Sequence[str], peers: Sequence[str],
                customize: Optional[Callable[[dict], None]] = None,
                announcing: Optional[Iterable[str]] = None) -> dict[str, Box]:
    """The boxes, started side by side: BIRD and the dataplane, then weir-control once each
    dataplane answers ARP (only on the boxes of `announcing`, when given: the others do not
    announce the VIP, so the router sends them nothing)."""
    boxes = {node: Box(bed, node, peers, customize=customize) for node in nodes}
    announcing = set(nodes if announcing is None else announcing)
    for box in boxes.values():
        box.start()
    for box in boxes.values():
        box.dataplane.wait_ready(timeout_s=60.0)
        if box.node in announcing:
            box.start_control()
    for box in boxes.values():
        if box.node in announcing:
            box.wait_announcing()
    return boxes


def set_peers_everywhere(boxes: Iterable[Box], states: dict[str, str]) -> None:
    """`states` to every box of `boxes`, then until every one's workers have applied them."""
    boxes = list(boxes)
    for box in boxes:
        box.set_peers(states)
    for box in boxes:
        box.wait_peers_applied(states)


@contextlib.contextmanager
def running_bed(namespaces: Sequence[str], nodes: Sequence[str], peers: Sequence[str],
                backend_mode: str = "echo", customize: Optional[Callable[[dict], None]] = None,
                announcing: Optional[Iterable[str]] = None
                ) -> Iterator[tuple[RouterBed, Router, dict[str, Box]]]:
    """A router bed with boxes' namespaces for `namespaces`, the router, the backends and the
    boxes `nodes` started (start_boxes); everything stopped by PID at the end."""
    with RouterBed(boxes=namespaces) as bed:
        router = Router(bed).start()
        backends = start_backends(bed, mode=backend_mode)
        boxes: dict[str, Box] = {}
        try:
            boxes.update(start_boxes(bed, nodes, peers, customize=customize,
                                     announcing=announcing))
            yield bed, router, boxes
        finally:
            for box in boxes.values():
                box.stop()
            router.stop()
            for proc in backends.values():
                proc.kill()
