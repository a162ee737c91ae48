"""Runs inside a capsule and reports what its world lets it do, as one JSON line "SCOPE {...}".

What to try comes from $PROBE (JSON): {"exists": [paths], "write": [paths], "connect": ["host:port"],
"mkdir": path}. Used by the host scope tests (passed with -c) and by the booted-image tests.
Every attempt is reported with its outcome ("ok" or the errno name), never raised.
"""

from __future__ import annotations

import errno
import json
import os
import socket


def attempt(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))


def status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def write(path: str) -> None:
    with open(path, "w") as f:
        f.write("probe\n")


def connect(target: str) -> None:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3):
        pass


def main() -> None:
    todo = json.loads(os.environ.get("PROBE", "{}"))
    report = {
        "uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(),
        "no_new_privs": status_field("NoNewPrivs"), "cap_eff": status_field("CapEff"),
        "cap_bnd": status_field("CapBnd"), "seccomp": status_field("Seccomp"),
        "hostname": socket.gethostname(), "links": sorted(name for _, name in socket.if_nameindex()),
        "root": sorted(os.listdir("/")), "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "exists": {p: os.path.exists(p) for p in todo.get("exists", [])},
        "write": {p: attempt(lambda p=p: write(p)) for p in todo.get("write", [])},
        "connect": {t: attempt(lambda t=t: connect(t)) for t in todo.get("connect", [])},
    }
    if "mkdir" in todo:
        report["mkdir"] = attempt(lambda: os.mkdir(todo["mkdir"]))
    print("SCOPE " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
