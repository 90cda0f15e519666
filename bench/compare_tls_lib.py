"""bench/compare_tls's load balancers and figures (the test bed and accounting of compare_lib)."""

from __future__ import annotations

import contextlib
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from compare_lib import (  # noqa: E402
    BACKEND_PORT,
    Bench,
    cpu_times,
    haproxy_config,
    machine_busy_seconds,
    process_tree,
    stop_process,
    weir_config,
)
from netbed import ADDRESSES, BACKEND_ROLES, LISTENER_ADDRESS, DataplaneProcess, poll_until

TARGETS = {
    "weir tls": f"{LISTENER_ADDRESS}:7443",
    "haproxy tls": f"{ADDRESSES['ctl']}:443",
    "stunnel tls": f"{ADDRESSES['ctl']}:444",
}
LB_CPU = "1"
SNI = "site.example"
CLIENTS = 32
BULK_CONNECTIONS = (1, 16)


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """An ECDSA P-256 certificate for site.example: (cert, key, cert+key for HAProxy)."""
    cert, key, both = directory / "site.pem", directory / "site.key", directory / "site.both.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={SNI}",
         "-addext", f"subjectAltName=DNS:{SNI}"], check=True, capture_output=True, timeout=60)
    both.write_text(cert.read_text() + key.read_text())
    return cert, key, both


def stunnel_config(workdir: Path, cert: Path, key: Path) -> str:
    connects = "\n".join(f"connect = {ADDRESSES[r]}:{BACKEND_PORT}" for r in BACKEND_ROLES)
    return f"""foreground = yes
pid = {workdir}/stunnel.pid
output = {workdir}/stunnel.out
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[tls]
accept = {TARGETS['stunnel tls']}
cert = {cert}
key = {key}
failover = rr
{connects}
"""


def weir_tls_config(tb, cert: Path, key: Path) -> dict:
    config = weir_config(tb, 1)  # af_packet, one worker; its pools: echoes over b1-b3
    eal = config["dataplane"]["eal"]
    at = eal.index("-l")
    eal[at: at + 2] = ["--lcores", f"0@{LB_CPU},1@{LB_CPU}"]  # main and worker lcore on CPU 1
    config["listeners"] = [{
        "name": "secure", "address": LISTENER_ADDRESS, "port": 7443, "protocol": "tls",
        "pool": "echoes", "tls": {"certificates": [{"cert": str(cert), "key": str(key)}]}}]
    config["tls"] = {"workers": 1, "ticket_key_rotation_s": 3600, "user": "nobody"}
    config["control"] = {"socket": str(tb.workdir / "control.sock"),
                         "state_file": str(tb.workdir / "control-state.json"),
                         "metrics": {"listen": "127.0.0.1:9465"}}
    return config


