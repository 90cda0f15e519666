"""`tls` listeners against other TLS implementations and scanners (issue 14, docs/tls.md,
"Interop"): GnuTLS's gnutls-cli does TLS 1.3 and 1.2 with the listener (the certificate chain and
name verified, a line echoed through the backend), a listener with `min_version: "1.3"` refuses
GnuTLS's TLS 1.2, and sslscan finds no SSLv3, TLS 1.0 or 1.1, no suite but ECDHE with a 128-bit
or stronger AEAD, no renegotiation, no compression and no Heartbleed. openssl s_client and
gnutls-cli each echo 10 MB through the listener in TLS 1.3 and 1.2, the SHA-256 equal at the
backend (client to backend) and back at the client (backend to client). testssl.sh finds no
protocol, cipher or vulnerability rated worse than OK. Every client runs in the client namespace
of the test bed; assertions are on their parsed output."""

import contextlib
import hashlib
import json
import os
import select
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from netbed import LISTENER_ADDRESS, poll_until, testbed_factory  # noqa: F401 (fixture)
from test_tls import TLS_PORT, Plane

STRICT_PORT = 7444  # a second listener on the same certificate, min_version "1.3"

pytestmark = pytest.mark.skipif(
    shutil.which("gnutls-cli") is None or shutil.which("sslscan") is None,
    reason="gnutls-cli and sslscan (Debian gnutls-bin, sslscan: scripts/deps) are needed")


def with_strict_listener(config: dict) -> None:
    secure = next(l for l in config["listeners"] if l["name"] == "secure")
    config["listeners"].append({
        **secure, "name": "strict", "port": STRICT_PORT,
        "tls": {**secure["tls"], "min_version": "1.3"}})


@pytest.fixture
def plane(testbed_factory):
    p = Plane(testbed_factory(), adjust=with_strict_listener)
    try:
        yield p
    finally:
        p.close()


