"""The test suite's guest agent: runs shell commands sent by the host harness over virtio-serial.

Installed only in test images (a layer the harness adds), as a capsule with sd_notify readiness.
Protocol, one JSON object per line each way:
    host -> guest  {"id": 7, "cmd": "exoctl status", "timeout": 30}
    guest -> host  {"id": 7, "rc": 0, "out": "..."}   (rc 124 on timeout)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

PORT_NAME = "org.exosphere.agent"


def find_port() -> Path:
    for entry in sorted(Path("/sys/class/virtio-ports").glob("vport*")):
        try:
            if (entry / "name").read_text().strip() == PORT_NAME:
                return Path("/dev") / entry.name
        except OSError:
            continue
    raise SystemExit(f"agent: no virtio-serial port named {PORT_NAME}")


def notify_ready() -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1\nSTATUS=serving " + PORT_NAME.encode(), path)


def run(cmd: str, timeout: float) -> tuple[int, str]:
    proc = subprocess.Popen(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        return 124, out.decode(errors="replace") + f"\n[agent: timed out after {timeout} s]"


def main() -> None:
    port = find_port()
    fd = os.open(port, os.O_RDWR)
    notify_ready()
    print(f"agent: serving on {port}", flush=True)
    buf = b""
    while True:
        data = os.read(fd, 65536)
        if not data:  # host side not connected: the port reads EOF; wait for it to come back
            import select
            select.select([fd], [], [], 1.0)
            continue
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                req = json.loads(line)
                rc, out = run(str(req["cmd"]), float(req.get("timeout", 60)))
                reply = {"id": req.get("id"), "rc": rc, "out": out}
            except (ValueError, KeyError) as e:
                reply = {"id": None, "rc": 125, "out": f"agent: bad request: {e}"}
            payload = json.dumps(reply).encode() + b"\n"
            while payload:
                n = os.write(fd, payload)
                payload = payload[n:]


if __name__ == "__main__":
    main()
