"""pytest hooks for every pytest suite under tests/ (pytest loads a conftest.py from each parent
directory of a test file).

A pytest run in which every collected test skipped exits 0, and meson would record the suite as
passed. Here such a run exits 77, meson's SKIP status, so a suite that tested nothing is reported
as skipped (scripts/test_summary.py then lists the reasons from the suite's --junitxml report).
"""

MESON_SKIP = 77

_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    # One test gives a report per phase (setup, call, teardown): a pass is a passed call, a skip
    # can come from setup (a fixture) or from the call.
    if report.failed:
        _outcomes["failed"] += 1
    elif report.skipped:
        _outcomes["skipped"] += 1
    elif report.passed and report.when == "call":
        _outcomes["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and _outcomes["skipped"] > 0 and _outcomes["passed"] == 0:
        session.exitstatus = MESON_SKIP
