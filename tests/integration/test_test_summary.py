"""scripts/test_summary.py on real meson runs: a small meson project whose tests are pytest files
run the way tests/integration/meson.build runs the suites (-rs, --junitxml, tests/conftest.py).
Skips are counted and listed with their reasons, and fail under CI; a listed suite missing from
the build, an unlisted one, a failing case and a failed build step all fail; a second meson test
run on the same build with its own log base (scripts/test's deploy suite) is counted from that log."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", Path(__file__).parents[2]))
SUMMARY = SOURCE_ROOT / "scripts" / "test_summary.py"
CONFTEST = SOURCE_ROOT / "tests" / "conftest.py"

PASSES = "def test_passes():\n    assert 1 + 1 == 2\n"
SKIPS_ALL = "import pytest\n\ndef test_needs_a_widget():\n    pytest.skip('no widget here')\n"
SKIPS_ONE = (
    PASSES + "\nimport pytest\n\ndef test_needs_a_gadget():\n    pytest.skip('no gadget here')\n"
)
FAILS = "def test_fails():\n    assert 1 + 1 == 3, 'arithmetic broke'\n"


# The meson suite of each test: two suites, so that meson logs names as "project:suite / name";
# "deploy" is run apart, as scripts/test runs the deploy suite.
MESON_SUITE = {"passes": "unit", "deployed": "deploy", "deploy_fails": "deploy"}
# The build tag each test is listed under (release unless named here).
BUILD_TAG = {"deployed": "deploy", "deploy_fails": "deploy"}


def meson_project(root: Path, tests: dict, runs=((),)) -> Path:
    """Writes, configures and runs a project with one pytest file per test (name -> source), one
    `meson test` per entry of runs (its extra arguments); returns its build directory."""
    root.mkdir()
    shutil.copy(CONFTEST, root / "conftest.py")
    lines = [
        "project('summary_check', meson_version: '>=1.0')",
        "pytest = find_program('pytest-3', 'pytest')",
    ]
    for name, source in tests.items():
        (root / f"test_{name}.py").write_text(source)
        suite = MESON_SUITE.get(name, "integration")
        lines.append(
            f"test('{name}', pytest, suite: '{suite}', args: ['-q', '-rs', '-p', "
            f"'no:cacheprovider', '--junitxml=' + meson.current_build_dir() / '{name}.junit.xml', "
            f"meson.current_source_dir() / 'test_{name}.py'])"
        )
    (root / "meson.build").write_text("\n".join(lines) + "\n")
    build = root / "build"
    subprocess.run(["meson", "setup", str(build), str(root)], check=True, capture_output=True)
    for extra in runs:
        subprocess.run(["meson", "test", "-C", str(build), *extra], check=False,
                       capture_output=True)
    return build


def summary(tmp_path: Path, build: Path, listed, ci: bool, failed_steps: int = 0, specs=None):
    expected = tmp_path / "expected.txt"
    expected.write_text("".join(
        f"{name} {MESON_SUITE.get(name, 'integration')} {BUILD_TAG.get(name, 'release')}\n"
        for name in listed))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [sys.executable, str(SUMMARY), "--failed-steps", str(failed_steps),
         "--expected", str(expected), *(specs or [f"release:{build}"])],
        capture_output=True, text=True, env=env, check=False,
    )
    return result.returncode, result.stdout.splitlines()


@pytest.fixture(scope="module")
def skipping_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("skipping") / "project"
    return meson_project(root, {"passes": PASSES, "skips_all": SKIPS_ALL, "skips_one": SKIPS_ONE})


SKIPPING_SUITES = ["passes", "skips_all", "skips_one"]


def test_skips_are_counted_with_their_reasons_and_pass_locally(tmp_path, skipping_build):
    status, lines = summary(tmp_path, skipping_build, SKIPPING_SUITES, ci=False)
    assert status == 0, lines
    assert "SKIPPED release/skips_all::test_skips_all.test_needs_a_widget: no widget here" in lines
    assert "SKIPPED release/skips_one::test_skips_one.test_needs_a_gadget: no gadget here" in lines
    assert lines[-1] == "2 passed, 0 failed, 2 skipped"


def test_a_suite_in_which_everything_skipped_is_meson_skip(skipping_build):
    log = (skipping_build / "meson-logs" / "testlog.json").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    results = {record["name"].rsplit(" / ", 1)[-1]: record["result"] for record in records}
    assert results == {"passes": "OK", "skips_all": "SKIP", "skips_one": "OK"}


def test_any_skip_fails_under_ci(tmp_path, skipping_build):
    status, lines = summary(tmp_path, skipping_build, SKIPPING_SUITES, ci=True)
    assert status == 1, lines
    assert "SKIPPED release/skips_all::test_skips_all.test_needs_a_widget: no widget here" in lines
    assert "FAILED 2 skipped under CI, where nothing may skip" in lines


def test_a_listed_suite_missing_from_the_build_fails(tmp_path, skipping_build):
    status, lines = summary(tmp_path, skipping_build, SKIPPING_SUITES + ["vanished"], ci=False)
    assert status == 1, lines
    assert "FAILED release/vanished: expected but not in the build (a missing dependency?)" in lines
    assert "FAILED release/vanished: expected but did not run" in lines


def test_a_suite_missing_from_the_list_fails(tmp_path, skipping_build):
    status, lines = summary(tmp_path, skipping_build, ["passes", "skips_all"], ci=False)
    assert status == 1, lines
    unlisted = "FAILED release/skips_one: in the build but not in the expected list"
    assert any(line.startswith(unlisted) for line in lines), lines


def test_a_failing_case_fails_and_is_named(tmp_path):
    build = meson_project(tmp_path / "project", {"passes": PASSES, "fails": FAILS})
    status, lines = summary(tmp_path, build, ["passes", "fails"], ci=False)
    assert status == 1, lines
    assert any(line.startswith("FAILED release/fails::test_fails.test_fails: AssertionError: "
                               "arithmetic broke") for line in lines), lines
    assert lines[-1] == "1 passed, 1 failed, 0 skipped"



def test_a_failed_build_step_fails(tmp_path, skipping_build):
    status, lines = summary(tmp_path, skipping_build, SKIPPING_SUITES, ci=False, failed_steps=1)
    assert status == 1, lines
    assert "FAILED 1 build step(s) failed" in lines
    assert lines[-1] == "2 passed, 1 failed, 2 skipped"


# scripts/test's two runs on one build: the release suites, and the deploy suite beside them.
APART = [("--no-suite", "deploy"), ("--suite", "deploy", "--logbase", "deploylog")]


def test_a_second_run_with_its_own_log_base_is_counted_from_it(tmp_path):
    build = meson_project(tmp_path / "project", {"passes": PASSES, "deployed": SKIPS_ONE},
                          runs=APART)
    specs = [f"release:{build}", f"deploy:{build}:deploylog"]
    status, lines = summary(tmp_path, build, ["passes", "deployed"], ci=True, specs=specs)
    assert status == 1, lines  # the deploy run's skip, read from deploylog.json, fails under CI
    assert "SKIPPED deploy/deployed::test_deployed.test_needs_a_gadget: no gadget here" in lines
    assert lines[-1] == "2 passed, 0 failed, 1 skipped"
    # Read from testlog.json instead, the deploy suite did not run (the release run left it out).
    status, lines = summary(tmp_path, build, ["passes", "deployed"], ci=False,
                            specs=[f"release:{build}", f"deploy:{build}"])
    assert status == 1, lines
    assert "FAILED deploy/deployed: expected but did not run" in lines


def test_a_failure_in_the_second_run_fails(tmp_path):
    build = meson_project(tmp_path / "project", {"passes": PASSES, "deploy_fails": FAILS},
                          runs=APART)
    specs = [f"release:{build}", f"deploy:{build}:deploylog"]
    status, lines = summary(tmp_path, build, ["passes", "deploy_fails"], ci=False, specs=specs)
    assert status == 1, lines
    assert any(line.startswith("FAILED deploy/deploy_fails::test_deploy_fails.test_fails: ")
               for line in lines), lines
    assert lines[-1] == "1 passed, 1 failed, 0 skipped"
