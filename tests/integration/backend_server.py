"""A test backend for the proxy tests, run inside a backend namespace:

    python3 backend_server.py --listen ADDR:PORT --name NAME --mode MODE [--status FILE]

Modes, per connection:
  sha    read to EOF, answer the SHA-256 hex digest of what arrived and the byte count, close
         (the answer after the client's half-close shows half-close crossing the proxy)
  name   send NAME and close (placement tests count the names)
  rst    read one line, then close with RST (SO_LINGER 0)
  echo   send back what arrives, as it arrives; close after EOF (a half-close crosses back);
         the record has the byte count and the SHA-256 of what arrived
  whois_echo  send NAME, a space, the address the connection came from (the proxy's: in a
         cluster, the box that holds the session) and a newline, then as echo
  flood  send --flood-bytes as fast as the connection takes them; STATUS.progress holds the bytes
         sent and, of those, the ones not yet acknowledged (see flood())
  hold   send "+", then read until the connection ends; the record says how: "eof" or "reset"
  named_hold  as hold, but send NAME and a newline first
  proxy  parse a PROXY protocol v2 header, answer "ADDRESS PORT" of the source it carries
It prints "ready" on stdout once listening and appends one JSON line per finished connection to
--status when given."""

import argparse
import fcntl
import hashlib
import json
import os
import select
import socket
import struct
import sys
import termios
import threading

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def write_status(path, record, lock):
    if path:
        with lock, open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def write_progress(path, sent, unacked):
    """One JSON object, replaced whole: a reader never sees half of it."""
    with open(path + ".tmp", "w") as f:
        json.dump({"sent": sent, "unacked": unacked}, f)
    os.replace(path + ".tmp", path)


def flood(conn, args):
    """Sends --flood-bytes without blocking. Whenever the socket takes no more, writes to
    STATUS.progress the bytes the kernel took and, of those, the ones the peer has not
    acknowledged (SIOCOUTQ), read together while nothing is being sent: sent - unacked is exactly
    what the peer acknowledged. Raises what the connection raises."""
    block = os.urandom(1 << 16)
    sent = 0
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    conn.setblocking(False)
    progress = args.status + ".progress"
    while sent < args.flood_bytes:
        try:
            sent += conn.send(block[: min(len(block), args.flood_bytes - sent)])
            continue
        except BlockingIOError:
            pass
        unacked = struct.unpack("i", fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0" * 4))[0]
        write_progress(progress, sent, unacked)
        select.select([], [conn], [], 0.05)
    write_progress(progress, sent, 0)
    return sent


def serve(conn, args, lock):
    record = {"mode": args.mode}
    try:
        if args.mode == "sha":
            digest, total = hashlib.sha256(), 0
            while True:
                chunk = conn.recv(1 << 18)
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
            conn.sendall(f"{digest.hexdigest()} {total}\n".encode())
            record.update(bytes=total)
        elif args.mode in ("echo", "whois_echo"):
            if args.mode == "whois_echo":
                conn.sendall(f"{args.name} {conn.getpeername()[0]}\n".encode())
            digest, total = hashlib.sha256(), 0
            while True:
                chunk = conn.recv(1 << 18)
                if not chunk:
                    break
                conn.sendall(chunk)
                digest.update(chunk)
                total += len(chunk)
            record.update(bytes=total, sha256=digest.hexdigest())
        elif args.mode == "name":
            conn.sendall(args.name.encode())
        elif args.mode == "rst":
            conn.recv(100)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif args.mode == "flood":
            sent = flood(conn, args)
            record.update(sent=sent)
        elif args.mode in ("hold", "named_hold"):
            # named_hold answers with its name, so a client knows which backend holds it.
            conn.sendall(b"+" if args.mode == "hold" else args.name.encode() + b"\n")
            try:
                while conn.recv(65536):
                    pass
                record.update(ended="eof")
            except ConnectionResetError:
                record.update(ended="reset")
        elif args.mode == "proxy":
            header = read_exact(conn, 16)
            if header[:12] != PROXY_V2_SIGNATURE:
                raise ValueError(f"no PROXY v2 signature: {header!r}")
            length = struct.unpack("!H", header[14:16])[0]
            body = read_exact(conn, length)
            src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
            record.update(version_command=header[12], family=header[13],
                          source=socket.inet_ntoa(src), source_port=sport,
                          destination=socket.inet_ntoa(dst), destination_port=dport)
            conn.sendall(f"{socket.inet_ntoa(src)} {sport}\n".encode())
    except Exception as error:  # noqa: BLE001 (reported to the test)
        record.update(error=repr(error))
    finally:
        conn.close()
        write_status(args.status, record, lock)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", required=True,
                        choices=["sha", "echo", "whois_echo", "name", "rst", "flood", "hold", "named_hold",
                                 "proxy"])
    parser.add_argument("--status")
    parser.add_argument("--flood-bytes", type=int, default=64 << 20)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(1024)
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, args, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
