# ps: the processes this capsule's world holds (its own PID namespace).  ps [-f]
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV and CWD are
# given by the runner, errors go to exo.log (the shell's stderr), `status` is the exit status.
# Capsules see only their own processes (proc.list reads the /proc of the shell's world); `top`
# shows every capsule, from exo_init's control API. printable, fmt_bytes: corecaps/crush/_common.py.
import exo

USAGE = "usage: ps [-h] [-f]"
HELP = USAGE + "\n\noptions:\n  -h, --help  show this help message and exit\n  -f          full command lines"
status = 0

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
