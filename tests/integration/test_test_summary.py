"""scripts/test_summary.py on real meson runs: a small meson project whose tests are pytest files
run the way tests/integration/meson.build runs the suites (-rs, --junitxml, tests/conftest.py).
Skips are counted and listed with their reasons, and fail under CI; a listed suite missing from
the build, an unlisted one, a failing case and a failed build step all fail."""

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


# The meson suite of each test: two suites, so that meson logs names as "project:suite / name".
MESON_SUITE = {"passes": "unit"}


def meson_project(root: Path, tests: dict) -> Path:
    """Writes, configures and runs (meson test) a project with one pytest file per test
    (name -> source); returns its build directory."""
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
    subprocess.run(["meson", "test", "-C", str(build)], check=False, capture_output=True)
    return build


def summary(tmp_path: Path, build: Path, listed, ci: bool, failed_steps: int = 0):
    expected = tmp_path / "expected.txt"
    expected.write_text(
        "".join(f"{name} {MESON_SUITE.get(name, 'integration')} release\n" for name in listed)
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [sys.executable, str(SUMMARY), "--failed-steps", str(failed_steps),
         "--expected", str(expected), f"release:{build}"],
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
