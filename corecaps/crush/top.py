# top: every capsule's state and resource figures, live, from exo_init's control API.
# top [-n ITERATIONS] [-d SECONDS] [--socket PATH]; q quits. Needs the capsule's `control` grant.
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV, CWD and
# CONTROL_SOCKET (the default socket) are given by the runner, errors go to exo.log (the shell's
# stderr), `status` is the exit status. printable, absolute, strerror, fmt_bytes:
# corecaps/crush/_common.py. The table is exoctl's status_table (tests/test_crushcaps.py compares
# the two on the same rows).
import exo

USAGE = "usage: top [-h] [-n N] [-d D] [--socket SOCKET]"
HELP = (USAGE + "\n\noptions:\n  -h, --help       show this help message and exit\n"
        "  -n N             stop after this many screens (0: until q)\n"
        "  -d D             seconds between screens\n  --socket SOCKET")
UNITS = ("count", "bytes", "seconds")
METRIC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
status = 0


def fmt_duration(seconds):
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def show_metric(n, unit):
    if unit == "count":
        for suffix, size in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if n >= size:
                return f"{n / size:.3g}{suffix}"
        return f"{n:.0f}"
    if unit == "bytes":
        for suffix, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
            if n >= size:
                return f"{n / size:.3g}{suffix}"
        return f"{n:.0f}B"
    return f"{n:.3g}s"


def number(value):
    """A metric's figure as exo_init/lib/runtime.py accepts it (a finite number >= 0), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (value != value or value - value != 0):
        return None
    return value if value >= 0 else None


def metrics_text(metrics):
    """The metrics (name -> {value, limit, unit}) in one short line; "" if there are none or they are
    not well-formed (as exoctl's metrics_text)."""
    if not isinstance(metrics, dict) or len(metrics) > 16:
        return ""
    parts = []
    for name, raw in metrics.items():
        if not (1 <= len(name) <= 32 and "a" <= name[0] <= "z" and all([c in METRIC_CHARS for c in name])):
            return ""
        if not isinstance(raw, dict) or any([k not in ("value", "limit", "unit") for k in raw]):
            return ""
        unit = raw.get("unit", "count")
        value = number(raw.get("value"))
        limit = raw.get("limit")
        if unit not in UNITS or value is None or (limit is not None and number(limit) is None):
            return ""
        parts.append(f"{name} {show_metric(value, unit)}" + (f"/{show_metric(limit, unit)}" if limit is not None else ""))
    return ", ".join(parts)


def status_table(rows):
    budgets = [metrics_text(r.get("metrics") or {}) for r in rows]
    extra = any(budgets)
    header = ["CAPSULE", "STATE", "UPTIME", "RESTARTS", "CPU%", "MEMORY/QUOTA", "PIDS"]
    header += ["BUDGETS", "DETAIL"] if extra else ["DETAIL"]
    lines = [header]
    for i, r in enumerate(rows):
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
        cells = [r["name"], r["state"], fmt_duration(r.get("uptime")), str(r.get("restarts", 0)),
                 f"{r.get('cpu_percent', 0):.1f}", mem, pids]
        cells += [budgets[i] or "-", detail] if extra else [detail]
        lines.append([printable(str(cell)) for cell in cells])
    widths = [max([len(line[i]) for line in lines]) for i in range(len(header) - 1)]
    return "\n".join(["  ".join([line[i].ljust(widths[i]) for i in range(len(widths))]) + "  " + line[-1]
                      for line in lines])


def clock_text():
    seconds = int(exo.clock()) % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def frame(rows):
    rows = sorted(rows, key=lambda r: (-float(r.get("cpu_percent") or 0), r["name"]))
    ready = len([r for r in rows if r["state"] == "ready"])
    failed = [r["name"] for r in rows if r["state"] == "failed"]
    head = (f"top - {clock_text()}  capsules: {len(rows)}, {ready} ready"
            + (f", failed: {', '.join(failed)}" if failed else ""))
    return head + "\n" + status_table(rows)


def is_negative_number(text):
    digits = text[1:]
    return text.startswith("-") and digits != "" and (digits.isdigit() or (
        digits.count(".") == 1 and digits.replace(".", "").isdigit() and not digits.endswith(".")))


def parse(argv):
    """top's options as argparse reads them: ("help"|"run"|"usage"|"error", n, d, socket, message)."""
    n = 0
    d = 1.0
    socket = CONTROL_SOCKET
    unknown = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        option = arg
        value = None
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            option, value = arg[:2], arg[2:]
        if option == "--help" or (option.startswith("--h") and "--help".startswith(option)):
            return ("help", n, d, socket, "")
        if option.startswith("--s") and "--socket".startswith(option):
            option = "--socket"
        if option in ("-h", "-n", "-d", "--socket"):
            if option == "-h":  # (-hX: -h first, as argparse reads combined flags)
                return ("help", n, d, socket, "")
            if value is None:
                if i + 1 >= len(argv) or (argv[i + 1].startswith("-") and not is_negative_number(argv[i + 1])):
                    return ("error", n, d, socket, f"argument {option}: expected one argument")
                value = argv[i + 1]
                i += 1
            if option == "-n":
                try:
                    n = int(value)
                except ValueError:
                    return ("error", n, d, socket, f"argument -n: invalid int value: {value!r}")
            elif option == "-d":
                try:
                    d = float(value)
                except ValueError:
                    return ("error", n, d, socket, f"argument -d: invalid float value: {value!r}")
            else:
                socket = value
        else:
            unknown.append(arg)
        i += 1
    if unknown:
        return ("usage", n, d, socket, "unrecognized arguments: " + " ".join(unknown))
    return ("run", n, d, socket, "")


def top(iterations, delay, socket):
    terminal = exo.tty.info()
    shown = 0
    while True:
        try:
            rows = exo.control.status(None, absolute(socket))
        except OSError as e:
            exo.log(f"top: cannot reach exo_init at {socket}: {strerror(e)}")
            return 1
        clear = "\033[H\033[2J" if terminal["stdout"] else ("\n" if shown else "")
        print(clear + frame(rows))
        shown += 1
        if iterations and shown >= iterations:
            return 0
        if exo.tty.key(delay).lower().startswith("q"):
            return 0


what, iterations, delay, control_socket, message = parse(ARGV)
if what == "help":
    print(HELP)
elif what == "usage":
    exo.log(USAGE)
    exo.log("top: error: " + message)
    status = 2
elif what == "error":
    exo.log("top: " + message)
    status = 2
else:
    status = top(iterations, delay, control_socket)
