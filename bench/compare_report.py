"""bench/compare's report: Markdown tables (median and range of the runs, and the ratio of Weir to
the best kernel peer) and a PNG chart of the ratios to HAProxy."""

from __future__ import annotations

import statistics
from pathlib import Path

PEERS = ("haproxy", "nginx")
COLUMNS = ("direct", "weir tcp", "weir framed", "haproxy", "nginx")
# figure key, label, better ("high" or "low"), unit scale and format
ROWS = (
    ("tx64_per_s", "transactions/s, 64 concurrent", "high", "{:,.0f}"),
    ("tx1000_per_s", "transactions/s, 1,000 concurrent", "high", "{:,.0f}"),
    ("tx64_p99_us", "transaction p99 at 64 concurrent, ms", "low", "ms"),
    ("tx1000_p99_us", "transaction p99 at 1,000 concurrent, ms", "low", "ms"),
    ("latency_p50_us", "p50 at a fixed rate, µs", "low", "{:,.0f}"),
    ("latency_p99_us", "p99 at a fixed rate, µs", "low", "{:,.0f}"),
    ("tx64_machine_us", "machine CPU per transaction (64), µs", "low", "{:,.0f}"),
    ("tx64_added_us", "of it added over direct, µs", "low", "{:,.0f}"),
    ("tx64_testbed_us", "test-bed CPU per transaction (64), µs", "low", "{:,.0f}"),
    ("tx64_testbed_added_us", "of it added over direct, µs", "low", "{:,.0f}"),
    ("tx64_lb_us", "LB CPU per transaction (64), µs", "low", "{:,.1f}"),
    ("tx1000_machine_us", "machine CPU per transaction (1,000), µs", "low", "{:,.0f}"),
    ("tx1000_lb_us", "LB CPU per transaction (1,000), µs", "low", "{:,.1f}"),
    ("bulk1_gbit_s", "bulk, 1 connection, Gbit/s", "high", "{:,.2f}"),
    ("bulk16_gbit_s", "bulk, 16 connections, Gbit/s", "high", "{:,.2f}"),
    ("bulk1_machine_s_per_gb", "machine CPU per GB, 1 connection, s", "low", "{:,.2f}"),
    ("bulk16_machine_s_per_gb", "machine CPU per GB, 16 connections, s", "low", "{:,.2f}"),
    ("bulk1_testbed_s_per_gb", "test-bed CPU per GB, 1 connection, s", "low", "{:,.2f}"),
    ("bulk16_testbed_s_per_gb", "test-bed CPU per GB, 16 connections, s", "low", "{:,.2f}"),
    ("bulk1_lb_s_per_gb", "LB CPU per GB, 1 connection, s", "low", "{:,.2f}"),
    ("bulk16_lb_s_per_gb", "LB CPU per GB, 16 connections, s", "low", "{:,.2f}"),
    ("lb_rss_per_idle_connection", "LB memory (RSS) per idle connection, bytes", "low",
     "{:,.0f}"),
    ("socket_slab_per_idle_connection", "kernel socket slabs per idle connection, bytes", "low",
     "{:,.0f}"),
)
# Figures derived per run: the path's value minus the direct path's in the same run.
ADDED = {"tx64_added_us": "tx64_machine_us", "tx64_testbed_added_us": "tx64_testbed_us"}
CHART = (
    ("tx64_per_s", "tx/s\n64 ↑"), ("tx1000_per_s", "tx/s\n1,000 ↑"),
    ("tx1000_p99_us", "tx p99\n1,000 ↓"), ("latency_p50_us", "p50 at\nfixed rate ↓"),
    ("tx64_machine_us", "machine\nCPU/tx ↓"),
    ("tx64_testbed_added_us", "test-bed CPU/tx\nadded ↓"),
    ("tx64_lb_us", "LB\nCPU/tx ↓"),
    ("bulk1_gbit_s", "bulk\n1 conn ↑"), ("bulk16_gbit_s", "bulk\n16 conns ↑"),
    ("bulk16_machine_s_per_gb", "machine\nCPU/GB ↓"), ("bulk16_lb_s_per_gb", "LB\nCPU/GB ↓"),
    ("lb_rss_per_idle_connection", "LB memory/\nidle conn ↓"),
)


def runs_of(results: dict, workers: int, path: str, key: str) -> dict[int, float]:
    """{run: value} of one figure; tx64_added_us is derived from the same run's direct path."""
    values = {}
    for entry in results["runs"]:
        if entry["workers"] != workers or entry["path"] != path:
            continue
        figures = entry["figures"]
        if key in ADDED:
            base = ADDED[key]
            direct = [e for e in results["runs"] if e["run"] == entry["run"]
                      and e["workers"] == workers and e["path"] == "direct"]
            if not direct or base not in figures:
                continue
            values[entry["run"]] = figures[base] - direct[0]["figures"][base]
        elif figures.get(key) is not None:
            values[entry["run"]] = figures[key]
    return values


