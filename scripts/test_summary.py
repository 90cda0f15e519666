#!/usr/bin/env python3
"""Sums the test runs of scripts/test into the closing line "N passed, N failed, N skipped".

Usage: test_summary.py [--failed-steps N] --expected tests/expected_suites.txt BUILD:DIR[:LOGBASE]...

Each BUILD:DIR names a build tag of the expected list (release, deploy, asan) and the build
directory whose meson-logs/LOGBASE.json records the run: testlog.json unless LOGBASE is given. A
second `meson test` on the same build directory (scripts/test runs the deploy suite beside the
release suites) writes its own log with `--logbase`, since both would write testlog.json. The counts are of test cases: a suite that wrote a report
(pytest --junitxml, gtest --gtest_output=xml) counts each case in it; a suite without one (the fuzz
corpus replays) counts as one case with meson's result.

The summary fails (exit 1) when:
- a test failed, or a build step failed (--failed-steps), so a broken build never prints all green;
- a test in the expected list did not run in its build (a dependency not found drops a test from
  the build, and from `meson introspect`, without an error), or a build defines a test in the
  listed meson suites that is not in the list (the list must not rot);
- a suite that passed wrote no report it was asked for;
- under CI (the environment variable CI set, and not "false" or "0"), any test skipped.
Skips are always listed with their reasons; outside CI they are reported, not failed.
"""
import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}
REPORT_OPTIONS = ("--junitxml=", "--gtest_output=xml:")


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list = field(default_factory=list)
    skips: list = field(default_factory=list)  # (where, reason)

    def add(self, other: "Tally") -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures
        self.skips += other.skips


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "false", "0")


def read_expected(path: Path) -> dict:
    """Returns {build tag: {test name: meson suite}} from the expected list."""
    expected = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 3:
            raise SystemExit(f"{path}:{number}: expected 'NAME SUITE BUILD...', got {line!r}")
        name, suite, builds = fields[0], fields[1], fields[2:]
        for build in builds:
            expected.setdefault(build, {})[name] = suite
    return expected


def introspect_tests(build_dir: str) -> dict:
    """Returns {test name: meson suite} for every test the build defines."""
    result = subprocess.run(
        ["meson", "introspect", build_dir, "--tests"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"meson introspect {build_dir} --tests: {result.stderr.strip()}")
    # Suites are reported as "project:suite".
    return {
        test["name"]: ",".join(suite.split(":")[-1] for suite in test["suite"])
        for test in json.loads(result.stdout)
    }


def report_path(command: list):
    for argument in command or []:
        for option in REPORT_OPTIONS:
            if argument.startswith(option):
                return Path(argument[len(option) :])
    return None


def count_report(where: str, report: Path) -> Tally:
    """Counts the test cases of a pytest junit or gtest XML report."""
    tally = Tally()
    for case in ElementTree.parse(report).iter("testcase"):
        name = f"{where}::{case.get('classname', '')}.{case.get('name')}".replace("::.", "::")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            tally.failed += 1
            tally.failures.append(f"{name}: {(problem.get('message') or '').strip()}")
        elif skipped is not None:
            tally.skipped += 1
            tally.skips.append((name, (skipped.get("message") or "no reason given").strip()))
        elif case.get("status") == "notrun":  # a gtest DISABLED_ test
            tally.skipped += 1
            tally.skips.append((name, "disabled"))
        else:
            tally.passed += 1
    return tally


def test_name(record: dict) -> str:
    # In a project with several suites meson logs "project:suite / name".
    return record.get("name", "").rsplit(" / ", 1)[-1]


def count_test(build: str, record: dict) -> Tally:
    """Counts one meson test: the cases of its report, or the test itself when it has none."""
    where, result = f"{build}/{test_name(record)}", record.get("result")
    report = report_path(record.get("command"))
    if report is not None and report.is_file():
        tally = count_report(where, report)
    else:
        tally = Tally()
        if result in PASSED and report is not None:
            tally.failed += 1
            tally.failures.append(f"{where}: passed but wrote no report ({report})")
        elif result in PASSED:
            tally.passed += 1
        elif result in SKIPPED:
            tally.skipped += 1
            tally.skips.append((where, f"the whole suite (exit status {record.get('returncode')})"))
    if result not in PASSED | SKIPPED:
        if tally.failed == 0:  # the report named no failing case: a crash or a timeout
            tally.failed += 1
        tally.failures.append(f"{where}: {result}")
    return tally


def count_log(build: str, log: Path, tally: Tally) -> set:
    """Adds one build's testlog.json to the tally; returns the names of the tests that ran."""
    ran = set()
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            ran.add(test_name(record))
            tally.add(count_test(build, record))
    return ran


def check_expected(build: str, build_dir: str, expected: dict, ran: set, tally: Tally) -> None:
    suites = set(expected.values())
    try:
        built = {n: s for n, s in introspect_tests(build_dir).items() if s in suites}
    except (RuntimeError, FileNotFoundError) as error:
        built = {}
        tally.failed += 1
        tally.failures.append(f"{build}: {error}")
    for name in sorted(set(expected) - set(built)):
        tally.failed += 1
        tally.failures.append(
            f"{build}/{name}: expected but not in the build (a missing dependency?)"
        )
    for name in sorted(set(built) - set(expected)):
        tally.failed += 1
        tally.failures.append(
            f"{build}/{name}: in the build but not in the expected list: add it, with its builds"
        )
    for name in sorted(set(expected) & set(built)):
        if built[name] != expected[name]:
            tally.failed += 1
            tally.failures.append(
                f"{build}/{name}: in meson suite {built[name]}, listed as {expected[name]}"
            )
    for name in sorted(set(expected) - ran):
        tally.failed += 1
        tally.failures.append(f"{build}/{name}: expected but did not run")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failed-steps", type=int, default=0)
    parser.add_argument("--expected", type=Path, required=True)
    parser.add_argument("builds", nargs="+", metavar="BUILD:DIR[:LOGBASE]")
    args = parser.parse_args()

    expected = read_expected(args.expected)
    tally = Tally(failed=args.failed_steps)
    if args.failed_steps:
        tally.failures.append(f"{args.failed_steps} build step(s) failed")
    for spec in args.builds:
        build, _, build_dir = spec.partition(":")
        build_dir, _, logbase = build_dir.partition(":")
        if build not in expected:
            raise SystemExit(f"{spec}: no test in {args.expected} lists build {build!r}")
        log = Path(build_dir) / "meson-logs" / f"{logbase or 'testlog'}.json"
        ran = count_log(build, log, tally) if log.is_file() else set()
        check_expected(build, build_dir, expected[build], ran, tally)

    ci = in_ci()
    for where, reason in tally.skips:
        print(f"SKIPPED {where}: {reason}")
    if ci and tally.skips:
        tally.failures.append(f"{len(tally.skips)} skipped under CI, where nothing may skip")
    for failure in tally.failures:
        print(f"FAILED {failure}")
    print(f"{tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped")
    ok = tally.failed == 0 and tally.passed > 0 and not (ci and tally.skips)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
