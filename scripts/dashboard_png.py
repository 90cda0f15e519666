#!/usr/bin/env python3
"""Renders the Corruption panels of docs/grafana/weir.json to docs/images/corruption-panels.png
from a real Prometheus scrape of the test bed (root; run with WEIR_BUILD_ROOT set, as
scripts/demo does). Grafana is not packaged in Debian: the same PromQL expressions, read from the
dashboard file, are asked of Prometheus's HTTP API (query_range, query) and drawn with matplotlib.

Topology (tests/integration/netbed.py): a client running weir-frame-load through a `framed`
listener to weir-frame-echo on b1, b2 and b3; weir-control and Prometheus (scraping it every
second) in the ctl namespace. After a clean first third, the bad switch (tests/bpf/bad_switch.bpf.c)
corrupts one in EVERY_NTH of b1's answers on b1's link: the panels must show b1's to_client path,
and only it. The listener counts corrupt frames and forwards them (on_corrupt: count), so that
b1's sessions go on and the signal lasts; a malformed header still resets its session.
Figures of a run are printed (the load generator's summary)."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "tests" / "integration"))
from netbed import (  # noqa: E402
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    FrameEchoes,
    Testbed,
    bad_switch_config,
    bpf_object,
    poll_until,
)

BACKENDS = ("b1", "b2", "b3")
BACKEND_PORT, VIP_PORT = 8000, 80
EVERY_NTH = 40
METRICS = "127.0.0.1:9464"
PROMETHEUS = "127.0.0.1:9090"
PANELS = {52: "overview", 54: "by path", 55: "share", 56: "worst paths"}

# In the ctl namespace: one Prometheus HTTP API call; ARGS = [path, params].
API_CALL = r"""
import urllib.parse, urllib.request
path, params = ARGS
url = "http://%s%s?%s" % (PROMETHEUS, path, urllib.parse.urlencode(params))
emit(json.loads(urllib.request.urlopen(url, timeout=30).read()))
""".replace("PROMETHEUS", repr(PROMETHEUS))


def config(tb: Testbed) -> dict:
    c = tb.dataplane_config()
    c["control"] = {"socket": str(tb.workdir / "control.sock"), "metrics": {"listen": METRICS}}
    c["pools"] = [{"name": "frames", "backends": [
        {"name": r, "address": ADDRESSES[r], "port": BACKEND_PORT} for r in BACKENDS]}]
    c["listeners"] = [{"name": "framed", "address": LISTENER_ADDRESS, "port": VIP_PORT,
                       "protocol": "framed", "pool": "frames", "framed": {"on_corrupt": "count"}}]
    return c


def grafana_to_promql(expr: str, seconds: int) -> str:
    return (expr.replace("$instance", ".*").replace("$__rate_interval", "5s")
            .replace("$__range", f"{seconds}s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=90, help="traffic time (default 90)")
    parser.add_argument("--out", default=str(root / "docs" / "images" / "corruption-panels.png"))
    args = parser.parse_args()
    build = Path(os.environ.setdefault("WEIR_BUILD_ROOT", str(root / "build")))
    dashboard = json.loads((root / "docs" / "grafana" / "weir.json").read_text())
    panels = {p["id"]: p for p in dashboard["panels"] if p["id"] in PANELS}
    import yaml

    with Testbed() as tb:
        FrameEchoes(tb, BACKENDS, BACKEND_PORT, "png")
        tb.set_offloads("b1", "eth0", enabled=False)
        tb.set_offloads("br", Testbed.bridge_port("b1"), enabled=False)
        switch = tb.attach_tc_bpf("br", Testbed.bridge_port("b1"), bpf_object("bad_switch"),
                                  direction="ingress")
        with DataplaneProcess(tb, config(tb)) as dp:
            dp.wait_ready(timeout_s=30.0)
            path = tb.workdir / "weir.yaml"
            path.write_text(yaml.safe_dump(dp.config, sort_keys=False))
            logs = open(tb.workdir / "weir-control.log", "wb")
            control = tb.popen("ctl", [str(build / "control" / "weir-control"), "--config",
                                       str(path)], stdout=logs, stderr=logs)
            prom_config = tb.workdir / "prometheus.yml"
            prom_config.write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "weir",
                                    "static_configs": [{"targets": [METRICS]}]}]}))
            prometheus = tb.popen("ctl", ["prometheus", f"--config.file={prom_config}",
                                          f"--storage.tsdb.path={tb.workdir / 'tsdb'}",
                                          f"--web.listen-address={PROMETHEUS}"],
                                  stdout=logs, stderr=logs)
            poll_until(lambda: tb.python("ctl", API_CALL, ["/api/v1/query", {
                "query": 'weir_dataplane_up{job="weir"} == 1'}])["data"]["result"], 60.0,
                what="Prometheus to scrape weir-control")
            start = time.time()
            load = tb.popen("client", [str(build / "tools" / "weir-frame-load"), "--connect",
                                       f"{LISTENER_ADDRESS}:{VIP_PORT}", "--connections", "24",
                                       "--rate", "2000", "--duration", str(args.seconds),
                                       "--sizes", "4000", "--reconnect", "--timeout", "30",
                                       "--json"],
                            stdout=subprocess.PIPE, stderr=logs)
            time.sleep(args.seconds / 3)  # a clean first third, for contrast
            switch.map_update("bad_switch_cfg", b"\0\0\0\0",
                              bad_switch_config(BACKEND_PORT, EVERY_NTH, match_source=True))
            summary = json.loads(load.communicate(timeout=args.seconds + 90)[0].splitlines()[-1])
            print("weir-frame-load: " + ", ".join(f"{k} {summary[k]}" for k in (
                "frames_sent", "responses_ok", "connection_resets") if k in summary))
            time.sleep(3)  # the last scrapes
            end = time.time()
            # Why b1's signal is short (docs/operations.md, the caption): per backend, the frames
            # caught corrupt and malformed (a malformed header resets its session even in count
            # mode) and the backend connections made (a reset session's replacement lands on b1
            # again only one time in three).
            for what, family in (("corrupt", "weir_backend_frames_corrupt_total"),
                                 ("malformed", "weir_backend_frames_malformed_total"),
                                 ("connections", "weir_backend_connections_total")):
                reply = tb.python("ctl", API_CALL, ["/api/v1/query", {
                    "query": f"sum by (backend) ({family})", "time": end}])
                counts = {r["metric"].get("backend", "?"): int(float(r["value"][1]))
                          for r in reply["data"]["result"]}
                print(f"{what} by backend: " + ", ".join(f"{b} {counts[b]}"
                                                         for b in sorted(counts)))
            span = int(end - start) + 1
            series = {}
            for pid, panel in panels.items():
                for target in panel["targets"]:
                    query = grafana_to_promql(target["expr"], span)
                    if target.get("instant"):
                        reply = tb.python("ctl", API_CALL, ["/api/v1/query",
                                                            {"query": query, "time": end}])
                    else:
                        reply = tb.python("ctl", API_CALL, ["/api/v1/query_range", {
                            "query": query, "start": start, "end": end, "step": 1}])
                    series[(pid, target["refId"])] = reply["data"]["result"]
            prometheus.terminate()
            prometheus.wait(10)
            control.terminate()
            control.wait(10)
            dp.stop()
    render(panels, series, start, args.out)
    print(f"wrote {args.out}")
    return 0


def render(panels, series, start, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("dark_background")
    fig, axes = plt.subplots(2, 2, figsize=(14, 8), dpi=100)
    for (ax, pid) in zip((axes[0][0], axes[0][1], axes[1][0]), (52, 54, 55)):
        ax.set_title(panels[pid]["title"], loc="left", fontsize=11)
        for s in series[(pid, "A")]:
            label = "{pool}/{backend} {direction}".format(**s["metric"]) if s["metric"] else \
                "caught"
            t = [float(v[0]) - start for v in s["values"]]
            y = [float(v[1]) for v in s["values"]]
            ax.plot(t, y, label=label, linewidth=1.2)
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.2)
        if ax.lines:
            ax.legend(fontsize=8, loc="upper left")
    ax = axes[1][1]
    ax.axis("off")
    ax.set_title(panels[56]["title"], loc="left", fontsize=11)
    # The paths of query A (the worst ten), joined with B and C on their labels, as Grafana's
    # merge transformation does.
    rows = {}
    for ref, column in (("A", 0), ("B", 1), ("C", 2)):
        for s in series[(56, ref)]:
            key = (s["metric"]["pool"], s["metric"]["backend"], s["metric"]["direction"])
            if ref == "A":
                rows[key] = ["-", "-", "-"]
            if key not in rows:
                continue
            value = float(s["value"][1])
            rows[key][column] = (f"{value:.0f}" if column == 0 else f"{100 * value:.2f} %"
                                 if column == 1 else
                                 time.strftime("%H:%M:%S", time.gmtime(value / 1000)) + " UTC")
    cells = [[*key, *values] for key, values in sorted(rows.items(), key=lambda kv: -float(
        kv[1][0]) if kv[1][0] != "-" else 0)]
    if cells:
        table = ax.table(cellText=cells, colLabels=["pool", "backend", "direction",
                                                    "caught frames", "corrupt share",
                                                    "last seen"], loc="upper center")
        table.scale(1, 1.6)
        for cell in table.get_celld().values():
            cell.set_facecolor("#181b1f")
            cell.set_edgecolor("#444444")
            cell.get_text().set_color("white")
    fig.suptitle("Weir: Corruption panels (docs/grafana/weir.json), bad switch on b1's link",
                 fontsize=13)
    fig.text(0.01, 0.005, "Rendered by scripts/dashboard_png.py with matplotlib from Prometheus's "
             "HTTP API over a 1 s scrape of weir-control in the namespace test bed; the queries "
             "are the dashboard's.", fontsize=8, alpha=0.8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.96))
    fig.savefig(out)


if __name__ == "__main__":
    sys.exit(main())
