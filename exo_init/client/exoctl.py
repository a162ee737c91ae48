"""exoctl: operate a running Exosphere system (like systemctl/journalctl).

Transport: exo_init's private control socket when this process can connect to it (loading the
D-Bus bindings was most of exoctl's start-up), else the
org.exosphere.Core1 D-Bus API on the system bus (the dbus-bridge capsule), with the same output and
exit codes (`--via` forces one; `--socket PATH` means that socket). Both carry the same JSON
documents, so `--json` prints the same either way.

`exoctl export-systemd [MANIFEST] [-o DIR]` needs no running system: it writes the manifest's
capsules as systemd units (exo_init/client/systemd_units.py).

Exit codes: 0 success; 1 the operation failed (or, for reload, skipped a capsule it could not load);
2 usage error; 3 the capsule is not running (status); 4 no such capsule; 5 access denied; 6 exo_init cannot be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from exo_init.client.control import call
from exo_init.lib import ops
from exo_init.lib.errors import ApiError
from exo_init.lib.logfile import LogTail
from exo_init.lib.paths import DEFAULT_MANIFEST, DEFAULT_RUNTIME
from exo_init.lib.runtime import metrics_text
from exo_init.lib.text import printable
from exo_init.lib.units import fmt_bytes, fmt_duration

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_NO_SUCH, EXIT_DENIED, EXIT_UNREACHABLE = 1, 2, 3, 4, 5, 6
ERROR_EXIT = {"NoSuchCapsule": EXIT_NO_SUCH, "AccessDenied": EXIT_DENIED, "BadRequest": EXIT_USAGE}
DBUS_TIMEOUT = 25.0  # the bridge's own call to exo_init is bounded at 20 s


class Unreachable(Exception):
    """The D-Bus path is not there (no bus, no bridge, no bindings): use the private socket."""


def system_bus_present() -> bool:
    """Cheap check before importing gi: is there a system bus to talk to at all?"""
    from exo_init.client import dbus_api  # noqa: PLC0415

    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    return bool(address) or os.path.exists(dbus_api.DEFAULT_SYSTEM_BUS)


def call_dbus(request: dict[str, Any], read_only: bool) -> Any:
    """`request` as an org.exosphere.Core1 method call: the result, ApiError for the API's
    errors, Unreachable when D-Bus cannot carry it (and trying the socket instead is safe)."""
    from exo_init.client import dbus_api  # noqa: PLC0415

    if not system_bus_present():
        raise Unreachable(f"no system bus ({dbus_api.DEFAULT_SYSTEM_BUS} does not exist)")
    try:
        # PyGObject's import is most of the D-Bus path's cost, so it is paid only here; exoctl may
        # run without site (python3 -S: a third of its start-up), so site-packages are added first.
        if "site" not in sys.modules:
            import site  # noqa: PLC0415

            site.main()
        from gi.repository import Gio, GLib  # noqa: PLC0415
    except ImportError as e:
        raise Unreachable(f"no D-Bus bindings: {e}") from None
    method, signature, args = dbus_api.dbus_call(request)
    try:
        # A private connection: the shared one would SIGTERM this process if the bus went away.
        address = Gio.dbus_address_get_for_bus_sync(Gio.BusType.SYSTEM, None)
        flags = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
        con = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    except GLib.Error as e:
        raise Unreachable(f"system bus: {e.message}") from None
    try:
        reply = con.call_sync(dbus_api.BUS_NAME, dbus_api.OBJECT_PATH, dbus_api.INTERFACE, method,
                              GLib.Variant(f"({signature})", args) if signature else None,
                              GLib.VariantType("(s)"), Gio.DBusCallFlags.NO_AUTO_START,
                              int(DBUS_TIMEOUT * 1000), None)
    except GLib.Error as e:
        remote = Gio.DBusError.get_remote_error(e)
        if remote:  # "GDBus.Error:NAME: text" -> "text" (strip_remote_error edits a C copy, not e)
            e.message = e.message.removeprefix(f"GDBus.Error:{remote}: ")
        if remote in dbus_api.UNREACHABLE_ERRORS or (remote is None and read_only):
            raise Unreachable(f"{dbus_api.BUS_NAME}: {e.message}") from None
        message = e.message
        if remote == "org.freedesktop.DBus.Error.AccessDenied":  # the bus policy (its text is a rule dump)
            message = f"{request['op']} needs root (caller uid {os.getuid()}; refused by the system bus policy)"
        raise ApiError(dbus_api.control_error_name(remote or ""), message) from None
    finally:
        con.close_sync(None)
    return json.loads(reply.unpack()[0])


def socket_reachable(path: Path) -> bool:
    """Whether this process can connect to the control socket (a granted socket is bound read-only
    into a scoped capsule: access(2) says no, connect(2) works)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5.0)
            probe.connect(str(path))
        return True
    except OSError:
        return False


