"""What the service and install suites share: systemd's notification socket played by the test
(sd_notify's protocol: datagrams of NAME=VALUE lines on the Unix socket named by NOTIFY_SOCKET),
and the version line every binary prints with --version."""

import re
import select
import socket
import subprocess
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
