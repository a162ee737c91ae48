"""exoctl: operate a running Exosphere system (like systemctl/journalctl).

Exit codes: 0 success; 1 the operation failed; 2 usage error; 3 the capsule is not running
(status); 4 no such capsule; 5 access denied; 6 exo_init cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from exo_init.config import DEFAULT_RUNTIME
from exo_init.control import ControlError, call

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_NO_SUCH, EXIT_DENIED, EXIT_UNREACHABLE = 1, 2, 3, 4, 5, 6
ERROR_EXIT = {"NoSuchCapsule": EXIT_NO_SUCH, "AccessDenied": EXIT_DENIED, "BadRequest": EXIT_USAGE}


def fmt_bytes(n: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def status_table(rows: list[dict[str, Any]]) -> str:
    header = ("CAPSULE", "STATE", "UPTIME", "RESTARTS", "CPU%", "MEMORY/QUOTA", "PIDS", "DETAIL")
    lines = [header]
    for r in rows:
        cg = r.get("cgroup") or {}
        mem = "-"
        if cg:
            quota = cg.get("memory_max", "max")
            mem = f"{fmt_bytes(cg.get('memory_current', 0))}/{'max' if quota == 'max' else fmt_bytes(int(quota))}"
        pids = f"{cg.get('pids_current', 0)}/{cg.get('pids_max', 'max')}" if cg else "-"
        detail = r.get("error") or r.get("status_text") or r.get("reason") or ""
        lines.append((r["name"], r["state"], fmt_duration(r.get("uptime")), str(r.get("restarts", 0)),
                      f"{r.get('cpu_percent', 0):.1f}", mem, pids, detail))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def follow(path: Path, start_lines: list[str]) -> None:
    for line in start_lines:
        print(line, flush=True)
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        while True:
            chunk = fh.readline()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
                continue
            time.sleep(0.2)
            try:
                if path.stat().st_size < fh.tell():  # rotated
                    fh.close()
                    fh = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exoctl", description="Operate a running Exosphere system")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--socket", type=Path, default=DEFAULT_RUNTIME / "control.sock",
                   help="exo_init's control socket")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="capsules with state and live figures")
    st.add_argument("name", nargs="?")
    for name in ("start", "stop", "restart", "freeze", "thaw"):
        sub.add_parser(name, help=f"{name} a capsule").add_argument("name")
    lg = sub.add_parser("logs", help="a capsule's log")
    lg.add_argument("name")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.add_argument("-f", "--follow", action="store_true")
    sub.add_parser("reload", help="re-read the manifest and apply the difference")
    sub.add_parser("poweroff", help="stop every capsule and power off")
    sub.add_parser("reboot", help="stop every capsule and reboot")
    sub.add_parser("info", help="exo_init itself")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    request: dict[str, Any] = {"op": args.command}
    if getattr(args, "name", None) is not None:
        request["name"] = args.name
    if args.command == "logs":
        request["lines"] = max(0, args.lines)
    try:
        result = call(args.socket, request)
    except ControlError as e:
        sys.stderr.write(f"exoctl: {e.message}\n")
        sys.exit(ERROR_EXIT.get(e.name, EXIT_FAILED))
    except OSError as e:
        sys.stderr.write(f"exoctl: cannot reach exo_init at {args.socket}: {e.strerror or e}\n")
        sys.exit(EXIT_UNREACHABLE)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.command == "status":
        print(status_table(result if isinstance(result, list) else [result]))
    elif args.command == "logs":
        if args.follow:
            try:
                follow(Path(result["path"]), result["lines"])
            except KeyboardInterrupt:
                pass
            return
        print("\n".join(result["lines"]))
    elif args.command == "reload":
        for kind in ("added", "removed", "changed", "errors"):
            for item in result.get(kind, []):
                print(f"{kind}: {item}")
    elif isinstance(result, dict) and "state" in result:
        print(f"{result['name']}: {result['state']}")
    else:
        print(json.dumps(result, sort_keys=True))
    if args.command == "status" and args.name and result.get("state") not in ("ready", "starting", "exited"):
        sys.exit(EXIT_NOT_RUNNING)


if __name__ == "__main__":
    main()