def transport_call(args: argparse.Namespace, request: dict[str, Any]) -> Any:
    """One request over the chosen transport (see the module docstring)."""
    via = args.via or ("socket" if args.socket is not None else "auto")
    socket_path = args.socket or DEFAULT_RUNTIME / "control.sock"
    if via == "auto" and socket_reachable(socket_path):
        via = "socket"  # the same API without loading the D-Bus bindings (most of exoctl's start-up)
    if via != "socket":
        from exo_init.client import dbus_api  # noqa: PLC0415 (its dataclasses cost a socket call their start-up)
    if via != "socket" and dbus_api.supports(request["op"]):
        try:
            return call_dbus(request, read_only=request["op"] in ops.READ_ONLY)
        except Unreachable as e:
            if via == "dbus":
                raise OSError(f"cannot reach {dbus_api.BUS_NAME} on the system bus: {e}") from None
    try:
        return call(socket_path, request)
    except OSError as e:
        raise OSError(f"cannot reach exo_init at {socket_path}: {e.strerror or e}") from None


def status_table(rows: list[dict[str, Any]]) -> str:
    """One line per capsule; a BUDGETS column (a runtime capsule's figures against its budgets:
    fuel, linear memory, ...) when a capsule has any."""
    budgets = [metrics_text(r.get("metrics") or {}) for r in rows]
    extra: tuple[str, ...] = ("BUDGETS",) if any(budgets) else ()
    header = ("CAPSULE", "STATE", "UPTIME", "RESTARTS", "CPU%", "MEMORY/QUOTA", "PIDS", *extra, "DETAIL")
    lines: list[tuple[str, ...]] = [header]
    for r, budget in zip(rows, budgets, strict=True):
        cg = r.get("cgroup") or {}
        mem = "-"
        if cg:
            quota = cg.get("memory_max", "max")
            limit = "max" if quota == "max" else fmt_bytes(int(quota))
            mem = f"{fmt_bytes(cg.get('memory_current', 0))}/{limit}"
        pids = f"{cg.get('pids_current', 0)}/{cg.get('pids_max', 'max')}" if cg else "-"
        detail = r.get("error") or r.get("status_text") or r.get("reason") or ""
        if r.get("degraded"):
            detail = f"degraded: {r['degraded']}; {detail}"
        lines.append(tuple(printable(str(cell)) for cell in (
            r["name"], r["state"], fmt_duration(r.get("uptime")), str(r.get("restarts", 0)),
            f"{r.get('cpu_percent', 0):.1f}", mem, pids, *((budget or "-",) if extra else ()), detail)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def follow(path: Path, start_lines: list[str]) -> None:
    for line in start_lines:
        print(printable(line), flush=True)
    tail = LogTail(path)
    while True:
        for line in tail.read_lines():
            print(printable(line), flush=True)
        time.sleep(0.2)  # a file has no "new data" event without inotify: poll it


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exoctl", description="Operate a running Exosphere system")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--socket", type=Path, default=None,
                   help=f"exo_init's control socket (default {DEFAULT_RUNTIME / 'control.sock'}; "
                   "implies --via socket)")
    p.add_argument("--via", choices=("auto", "dbus", "socket"), default=None,
                   help="the D-Bus API, the private socket, or D-Bus falling back to the socket (default)")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="capsules with state and live figures")
    st.add_argument("name", nargs="?")
    for name in ("start", "stop", "restart", "freeze", "thaw"):
        sub.add_parser(name, help=f"{name} a capsule").add_argument("name")
    sub.add_parser("checkpoint", help="a CRUSH capsule checkpoints now").add_argument("name")
    lg = sub.add_parser("logs", help="a capsule's log")
    lg.add_argument("name")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.add_argument("-f", "--follow", action="store_true")
    sub.add_parser("reload", help="re-read the manifest and apply the difference")
    sub.add_parser("poweroff", help="stop every capsule and power off")
    sub.add_parser("reboot", help="stop every capsule and reboot")
    sub.add_parser("info", help="exo_init itself")
    sw = sub.add_parser("switch", help="switch to a manifest (a new generation) or a generation number")
    sw.add_argument("target", help="MANIFEST path or GENERATION number")
    sw.add_argument("--no-try", action="store_true", help="commit at once (no probation)")
    sw.add_argument("--probation", type=float, default=None, metavar="SECONDS",
                    help="the probation window (default 20 s)")
    sub.add_parser("rollback", help="go back one generation")
    sub.add_parser("generations", help="the generations, with the current and the booted one")
    ev = sub.add_parser("events", help="the anomaly and action log (sentry, switches, rollbacks)")
    ev.add_argument("-n", "--lines", type=int, default=50)
    ex = sub.add_parser("export-systemd", help="write the manifest's capsules as systemd units (offline)")
    ex.add_argument("manifest", nargs="?", type=Path, default=DEFAULT_MANIFEST,
                    help=f"the manifest to translate (default {DEFAULT_MANIFEST})")
    ex.add_argument("-o", "--output", type=Path, default=None, help="write the unit files here (default: print them)")
    ex.add_argument("--prefix", default="exo-", help="unit names are PREFIX<capsule>.service (default exo-)")
    ex.add_argument("--systemd-version", type=int, default=252,
                    help="the systemd the units are for (default 252, Debian bookworm's)")
    ex.add_argument("--python", default="/usr/bin/python3", help="the interpreter that runs the readiness helper")
    ex.add_argument("--helper", default=None, help="the readiness helper's path on the target system "
                    "(default: where the dev image installs exo_init/client/systemd_ready.py)")
    ex.add_argument("--only", action="append", default=[], metavar="NAME", help="only this capsule (repeatable)")
    return p


