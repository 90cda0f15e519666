"""bench/compare's measurements: the test bed, the load balancers and the figures of one path.

Accounting (docs/benchmarks.md, "What a veth test bed charges to whom"):
  machine CPU  busy time of every CPU (/proc/stat: user, nice, system, irq, softirq) over the
               client's run. It includes the client, the backends, the load balancer, the
               kernel work between them, and whatever else the machine ran meanwhile.
  LB CPU       user and system time of the load balancer's processes (/proc/PID/stat, children
               included), over the same run.
  per GB       per 10^9 bytes echoed back to the bulk client (each crossed the path both ways).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from netbed import (  # noqa: E402
    ADDRESSES,
    LISTENER_ADDRESS,
    BACKEND_ROLES,
    DataplaneProcess,
    Testbed,
    poll_until,
)

BACKEND_PORT = 8000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGETS = {
    "direct": f"{ADDRESSES['b1']}:{BACKEND_PORT}",
    "weir tcp": f"{LISTENER_ADDRESS}:80",
    "weir framed": f"{LISTENER_ADDRESS}:81",
    "haproxy": f"{ADDRESSES['ctl']}:80",
    "nginx": f"{ADDRESSES['ctl']}:81",
}
# Kernel slab caches that hold a TCP socket (kernel memory a kernel proxy's connections cost).
SOCKET_SLABS = ("TCP", "sock_inode_cache")


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(5)


def machine_busy_seconds() -> float:
    """Busy time of all CPUs since boot: user + nice + system + irq + softirq (not idle, iowait,
    steal; guest time is already inside user)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (nginx's workers), by each process's parent in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(user, system) seconds of these processes, all their threads included."""
    user = system = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / CLK_TCK
            system += int(fields[12]) / CLK_TCK
    return user, system


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


def socket_slab_bytes() -> int:
    """Machine-wide bytes in the slab caches of TCP sockets (every namespace, other users too)."""
    total = 0
    for line in Path("/proc/slabinfo").read_text().splitlines()[2:]:
        fields = line.split()
        if fields[0] in SOCKET_SLABS:
            total += int(fields[1]) * int(fields[3])  # active objects x object size
    return total


def haproxy_config(threads: int, bind: str = f"{ADDRESSES['ctl']}:80") -> str:
    """HAProxy in mode tcp over b1-b3; `bind` is the bind line's arguments (bench/compare_tls
    adds `ssl crt FILE`)."""
    servers = "\n".join(f"    server {r} {ADDRESSES[r]}:{BACKEND_PORT}" for r in BACKEND_ROLES)
    return f"""global
    nbthread {threads}
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen lb
    bind {bind}
    balance roundrobin
{servers}
"""


def nginx_config(workdir: Path, workers: int) -> str:
    servers = "\n".join(f"        server {ADDRESSES[r]}:{BACKEND_PORT};" for r in BACKEND_ROLES)
    return f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 19000;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx.err warn;
events {{ worker_connections 9000; }}
stream {{
    upstream backends {{
{servers}
    }}
    server {{
        listen {ADDRESSES['ctl']}:81 backlog=4096;
        proxy_pass backends;
    }}
}}
"""


# af_packet's ring, in frames. 4,096 (the test bed's) overflowed at 1,000 concurrent transactions:
# 1.8 % of frames dropped by the kernel (rx_missed), each costing a retransmission timeout, which
# made Weir's p99 there ~1 s (docs/operations.md, "Ports"). 16,384 is 32 MiB of kernel memory.
RING_FRAMES = 16384


