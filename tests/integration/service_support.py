"""What the service, install and TLS worker suites share: systemd's notification socket played by
the test (sd_notify's protocol: datagrams of NAME=VALUE lines on the Unix socket named by
NOTIFY_SOCKET), the version line every binary prints with --version, and a fake dataplane control
socket for weir-control without a dataplane."""

import json
import re
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

SAMPLE = re.compile(r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(exposition: str, name: str) -> list:
    """[(labels dict, value)] of the metric `name` in a Prometheus text exposition."""
    found = []
    for line in exposition.splitlines():
        match = SAMPLE.fullmatch(line)
        if match and match["name"] == name:
            found.append((dict(LABEL.findall(match["labels"] or "")), float(match["value"])))
    return found


VERSION_LINE = re.compile(r"(?P<program>\S+) (?P<version>\S+) \(revision (?P<revision>\S+)\)")


def version_of(executable: Path) -> dict:
    """{"program", "version", "revision"} from `EXECUTABLE --version`, which must exit 0 and print
    exactly one such line."""
    result = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, (executable, result.returncode, result.stderr)
    match = VERSION_LINE.fullmatch(result.stdout.strip())
    assert match and result.stdout.count("\n") == 1, (executable, result.stdout)
    return match.groupdict()


class NotifySocket:
    """A Unix datagram socket standing in for systemd's: pass env() to the daemon, then
    wait_for("READY=1", proc) returns the first message carrying that line."""

    def __init__(self, directory: Path):
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[str] = []

    def env(self) -> dict:
        return {"NOTIFY_SOCKET": str(self.path)}

    def wait_for(self, line: str, proc: subprocess.Popen, timeout_s: float = 60.0,
                 describe=lambda: "") -> str:
        """Blocks until a message with `line` arrives; fails if the process exits first or the
        deadline passes. Messages before it are kept in self.messages."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {line} within {timeout_s} s; got {self.messages}\n"
                                     + describe())
            if select.select([self.sock], [], [], min(remaining, 0.5))[0]:
                message = self.sock.recv(65536).decode()
                self.messages.append(message)
                if line in message.split("\n"):
                    return message
            elif proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode} before sending {line}; got "
                                     f"{self.messages}\n" + describe())

    def close(self) -> None:
        self.sock.close()


class FakeDataplane:
    """The dataplane's control socket at `path` played by the test: each request line gets the
    envelope (v, id) and `reply(op)`'s fields; `served` lists the ops asked, in order. A context
    manager: the socket is served from a thread until the block ends."""

    def __init__(self, path: Path, reply):
        self.reply = reply
        self.served: list = []
        self._stopping = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self._thread.join(10)
        self._server.close()

    def _serve(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            with conn:
                buffer = b""
                conn.settimeout(5)
                try:
                    while not self._stopping.is_set():
                        data = conn.recv(65536)
                        if not data:
                            break
                        buffer += data
                        while b"\n" in buffer:
                            line, buffer = buffer.split(b"\n", 1)
                            request = json.loads(line)
                            self.served.append(request.get("op"))
                            reply = {"v": 1, "id": request.get("id"),
                                     **self.reply(request.get("op"))}
                            conn.sendall(json.dumps(reply).encode() + b"\n")
                except (socket.timeout, OSError):
                    pass