def export_systemd(args: argparse.Namespace) -> int:
    """The units of a manifest, printed or written to a directory; 1 if a capsule did not load."""
    from exo_init.client import systemd_units  # noqa: PLC0415 (it imports the loader: only for this command)

    try:
        manifest = systemd_units.read_manifest(args.manifest)
    except systemd_units.ExportError as e:
        sys.stderr.write(f"exoctl: {e}\n")
        return EXIT_FAILED
    missing = [n for n in args.only if n not in manifest.capsules]
    if missing:
        sys.stderr.write(f"exoctl: no capsule named {missing[0]!r} in {args.manifest}\n")
        return EXIT_NO_SUCH
    options = systemd_units.Options(prefix=args.prefix, systemd_version=args.systemd_version, python=args.python,
                                    helper=args.helper or systemd_units.HELPER)
    units = systemd_units.export(manifest, options, args.only)
    for error in manifest.errors.values():
        sys.stderr.write(f"exoctl: skipped: {error}\n")
    if args.output is None:
        print("\n".join(f"### {u.name}\n{u.text}" for u in units), end="")
    else:
        args.output.mkdir(parents=True, exist_ok=True)
        for u in units:
            (args.output / u.name).write_text(u.text)
        inexact = sum(len(u.inexact) for u in units)
        print(f"{len(units)} units in {args.output} ({inexact} notes on what has no exact equivalent: grep inexact)")
    return EXIT_FAILED if manifest.errors else 0


GENERATION_COMMANDS = ("switch", "rollback", "generations", "events")


def generation_request(args: argparse.Namespace, request: dict[str, Any]) -> None:
    if args.command == "switch":
        target = args.target
        request["target"] = target if target.isdigit() else str(Path(target).resolve())
        request["try"] = not args.no_try
        if args.probation is not None:
            request["probation"] = args.probation
    elif args.command == "events":
        request["lines"] = max(0, args.lines)


