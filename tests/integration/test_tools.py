"""weir-frame-echo and weir-frame-load (docs/tools.md): the real binaries on loopback, no root, no
DPDK. The load generator is checked against the echo, and both are checked against frames built
here in Python with an independent CRC-32C, so a bug shared by the two tools cannot hide."""

import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build"))
ECHO = BUILD_ROOT / "tools" / "weir-frame-echo"
LOAD = BUILD_ROOT / "tools" / "weir-frame-load"
DEADLINE_S = 15
PING, PONG = 0x01, 0x02
OUTPUT_LIMIT = 4 << 20  # the echo's bound on queued answers per connection


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def header(flags=0, length=0, stream=0, hop=0, magic=b"WF", version=1) -> bytes:
    return magic + struct.pack(">BBIII", version, flags, length, stream, hop)


def frame(flags=0, stream=0, hop=0, payload=b"") -> bytes:
    covered = header(flags, len(payload), stream, hop) + payload
    return covered + struct.pack(">I", crc32c(covered))


def poll_until(check, what, timeout=DEADLINE_S):
    """Calls check() until it returns something truthy; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise AssertionError(f"connection closed after {len(data)} of {n} bytes")
        data += piece
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the peer has closed (EOF or reset); waits for it with the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class Echo:
    """A running weir-frame-echo. Output goes to files, never to pipes nobody drains."""

    def __init__(self, directory: Path, *args: str):
        self.stats_path = directory / "echo-stats.json"
        self.stdout_path = directory / "echo.stdout"
        self.stderr_path = directory / "echo.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [str(ECHO), "--listen", "127.0.0.1:0", "--stats-file", str(self.stats_path), *args],
                stdout=out,
                stderr=err,
            )
        self.port = int(poll_until(self._announced_port, "the echo to announce its port"))

    def _announced_port(self):
        assert self.process.poll() is None, f"the echo exited: {self.stderr_path.read_text()}"
        found = re.search(r"^listening on 127\.0\.0\.1:(\d+)$", self.stderr_path.read_text(), re.M)
        return found and found.group(1)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stats(self) -> dict:
        """A snapshot taken after this call began: the old file is removed before SIGUSR1."""
        self.stats_path.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        poll_until(self.stats_path.exists, "the stats file")
        return json.loads(self.stats_path.read_text())

    def stats_when(self, condition, what) -> dict:
        """Snapshots until one satisfies condition (the echo may still be reading the last bytes)."""
        last = {}

        def check():
            nonlocal last
            last = self.stats()
            return condition(last)

        try:
            poll_until(check, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last stats {last}") from None
        return last

    def stop(self) -> dict:
        """SIGTERM: a clean exit 0 with the final counters on stdout and in the stats file."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=DEADLINE_S) == 0, self.stderr_path.read_text()
        final = json.loads(self.stdout_path.read_text().splitlines()[-1])
        assert json.loads(self.stats_path.read_text()) == final
        return final