def fmt(value: float, style: str) -> str:
    if style == "ms":
        return f"{value / 1000:,.1f}"
    return style.format(value)


def cell(values: list[float], style: str) -> str:
    if not values:
        return "—"
    median = statistics.median(values)
    if len(values) == 1:
        return fmt(median, style)
    return f"{fmt(median, style)} ({fmt(min(values), style)}–{fmt(max(values), style)})"


def best_peer(results: dict, workers: int, key: str, better: str) -> tuple[str, float] | None:
    medians = {}
    for peer in PEERS:
        values = list(runs_of(results, workers, peer, key).values())
        if values:
            medians[peer] = statistics.median(values)
    if not medians:
        return None
    pick = max if better == "high" else min
    name = pick(medians, key=medians.get)
    return name, medians[name]


def client_check(results: dict, workers: int) -> str:
    values = list(runs_of(results, workers, "direct", "tx64_per_s").values())
    if not values:
        return "the direct path was not measured: the client's speed is unchecked"
    floor = results["client_floor_per_second"]
    low = min(values)
    verdict = ("held in every run" if low >= floor else
               "NOT held: the client may bound these figures, read them with that flag")
    client_us = list(runs_of(results, workers, "direct", "tx64_client_us").values())
    own = ""
    if client_us:  # its CPU per transaction (the kernel work its sends trigger on a veth too)
        ceiling = 1e6 / statistics.median(client_us)
        own = (f"; the client used {cell(client_us, '{:,.1f}')} µs of CPU per transaction, "
               f"a ceiling of {ceiling:,.0f}/s on one core of its own")
    return (f"client check: direct path {cell(values, '{:,.0f}')} transactions/s at 64 "
            f"concurrent against a floor of {floor:,}: {verdict}{own}")


def write_tables(results: dict, path: Path) -> str:
    workers_list = sorted({e["workers"] for e in results["runs"]})
    runs = len({e["run"] for e in results["runs"]})
    s = results["settings"]
    lines = [f"Started {results['started']}, {runs} run(s), {s['seconds']} s per figure, "
             f"kernel peers' offloads {s['kernel_offloads']}. Cells: median (min–max).", ""]
    for workers in workers_list:
        header = f"| {workers} worker(s)/thread(s) each | " + " | ".join(COLUMNS) + \
            " | Weir tcp ÷ best peer |"
        lines += [header, "|---" * (len(COLUMNS) + 2) + "|"]
        for key, label, better, style in ROWS:
            cells = []
            for column in COLUMNS:
                cells.append(cell(list(runs_of(results, workers, column, key).values()), style))
            if all(c == "—" for c in cells):
                continue
            ratio = "—"
            peer = best_peer(results, workers, key, better)
            weir = list(runs_of(results, workers, "weir tcp", key).values())
            if peer and weir and peer[1]:
                ratio = f"{statistics.median(weir) / peer[1]:.2f} ({peer[0]})"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
        lines += ["", client_check(results, workers), ""]
    text = "\n".join(lines)
    path.write_text(text + "\n")
    return text


def write_chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers_list = sorted({e["workers"] for e in results["runs"]})
    series = ("weir tcp", "weir framed", "nginx", "direct")
    colours = {"weir tcp": "#1f77b4", "weir framed": "#7fb8e6", "nginx": "#2ca02c",
               "direct": "#999999"}
    fig, axes = plt.subplots(len(workers_list), 1, figsize=(12, 4.2 * len(workers_list)),
                             squeeze=False)
    width = 0.8 / len(series)
    for row, workers in enumerate(workers_list):
        ax = axes[row][0]
        for i, name in enumerate(series):
            xs, heights, low, high = [], [], [], []
            for j, (key, _label) in enumerate(CHART):
                mine = runs_of(results, workers, name, key)
                theirs = runs_of(results, workers, "haproxy", key)
                paired = [mine[r] / theirs[r] for r in mine if r in theirs and theirs[r]]
                if not paired or min(paired) <= 0:  # a log scale shows no zero or negative
                    continue
                median = statistics.median(paired)
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                heights.append(median)
                low.append(median - min(paired))
                high.append(max(paired) - median)
            if xs:
                ax.bar(xs, heights, width, yerr=[low, high], capsize=2, label=name,
                       color=colours[name])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(CHART)), [label for _key, label in CHART], fontsize=8)
        ax.set_ylabel("ratio to HAProxy (log)")
        ax.set_title(f"{workers} worker(s)/thread(s) each: median of the runs' ratios, "
                     f"whiskers min–max (↑ higher is better, ↓ lower)", fontsize=10)
        ax.legend(fontsize=8, ncol=4)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
