# ps: the processes this capsule's world holds (its own PID namespace).  ps [-f]
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV and CWD are
# given by the runner, errors go to exo.log (the shell's stderr), `status` is the exit status.
# Capsules see only their own processes (proc.list reads the /proc of the shell's world); `top`
# shows every capsule, from exo_init's control API.
import exo

USAGE = "usage: ps [-h] [-f]"
HELP = USAGE + "\n\noptions:\n  -h, --help  show this help message and exit\n  -f          full command lines"
BIDI = (0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069)
status = 0


def strip_escapes(text):
    """exo_init/lib/text.py's escape sequences removed: CSI, OSC, DCS/SOS/PM/APC, ESC + one character,
    8-bit CSI (tests/test_crushcaps.py compares this with it)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "\x9b" or (ch == "\x1b" and nxt == "["):
            i += 1 if ch == "\x9b" else 2
            while i < n and "0" <= text[i] <= "?":
                i += 1
            while i < n and " " <= text[i] <= "/":
                i += 1
            if i < n and "@" <= text[i] <= "~":
                i += 1
        elif ch == "\x1b" and nxt == "]":
            i += 2
            while i < n and text[i] != "\x07" and text[i] != "\x1b":
                i += 1
            if i < n and text[i] == "\x07":
                i += 1
            elif text[i:i + 2] == "\x1b\\":
                i += 2
        elif ch == "\x1b" and nxt != "" and nxt in "PX^_":
            i += 2
            while i < n and text[i] != "\x1b":
                i += 1
            if text[i:i + 2] == "\x1b\\":
                i += 2
        elif ch == "\x1b":
            i += 2 if nxt != "" else 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def printable(text):
    out = []
    for ch in strip_escapes(text):
        n = ord(ch)
        out.append("?" if (n < 32 and n != 9) or 127 <= n <= 159 or n in BIDI else ch)
    return "".join(out)


def fmt_bytes(n):
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


full = False
show_help = False
unknown = []
for arg in ARGV:
    if arg == "--help" or (arg.startswith("--h") and "--help".startswith(arg)):
        show_help = True
        break
    if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 and all([c in "fh" for c in arg[1:]]):
        full = full or "f" in arg
        if "h" in arg:
            show_help = True
            break
    else:
        unknown.append(arg)
if show_help:
    print(HELP)
elif unknown:
    exo.log(USAGE)
    exo.log("ps: error: unrecognized arguments: " + " ".join(unknown))
    status = 2
else:
    print(f"{'PID':>6} {'PPID':>6} {'UID':>6} {'STAT':<4} {'RSS':>7} {'TIME':>7}  COMMAND")
    for proc in exo.proc.list():
        cmd = " ".join(proc["cmdline"]) if full else proc["name"]
        uid = proc["uid"] if proc["uid"] is not None else "?"
        print(f"{proc['pid']:>6} {proc['ppid']:>6} {uid:>6} {proc['status'][:4]:<4} "
              f"{fmt_bytes(proc['rss']):>7} {proc['cpu']:>7.2f}  {printable(cmd or proc['name'])}")