@pytest.fixture
def echo(tmp_path):
    server = Echo(tmp_path)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def load(port: int, *args: str, expect_rc=0) -> dict:
    result = subprocess.run(
        [str(LOAD), "--connect", f"127.0.0.1:{port}", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == expect_rc, result.stdout + result.stderr
    return json.loads(result.stdout)


def assert_all_answered(summary: dict, frames: int, corrupted: int = 0):
    assert summary["frames_sent"] == frames
    assert summary["corrupted_sent"] == corrupted
    assert summary["responses_ok"] == frames - corrupted
    assert summary["responses_mismatched"] == 0
    assert summary["responses_missing"] == 0
    assert summary["connection_errors"] == 0
    assert summary["connection_resets"] == summary["lost_to_reset"] == 0
    latency = summary["latency_us"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p999"]


# ---- the two tools together -----------------------------------------------------------------------


def test_every_frame_is_answered_and_verified(echo):
    summary = load(echo.port, "--frames", "2000", "--connections", "8",
                   "--sizes", "0:0.1,64:0.5,1024:0.3,65536:0.1")
    assert_all_answered(summary, 2000)
    assert summary["connections"] == 8
    assert summary["bytes_received"] == summary["bytes_sent"]
    stats = echo.stats_when(lambda s: s["frames_good"] == 2000, "2000 good frames")
    assert stats["connections"] == 8
    assert stats["frames_corrupt"] == stats["frames_malformed"] == 0
    assert stats["bytes_in"] == stats["bytes_out"] == summary["bytes_sent"]


def test_pings_are_answered_with_pongs(echo):
    summary = load(echo.port, "--frames", "2000", "--connections", "8", "--ping", "--depth", "4")
    assert_all_answered(summary, 2000)


def test_corrupted_frames_are_counted_and_not_answered(echo):
    # Empty payloads too: their flipped bit lands in the hop field, keeping the header well formed.
    summary = load(echo.port, "--frames", "2000", "--connections", "8", "--corrupt-every", "10",
                   "--sizes", "0:0.2,64:0.5,1024:0.3")
    sent, corrupted = summary["frames_sent"], summary["corrupted_sent"]
    assert corrupted == sent // 10 == 200
    assert_all_answered(summary, 2000, corrupted)
    # The last frame sent is corrupt and unanswered: the echo may still be reading it.
    stats = echo.stats_when(lambda s: s["frames_good"] + s["frames_corrupt"] == sent,
                            f"{sent} frames judged")
    assert stats["frames_corrupt"] == corrupted
    assert stats["frames_good"] == sent - corrupted
    assert stats["frames_malformed"] == 0


@pytest.mark.parametrize("pacing", [[], ["--depth", "2"], ["--rate", "40"]],
                         ids=["closed", "depth_2", "rate"])
def test_frames_bigger_than_the_socket_buffers(echo, pacing):
    # At the 16 MiB hard limit the socket takes a frame only in part, and nothing is answered
    # until all of it is through: the rest must go out without an answer to wake the sender.
    summary = load(echo.port, "--frames", "6", "--connections", "2", "--sizes", "16777216",
                   "--timeout", "3", *pacing)
    assert_all_answered(summary, 6)


def test_fixed_rate_is_kept(echo):
    # Against the run's own clock, so a slow machine cannot fail it: never faster than the rate
    # (one frame of slack per connection for the first tick), and not starved either (half the
    # rate is a bound no working machine comes near).
    summary = load(echo.port, "--rate", "400", "--duration", "2", "--connections", "4")
    assert summary["duration_s"] >= 2, summary
    assert summary["frames_sent"] <= 400 * summary["duration_s"] + 4, summary
    assert summary["frames_sent"] >= 400 * 2 / 2, summary
    assert_all_answered(summary, summary["frames_sent"])


def test_duration_bounds_a_closed_loop_run(echo):
    # The run lasts the duration asked for, and ends: load() waits a bounded time for it.
    summary = load(echo.port, "--duration", "0.5", "--connections", "2", "--depth", "8")
    assert summary["duration_s"] >= 0.5, summary
    assert summary["frames_sent"] > 0
    assert_all_answered(summary, summary["frames_sent"])


def test_reconnect_changes_nothing_when_no_connection_fails(echo):
    summary = load(echo.port, "--frames", "2000", "--connections", "4", "--depth", "4",
                   "--reconnect")
    assert_all_answered(summary, 2000)
    assert echo.stats()["connections"] == 4


def test_human_readable_summary(echo):
    result = subprocess.run(
        [str(LOAD), "--connect", f"127.0.0.1:{echo.port}", "--frames", "10"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "10 ok, 0 mismatched, 0 missing" in result.stdout
    assert "result              PASS" in result.stdout


# ---- the echo against frames built here -------------------------------------------------------------


def test_ping_becomes_pong_with_a_fresh_crc(echo):
    ping = frame(PING, 0x01020304, 0, b"hello")
    assert ping[-4:] == bytes.fromhex("8aaf95c8")  # docs/protocol.md, worked example
    with echo.connect() as sock:
        sock.sendall(ping)
        assert recv_exactly(sock, len(ping)) == frame(PONG, 0x01020304, 0, b"hello")


def test_other_good_frames_come_back_byte_for_byte(echo):
    frames = [frame(0, 7, 0, b""), frame(0, 8, 42, bytes(range(256)) * 4), frame(PONG, 9, 3, b"x")]
    stream = b"".join(frames)
    with echo.connect() as sock:
        for i in range(0, len(stream), 7):  # in pieces that straddle every field
            sock.sendall(stream[i:i + 7])
        assert recv_exactly(sock, len(stream)) == stream


def test_a_corrupt_frame_is_dropped_and_the_connection_kept(echo):
    bad = bytearray(frame(0, 1, 0, b"payload"))
    bad[16] ^= 0x10  # the first payload byte, after the CRC was computed
    good = frame(0, 2, 0, b"after")
    with echo.connect() as sock:
        sock.sendall(bytes(bad) + good)
        assert recv_exactly(sock, len(good)) == good
    stats = echo.stats_when(lambda s: s["frames_good"] == 1, "one good frame")
    assert stats["frames_corrupt"] == 1 and stats["frames_malformed"] == 0


@pytest.mark.parametrize(
    "bad_header",
    [
        header(magic=b"WG"),
        header(version=2),
        header(flags=0x04),
        header(flags=PING | PONG),
        header(length=1025),  # over --max-frame 1024
    ],
    ids=["bad_magic", "bad_version", "reserved_flags", "ping_and_pong", "length_over_limit"],
)
def test_a_malformed_header_is_counted_and_closes_the_connection(tmp_path, bad_header):
    server = Echo(tmp_path, "--max-frame", "1024")
    try:
        good = frame(0, 1, 0, b"before")
        with server.connect() as sock:
            sock.sendall(good + bad_header)
            assert recv_exactly(sock, len(good)) == good  # answers before it still leave
            assert closed_by_peer(sock)
        stats = server.stats_when(lambda s: s["frames_malformed"] == 1, "one malformed header")
        assert stats["frames_good"] == 1 and stats["frames_corrupt"] == 0
        assert "malformed header" in server.stderr_path.read_text()
    finally:
        server.stop()


def test_a_client_that_does_not_read_is_not_read_from(echo):
    one = frame(0, 1, 0, os.urandom(64 << 10))
    sent = bytearray()
    pending = b""  # the rest of a frame the socket took only part of
    with echo.connect() as sock:
        sock.setblocking(False)
        # Push frames without reading a byte. The echo's answers pile up unread; once it holds
        # OUTPUT_LIMIT of them it stops reading (its stats say so: reads_paused), and the kernel
        # buffers between us fill. Whenever the socket has no room, ask the echo: paused, or
        # still reading (then the room comes back and we push on). Bounded in bytes and time.
        deadline = time.monotonic() + 120
        while True:
            assert len(sent) < 256 << 20, "the echo took 256 MiB from a client that reads nothing"
            assert time.monotonic() < deadline, f"the echo never paused: {echo.stats()}"
            _, writable, _ = select.select([], [sock], [], 0.05)
            if writable:
                data = pending or one
                try:
                    n = sock.send(data)
                except BlockingIOError:
                    continue
                sent += data[:n]
                pending = data[n:]
                continue
            stats = echo.stats()
            if stats["reads_paused"] == 1:
                break
        # Read and not yet sent back: the queued answers (at least the limit, or it would still
        # read; at most the limit plus one wakeup's reads) and a frame in progress.
        held = stats["bytes_in"] - stats["bytes_out"]
        assert OUTPUT_LIMIT <= held <= OUTPUT_LIMIT + (1 << 20) + len(one), stats

        # Now read: every byte comes back in order, and the echo closes once it has answered all.
        sock.setblocking(True)
        received = bytearray()

        def reader():
            while chunk := sock.recv(1 << 20):
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(pending)
        sent += pending
        sock.shutdown(socket.SHUT_WR)
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive(), f"{len(received)} of {len(sent)} bytes back"
        assert received == sent


# ---- the load generator against wrong peers --------------------------------------------------------


def split_frames(buffer: bytes):
    """The whole frames at the start of buffer, and the rest of it."""
    frames = []
    while len(buffer) >= 16:
        size = 16 + struct.unpack(">I", buffer[4:8])[0] + 4
        if len(buffer) < size:
            break
        frames.append(buffer[:size])
        buffer = buffer[size:]
    return frames, buffer


def serve_once(answer):
    """A one-connection server on a thread: answer(frame bytes) -> bytes to send back."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run():
        conn, _ = listener.accept()
        with conn:
            buffer = b""
            while chunk := conn.recv(65536):
                frames, buffer = split_frames(buffer + chunk)
                for one in frames:
                    conn.sendall(answer(one))
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def test_a_wrong_answer_is_a_mismatch_and_exit_1():
    def flip_last_payload_byte(data):
        return data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]

    port = serve_once(flip_last_payload_byte)
    summary = load(port, "--frames", "20", expect_rc=1)
    assert summary["responses_mismatched"] == 20 and summary["responses_ok"] == 0


def test_an_echo_that_does_not_pong_is_a_mismatch():
    port = serve_once(lambda data: data)  # echoes a PING as a PING
    summary = load(port, "--frames", "5", "--ping", expect_rc=1)
    assert summary["responses_mismatched"] == 5


def test_a_silent_peer_times_out_with_missing_answers():
    port = serve_once(lambda data: b"")
    summary = load(port, "--frames", "5", "--timeout", "0.5", expect_rc=1)
    assert summary["frames_sent"] == 1 and summary["responses_missing"] == 1


def dropping(dropped):
    """An answer function for serve_once: echoes every frame but those whose number (from 1)
    `dropped` accepts, as a corrupting hop in front of a verifying echo would (the echo never
    answers a corrupt frame)."""
    count = 0

    def answer(data):
        nonlocal count
        count += 1
        return b"" if dropped(count) else data

    return answer


@pytest.mark.parametrize("pacing", [["--rate", "200"], ["--depth", "4"]], ids=["rate", "depth_4"])
def test_frames_never_answered_are_missing_not_mismatches(pacing):
    # Every 5th frame is dropped: the answers after it are recognised as later ones (not compared
    # with the dropped frame), and the run waits at most --timeout at the end for the last one.
    port = serve_once(dropping(lambda number: number % 5 == 0))
    started = time.monotonic()
    summary = load(port, "--frames", "40", "--timeout", "0.5", *pacing, expect_rc=1)
    assert time.monotonic() - started < 5, summary
    assert summary["frames_sent"] == 40
    assert summary["responses_ok"] == 32
    assert summary["responses_missing"] == 8
    assert summary["responses_mismatched"] == 0
    assert summary["connection_errors"] == 0


def test_a_slow_fixed_rate_is_not_given_up_for_an_answer_never_coming():
    # 3 frames at 2 per second with a 0.3 s timeout: the first is never answered, and the gaps in
    # the schedule are longer than the timeout, which must not end the run early.
    port = serve_once(dropping(lambda number: number == 1))
    summary = load(port, "--rate", "2", "--frames", "3", "--timeout", "0.3", expect_rc=1)
    assert summary["frames_sent"] == 3
    assert summary["responses_ok"] == 2 and summary["responses_missing"] == 1


class ResettingServer:
    """Echoes frames byte for byte, and on each connection resets it (RST, by SO_LINGER 0) when the
    frame after the first `answered` ones has arrived, without answering that one; as a verifying
    proxy in reset mode does. With stop_listening, the listener is closed at the first reset, so
    a reconnection is refused."""

    def __init__(self, answered: int, stop_listening: bool = False):
        self.answered = answered
        self.stop_listening = stop_listening
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.resets = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn:
            buffer, answered = b"", 0
            try:
                while chunk := conn.recv(65536):
                    frames, buffer = split_frames(buffer + chunk)
                    for one in frames:
                        if answered == self.answered:
                            self._reset(conn)
                            return
                        conn.sendall(one)
                        answered += 1
            except OSError:
                pass  # the client went away

    def _reset(self, conn: socket.socket):
        with self.lock:
            self.resets += 1
        if self.stop_listening:
            self.close()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept; stops listening
        except OSError:
            pass
        self.listener.close()


@pytest.fixture
def resetting_server():
    servers = []

    def make(answered: int, stop_listening: bool = False) -> ResettingServer:
        servers.append(ResettingServer(answered, stop_listening))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_reconnect_replaces_reset_connections_exactly(resetting_server):
    # One connection, one frame at a time: every connection answers 3 frames and loses the 4th.
    server = resetting_server(3)
    summary = load(server.port, "--frames", "50", "--reconnect")
    assert summary["frames_sent"] == 50
    assert summary["connection_resets"] == 12 == server.resets
    assert summary["lost_to_reset"] == 12
    assert summary["responses_ok"] == 38
    assert summary["responses_missing"] == summary["responses_mismatched"] == 0
    assert summary["connection_errors"] == 0
    assert server.accepted == 13


@pytest.mark.parametrize("pacing", [["--connections", "4", "--depth", "4"],
                                    ["--connections", "2", "--rate", "1000"]],
                         ids=["closed_depth_4", "rate"])
def test_reconnect_keeps_sending_through_resets(resetting_server, pacing):
    server = resetting_server(3)
    summary = load(server.port, "--frames", "400", "--timeout", "3", "--reconnect", *pacing)
    assert summary["frames_sent"] == 400
    resets, lost = summary["connection_resets"], summary["lost_to_reset"]
    assert resets >= 400 // (3 + 4), summary  # at most 3 answered and 4 lost per connection
    assert resets <= lost, summary  # each reset loses at least the frame it was reset for
    assert summary["responses_ok"] + lost == 400, summary
    assert summary["responses_missing"] == summary["responses_mismatched"] == 0
    assert summary["connection_errors"] == 0


def test_without_reconnect_a_reset_fails_the_run(resetting_server):
    server = resetting_server(3)
    summary = load(server.port, "--frames", "50", expect_rc=1)
    assert summary["frames_sent"] == 4 and summary["responses_ok"] == 3
    assert summary["responses_missing"] == 1
    assert summary["connection_errors"] == 1
    assert summary["connection_resets"] == summary["lost_to_reset"] == 0


def test_reconnecting_is_given_up_after_the_timeout(resetting_server):
    server = resetting_server(3, stop_listening=True)
    started = time.monotonic()
    summary = load(server.port, "--frames", "50", "--reconnect", "--timeout", "0.5", expect_rc=1)
    assert time.monotonic() - started < 5, summary
    assert summary["duration_s"] >= 0.5, summary
    assert summary["frames_sent"] == 4 and summary["responses_ok"] == 3
    assert summary["connection_resets"] == summary["lost_to_reset"] == 1
    assert summary["connection_errors"] == 1  # the replacement that never connected
    assert summary["responses_missing"] == 0


def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as unused:  # bound, never listening: connecting is refused
        unused.bind(("127.0.0.1", 0))
        summary = load(unused.getsockname()[1], "--frames", "5", expect_rc=1)
    assert summary["connection_errors"] == 1 and summary["frames_sent"] == 0


# ---- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize("exe", [ECHO, LOAD], ids=["echo", "load"])
def test_help(exe):
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("usage: ")


@pytest.mark.parametrize(
    "exe, args, named",
    [
        (ECHO, [], "--listen"),
        (ECHO, ["--listen", "localhost:80"], "--listen"),
        (ECHO, ["--listen", "127.0.0.1:0", "--max-frame", "16777217"], "--max-frame"),
        (ECHO, ["--listen", "127.0.0.1:0", "--colour"], "--colour"),
        (LOAD, ["--frames", "5"], "--connect"),
        (LOAD, ["--connect", "127.0.0.1:0"], "--connect"),
        (LOAD, ["--connect", "127.0.0.1:9", "--connections", "0"], "--connections"),
        (LOAD, ["--connect", "127.0.0.1:9", "--sizes", "64:0.5,big:1"], "--sizes"),
        (LOAD, ["--connect", "127.0.0.1:9", "--rate", "-1"], "--rate"),
        (LOAD, ["--connect", "127.0.0.1:9", "--frames", "5", "--duration", "1"], "--duration"),
        (LOAD, ["--connect", "127.0.0.1:9", "--corrupt-every", "0"], "--corrupt-every"),
        (LOAD, ["--connect", "127.0.0.1:9", "--reconnect=yes"], "--reconnect"),
    ],
)
def test_bad_arguments_are_named_and_exit_2(exe, args, named):
    result = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