def print_generation_result(command: str, result: Any) -> None:
    if command == "generations":
        for g in result["generations"]:
            marks = ",".join(m for m in ("current", "booted", "running") if g[m])
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(g["created"]))
            print(f"{g['number']:>4}  {created}  {marks or '-':<22}  {printable(str(g['source']))}")
        if result.get("probation"):
            p = result["probation"]
            print(f"generation {p['generation']} on probation ({p['seconds']:g} s), previous {p['previous']}")
        if result.get("last_rollback"):
            r = result["last_rollback"]
            print(f"last rollback: generation {r['generation']} -> {r['to']}: {printable(str(r['reason']))}")
    elif command == "events":
        for e in result:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("time", 0)))
            rest = {k: v for k, v in e.items() if k not in ("time", "kind", "capsule")}
            line = f"{when}  {e.get('kind', '?')}  {e.get('capsule', '-')}  {json.dumps(rest, sort_keys=True)}"
            print(printable(line))
    else:
        extra = f" (probation {result['probation']:g} s)" if result.get("probation") else ""
        print(f"generation {result['generation']}{extra}")
        print_changes(result)


def print_changes(result: dict[str, Any]) -> None:
    """What a reload or switch did, one line per capsule; a capsule it could not load is an error
    line on stderr (the others were applied)."""
    for kind in ("added", "removed", "changed"):
        for item in result.get(kind, []):
            print(f"{kind}: {printable(str(item))}")
    for error in result.get("errors", []):
        sys.stderr.write(f"exoctl: {printable(str(error))}\n")


SHUTDOWN_TEXT = {"poweroff": "powering off: every capsule stops, then the machine powers off",
                 "reboot": "rebooting: every capsule stops, then the machine restarts"}


def human(result: Any) -> str:
    """A person's reading of a result no command above formats: an accepted shutdown as a sentence,
    a record (`info`) as one `key: value` line each, `outer.inner` for a record in it (`--json`
    gives the API's JSON)."""
    if isinstance(result, dict) and set(result) == {"action"} and result["action"] in SHUTDOWN_TEXT:
        return SHUTDOWN_TEXT[result["action"]]
    if isinstance(result, dict):
        rows = sorted(flat(result))
        width = max((len(k) for k, _ in rows), default=0)
        return "\n".join(printable(f"{k + ':':<{width + 1}} {'-' if v is None or v == {} else v}") for k, v in rows)
    return printable(str(result))


def flat(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    return [kv for k, v in record.items()
            for kv in (flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [(f"{prefix}{k}", v)])]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "export-systemd":
        sys.exit(export_systemd(args))
    request: dict[str, Any] = {"op": args.command}
    if getattr(args, "name", None) is not None:
        request["name"] = args.name
    if args.command == "logs":
        request["lines"] = max(0, args.lines)
    generation_request(args, request)
    if args.command in ops.SOCKET_ONLY and args.via is None:
        args.via = "socket"
    try:
        result = transport_call(args, request)
    except ApiError as e:
        sys.stderr.write(f"exoctl: {printable(e.message)}\n")
        sys.exit(ERROR_EXIT.get(e.name, EXIT_FAILED))
    except OSError as e:
        sys.stderr.write(f"exoctl: {printable(str(e))}\n")
        sys.exit(EXIT_UNREACHABLE)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.command == "status":
        print(status_table(result if isinstance(result, list) else [result]))
    elif args.command == "logs":
        if args.follow:
            with contextlib.suppress(KeyboardInterrupt):
                follow(Path(result["path"]), result["lines"])
            return
        print("\n".join(printable(line) for line in result["lines"]))
    elif args.command == "reload":
        print_changes(result)
    elif args.command in GENERATION_COMMANDS:
        print_generation_result(args.command, result)
    elif isinstance(result, dict) and "state" in result:
        print(printable(f"{result['name']}: {result['state']}"))
    else:
        print(human(result))
    if args.command == "status" and args.name and result.get("state") not in ("ready", "starting", "exited"):
        sys.exit(EXIT_NOT_RUNNING)
    if isinstance(result, dict) and result.get("errors"):
        sys.exit(EXIT_FAILED)  # (a reload that skipped a capsule it could not load)


if __name__ == "__main__":
    main()