def gnutls_session(plane, port: int, version: str, line: bytes = b"hello from gnutls\n"):
    """gnutls-cli restricted to TLS `version` ("1.3" or "1.2"), verifying the chain against the
    test's CA and the name site.example; `line` is written once the handshake is done. Its
    whole output and whether `line` came back, after at most 30 s."""
    priority = f"NORMAL:-VERS-ALL:+VERS-TLS{version}"
    proc = plane.tb.popen("client", [
        "gnutls-cli", "--x509cafile", str(plane.tb.workdir / "site.pem"),
        "--sni-hostname", "site.example", "--verify-hostname", "site.example",
        "--priority", priority, "--port", str(port), LISTENER_ADDRESS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    echoed = False
    deadline = time.monotonic() + 30
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = proc.stdout.read1(65536)
                if not chunk:
                    break  # gnutls-cli ended (a failed handshake)
                output += chunk
            if not sent and b"Handshake was completed" in output:
                proc.stdin.write(line)
                proc.stdin.flush()
                sent = True
            if sent and output.split(b"Handshake was completed", 1)[1].count(line) >= 1:
                echoed = True
                break
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # EOF: gnutls-cli sends close_notify and ends
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    return output.decode(errors="replace"), echoed


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_gnutls_handshakes_verifies_and_echoes(plane, version):
    output, echoed = gnutls_session(plane, TLS_PORT, version)
    # "- Description: (TLS1.3-X.509)-(ECDHE-...)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"
    description = next((l for l in output.splitlines() if "- Description:" in l), None)
    assert description is not None, output
    assert f"(TLS{version}-X.509)" in description, description
    assert "- Status: The certificate is trusted." in output, output
    assert echoed, output
    stats = plane.dp.stats()["listeners"]["secure"]
    assert stats["tls_resets"] == 0, stats


def test_min_version_13_refuses_gnutls_tls12_and_serves_its_tls13(plane):
    output, echoed = gnutls_session(plane, STRICT_PORT, "1.2")
    assert not echoed and "Handshake was completed" not in output, output
    # The server's alert: protocol_version (70).
    assert "Handshake failed" in output or "alert" in output.lower(), output
    output, echoed = gnutls_session(plane, STRICT_PORT, "1.3")
    assert "(TLS1.3-X.509)" in output and echoed, output


def test_sslscan_finds_only_tls12_and_13_with_strong_ciphers(plane):
    result = plane.tb.exec("client", [
        "sslscan", "--no-colour", "--xml=-", "--sni-name=site.example",
        f"{LISTENER_ADDRESS}:{TLS_PORT}"], timeout=300)
    xml = result.stdout[result.stdout.index("<?xml"):]
    root = ET.fromstring(xml)
    test = root.find("ssltest")
    assert test is not None, xml
    protocols = {(p.get("type"), p.get("version")): p.get("enabled") == "1"
                 for p in test.iter("protocol")}
    assert protocols.get(("tls", "1.3")) is True and protocols.get(("tls", "1.2")) is True, \
        protocols
    for old in (("ssl", "2"), ("ssl", "3"), ("tls", "1.0"), ("tls", "1.1")):
        assert protocols.get(old) is False, (old, protocols)
    accepted = [c for c in test.iter("cipher") if c.get("status") in ("accepted", "preferred")]
    assert accepted, xml
    weak_words = ("NULL", "RC4", "DES", "EXP", "anon", "ADH", "AECDH", "MD5", "PSK", "SRP",
                  "CAMELLIA", "ARIA", "SEED", "IDEA")
    for c in accepted:
        name = c.get("cipher")
        assert c.get("sslversion") in ("TLSv1.2", "TLSv1.3"), c.attrib
        assert int(c.get("bits")) >= 128, c.attrib
        assert not any(w in name for w in weak_words), c.attrib
        assert c.get("strength") in (None, "strong", "acceptable"), c.attrib
        # TLS 1.2: forward secrecy and an AEAD only (tls/tls_contexts.cc, kTls12Ciphers).
        if c.get("sslversion") == "TLSv1.2":
            assert name.startswith("ECDHE-"), c.attrib
            assert "GCM" in name or "CHACHA20" in name, c.attrib
    renegotiation = test.find("renegotiation")
    assert renegotiation is not None and renegotiation.get("supported") == "0", xml
    compression = test.find("compression")
    assert compression is None or compression.get("supported") == "0", xml
    for heartbleed in test.iter("heartbleed"):
        assert heartbleed.get("vulnerable") == "0", heartbleed.attrib


# --- 10 MB each way with two client implementations

ECHO_BYTES = 10 * 1000 * 1000


def stream_echo(plane, argv: list[str], size: int = ECHO_BYTES, timeout_s: float = 240.0):
    """Runs a command-line TLS client in the client namespace, writes `size` random bytes to its
    stdin (a thread) while reading its stdout (the echo) to the last byte; then closes its stdin,
    so it sends close_notify and ends. (sent SHA-256, echoed SHA-256, echoed byte count, exit
    code); the client is killed if it has not finished within timeout_s."""
    data = os.urandom(size)
    proc = plane.tb.popen("client", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)

    def feed():
        try:
            for at in range(0, size, 65536):
                proc.stdin.write(data[at:at + 65536])
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the client ended early: the count below says so

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    echoed, received = hashlib.sha256(), 0
    deadline = time.monotonic() + timeout_s
    try:
        while received < size and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = proc.stdout.read1(1 << 20)
                if not chunk:
                    break
                echoed.update(chunk)
                received += len(chunk)
        writer.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return hashlib.sha256(data).hexdigest(), echoed.hexdigest(), received, code


def openssl_argv(plane, version: str) -> list[str]:
    # -brief: the handshake's summary on stderr only, stdout is the echo; -nocommands: a "Q" or
    # "R" at the start of a read from stdin is data, not a command.
    return ["openssl", "s_client", "-brief", "-nocommands", f"-tls1_{version[-1]}",
            "-CAfile", str(plane.tb.workdir / "site.pem"), "-verify_return_error",
            "-verify_hostname", "site.example", "-servername", "site.example",
            "-connect", f"{LISTENER_ADDRESS}:{TLS_PORT}"]


def gnutls_argv(plane, version: str) -> list[str]:
    # --logfile: its informational lines go there, stdout is the echo alone.
    return ["gnutls-cli", "--logfile", str(plane.tb.workdir / f"gnutls-{version}.log"),
            "--x509cafile", str(plane.tb.workdir / "site.pem"),
            "--sni-hostname", "site.example", "--verify-hostname", "site.example",
            "--priority", f"NORMAL:-VERS-ALL:+VERS-TLS{version}", "--port", str(TLS_PORT),
            LISTENER_ADDRESS]


@pytest.mark.parametrize("client", ["openssl", "gnutls"])
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_ten_megabytes_each_way_with_two_implementations(plane, client, version):
    argv = (openssl_argv if client == "openssl" else gnutls_argv)(plane, version)
    sent, echoed, received, code = stream_echo(plane, argv)
    assert received == ECHO_BYTES and echoed == sent, (client, version, received)
    assert code == 0, (client, version, code)
    # Client to backend: the backend's digest of what reached it (recorded once the connection
    # ended, after the client's close_notify and Weir's FIN).
    poll_until(lambda: plane.backends.records("b1"), 20.0, what="the backend's record")
    (record,) = plane.backends.records("b1")
    assert record["bytes"] == ECHO_BYTES and record["sha256"] == sent, record
    stats = plane.dp.stats()["listeners"]["secure"]
    assert stats["tls_resets"] == 0, stats
    assert stats[f"tls_handshakes_tls{version.replace('.', '')}"] >= 1, stats
    if client == "gnutls":
        log = (plane.tb.workdir / f"gnutls-{version}.log").read_text()
        assert f"(TLS{version}-X.509)" in log and "The certificate is trusted" in log, log


# --- testssl.sh

# testssl.sh's severities, best first (its JSON "severity"); worse than OK fails the test. WARN is
# a check testssl could not run, FATAL a scan that stopped: neither is a pass.
TESTSSL_FINE = ("DEBUG", "INFO", "OK")
# Warnings about the scanner's own OpenSSL, not about the server: Debian's openssl has no GOST
# engine ("No engine or GOST support via engine with your /usr/bin/openssl").
TESTSSL_ABOUT_ITSELF = ("engine_problem",)
# -p protocols, -s cipher categories, -f forward secrecy, -U every vulnerability check, -E every
# cipher by protocol, -P the server's preferences. Not -S (the certificate: the test's own,
# self-signed and valid for two days, would be rated by what a test CA is, not by Weir) and not -h
# (HTTP headers: the backend is an echo).
TESTSSL_CHECKS = ("-p", "-s", "-f", "-U", "-E", "-P")


@pytest.mark.skipif(shutil.which("testssl") is None,
                    reason="testssl.sh (Debian testssl.sh: scripts/deps) is needed")
def test_testssl_rates_nothing_worse_than_ok(plane):
    report = plane.tb.workdir / "testssl.json"
    report.unlink(missing_ok=True)
    # Offline: --ip instead of resolving the name (which stays the SNI), no DNS at all, no
    # phone-out (the default), a batch run that stops instead of asking.
    result = plane.tb.exec("client", [
        "testssl", "--quiet", "--warnings", "batch", "--color", "0", "--nodns", "none",
        "--ip", LISTENER_ADDRESS, "--connect-timeout", "10", "--openssl-timeout", "10",
        "--jsonfile", str(report), *TESTSSL_CHECKS, f"site.example:{TLS_PORT}"],
        check=False, timeout=900)
    assert report.exists(), result.stdout + result.stderr
    findings = json.loads(report.read_text())
    (plane.tb.workdir / "testssl.out").write_text(result.stdout)
    ids = {f["id"] for f in findings}
    # Each family of checks ran (a scan that stopped early would rate nothing).
    for expected in ("TLS1_3", "TLS1_2", "SSLv3", "TLS1", "TLS1_1", "PFS", "heartbleed",
                     "ROBOT", "secure_renego", "secure_client_renego", "LUCKY13", "SWEET32",
                     "cipherlist_NULL", "cipher_order", "cipher-tls1_3_x1301"):
        assert expected in ids, (expected, sorted(ids))
    worse = [f for f in findings if f["severity"] not in TESTSSL_FINE
             and f["id"] not in TESTSSL_ABOUT_ITSELF]
    assert not worse, json.dumps(worse, indent=1)
    by_id = {f["id"]: f["finding"] for f in findings}
    assert by_id["TLS1_3"].startswith("offered") and by_id["TLS1_2"].startswith("offered"), by_id
    assert by_id["SSLv3"].startswith("not offered") and by_id["TLS1_1"].startswith("not offered")
