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


# --- tls listeners: certificates made here with the openssl CLI, never committed ---


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certificates(tmp_path):
    """A root CA, an intermediate and a leaf for site.example (chain.pem: leaf, intermediate), a
    second key, and an expired leaf."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-subj", "/CN=Root",
            "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", cwd=tmp_path)
    openssl("req", *ec, "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=Inter",
            cwd=tmp_path)
    (tmp_path / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\n")
    openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-out", "inter.pem", "-days", "2", "-extfile", "ca.ext", cwd=tmp_path)
    openssl("req", *ec, "-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=site.example",
            cwd=tmp_path)
    openssl("x509", "-req", "-in", "site.csr", "-CA", "inter.pem", "-CAkey", "inter.key",
            "-out", "site.pem", "-days", "2", cwd=tmp_path)
    # notAfter a day before now: expired.
    openssl("x509", "-req", "-in", "site.csr", "-CA", "inter.pem", "-CAkey", "inter.key",
            "-out", "old.pem", "-days", "-1", cwd=tmp_path)
    (tmp_path / "chain.pem").write_text((tmp_path / "site.pem").read_text() +
                                        (tmp_path / "inter.pem").read_text())
    (tmp_path / "reversed.pem").write_text((tmp_path / "inter.pem").read_text() +
                                           (tmp_path / "site.pem").read_text())
    return tmp_path


def tls_config(d: Path, cert: str, key: str, inner: str = "tcp") -> str:
    return f"""\
dataplane:
  eal: ["--no-pci", "--vdev=net_tap0"]
  ports: [{{ name: p0, device: net_tap0, address: 10.0.0.2/24 }}]
pools: [{{ name: kv, backends: [{{ name: b1, address: 10.0.0.11, port: 80 }}] }}]
listeners:
  - name: secure
    address: 10.0.0.100
    port: 7443
    protocol: tls
    pool: kv
    tls:
      certificates:
        - cert: {d / cert}
          key: {d / key}
      inner: {inner}
"""


def test_tls_listener_is_checked_and_accepted(certificates):
    path = certificates / "weir.yaml"
    path.write_text(tls_config(certificates, "chain.pem", "site.key"))
    result = check(path)
    assert result.returncode == 0, result.stderr


def test_tls_inner_framed_is_checked_and_accepted(certificates):
    path = certificates / "weir.yaml"
    path.write_text(tls_config(certificates, "chain.pem", "site.key", inner="framed"))
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: configuration is valid", result.stdout


@pytest.mark.parametrize("cert,key,line,message", [
    ("chain.pem", "inter.key", 14, "is not the key of the certificate in"),
    ("old.pem", "site.key", 13, "certificate 1 (/CN=site.example) has expired"),
    ("reversed.pem", "inter.key", 13, "did not issue certificate 1 (/CN=Inter)"),
    ("absent.pem", "site.key", 13, "absent.pem\": No such file or directory"),
])
def test_tls_certificate_problems_are_reported_at_their_keys(certificates, cert, key, line,
                                                              message):
    path = certificates / "weir.yaml"
    path.write_text(tls_config(certificates, cert, key))
    result = check(path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # the problem alone: protocol tls is served
    parsed = DIAGNOSTIC.match(lines[0])
    assert parsed and int(parsed["line"]) == line, result.stderr
    assert parsed["path"] == ("listeners[0].tls.certificates[0]." +
                              ("key" if line == 14 else "cert")), result.stderr
    assert message in lines[0], result.stderr
