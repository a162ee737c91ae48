"""ps: the processes this capsule's world holds (its own PID namespace).  ps [-f]

Capsules see only their own processes; `top` shows every capsule, from exo_init's control API.
"""

from __future__ import annotations

import argparse
import sys

import psutil

from corecaps.tool import OK, Refused, run
from exo_init.lib.text import printable
from exo_init.lib.units import fmt_bytes


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ps", exit_on_error=False)
    p.add_argument("-f", action="store_true", help="full command lines")
    try:
        args = p.parse_args(argv)
    except argparse.ArgumentError as e:
        raise Refused(str(e)) from None
    print(f"{'PID':>6} {'PPID':>6} {'UID':>6} {'STAT':<4} {'RSS':>7} {'TIME':>7}  COMMAND")
    for proc in sorted(psutil.process_iter(["pid", "ppid", "uids", "status", "memory_info", "cpu_times", "name",
                                            "cmdline"]), key=lambda q: q.pid):
        info = proc.info
        if info["memory_info"] is None:  # gone meanwhile, or not ours to read
            continue
        cpu = sum(info["cpu_times"][:2]) if info["cpu_times"] else 0.0
        cmd = " ".join(info["cmdline"] or []) if args.f else info["name"]
        uid = info["uids"].real if info["uids"] else "?"
        print(f"{info['pid']:>6} {info['ppid']:>6} {uid:>6} {(info['status'] or '?')[:4]:<4} "
              f"{fmt_bytes(info['memory_info'].rss):>7} {cpu:>7.2f}  {printable(cmd or info['name'])}")
    return OK


if __name__ == "__main__":
    sys.exit(run("ps", main))
