"""proc.list's source: the processes a /proc shows, read as psutil reads them on Linux.

What a process listing can see is what the host's /proc shows: in a capsule with its own PID
namespace (and its own /proc), only that namespace's processes. A process that is gone while it is
read, or whose stat/statm the host may not read, is left out (psutil's `process_iter` leaves out
the one and gives no memory figures for the other, which `ps` skipped); a field the host may not
read (uid, command line) is None or empty. Every file read is bounded (MAX_FILE bytes), and so is
the number of processes (MAX_PROCESSES).
"""

from __future__ import annotations

import os
from typing import Any

MAX_PROCESSES = 1 << 15
MAX_FILE = 1 << 20
COMM_LEN = 15  # the kernel's TASK_COMM_LEN - 1: a longer name is cut to this
# /proc/PID/stat's state letter -> psutil's status names
STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop", "Z": "zombie",
          "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "I": "idle", "P": "parked"}


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        return os.read(fd, MAX_FILE)
    finally:
        os.close(fd)


def _cmdline(data: bytes) -> list[str]:
    """psutil's reading of /proc/PID/cmdline: NUL-separated, or space-separated for a process that
    rewrote its command line into one string."""
    text = data.decode("utf-8", "replace")
    if not text:
        return []
    sep = "\x00" if text.endswith("\x00") else " "
    if text.endswith(sep):
        text = text[:-1]
    args = text.split(sep)
    if sep == "\x00" and len(args) == 1 and " " in text:
        args = text.split(" ")
    return args


def _uid(status: bytes) -> int | None:
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def process(directory: str, pid: int, ticks: int, page: int) -> dict[str, Any]:
    """One process's figures (OSError or ValueError: gone, or not readable)."""
    stat = _read(f"{directory}/stat").decode("utf-8", "replace")
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    rss_pages = int(_read(f"{directory}/statm").split()[1])
    try:
        args = _cmdline(_read(f"{directory}/cmdline"))
    except OSError:
        args = []
    try:
        uid = _uid(_read(f"{directory}/status"))
    except OSError:
        uid = None
    name = comm
    if len(comm) >= COMM_LEN and args and os.path.basename(args[0]).startswith(comm):
        name = os.path.basename(args[0])
    return {"pid": pid, "ppid": int(fields[1]), "uid": uid, "status": STATES.get(fields[0], "?"),
            "rss": rss_pages * page, "cpu": (int(fields[11]) + int(fields[12])) / ticks, "name": name,
            "cmdline": args}


def processes(root: str = "/proc") -> list[dict[str, Any]]:
    """Every process `root` shows, by pid."""
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    pids = sorted(int(n) for n in os.listdir(root) if n.isdigit())[:MAX_PROCESSES]
    out = []
    for pid in pids:
        try:
            out.append(process(f"{root}/{pid}", pid, ticks, page))
        except (OSError, ValueError, IndexError):
            continue
    return out
