"""`tls` listeners against other TLS implementations and a scanner (issue 14, docs/tls.md,
"Interop"): GnuTLS's gnutls-cli does TLS 1.3 and 1.2 with the listener (the certificate chain and
name verified, a line echoed through the backend), a listener with `min_version: "1.3"` refuses
GnuTLS's TLS 1.2, and sslscan finds no SSLv3, TLS 1.0 or 1.1, no suite but ECDHE with a 128-bit
or stronger AEAD, no renegotiation, no compression and no Heartbleed. Both clients run in the
client namespace of the test bed; assertions are on their parsed output."""

import select
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from netbed import LISTENER_ADDRESS, testbed_factory  # noqa: F401 (fixture)
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