class TlsBench(Bench):
    def __enter__(self) -> "TlsBench":
        super().__enter__()
        self.cert, self.key, self.both = make_certificate(self.tb.workdir)
        self.tls_worker_pids: list[int] = []
        return self

    @contextlib.contextmanager
    def load_balancer(self, path: str, workers: int = 1):
        """Starts `path`'s load balancer; yields the pids whose CPU is its cost."""
        tb = self.tb
        if path == "weir tls":
            import yaml

            config = weir_tls_config(tb, self.cert, self.key)
            with DataplaneProcess(tb, config, name="weir-tls") as dp:
                dp.wait_ready(timeout_s=60.0)
                config_path = tb.workdir / "weir-control.yaml"
                config_path.write_text(yaml.safe_dump(config, sort_keys=False))
                log = tb.workdir / "weir-control.log"
                control = tb.popen("ctl", [
                    "taskset", "-c", LB_CPU, str(self.build / "control" / "weir-control"),
                    "--config", str(config_path),
                    "--tls-worker", str(self.build / "tls" / "weir-tls-worker")],
                    stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
                try:
                    poll_until(lambda: "attached: " in dp.output(), 30.0,
                               what="the TLS worker to attach",
                               describe=lambda: dp.output() + log.read_text())
                    self.wait_accepting(TARGETS[path], dp.output)
                    self.dataplane = dp
                    tree = process_tree(control.pid)
                    self.tls_worker_pids = [p for p in tree if _comm(p) == "weir-tls-worker"]
                    yield [dp.proc.pid, *tree]
                finally:
                    self.dataplane = None
                    stop_process(control)
                dp.stop()
            return
        if path == "haproxy tls":
            config = tb.workdir / "haproxy-tls.cfg"
            config.write_text(haproxy_config(1, bind=f"{TARGETS[path]} ssl crt {self.both}"))
            argv = ["taskset", "-c", LB_CPU, "haproxy", "-db", "-f", str(config)]
        else:
            config = tb.workdir / "stunnel.conf"
            config.write_text(stunnel_config(tb.workdir, self.cert, self.key))
            argv = ["taskset", "-c", LB_CPU, "stunnel4", str(config)]
        log_path = tb.workdir / f"{path.split()[0]}.log"
        with open(log_path, "wb") as log:
            proc = tb.popen("ctl", argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_accepting(TARGETS[path], lambda: log_path.read_text(errors="replace"))
            yield process_tree(proc.pid)
        finally:
            stop_process(proc)

    def accounted_pids(self, pids: list[int], argv: list[str], timeout: float) -> dict:
        busy0, (u0, s0) = machine_busy_seconds(), cpu_times(pids)
        t0 = time.monotonic()
        result = self.client(argv, timeout)
        result["machine_wall_s"] = time.monotonic() - t0
        busy1, (u1, s1) = machine_busy_seconds(), cpu_times(pids)
        result["machine_busy_s"] = busy1 - busy0
        result["lb_user_s"], result["lb_system_s"] = u1 - u0, s1 - s0
        return result

    def measure(self, path: str, workers: int = 1) -> dict:
        target, seconds = TARGETS[path], self.args.seconds
        timeout = seconds + 90
        figures: dict = {}
        with self.load_balancer(path) as pids:
            pids = [p for pid in pids for p in process_tree(pid)]
            for kind, extra in (("full", []), ("resumed", ["--resume"])):
                tx = self.accounted_pids(pids, [
                    "tls-transactions", "--connect", target, "--clients", str(CLIENTS),
                    "--seconds", str(seconds), "--sni", SNI, *extra], timeout)
                done = max(1, tx["transactions"])
                figures[kind] = tx
                figures[f"{kind}_per_s"] = tx["per_second"]
                figures[f"{kind}_failures"] = tx["failures"]
                figures[f"{kind}_resumed_share"] = tx["resumed"] / done
                figures[f"{kind}_lb_us"] = 1e6 * (tx["lb_user_s"] + tx["lb_system_s"]) / done
                figures[f"{kind}_machine_us"] = 1e6 * tx["machine_busy_s"] / done
                figures[f"{kind}_p50_us"] = tx["latency_us"]["p50"]
            for connections in BULK_CONNECTIONS:
                bulk = self.accounted_pids(pids, [
                    "tls-bulk", "--connect", target, "--connections", str(connections),
                    "--seconds", str(seconds), "--sni", SNI], timeout)
                gb = max(1e-9, bulk["echoed_bytes"] / 1e9)
                figures[f"bulk{connections}"] = bulk
                figures[f"bulk{connections}_failures"] = bulk["failures"]
                figures[f"bulk{connections}_gbit_s"] = bulk["echoed_bytes_per_second"] * 8 / 1e9
                figures[f"bulk{connections}_lb_s_per_gb"] = (
                    bulk["lb_user_s"] + bulk["lb_system_s"]) / gb
                figures[f"bulk{connections}_machine_s_per_gb"] = bulk["machine_busy_s"] / gb
            if path == "weir tls":
                stats = self.dataplane.stats()
                figures["weir_listener"] = stats.get("listeners", {}).get("secure", {})
        return figures

    def profile_weir(self, out: Path) -> dict:
        """Weir under perf (`-e cpu-clock`, its TLS worker and its dataplane sampled apart) for a
        full-handshake run and a 16-session bulk run: CPU per transaction or per GB by process,
        and the top symbols (perf-{case}-{process}.txt in `out`)."""
        seconds = max(5, self.args.seconds)
        target = TARGETS["weir tls"]
        cases = {
            "full": ["tls-transactions", "--connect", target, "--clients", str(CLIENTS),
                     "--seconds", str(seconds), "--sni", SNI],
            "bulk16": ["tls-bulk", "--connect", target, "--connections", "16", "--seconds",
                       str(seconds), "--sni", SNI],
        }
        report: dict = {}
        with self.load_balancer("weir tls") as pids:
            processes = {"tls_worker": self.tls_worker_pids, "dataplane": [pids[0]]}
            for case, argv in cases.items():
                records = {}
                for name, tpids in processes.items():
                    data = out / f"perf-{case}-{name}.data"
                    records[name] = (data, subprocess.Popen(
                        ["perf", "record", "-e", "cpu-clock", "-F", "999", "-o", str(data),
                         "-p", ",".join(map(str, tpids)), "--", "sleep", str(seconds + 1)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(0.5)
                result = self.client(argv, seconds + 90)
                work = (result["transactions"] if case == "full"
                        else result["echoed_bytes"] / 1e9)
                entry = {"work": work, "unit": "transaction" if case == "full" else "GB"}
                for name, (data, proc) in records.items():
                    proc.wait(seconds + 30)
                    text = subprocess.run(
                        ["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,symbol",
                         "--percent-limit", "0.5"], capture_output=True, text=True).stdout
                    (out / f"perf-{case}-{name}.txt").write_text(text)
                    count = re.search(r"Event count \(approx\.\): (\d+)", text)
                    cpu_s = int(count.group(1)) / 1e9 if count else 0.0  # cpu-clock: ns
                    entry[name] = {
                        "cpu_s": cpu_s, "cpu_per_unit": cpu_s / max(1e-9, work),
                        "top": [" ".join(line.split()) for line in text.splitlines()
                                if re.match(r"\s+\d+\.\d+%", line)][:25]}
                report[case] = entry
        return report


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def summarise(results: dict) -> dict:
    summary: dict = {}
    for entry in results["runs"]:
        for name, value in entry["figures"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                summary.setdefault(entry["path"], {}).setdefault(name, []).append(value)
    for figures in summary.values():
        for name, values in figures.items():
            figures[name] = {"median": statistics.median(values), "min": min(values),
                             "max": max(values), "runs": values}
    return summary


ROWS = (
    ("full_per_s", "full handshakes: transactions/s", "{:,.0f}"),
    ("full_lb_us", "LB CPU per full transaction (µs)", "{:,.0f}"),
    ("full_machine_us", "machine CPU per full transaction (µs)", "{:,.0f}"),
    ("resumed_per_s", "resumed: transactions/s", "{:,.0f}"),
    ("resumed_resumed_share", "resumed: share actually resumed", "{:.2f}"),
    ("resumed_lb_us", "LB CPU per resumed transaction (µs)", "{:,.0f}"),
    ("resumed_machine_us", "machine CPU per resumed transaction (µs)", "{:,.0f}"),
    ("bulk1_gbit_s", "bulk, 1 session: Gbit/s echoed", "{:.2f}"),
    ("bulk1_lb_s_per_gb", "bulk, 1 session: LB CPU s/GB", "{:.2f}"),
    ("bulk16_gbit_s", "bulk, 16 sessions: Gbit/s echoed", "{:.2f}"),
    ("bulk16_lb_s_per_gb", "bulk, 16 sessions: LB CPU s/GB", "{:.2f}"),
)


def write_table(results: dict, path: Path) -> str:
    summary = results["summary"]
    paths = [p for p in ("weir tls", "haproxy tls", "stunnel tls") if p in summary]
    lines = ["| figure (median [min-max]) | " + " | ".join(paths)
             + (" | Weir / HAProxy |" if {"weir tls", "haproxy tls"} <= set(paths) else " |"),
             "|---" * (len(paths) + 1 + ({"weir tls", "haproxy tls"} <= set(paths))) + "|"]
    for key, label, fmt in ROWS:
        cells = []
        for p in paths:
            f = summary[p].get(key)
            cells.append("-" if f is None else
                         f"{fmt.format(f['median'])} [{fmt.format(f['min'])}-"
                         f"{fmt.format(f['max'])}]")
        if {"weir tls", "haproxy tls"} <= set(paths):
            w, h = summary["weir tls"].get(key), summary["haproxy tls"].get(key)
            cells.append(f"{w['median'] / h['median']:.2f}" if w and h and h["median"] else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    failures = {p: sum(summary[p].get(k, {"median": 0})["median"] for k in summary[p]
                       if k.endswith("_failures")) for p in paths}
    lines.append("")
    lines.append(f"runs: {results['settings']['runs']} x {results['settings']['seconds']} s a "
                 f"figure; load average at start {results['machine']['load_average_at_start']}, "
                 f"at end {results.get('load_average_at_end')}; failures (median sum) {failures}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


if __name__ == "__main__":
    sys.exit("a library of bench/compare_tls")
