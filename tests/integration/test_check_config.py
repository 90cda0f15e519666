"""weir-dataplane --check-config: the real binary, from outside. Every example validates; a broken
file gets every error on its own line as FILE:LINE:COLUMN: path: message and exit code 1."""

import os
import re
import subprocess
from pathlib import Path

import pytest

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", "."))
EXE = BUILD_ROOT / "dataplane" / "weir-dataplane"
EXAMPLES = sorted((SOURCE_ROOT / "config" / "examples").glob("*.yaml"))
DIAGNOSTIC = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<path>[\w.\[\]-]+): .+$")


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(EXE), "--check-config", str(path)], capture_output=True, text=True, timeout=30
    )


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"contract.yaml", "minimal.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(example):
    result = check(example)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "configuration is valid" in result.stdout


BROKEN = """\
node_id: 7
dataplane:
  eal: ["--no-pci", "--vdev=net_tap0"]
  ports:
    - { name: p0, device: net_tap0, address: 10.0.0.2/24, mtu: 20000 }
listeners:
  - { name: a, address: 10.0.0.100, port: 80, protocol: tcp, pool: missing }
  - { name: a, address: 10.0.0.100, port: 80, protocol: echo, colour: red }
pools:
  - name: p
    hash: { table_size: 1000 }
    backends: [{ name: b1, address: 10.0.0.11, port: 80, port: 81 }]
"""


def test_broken_file_reports_every_error_and_exits_1(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = check(path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    parsed = [DIAGNOSTIC.match(line) for line in lines]
    assert all(parsed), f"every line is FILE:LINE:COLUMN: path: message:\n{result.stderr}"
    assert {m["file"] for m in parsed} == {str(path)}
    where = [(int(m["line"]), m["path"]) for m in parsed]
    assert where == [
        (5, "dataplane.ports[0].mtu"),
        (7, "listeners[0].pool"),
        (8, "listeners[1].name"),
        (8, "listeners[1].port"),
        (8, "listeners[1].colour"),
        (11, "pools[0].hash.table_size"),
        (12, "pools[0].backends[0].port"),
    ], result.stderr
    assert result.stdout == ""


def test_missing_file_and_usage(tmp_path):
    result = check(tmp_path / "absent.yaml")
    assert result.returncode == 1
    assert "absent.yaml: cannot open the file: No such file or directory" in result.stderr
    usage = subprocess.run([str(EXE)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "--check-config FILE" in usage.stderr
