"""docs/prometheus/weir-rules.yml, the alert rules Weir ships: no root, no network, no build.

promtool (Debian's prometheus package, installed by scripts/deps) checks the file and runs its unit
tests, tests/prometheus/weir-rules.test.yml. Beside that, every alert must have a test case in
which it fires and one in which it does not (an alert tested only one way passes whatever its
expression says), and every series a rule reads must be a family weir-control exports (the same
listing from the sources as the Grafana dashboard's test, exported_families.py), or `up`, which
Prometheus records itself for each target. The self-checks at the end prove the checkers catch
what they are for."""

import re
import shutil
import subprocess

import pytest
import yaml

from exported_families import SOURCE_ROOT, exported_from_sources, family_of

RULES = SOURCE_ROOT / "docs" / "prometheus" / "weir-rules.yml"
RULE_TESTS = SOURCE_ROOT / "tests" / "prometheus" / "weir-rules.test.yml"

# Series no exporter writes: Prometheus adds them for every scrape target.
PROMETHEUS_OWN = {"up"}

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "bool", "offset", "inf", "nan"}


def promtool(*args):
    path = shutil.which("promtool")
    assert path, "promtool not found: scripts/deps installs it (Debian package prometheus)"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------- reading the rules

def rules_of(document):
    return [rule for group in document.get("groups", []) for rule in group.get("rules", [])]


def series_names(expr: str):
    """The metric names a PromQL expression selects: identifiers that are not functions (followed
    by a parenthesis), keywords, label names (inside {...} or the lists of by/without/on/
    ignoring/group_*), durations, numbers or string contents."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in PROMQL_KEYWORDS:
            continue
        before = text[match.start() - 1] if match.start() > 0 else " "
        if before.isdigit() or before == ".":
            continue  # the exponent or unit of a number (1e3, 5m)
        names.add(name)
    return names


def rule_problems(document, exported_names, histograms):
    """Every rule that reads a series weir-control does not export, as messages."""
    problems = []
    rules = rules_of(document)
    if not rules:
        problems.append("no rules")
    for rule in rules:
        where = rule.get("alert") or rule.get("record") or "?"
        for name in sorted(series_names(rule.get("expr", ""))):
            if name in PROMETHEUS_OWN:
                continue
            if family_of(name, histograms) not in exported_names:
                problems.append(f"{where}: {name} is not exported by weir-control")
    return problems


def coverage_problems(rules_document, tests_document):
    """Every alert needs a case that fires and one that does not; every tested alert must exist."""
    alerts = {rule["alert"] for rule in rules_of(rules_document) if "alert" in rule}
    fires, silent = set(), set()
    for test in tests_document.get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    problems = [f"{a}: no test case in which it fires" for a in sorted(alerts - fires)]
    problems += [f"{a}: no test case in which it stays silent" for a in sorted(alerts - silent)]
    problems += [f"{a}: tested but not a rule" for a in sorted((fires | silent) - alerts)]
    return problems


@pytest.fixture(scope="module")
def rules():
    with RULES.open() as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def rule_tests():
    with RULE_TESTS.open() as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------------- the real files

def test_promtool_checks_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_load_the_shipped_rules(rule_tests):
    files = [(RULE_TESTS.parent / f).resolve() for f in rule_tests["rule_files"]]
    assert files == [RULES.resolve()]


def test_the_issue_s_alerts_are_there(rules):
    alerts = {rule.get("alert") for rule in rules_of(rules)}
    for needed in ("WeirDataplaneDown", "WeirCorruptFrames", "WeirPoolNoBackendUp",
                   "WeirMbufPoolNearlyEmpty", "WeirTcpMemoryPressure", "WeirPortRxMissed",
                   "WeirPortRxNoMbuf", "WeirBackendPathCorrupt", "WeirBackendPassivelyDown",
                   "WeirSourcePortsExhausted", "WeirFrameEventsDropped",
                   "WeirCertificateExpiresSoon"):
        assert needed in alerts, sorted(alerts)
    for rule in rules_of(rules):
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), rule["alert"]
        assert rule.get("annotations", {}).get("summary"), rule["alert"]


def test_every_alert_fires_in_one_case_and_stays_silent_in_another(rules, rule_tests):
    assert coverage_problems(rules, rule_tests) == []


def test_the_rules_read_only_exported_families(rules):
    names, histograms = exported_from_sources()
    assert rule_problems(rules, names, histograms) == []
    read = set().union(*(series_names(r["expr"]) for r in rules_of(rules)))
    assert {"weir_dataplane_up", "weir_frames_corrupt_total", "weir_backend_up",
            "weir_device_rx_missed_total", "up"} <= read, read


# ------------------------------------------------------------------- the checkers check themselves

def test_self_check_series_names():
    assert series_names('sum by (instance, pool) (weir_backend_up{pool!~"a|b"}) == 0') == {
        "weir_backend_up"}
    assert series_names("increase(weir_a_total[5m]) + on (x) group_left (y) weir_b > 1e3") == {
        "weir_a_total", "weir_b"}
    assert series_names('up{job="weir"} == 0 and weir_x offset 5m') == {"up", "weir_x"}
    assert series_names('label_replace(vector(1), "dst", "weir_fake", "", "")') == set()


def test_self_check_catches_an_unknown_family(rules):
    names, histograms = exported_from_sources()
    broken = {"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "rate(weir_no_such_thing_total[5m]) > 0"},
        {"alert": "B", "expr": "node_load1 > 4"},
        {"alert": "C", "expr": "weir_health_check_duration_seconds_bucket > 0"}]}]}
    problems = rule_problems(broken, names, histograms)
    assert any("A: weir_no_such_thing_total is not exported" in p for p in problems), problems
    assert any("B: node_load1 is not exported" in p for p in problems), problems
    assert not any(p.startswith("C:") for p in problems), problems
    assert rule_problems(rules, names - {"weir_backend_up"}, histograms) == [
        "WeirPoolNoBackendUp: weir_backend_up is not exported by weir-control"]


def test_self_check_catches_an_alert_tested_one_way_only():
    rules_document = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "weir_x > 0"},
                                                         {"alert": "B", "expr": "weir_y > 0"}]}]}
    tests_document = {"tests": [{"alert_rule_test": [
        {"alertname": "A", "eval_time": "1m", "exp_alerts": [{"exp_labels": {}}]},
        {"alertname": "B", "eval_time": "1m", "exp_alerts": []},
        {"alertname": "C", "eval_time": "1m", "exp_alerts": []}]}]}
    assert coverage_problems(rules_document, tests_document) == [
        "B: no test case in which it fires", "A: no test case in which it stays silent",
        "C: tested but not a rule"]
