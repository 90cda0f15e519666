"""The metric families weir-control exports, read from the sources rather than from a list kept in
the tests: every string literal naming a family in control/metrics.cc and in the counter catalogue
it exports the dataplane's counters from (common/counter_catalogue.h): the weir_ families and
Prometheus's standard process_ ones; and the histograms weir-control registers itself in
control/weir_control.cc. test_dashboard.py (the Grafana
dashboard) and test_alert_rules.py (the Prometheus rules) check their queries against this set."""

import os
import re
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
METRICS_CC = SOURCE_ROOT / "control" / "metrics.cc"
CATALOGUE_H = SOURCE_ROOT / "common" / "counter_catalogue.h"
WEIR_CONTROL_CC = SOURCE_ROOT / "control" / "weir_control.cc"

METRIC_NAME = re.compile(r"weir_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def strip_comments(source: str) -> str:
    """C++ source without // and /* */ comments (string literals kept; none here holds a // )."""
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def exported_metrics(exporter_sources, weir_control_cc: str):
    """(every exported family name, the histogram family names) from the sources' text: the
    exporter's (control/metrics.cc and the counter catalogue) and weir-control's."""
    names = set()
    for source in exporter_sources:
        names.update(re.findall(r'"((?:weir|process)_[a-z0-9_]*)"', strip_comments(source)))
    histograms = set(re.findall(r'BuildHistogram\(\)\s*\.Name\(\s*"(weir_[a-z0-9_]+)"\s*\)',
                                strip_comments(weir_control_cc)))
    return names | histograms, histograms


def exported_from_sources():
    """exported_metrics() of the real sources."""
    return exported_metrics([METRICS_CC.read_text(), CATALOGUE_H.read_text()],
                            WEIR_CONTROL_CC.read_text())


def family_of(series: str, histograms) -> str:
    """The family a series name belongs to: a histogram's _bucket/_sum/_count map to it."""
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix) and series[: -len(suffix)] in histograms:
            return series[: -len(suffix)]
    return series
