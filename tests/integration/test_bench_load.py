"""weir-bench-load (bench/load/, bench/compare's load tools and echo backend) on loopback: no root,
no DPDK, tiny counts. Checks what the benchmark's figures rest on: the counts add up on both
sides, every byte that comes back is compared, and a wrong, missing or refused answer is reported
as a failure, never counted as a transaction. No timing is checked."""

import json
import os
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
LOAD = BUILD_ROOT / "bench" / "load" / "weir-bench-load"
TIMEOUT_S = 60


def run_load(*args: str) -> tuple[int, dict]:
    r = subprocess.run([str(LOAD), *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}"
    return r.returncode, json.loads(lines[0])


class Echo:
    """weir-bench-load echo on a free loopback port; stop() returns its own counts."""

    def __init__(self):
        self.proc = subprocess.Popen([str(LOAD), "echo", "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, text=True)
        self.target = json.loads(self.proc.stdout.readline())["listening"]

    def stop(self) -> dict:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=TIMEOUT_S)
        assert self.proc.returncode == 0
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def echo():
    server = Echo()
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def test_transactions_count_every_exchange_on_both_sides(echo):
    code, result = run_load("transactions", "--connect", echo.target, "--clients", "8",
                            "--count", "300", "--bytes", "4096")
    counts = echo.stop()
    assert code == 0, result
    assert (result["transactions"], result["failures"], result["mismatches"]) == (300, 0, 0)
    assert result["bytes_sent"] == result["bytes_received"] == 300 * 4096
    assert counts == {"accepted": 300, "echoed_bytes": 300 * 4096}
    assert 0 < result["latency_us"]["p50"] <= result["latency_us"]["p99"]


def test_bulk_and_latency_check_what_comes_back(echo):
    code, bulk = run_load("bulk", "--connect", echo.target, "--connections", "3",
                          "--seconds", "1", "--bytes", "65536", "--window", "2")
    assert code == 0, bulk
    assert bulk["failed_connections"] == 0 and bulk["mismatches"] == 0
    assert bulk["echoed_bytes"] > 0
    code, latency = run_load("latency", "--connect", echo.target, "--connections", "2",
                             "--rate", "200", "--seconds", "1")
    assert code == 0, latency
    assert latency["requests"] > 0 and latency["answered"] == latency["requests"]
    assert latency["echoed_bytes"] == latency["requests"] * 64
    counts = echo.stop()
    assert counts["accepted"] == 5
    # The echo saw at least what came back, and at most what bulk had in flight besides.
    floor = bulk["echoed_bytes"] + latency["echoed_bytes"]
    assert floor <= counts["echoed_bytes"] <= floor + 3 * 2 * 65536


def test_hold_keeps_its_connections_until_stdin_closes(echo):
    proc = subprocess.Popen([str(LOAD), "hold", "--connect", echo.target, "--connections", "40"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    held = json.loads(proc.stdout.readline())
    assert (held["connections"], held["failed_connections"]) == (40, 0)
    assert held["echoed_bytes"] == 40 * 64
    assert proc.poll() is None  # still holding them
    proc.stdin.close()
    assert proc.wait(TIMEOUT_S) == 0
    assert echo.stop() == {"accepted": 40, "echoed_bytes": 40 * 64}


def against(handler, *args: str) -> tuple[int, dict]:
    """weir-bench-load ARGS against a hostile server on a free loopback port that runs
    handler(conn) for each connection (--connect is added)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def loop():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            with conn:
                handler(conn)
        listener.close()

    threading.Thread(target=loop, daemon=True).start()
    try:
        return run_load(*args, "--connect", f"127.0.0.1:{listener.getsockname()[1]}")
    finally:
        stop.set()


def recv_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_a_changed_byte_is_a_mismatch_not_a_transaction():
    def corrupt(conn):
        data = bytearray(recv_exactly(conn, 4096))
        data[2000] ^= 0x01
        conn.sendall(data)

    code, result = against(corrupt, "transactions", "--clients", "2", "--count", "6")
    assert code == 1
    assert (result["transactions"], result["mismatches"], result["failures"]) == (0, 6, 6)
    assert result["failure_reasons"] == {"answer differs": 6}


def test_a_short_answer_is_a_failure():
    def short(conn):
        conn.sendall(recv_exactly(conn, 4096)[:1000])

    code, result = against(short, "transactions", "--clients", "1", "--count", "3")
    assert code == 1
    assert (result["transactions"], result["failures"], result["mismatches"]) == (0, 3, 0)
    assert result["failure_reasons"] == {"closed early": 3}


def test_a_bulk_stream_with_a_changed_byte_fails():
    def corrupt_stream(conn):
        data = bytearray(recv_exactly(conn, 70000))
        data[65540] ^= 0x80  # inside the second frame
        conn.sendall(data)
        recv_exactly(conn, 1 << 30)  # until the client goes

    code, bulk = against(corrupt_stream, "bulk", "--connections", "1", "--seconds", "1",
                         "--window", "2")
    assert code == 1
    assert bulk["mismatches"] == 1 and bulk["failed_connections"] == 1
    assert bulk["echoed_bytes"] == 65540  # counted up to the bad byte, not past it


def test_a_refused_connection_is_a_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        code, result = run_load("transactions", "--connect", f"127.0.0.1:{port}",
                                "--clients", "2", "--count", "4")
    assert code == 1
    assert result["transactions"] == 0 and result["failures"] == 4
    assert set(result["failure_reasons"]) <= {"ECONNREFUSED", "connect ECONNREFUSED"}


# --- tls-transactions and tls-bulk (bench/compare_tls's client)


class TlsEcho:
    """A TLS 1.3/1.2 echo server on a free loopback port, a thread per connection; `corrupt`
    flips one byte of each answer. Counts handshakes and resumed ones."""

    def __init__(self, tmp_path, corrupt: bool = False):
        cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=site.example"], check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.corrupt = corrupt
        self.handshakes = self.resumed = 0
        self.names: set = set()
        self.lock = threading.Lock()
        self.ctx.sni_callback = self._sni
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.target = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _sni(self, _sock, name, _ctx):
        with self.lock:
            self.names.add(name)

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.listener.close()

    def _serve(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                with self.lock:
                    self.handshakes += 1
                    self.resumed += s.session_reused
                while True:
                    data = s.recv(1 << 16)
                    if not data:
                        break
                    if self.corrupt:
                        data = bytes([data[0] ^ 1]) + data[1:]
                    s.sendall(data)
        except (OSError, ssl.SSLError):
            pass  # the client's close without waiting for close_notify


@pytest.fixture
def tls_echo(tmp_path):
    server = TlsEcho(tmp_path)
    yield server
    server.stop.set()


def test_tls_transactions_full_and_resumed_handshakes(tls_echo):
    code, full = run_load("tls-transactions", "--connect", tls_echo.target, "--clients", "3",
                          "--count", "12", "--sni", "site.example")
    assert code == 0, full
    assert (full["transactions"], full["failures"], full["resumed"]) == (12, 0, 0), full
    assert full["bytes_received"] == 12 * 4096
    code, resumed = run_load("tls-transactions", "--connect", tls_echo.target, "--clients",
                             "3", "--count", "12", "--resume")
    assert code == 0, resumed
    # Each process's first handshake is full, each later one offers its previous ticket.
    assert (resumed["transactions"], resumed["resumed"]) == (12, 9), resumed
    assert tls_echo.handshakes == 24 and tls_echo.resumed == 9
    assert tls_echo.names == {"site.example", None}  # the first run sent it, the second none


def test_tls_bulk_streams_and_checks_the_echo(tls_echo):
    code, bulk = run_load("tls-bulk", "--connect", tls_echo.target, "--connections", "2",
                          "--seconds", "1", "--tls-version", "1.2")
    assert code == 0, bulk
    assert bulk["failures"] == 0 and bulk["echoed_bytes"] >= 2 * 131072, bulk


def test_tls_transactions_count_a_changed_byte_as_a_mismatch(tmp_path):
    server = TlsEcho(tmp_path, corrupt=True)
    try:
        code, result = run_load("tls-transactions", "--connect", server.target, "--clients",
                                "2", "--count", "4")
    finally:
        server.stop.set()
    assert code == 1
    assert (result["transactions"], result["mismatches"], result["failures"]) == (0, 4, 4)