def weir_config(tb: Testbed, workers: int) -> dict:
    config = tb.dataplane_config()  # af_packet on dp0, idle backoff (default)
    config["dataplane"]["eal"] = [
        a.replace("framecnt=4096", f"framecnt={RING_FRAMES}") for a in config["dataplane"]["eal"]]
    if not any(f"framecnt={RING_FRAMES}" in a for a in config["dataplane"]["eal"]):
        raise SystemExit(f"the test bed's --vdev has no framecnt=4096 to replace: {config}")
    eal = config["dataplane"]["eal"]
    if workers == 2:
        # Main lcore floating over both CPUs (it mostly sleeps), one worker pinned to each.
        at = eal.index("-l")
        eal[at: at + 2] = ["--lcores", "0@(0-1),1@0,2@1"]
        config["dataplane"]["eal"] = [f"{a},qpairs=2" if a.startswith("--vdev") else a
                                      for a in eal]
    config["pools"] = [{"name": "echoes", "backends": [
        {"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in BACKEND_ROLES]}]
    config["listeners"] = [
        {"name": "tcp", "address": LISTENER_ADDRESS, "port": 80, "protocol": "tcp",
         "pool": "echoes"},
        {"name": "framed", "address": LISTENER_ADDRESS, "port": 81, "protocol": "framed",
         "pool": "echoes"},
    ]
    return config


class Bench:
    def __init__(self, build: Path, args):
        self.build = build
        self.args = args
        self.load = str(build / "bench" / "load" / "weir-bench-load")
        self.tb: Optional[Testbed] = None
        self.dataplane: Optional[DataplaneProcess] = None

    def __enter__(self) -> "Bench":
        self.tb = Testbed().create()
        tb = self.tb
        roles = ("client", "ctl", *BACKEND_ROLES)
        if self.args.kernel_offloads == "off":
            for role in roles:
                tb.set_offloads(role, "eth0", enabled=False)
                tb.set_offloads("br", Testbed.bridge_port(role), enabled=False)
        # Tens of thousands of connections a second from one address: the side that closes
        # first holds each 4-tuple in TIME-WAIT for 60 s, so without reuse the client (and a
        # kernel proxy's backend side) runs out of ports within seconds. Reuse needs TCP
        # timestamps, which every path here negotiates.
        for role in ("client", "ctl"):
            tb.sysctl(role, "net/ipv4/ip_local_port_range", "1024 65535")
            tb.sysctl(role, "net/ipv4/tcp_tw_reuse", "1")
            if tb.exec(role, ["test", "-e", "/proc/sys/net/ipv4/tcp_tw_reuse_delay"],
                       check=False).returncode == 0:
                tb.sysctl(role, "net/ipv4/tcp_tw_reuse_delay", "1")  # ms (Linux 6.13+)
        self.echoes = {}
        for role in BACKEND_ROLES:
            log = open(tb.workdir / f"{role}-echo.out", "wb")
            self.echoes[role] = tb.popen(
                role, [self.load, "echo", "--listen", f"{ADDRESSES[role]}:{BACKEND_PORT}"],
                stdout=log, stderr=subprocess.STDOUT)
        for role in BACKEND_ROLES:
            self.wait_accepting(f"{ADDRESSES[role]}:{BACKEND_PORT}", lambda: "")
        return self

    def __exit__(self, *exc) -> None:
        if self.tb is not None:
            self.tb.destroy()

    # --- helpers

    def wait_accepting(self, target: str, describe) -> None:
        host, port = target.rsplit(":", 1)
        probe = f"import socket; socket.create_connection(('{host}', {port}), 1).close()"
        poll_until(lambda: self.tb.exec("client", [sys.executable, "-c", probe],
                                        check=False).returncode == 0,
                   30.0, interval_s=0.1, what=f"{target} to accept", describe=describe)

    def client(self, argv: list[str], timeout: float) -> dict:
        r = self.tb.exec("client", [self.load, *argv], check=False, timeout=timeout)
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise SystemExit(f"weir-bench-load {' '.join(argv)} printed nothing "
                             f"(exit {r.returncode}): {r.stderr}")
        return json.loads(lines[-1])

    # --- the load balancers

    @contextlib.contextmanager
    def load_balancer(self, path: str, workers: int):
        """Starts the load balancer of `path` (none for direct); yields its pid, or None."""
        tb = self.tb
        if path == "direct":
            yield None
            return
        if path.startswith("weir"):
            with DataplaneProcess(tb, weir_config(tb, workers), name=f"weir-{workers}") as dp:
                dp.wait_ready(timeout_s=60.0)
                self.wait_accepting(TARGETS[path], dp.output)
                self.dataplane = dp
                yield dp.proc.pid
                self.dataplane = None
                dp.stop()
            return
        name = path
        if path == "haproxy":
            config = tb.workdir / "haproxy.cfg"
            config.write_text(haproxy_config(workers))
            argv = ["haproxy", "-db", "-f", str(config)]
        else:
            config = tb.workdir / "nginx.conf"
            config.write_text(nginx_config(tb.workdir, workers))
            argv = ["nginx", "-c", str(config)]
        log_path = tb.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = tb.popen("ctl", argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_accepting(TARGETS[path],
                                lambda: log_path.read_text(errors="replace"))
            yield proc.pid
        finally:
            stop_process(proc)

    # --- figures

    def accounted(self, pid: Optional[int], argv: list[str], timeout: float) -> dict:
        """Runs one client; its JSON plus the machine's and the load balancer's CPU meanwhile."""
        pids = process_tree(pid) if pid else []
        echoes = [p.pid for p in self.echoes.values()]
        busy0, (u0, s0), e0 = machine_busy_seconds(), cpu_times(pids), sum(cpu_times(echoes))
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        result = self.client(argv, timeout)
        wall = time.monotonic() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, (u1, s1), e1 = machine_busy_seconds(), cpu_times(pids), sum(cpu_times(echoes))
        result["machine_busy_s"] = busy1 - busy0
        result["machine_wall_s"] = wall
        # The test bed's own processes only (the client, reaped meanwhile, the backends and the
        # load balancer): the machine's figure without the other tenants of a shared machine,
        # but also without interrupt time the kernel does not charge to a process.
        client_s = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        result["testbed_busy_s"] = client_s + (e1 - e0) + (u1 - u0) + (s1 - s0)
        result["client_busy_s"] = client_s  # what the load tool needs: its own ceiling
        if pid:
            result["lb_user_s"], result["lb_system_s"] = u1 - u0, s1 - s0
        return result

    def idle_memory(self, pid: Optional[int], target: str) -> dict:
        """Memory per idle connection: the load balancer's RSS and the machine's TCP socket slabs
        before and while --idle-connections connections are held open (one echo each)."""
        n = self.args.idle_connections
        pids = process_tree(pid) if pid else []
        rss0, slab0 = rss_bytes(pids), socket_slab_bytes()
        proc = self.tb.popen("client", [self.load, "hold", "--connect", target,
                                        "--connections", str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("{"):
                raise SystemExit(f"hold printed {line!r}")
            held = json.loads(line)
            rss1, slab1 = rss_bytes(pids), socket_slab_bytes()
        finally:
            proc.stdin.close()
            proc.wait(30)
        ok = n - held["failed_connections"]
        return {
            "idle_connections": ok,
            "idle_failed": held["failed_connections"],
            "lb_rss_bytes": rss0,
            "lb_rss_per_idle_connection": (rss1 - rss0) / ok if pid and ok else None,
            "socket_slab_per_idle_connection": (slab1 - slab0) / ok if ok else None,
        }

    def measure(self, path: str, workers: int) -> dict:
        target, seconds = TARGETS[path], self.args.seconds
        timeout = seconds + 60
        figures: dict = {}
        with self.load_balancer(path, workers) as pid:
            figures.update(self.idle_memory(pid, target))  # first: before traffic grows pools
            for clients in (64, 1000):
                tx = self.accounted(pid, ["transactions", "--connect", target, "--clients",
                                          str(clients), "--seconds", str(seconds)], timeout)
                figures[f"tx{clients}"] = tx
                figures[f"tx{clients}_per_s"] = tx["per_second"]
                figures[f"tx{clients}_p50_us"] = tx["latency_us"]["p50"]
                figures[f"tx{clients}_p99_us"] = tx["latency_us"]["p99"]
                done = max(1, tx["transactions"])
                figures[f"tx{clients}_machine_us"] = 1e6 * tx["machine_busy_s"] / done
                figures[f"tx{clients}_testbed_us"] = 1e6 * tx["testbed_busy_s"] / done
                figures[f"tx{clients}_client_us"] = 1e6 * tx["client_busy_s"] / done
                if pid:
                    figures[f"tx{clients}_lb_us"] = (
                        1e6 * (tx["lb_user_s"] + tx["lb_system_s"]) / done)
                    figures[f"tx{clients}_lb_system_share"] = tx["lb_system_s"] / max(
                        1e-9, tx["lb_user_s"] + tx["lb_system_s"])
            for connections in (1, 16):
                bulk = self.accounted(pid, ["bulk", "--connect", target, "--connections",
                                            str(connections), "--seconds", str(seconds)],
                                      timeout)
                figures[f"bulk{connections}"] = bulk
                gb = max(1e-9, bulk["echoed_bytes"] / 1e9)
                figures[f"bulk{connections}_gbit_s"] = bulk["echoed_bytes_per_second"] * 8 / 1e9
                figures[f"bulk{connections}_machine_s_per_gb"] = bulk["machine_busy_s"] / gb
                figures[f"bulk{connections}_testbed_s_per_gb"] = bulk["testbed_busy_s"] / gb
                if pid:
                    figures[f"bulk{connections}_lb_s_per_gb"] = (
                        bulk["lb_user_s"] + bulk["lb_system_s"]) / gb
            lat = self.client(["latency", "--connect", target, "--rate",
                               str(self.args.latency_rate), "--seconds", str(seconds)], timeout)
            figures["latency"] = lat
            figures["latency_p50_us"] = lat["latency_us"]["p50"]
            figures["latency_p99_us"] = lat["latency_us"]["p99"]
            if path.startswith("weir"):
                figures["weir_counters"] = self.weir_counters()
        return figures

    def weir_counters(self) -> dict:
        """The dataplane's drop and framed counters after the figures (corruption must be 0)."""
        stats = self.dataplane.stats()
        corrupt: dict[str, int] = {}  # every counter named *corrupt*, summed over workers
        for name, value in re.findall(r'"([a-z_]*corrupt[a-z_]*)": (\d+)', json.dumps(stats)):
            corrupt[name] = corrupt.get(name, 0) + int(value)
        devices = {port: {k: v for k, v in counters.items() if k.startswith(("rx_", "tx_"))}
                   for port, counters in stats.get("devices", {}).items()}
        return {"drops": DataplaneProcess.drops(stats), "corrupt": corrupt, "devices": devices}


def summarise(results: dict) -> dict:
    """Median, min and max of every numeric figure, by workers and path."""
    summary: dict = {}
    for entry in results["runs"]:
        key = f"{entry['workers']}"
        for name, value in entry["figures"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                summary.setdefault(key, {}).setdefault(entry["path"], {}).setdefault(
                    name, []).append(value)
    for by_path in summary.values():
        for figures in by_path.values():
            for name, values in figures.items():
                figures[name] = {"median": statistics.median(values), "min": min(values),
                                 "max": max(values), "runs": values}
    return summary
